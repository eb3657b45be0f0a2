//! `lllqos trace` against the real kernel: changes made by other processes and by lllqos appear
//! with the right pid, command, value and limits, in order; tracefs is left as it was found (its
//! instances, event enables and the mount table), even after the trace is killed; bad runs exit 125.
//!
//! Each test holds the kernel lock: its own changes are the only ones on the machine. A trace is
//! known to be reading once a probe (this test process opening and closing the node) shows up in
//! its output.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use crate::common::{Kernel, Missing, NODE, Reaped, lllqos, lllqos_std};
use nix::sys::signal::Signal;
use serde_json::Value;

mod lifetime;
mod log;

/// The kernel lock, with a kernel that has tracefs and unshare(1) to hide a mount of it; or what
/// is missing.
fn tracing_kernel() -> Result<Kernel, Missing> {
    let kernel = Kernel::take()?;
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems.lines().any(|l| l.ends_with("\ttracefs")) {
        return Err(Missing::Setup(
            "the kernel has no tracefs (CONFIG_TRACING)".into(),
        ));
    }
    crate::common::program("unshare", "util-linux")?;
    Ok(kernel)
}

/// A running `lllqos trace`, its stdout lines arriving on a channel.
struct Trace {
    child: Reaped,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Trace {
    /// Starts `lllqos trace ARGS` and waits until it reads the kernel's events.
    fn start(args: &[&str]) -> Trace {
        let mut trace = Trace::spawn(args);
        trace.wait_until_reading();
        trace
    }

    fn spawn(args: &[&str]) -> Trace {
        let mut cmd = lllqos_std(["trace"]);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = Reaped::spawn(&mut cmd);
        let stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Trace {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Opens and closes the node from this test process until its events show: the trace is
    /// then reading. (Only in a trace that would show them: --json without filters.)
    fn wait_until_reading(&mut self) {
        let me = std::process::id() as i64;
        let start = Instant::now();
        loop {
            drop(std::fs::OpenOptions::new().write(true).open(NODE).unwrap());
            let deadline = Instant::now() + Duration::from_millis(200);
            while let Some(line) = self.next_until(deadline) {
                if json(&line)["pid"].as_i64() == Some(me) {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "trace never showed the probe: {:?}",
                self.seen
            );
        }
    }

    fn next_until(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The JSON lines of `pid`, until `count` of them have come (10 s at most).
    fn lines_of(&mut self, pid: i32, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut found: Vec<Value> = (self.seen.iter())
            .map(|l| json(l))
            .filter(|v| v["pid"] == pid)
            .collect();
        while found.len() < count {
            let Some(line) = self.next_until(deadline) else {
                panic!("{count} lines of pid {pid} expected, got {found:?}");
            };
            let value = json(&line);
            if value["pid"] == pid {
                found.push(value);
            }
        }
        found
    }

    /// Ends the trace with `signal` and returns its status and stderr; `seen` then holds every
    /// line it printed.
    fn stop(&mut self, signal: Signal) -> (std::process::ExitStatus, String) {
        self.child.signal(signal);
        let status = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.next_until(deadline).is_some() {}
        let mut stderr = String::new();
        if let Some(mut err) = self.child.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
        }
        (status, stderr)
    }
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// The parts of one line that a test checks: action, value, limit before, limit after.
fn summary(line: &Value) -> (String, Value, Value, Value) {
    (
        line["action"].as_str().unwrap_or_default().to_owned(),
        line["value_us"].clone(),
        line["limit_before_us"].clone(),
        line["limit_after_us"].clone(),
    )
}

/// The limit of the global target as JSON: `null` for no constraint.
fn limit(us: i32) -> Value {
    if us == crate::common::UNCONSTRAINED {
        Value::Null
    } else {
        Value::from(us)
    }
}

/// A python3 process that holds the node at `us` until its stdin closes (or it is killed).
fn python_holder(us: i32) -> std::process::Child {
    let script = format!(
        "import os, struct, sys\n\
         fd = os.open('{NODE}', os.O_WRONLY)\n\
         os.write(fd, struct.pack('i', {us}))\n\
         print('holding', flush=True)\n\
         sys.stdin.read()\n\
         os.close(fd)\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "holding");
    child
}

/// What other tracing users would see: the mounts of tracefs on the host, and (through a mount of
/// tracefs in a throw-away mount namespace) the instances, the top-level event enables, the
/// top-level clock and whether tracing is on.
fn tracing_state() -> String {
    let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(" - tracefs "))
        .map(str::to_owned)
        .collect();
    let inside = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tracefs nodev /sys/kernel/tracing && cd /sys/kernel/tracing && \
             ls instances && cat tracing_on trace_clock current_tracer && \
             grep -H . events/power/*/enable events/power/*/filter",
        )
        .output()
        .expect("unshare");
    assert!(inside.status.success(), "{inside:?}");
    format!(
        "{}\n{}",
        mounts.join("\n"),
        String::from_utf8_lossy(&inside.stdout)
    )
}

/// Runs `lllqos -l US -- true` and returns its pid.
fn lllqos_request(us: &str) -> i32 {
    let mut run = Reaped::spawn(&mut lllqos_std(["-l", us, "--", "true"]));
    assert!(run.wait().success());
    run.pid()
}
