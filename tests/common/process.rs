//! The binary under test and the processes a test starts: spawning, signalling, reaping, and
//! waiting for what a process does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// The stderr of a run that lllqos refused as every bad input is refused: status 125 and one line.
pub fn refused(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
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

/// Whether a process named `comm` (its `/proc/PID/comm`) runs.
pub fn processes_named(comm: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|c| c.trim() == comm)
    })
}
