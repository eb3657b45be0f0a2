//! Shared test helpers: what a test requires, the kernel-state lock and guard, the binary, small
//! waits.
//!
//! # Tests that cannot pass by skipping
//!
//! A test that needs something this machine lacks says so through [`skip`] (or the [`require!`]
//! and [`kernel!`] macros, which call it with the test's own function name). What it lacks is of
//! one of two kinds:
//!
//! - **Set-up** ([`skip`]): root, the kernel's node, a program from Debian's packages. CI has all
//!   of it, and runs with `LLLQOS_TEST_REQUIRE=1`: there such a test fails instead of skipping. A
//!   developer without root still gets skips, each named once in one summary line on stderr when
//!   the test binary exits (`cargo test` shows it even though it captures the tests' output).
//! - **Hardware** ([`inapplicable`]): no cpuidle driver, a single CPU. Machines differ in these
//!   and CI's may lack them; such a test is skipped with its reason wherever it cannot apply.
//!
//! # The kernel's state
//!
//! The kernel's PM QoS state is global. Every test that places or observes a request takes
//! [`Kernel::take`]: a file lock shared by all test binaries and threads (so `cargo test` and
//! `cargo nextest` both serialize them), plus a guard that records the per-CPU values and restores
//! them when the test ends, even by panic.
#![allow(dead_code, unused_macros, unused_imports)] // each test binary uses a part of this module

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The name of the test function it is expanded in (closures included), for [`skip`] messages.
macro_rules! test_name {
    () => {{
        fn here() {}
        let path = std::any::type_name_of_val(&here);
        let path = path.strip_suffix("::here").unwrap_or(path);
        path.rsplit("::")
            .find(|part| *part != "{{closure}}")
            .unwrap_or(path)
    }};
}
pub(crate) use test_name;

/// `require!(condition, "why {}", ...)`: the calling test returns, skipped (failed under
/// `LLLQOS_TEST_REQUIRE=1`), unless the condition holds.
macro_rules! require {
    ($condition:expr, $($why:tt)+) => {
        if !$condition {
            crate::common::skip(crate::common::test_name!(), &format!($($why)+));
            return;
        }
    };
}
pub(crate) use require;

/// `let kernel = kernel!();`: the kernel lock and guard ([`Kernel::take`]), or the calling test
/// returns, skipped (failed under `LLLQOS_TEST_REQUIRE=1`).
macro_rules! kernel {
    () => {
        match crate::common::Kernel::take(crate::common::test_name!()) {
            Some(kernel) => kernel,
            None => return,
        }
    };
}
pub(crate) use kernel;

/// Whether a test that cannot run must fail instead of skipping (CI sets it).
pub fn required() -> bool {
    std::env::var_os("LLLQOS_TEST_REQUIRE").is_some_and(|v| v == "1")
}

/// The tests this binary skipped, and why: printed in one line when it exits.
static SKIPPED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// `test` cannot run here for a reason of set-up (`why`: root, the node, a program): it fails
/// under `LLLQOS_TEST_REQUIRE=1`, and is otherwise skipped and named in the summary line.
pub fn skip(test: &str, why: &str) {
    assert!(
        !required(),
        "{test} cannot run here: {why} (LLLQOS_TEST_REQUIRE=1: a test that would skip fails)"
    );
    note_skip(test, why);
}

/// `test` does not apply to this machine's hardware (`why`: no cpuidle driver, one CPU): it is
/// skipped wherever that is so, and named in the summary line.
pub fn inapplicable(test: &str, why: &str) {
    note_skip(test, why);
}

fn note_skip(test: &str, why: &str) {
    println!("SKIPPED: {test}: {why}");
    let mut skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    if skipped.is_empty() {
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe { libc::atexit(print_skipped) };
    }
    skipped.push((why.to_owned(), test.to_owned()));
}

/// At exit: one line naming every skipped test, straight to stderr (past the harness's capture).
extern "C" fn print_skipped() {
    let skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    let binary = std::env::args().next().unwrap_or_default();
    let binary = Path::new(&binary)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // By reason: `needs root ...: a, b; needs tmux ...: c`.
    let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
    for (why, test) in skipped.iter() {
        match reasons.iter_mut().find(|(w, _)| w == why) {
            Some((_, tests)) => tests.push(test),
            None => reasons.push((why, vec![test])),
        }
    }
    let reasons: Vec<String> = reasons
        .iter()
        .map(|(why, tests)| format!("{why}: {}", tests.join(", ")))
        .collect();
    let line = format!(
        "SKIPPED {} test(s) of {binary} (LLLQOS_TEST_REQUIRE=1 fails a test that lacks its set-up) -- {}\n",
        skipped.len(),
        reasons.join("; ")
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

pub const NODE: &str = "/dev/cpu_dma_latency";
pub const UNCONSTRAINED: i32 = 2_000_000_000;
pub const REGISTRY_DIR: &str = "/run/lllqos";
pub const REGISTRY: &str = "/run/lllqos/registry.json";

/// Path of the lllqos binary under test: this build's, or another build given in
/// `LLLQOS_TEST_BIN` (the musl build, say: the whole suite then runs against it).
pub fn bin() -> PathBuf {
    std::env::var_os("LLLQOS_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lllqos")))
}

