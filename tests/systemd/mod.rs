//! The units and the drop-in under a booted systemd, not only `systemd-analyze verify`.
//!
//! This machine's PID 1 need not be systemd: each test boots one in a container. A Debian root
//! made by `debootstrap` (once, then cached under the target directory) runs under
//! `systemd-nspawn --register=no --keep-unit -b`, with a volatile overlay (nothing the test does
//! stays in the cached root), the binary under test as `/usr/bin/lllqos`, the host's PM QoS node
//! passed in, and the test's units in `/usr/local/lib/systemd/system`. `nsenter` into the
//! container's systemd drives it. Requests made inside reach the host's kernel, where the test
//! reads them. Each machine is powered off (killed, if it does not go) when its test ends.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Missing, NODE, bin, read_cpu, read_node, wait_until};

mod units;

/// The cached Debian root, made on first use.
fn root() -> Result<PathBuf, Missing> {
    for (tool, package) in [
        ("debootstrap", "debootstrap"),
        ("systemd-nspawn", "systemd-container"),
        ("nsenter", "util-linux"),
    ] {
        crate::common::program(tool, package)?;
    }
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("systemd-root");
    std::fs::create_dir_all(&cache).unwrap();
    let root = cache.join("bookworm");
    // One test makes it; the others wait for it (a lock shared by every test binary).
    let lock = std::fs::File::create(cache.join("lock")).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    if root.join("usr/lib/systemd/systemd").exists() {
        return Ok(root);
    }
    // Made aside and renamed when complete: an interrupted run leaves no half root behind.
    let partial = cache.join("bookworm.partial");
    let _ = std::fs::remove_dir_all(&partial);
    let output = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            "--include=systemd,systemd-sysv,dbus,python3",
            "bookworm",
        ])
        .arg(&partial)
        .output()
        .unwrap();
    if !output.status.success() {
        let why = format!(
            "debootstrap could not make a Debian root (no network?): {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        let _ = std::fs::remove_dir_all(&partial);
        return Err(Missing::Setup(why));
    }
    std::fs::rename(&partial, &root).unwrap();
    Ok(root)
}

/// How to boot.
#[derive(Default)]
struct Boot {
    /// Leave the host's node out of the container.
    no_node: bool,
    /// Mount /sys writable in the container (per-CPU units).
    writable_sys: bool,
}

/// A booted systemd in a container, and the directory of units it sees.
struct Machine {
    nspawn: Child,
    /// The container's PID 1 (systemd), as this machine sees it.
    init: i32,
    units: tempfile::TempDir,
}

impl Machine {
    /// Boots a machine with these units (name, text) installed, or says what is missing.
    fn boot(units: &[(&str, &str)], boot: Boot) -> Result<Machine, Missing> {
        let root = root()?;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
        for (name, text) in units {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        let mut nspawn = Command::new("systemd-nspawn");
        nspawn
            .args([
                "--register=no",
                "--keep-unit",
                "--quiet",
                "--console=passive",
            ])
            .args(["--volatile=overlay", "-D"])
            .arg(&root)
            .arg(format!("--bind-ro={}:/usr/bin/lllqos", bin().display()))
            .arg(format!(
                "--bind-ro={}:/usr/local/lib/systemd/system",
                dir.path().display()
            ))
            .arg("-b")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !boot.no_node {
            nspawn.arg(format!("--bind={NODE}"));
        }
        if boot.writable_sys {
            nspawn.env("SYSTEMD_NSPAWN_API_VFS_WRITABLE", "1");
        }
        let nspawn = nspawn.spawn().unwrap();
        let mut machine = Machine {
            init: 0,
            nspawn,
            units: dir,
        };
        let pid = machine.nspawn.id();
        wait_until("the container's systemd to start", || {
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            machine.init = (children.split_whitespace().next())
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            machine.init != 0
                && std::fs::read_to_string(format!("/proc/{}/comm", machine.init))
                    .is_ok_and(|comm| comm.trim() == "systemd")
        });
        // Until boot is done (`degraded`: a unit this container cannot run, which is fine); until
        // systemd listens, systemctl cannot connect and says nothing.
        // (`offline` too: systemctl's word for a manager it cannot reach yet.)
        let start = Instant::now();
        let mut state = String::new();
        while start.elapsed() < Duration::from_secs(120) {
            let output = machine.run(&["systemctl", "is-system-running", "--wait"]);
            state = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            if !["", "offline", "initializing", "starting"].contains(&state.as_str()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            state == "running" || state == "degraded",
            "the container's systemd is {state}"
        );
        Ok(machine)
    }

    /// Runs a command in the container (all its namespaces).
    fn run(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.init.to_string(), "-a"])
            .args(args)
            .output()
            .unwrap()
    }

