//! Crash consistency and hostile registry files, on the real kernel: an lllqos killed (SIGKILL) at
//! each step of placing and of releasing a per-CPU constraint loses no original value; files that
//! are not what they should be are refused at once; a holder waiting behind a stuck one ends on
//! SIGTERM; holders in other PID namespaces are not taken for dead.
//!
//! The kills are deterministic: strace kills lllqos on entering the Nth `renameat` (a registry
//! store) or the Nth write to the CPU's file, which is before that step happens.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{
    REGISTRY, REGISTRY_DIR, Reaped, cpu_file, last_cpu as cpu, lllqos, lllqos_std, read_cpu,
    wait_for_cpu, wait_until, write_cpu,
};
use nix::sys::signal::Signal;
use predicates::prelude::*;

mod hostile;
mod steps;

/// A step of a change, as strace sees it: the Nth registry store, the Nth write of the CPU, or the
/// Nth removal of a file (the last step of a release that leaves nothing held: the registry goes).
#[derive(Debug, Clone, Copy)]
enum Step {
    Store(u32),
    Write(u32),
    Remove(u32),
}

/// A holder `lllqos --cpu CPU -l US` that has placed its value.
fn holder(cpu: u32, us: u32, expect: &str) -> Reaped {
    let h = Reaped::spawn(&mut lllqos_std([
        "--cpu",
        &cpu.to_string(),
        "-l",
        &us.to_string(),
    ]));
    wait_for_cpu(cpu, expect);
    h
}

fn stop(mut h: Reaped) {
    h.signal(Signal::SIGTERM);
    assert_eq!(h.wait().code(), Some(0));
}

/// The end of a round: A (if any) leaves, or else one more lllqos comes and goes on the CPU (which
/// cleans up after the dead one); then the CPU must read `before` and nothing may be left in /run.
fn finish_round(a: Option<Reaped>, cpu: u32, before: &str, round: &str) {
    match a {
        Some(a) => stop(a),
        None => {
            lllqos(["--cpu", &cpu.to_string(), "-l", "9", "true"])
                .assert()
                .success();
        }
    }
    let left = || {
        let files: Vec<String> = (std::fs::read_dir(REGISTRY_DIR).into_iter().flatten())
            .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
            .collect();
        let registry = std::fs::read_to_string(REGISTRY).unwrap_or_default();
        format!("{round}; left in {REGISTRY_DIR}: {files:?} {registry}")
    };
    assert_eq!(read_cpu(cpu), before, "{}", left());
    assert!(crate::common::registry_left().is_empty(), "{}", left());
}

/// Whether strace reports its tracee killed by SIGKILL (it dies of the same signal).
fn killed(status: std::process::ExitStatus) -> bool {
    status.signal() == Some(libc::SIGKILL) || status.code() == Some(128 + libc::SIGKILL)
}

/// The child of `pid` that runs lllqos, once there is one.
fn wait_for_child(pid: i32) -> i32 {
    let mut child = None;
    // By name: strace forks a short-lived child of its own first, to probe ptrace.
    wait_until("strace to start lllqos", || {
        child = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|c| c.parse::<i32>().ok())
            .find(|c| {
                std::fs::read_to_string(format!("/proc/{c}/comm"))
                    .is_ok_and(|comm| comm.trim() == "lllqos")
            });
        child.is_some()
    });
    child.unwrap_or(0)
}

/// A file to plant in the registry directory: its name, what lllqos must call it, how to make it.
type Planted = (&'static str, &'static str, fn(&str));

/// A process killed with SIGKILL when the test ends, however it ends: a process strace stopped is
/// not ended by killing strace (it would be left stopped, or continue on its own).
struct Stopped(i32);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), Signal::SIGKILL);
    }
}