/// `lllqos` with these arguments, for assert_cmd.
pub fn lllqos<I, S>(args: I) -> assert_cmd::Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = assert_cmd::Command::new(bin());
    cmd.args(args);
    cmd
}

/// A plain std Command for lllqos, for tests that signal it or read its raw wait status.
pub fn lllqos_std<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(bin());
    cmd.args(args);
    cmd
}

/// Whether the executable at `path` is linked statically (it names no program interpreter).
pub fn is_static(path: &Path) -> bool {
    let out = Command::new("readelf")
        .arg("-lW")
        .arg(path)
        .output()
        .expect("readelf (Debian package binutils)");
    !String::from_utf8_lossy(&out.stdout).contains("INTERP")
}

/// Exclusive use of the kernel's PM QoS state for one test.
pub struct Kernel {
    _lock: File,
    cpus: Vec<(PathBuf, String)>,
    registry: Option<Vec<u8>>,
    /// What the global node read when the test started (other holders on the machine).
    pub baseline: i32,
}

impl Kernel {
    /// Takes the lock and records the state, or [`skip`]s `test` and returns `None`.
    pub fn take(test: &str) -> Option<Kernel> {
        if !nix::unistd::geteuid().is_root() || !Path::new(NODE).exists() {
            skip(
                test,
                &format!("needs root and {NODE} (the real kernel interface)"),
            );
            return None;
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
        Some(Kernel {
            _lock: lock,
            cpus,
            registry: std::fs::read(REGISTRY).ok(),
            baseline: read_node(),
        })
    }

    /// What the node must read while a request of `us` is in force.
    pub fn expect(&self, us: i32) -> i32 {
        us.min(self.baseline)
    }

    /// The per-CPU values as they were when the test started.
    pub fn saved_cpu_values(&self) -> &[(PathBuf, String)] {
        &self.cpus
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
        let dir_left = self.registry.is_none() && Path::new(REGISTRY_DIR).exists();
        if registry_now != self.registry || dir_left {
            match &self.registry {
                Some(text) => {
                    let _ = std::fs::write(REGISTRY, text);
                }
                None => {
                    let _ = std::fs::remove_dir_all(REGISTRY_DIR);
                }
            }
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
        assert!(!dir_left, "{REGISTRY_DIR} was left behind");
    }
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

/// Polls `condition` every 10 ms for up to 10 s (for the test's own observations only).
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for the node to read `value`.
pub fn wait_for_node(value: i32) {
    wait_until(&format!("the node to read {value}"), || {
        read_node() == value
    });
}

/// A child that is killed and reaped if the test ends early.
pub struct Reaped(pub Child);

impl Reaped {
    pub fn spawn(cmd: &mut Command) -> Reaped {
        Reaped(cmd.stdin(Stdio::null()).spawn().expect("spawn"))
    }

    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).expect("kill");
    }

    /// Waits up to 10 s for exit.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "process did not exit"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A process a test's command left running (by pid), killed when dropped, however the test ends.
pub struct KillOnDrop(pub i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The state letter of a process (`S` sleeping, `T` stopped, ...), `?` when it is gone.
pub fn state(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .unwrap_or('?')
}

/// The command lllqos (`pid`) runs: its child that is not the sentinel (`qos-sentinel`, the
/// witness of group-wide signals), once it exists.
pub fn command_of(pid: i32) -> Option<i32> {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|c| c.parse::<i32>().ok())
        .find(|c| {
            std::fs::read_to_string(format!("/proc/{c}/comm"))
                .is_ok_and(|comm| comm.trim() != "qos-sentinel")
        })
}

/// Waits until lllqos (`pid`) has started its command and is blocked waiting for it.
pub fn wait_until_waiting(pid: i32) {
    wait_until("lllqos to wait for its command", || {
        command_of(pid).is_some() && state(pid) == 'S'
    });
}

/// A voluntary-context-switch count from /proc/PID/status.
pub fn voluntary_switches(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Whether `program` is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A python3 child that counts every delivery of the signals named on its command line (the
/// wakeup fd gets one byte per delivery, so nothing is coalesced the way Python-level handlers
/// are). It prints `ready`, then `got NAME` for each delivery, and on SIGUSR2 prints
/// `counts NAME=N ...` and exits 0. A signal relayed twice shows as a second `got` line, which
/// comes before the counts: lllqos relays in the order it receives.
pub const COUNTER: &str = r#"
import os, signal, sys
names = [a for a in sys.argv[1:] if a.startswith("SIG")]
r, w = os.pipe()
os.set_blocking(w, False)
signal.set_wakeup_fd(w)
for name in names + ["SIGUSR2"]:
    signal.signal(getattr(signal, name), lambda s, f: None)
counts = {getattr(signal, n).value: 0 for n in names}
print("ready", flush=True)
while True:
    for byte in os.read(r, 64):
        if byte == signal.SIGUSR2:
            print("counts", " ".join(f"{signal.Signals(k).name}={v}" for k, v in sorted(counts.items(), key=lambda kv: signal.Signals(kv[0]).name)), flush=True)
            sys.exit(0)
        counts[byte] += 1
        print("got", signal.Signals(byte).name, flush=True)
"#;

/// Whether `program` is here; [`skip`]s `test` (naming the Debian package) when not.
pub fn have_or_skip(test: &str, program: &str, package: &str) -> bool {
    let ok = have(program);
    if !ok {
        skip(test, &format!("needs {program} (Debian package {package})"));
    }
    ok
}

/// Whether python3 is here for [`COUNTER`]; [`skip`]s `test` when not.
pub fn python_or_skip(test: &str) -> bool {
    have_or_skip(test, "python3", "python3")
}

/// A tmux session running an interactive bash: a real terminal for job-control tests.
pub struct Tmux {
    name: String,
    socket: PathBuf,
    /// The pane's shell: the session leader of everything run on the terminal.
    shell: i32,
    _dir: tempfile::TempDir,
}

impl Tmux {
    /// Starts the session, or [`skip`]s `test` and returns `None` without tmux.
    pub fn start(test: &str) -> Option<Tmux> {
        if !have_or_skip(test, "tmux", "tmux") {
            return None;
        }
        let name = format!("lllqos-test-{}-{test}", std::process::id());
        // A server of its own, its socket in a directory removed with it (a short path: sockets
        // are limited to 108 bytes), so that nothing stays behind in /tmp.
        let dir = tempfile::Builder::new()
            .prefix("lllqos-tmux")
            .tempdir()
            .unwrap();
        let socket = dir.path().join("s");
        let mut tmux = Tmux {
            name,
            socket,
            shell: 0,
            _dir: dir,
        };
        let status = tmux
            .command()
            .args([
                "new-session",
                "-d",
                "-s",
                &tmux.name,
                "-x",
                "200",
                "-y",
                "50",
            ])
            .args(["env", "PS1=sh> ", "bash", "--norc", "--noprofile"])
            .status()
            .expect("tmux");
        assert!(status.success());
        tmux.wait_for("sh>");
        let shell = tmux
            .command()
            .args(["display-message", "-p", "-t", &tmux.name, "#{pane_pid}"])
            .output()
            .expect("tmux display-message");
        tmux.shell = String::from_utf8_lossy(&shell.stdout)
            .trim()
            .parse()
            .expect("the pane's pid");
        Some(tmux)
    }

    /// `tmux -S SOCKET`, for any tmux command on this session's server.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket);
        cmd
    }

    /// The session name, for other tmux commands.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Types `keys` (tmux key names such as `C-c`, or text when `literal`).
    pub fn keys(&self, keys: &str) {
        let status = self
            .command()
            .args(["send-keys", "-t", &self.name, keys])
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    /// Types a line and Enter.
    pub fn line(&self, text: &str) {
        let status = self
            .command()
            .args(["send-keys", "-t", &self.name, "-l", text])
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
        self.keys("Enter");
    }

    /// The visible screen.
    pub fn screen(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen contains `text`.
    pub fn wait_for(&self, text: &str) {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting for {text:?} on the terminal:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The terminal goes, and everything run on it has ended (hung up) before the test's next step,
/// or the next test, sees the machine: a request it held is gone.
impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) && !session_of(self.shell).is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The processes of session `sid`.
fn session_of(sid: i32) -> Vec<i32> {
    let in_session = |pid: i32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command: state, ppid, pgrp, session.
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
        fields.get(3).and_then(|s| s.parse().ok()) == Some(sid)
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|&pid| in_session(pid))
        .collect()
}