    /// `systemctl ARGS`, which must succeed.
    fn systemctl(&self, args: &[&str]) {
        let mut all = vec!["systemctl"];
        all.extend_from_slice(args);
        let output = self.run(&all);
        assert!(
            output.status.success(),
            "systemctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `systemctl show -p PROPERTY --value UNIT`.
    fn property(&self, unit: &str, property: &str) -> String {
        let output = self.run(&["systemctl", "show", "-p", property, "--value", unit]);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// A file's text in the container ("" when it is not there).
    fn read(&self, path: &str) -> String {
        String::from_utf8_lossy(&self.run(&["cat", path]).stdout).into_owned()
    }

    /// Waits for UNIT to reach `state` (`systemctl is-active`'s word).
    fn wait_for(&self, unit: &str, state: &str) {
        wait_until(&format!("{unit} to be {state}"), || {
            let output = self.run(&["systemctl", "is-active", unit]);
            String::from_utf8_lossy(&output.stdout).trim() == state
        });
    }

    /// Adds a unit (or drop-in) after boot.
    fn install(&self, name: &str, text: &str) {
        let path = self.units.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self.systemctl(&["daemon-reload"]);
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        // Power off (SIGRTMIN+4 to systemd), and kill the container if it does not go.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.init),
            nix::sys::signal::Signal::try_from(libc::SIGRTMIN() + 4).ok(),
        );
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.init),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
        // Its processes (and the requests they hold) are gone once its PID 1 is.
        let init = format!("/proc/{}", self.init);
        let start = Instant::now();
        while Path::new(&init).exists() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A file of contrib/.
fn contrib(path: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("contrib")
            .join(path),
    )
    .unwrap()
}

/// A service that counts the signals it gets (one line each in /run/signals), says READY=1 once
/// its handlers are in place (it runs as Type=notify: a signal sent before would kill it), and
/// exits 3 on SIGTERM.
const COUNTER: &str = r#"
import os, signal, socket, sys
def log(number, frame):
    with open("/run/signals", "a") as f:
        f.write(signal.Signals(number).name + "\n")
    if number == signal.SIGTERM:
        sys.exit(3)
for number in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(number, log)
address = os.environ.get("NOTIFY_SOCKET")
if address:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"READY=1", "\0" + address[1:] if address.startswith("@") else address)
while True:
    signal.pause()
"#;

/// The counting service's unit.
fn counter_unit(kind: &str) -> String {
    format!(
        "[Service]\nType={kind}\nExecStart=/usr/bin/python3 /usr/local/lib/systemd/system/counter.py\n"
    )
}

/// The package's drop-in with the service's command after `--`, as its comment says to do.
fn drop_in(latency: &str) -> String {
    let drop_in = contrib("systemd/lllqos.conf");
    let service = "/usr/bin/python3 /usr/local/lib/systemd/system/counter.py";
    let line = "ExecStart=lllqos --strict --latency 50 -- /usr/bin/myapp --its-own --options";
    assert!(drop_in.contains(line));
    drop_in.replace(
        line,
        &format!("ExecStart=lllqos --strict --latency {latency} -- {service}"),
    )
}

/// Boots with the counter service, as it is or under the drop-in; starts it.
fn counter(kind: &str, drop_in: Option<String>) -> Result<Machine, Missing> {
    let mut units = vec![
        ("counter.py".to_owned(), COUNTER.to_owned()),
        ("counter.service".to_owned(), counter_unit(kind)),
    ];
    if let Some(text) = drop_in {
        units.push(("counter.service.d/lllqos.conf".to_owned(), text));
    }
    let units: Vec<(&str, &str)> = units
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let machine = Machine::boot(&units, Boot::default())?;
    machine.systemctl(&["start", "counter.service"]);
    Ok(machine)
}

/// What the counter got, and how its unit ended, after `systemctl kill -s HUP --kill-whom=main`
/// and `systemctl stop`.
fn hup_then_stop(machine: &Machine) -> (String, Vec<String>) {
    machine.systemctl(&["kill", "-s", "HUP", "--kill-whom=main", "counter.service"]);
    wait_until("the HUP to be logged", || {
        machine.read("/run/signals").contains("SIGHUP")
    });
    machine.systemctl(&["stop", "counter.service"]);
    let signals = machine.read("/run/signals");
    let end = ["Result", "ExecMainCode", "ExecMainStatus"]
        .iter()
        .map(|p| format!("{p}={}", machine.property("counter.service", p)))
        .collect();
    (signals, end)
}
