//! The kernel's PM QoS state: the lock and guard every test that places or observes a request
//! takes, and readers of the node and the per-CPU files that prove what is in force.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::{Missing, wait_until};

pub const NODE: &str = "/dev/cpu_dma_latency";
pub const UNCONSTRAINED: i32 = 2_000_000_000;
pub const REGISTRY_DIR: &str = "/run/lllqos";
pub const REGISTRY: &str = "/run/lllqos/registry.json";

/// Exclusive use of the kernel's PM QoS state for one test.
pub struct Kernel {
    _lock: File,
    cpus: Vec<(PathBuf, String)>,
    registry: Option<Vec<u8>>,
    /// Whether /run/lllqos was there (lllqos keeps it once made; the package makes it at boot).
    registry_dir: bool,
    /// What the global node read when the test started (other holders on the machine).
    pub baseline: i32,
}

impl Kernel {
    /// Takes the lock and records the state (use `kernel!()`).
    pub fn take() -> Result<Kernel, Missing> {
        if !nix::unistd::geteuid().is_root() || !Path::new(NODE).exists() {
            return Err(Missing::Setup(format!(
                "needs root and {NODE} (the real kernel interface)"
            )));
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            // In the target directory: shared by every test binary of this checkout, and nothing
            // is left on the machine outside it.
            .open(Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernel-tests.lock"))
            .expect("open the test lock");
        // SAFETY: flock on a descriptor we own.
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        let cpus = resume_latency_files()
            .into_iter()
            .map(|path| {
                let value = std::fs::read_to_string(&path).unwrap().trim().to_owned();
                (path, value)
            })
            .collect();
        Ok(Kernel {
            _lock: lock,
            cpus,
            registry: std::fs::read(REGISTRY).ok(),
            registry_dir: Path::new(REGISTRY_DIR).exists(),
            baseline: read_node(),
        })
    }

    /// What the node must read while a request of `us` is in force.
    pub fn expect(&self, us: i32) -> i32 {
        us.min(self.baseline)
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        for (path, value) in &self.cpus {
            if std::fs::read_to_string(path)
                .map(|v| v.trim() != value)
                .unwrap_or(false)
            {
                let _ = std::fs::write(path, value);
            }
        }
        let registry_now = std::fs::read(REGISTRY).ok();
        let left = if self.registry.is_none() {
            registry_left()
        } else {
            Vec::new()
        };
        if registry_now != self.registry || !left.is_empty() {
            match &self.registry {
                Some(text) => {
                    let _ = std::fs::write(REGISTRY, text);
                }
                None => {
                    for name in &left {
                        let _ = std::fs::remove_file(Path::new(REGISTRY_DIR).join(name));
                    }
                }
            }
        }
        // The machine as it was: without the directory if lllqos made it during the test, with it
        // (root's, private) if a test removed it.
        if !self.registry_dir {
            let _ = std::fs::remove_dir_all(REGISTRY_DIR);
        } else if std::fs::create_dir(REGISTRY_DIR).is_ok() {
            let _ = std::fs::set_permissions(
                REGISTRY_DIR,
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            );
        }
        if std::thread::panicking() {
            return;
        }
        // A test that passed must not have left anything behind.
        for (path, value) in &self.cpus {
            let now = std::fs::read_to_string(path).unwrap_or_default();
            assert_eq!(now.trim(), value, "{} was left changed", path.display());
        }
        assert_eq!(registry_now, self.registry, "the registry was left changed");
        assert!(left.is_empty(), "left in {REGISTRY_DIR}: {left:?}");
    }
}

/// What /run/lllqos holds besides its lock file, which stays once made: nothing when nothing is
/// held (and when the directory does not exist).
pub fn registry_left() -> Vec<String> {
    let mut names: Vec<String> = (std::fs::read_dir(REGISTRY_DIR).into_iter().flatten())
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name != "lock")
        .collect();
    names.sort();
    names
}

/// CPU `cpu`'s resume-latency file.
pub fn cpu_file(cpu: u32) -> PathBuf {
    PathBuf::from(format!(
        "/sys/devices/system/cpu/cpu{cpu}/power/pm_qos_resume_latency_us"
    ))
}

/// The text of CPU `cpu`'s resume-latency file.
pub fn read_cpu(cpu: u32) -> String {
    std::fs::read_to_string(cpu_file(cpu))
        .unwrap()
        .trim()
        .to_owned()
}

/// A resume-latency file's text as lllqos's messages describe it: `none (sysfs: 0)`,
/// `0 us (sysfs: n/a)`, `33 us`.
pub fn describe(text: &str) -> String {
    match text {
        "0" => "none (sysfs: 0)".to_owned(),
        "n/a" => "0 us (sysfs: n/a)".to_owned(),
        us => format!("{us} us"),
    }
}

/// Writes CPU `cpu`'s resume-latency file, as another tool would.
pub fn write_cpu(cpu: u32, text: &str) {
    std::fs::write(cpu_file(cpu), text).unwrap();
}

/// Waits for CPU `cpu`'s file to read `text`.
pub fn wait_for_cpu(cpu: u32, text: &str) {
    wait_until(&format!("cpu{cpu} to read {text}"), || {
        read_cpu(cpu) == text
    });
}

/// Every CPU's pm_qos_resume_latency_us file.
pub fn resume_latency_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("/sys/devices/system/cpu")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path().join("power/pm_qos_resume_latency_us"))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The CPUs that have a resume-latency file, ascending.
pub fn cpus() -> Vec<u32> {
    let mut cpus: Vec<u32> = resume_latency_files()
        .iter()
        .filter_map(|p| {
            p.parent()?
                .parent()?
                .file_name()?
                .to_str()?
                .strip_prefix("cpu")?
                .parse()
                .ok()
        })
        .collect();
    cpus.sort();
    cpus
}

/// The CPU the per-CPU tests constrain: the last one (CPU 1 on the two-CPU development machines).
pub fn last_cpu() -> u32 {
    cpus().last().copied().unwrap_or(0)
}

/// The limit in force, read from the node.
pub fn read_node() -> i32 {
    let mut buf = [0u8; 4];
    let file = File::open(NODE).expect("open the node");
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, 0).expect("read the node");
    i32::from_ne_bytes(buf)
}

/// Waits for the node to read `value`.
pub fn wait_for_node(value: i32) {
    wait_until(&format!("the node to read {value}"), || {
        read_node() == value
    });
}

/// The node read every millisecond by a thread, from when it is started until it is finished:
/// what a latency-sensitive process would have had in force at each moment.
pub struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<i32>>,
}

impl Sampler {
    pub fn start() -> Sampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let node = File::open(NODE).unwrap();
            let mut samples = Vec::new();
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let mut value = [0u8; 4];
                std::os::unix::fs::FileExt::read_exact_at(&node, &mut value, 0).unwrap();
                samples.push(i32::from_ne_bytes(value));
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            samples
        });
        Sampler { stop, thread }
    }

    /// Every sample taken.
    pub fn finish(self) -> Vec<i32> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}
