//! Telling a signal sent to lllqos alone from one sent to its whole process group.
//!
//! lllqos relays what is sent to it, and must not relay what the command received anyway. The
//! command is in lllqos's process group (job control needs it there), so a signal sent to the
//! group (`kill 0` in a script, `kill -TERM -PGID`, coreutils `timeout`, which signals its child and
//! then the group) reaches both, and relaying it would deliver it twice. But a script's
//! `lllqos cmd & kill -TERM $!` reaches lllqos alone, from the same sender in the same group, and
//! must be relayed. The signal's `siginfo` is identical in both cases.
//!
//! So lllqos keeps a witness in the group: a forked process that blocks every signal and sleeps.
//! Whatever is sent to the group (or to every process, `kill -1`) is left pending in the
//! sentinel; what is sent to lllqos alone is not. When lllqos reads a signal, it first waits for
//! any group delivery under way to finish (a no-op `setpgid`, which takes the same lock as a group
//! kill), then looks at the sentinel's pending signals in `/proc/PID/status`. A sentinel that has
//! seen anything is replaced by a fresh one, so that every decision looks at new deliveries only.
//!
//! The sentinel dies with lllqos (`PR_SET_PDEATHSIG`), holds no descriptor, never wakes up, and is
//! named `qos-sentinel` (its command line too), so that `pkill lllqos` or `pkill -f lllqos`, which
//! mean lllqos, do not reach it and make a signal meant for lllqos look like a group's.

use std::io;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::sigset::SignalSet;

/// The name the sentinel shows in `ps`.
const NAME: &[u8] = b"qos-sentinel";

/// The witness process; killed and reaped when dropped.
#[derive(Debug)]
pub(crate) struct Sentinel {
    pid: Pid,
    /// Signals a replaced sentinel had seen that lllqos has not read yet.
    carried: SignalSet,
}

impl Sentinel {
    /// Forks the sentinel. Call before any descriptor that must not be inherited is opened (it
    /// closes every descriptor anyway).
    pub(crate) fn spawn() -> io::Result<Sentinel> {
        Ok(Sentinel {
            pid: fork_sentinel()?,
            carried: SignalSet::default(),
        })
    }

    /// Whether `signal`, which lllqos has just read, was also delivered to the whole group.
    pub(crate) fn saw(&mut self, signal: i32) -> bool {
        // Any kill(2) to a group or to -1 that delivered `signal` to lllqos holds the tasklist
        // lock until it has delivered it to every member; setpgid takes that lock for writing, so
        // once it returns the sentinel has it too. Joining one's own group changes nothing (and a
        // session leader's EPERM comes after the lock).
        // SAFETY: getpgrp and setpgid on this process, with its own group.
        unsafe { libc::setpgid(0, libc::getpgrp()) };
        let pending = self.pending();
        let seen = pending.contains(signal) || self.carried.contains(signal);
        // Keep in mind what the sentinel saw only while lllqos still has it to read (a second
        // delivery of `signal` included); what lllqos has read is accounted for.
        self.carried = (self.carried | pending) & SignalSet::pending();
        if pending != SignalSet::default() {
            // Start afresh: a new sentinel first (nothing may pass unwitnessed), then the old one.
            if let Ok(fresh) = fork_sentinel() {
                let old = std::mem::replace(&mut self.pid, fresh);
                kill_and_reap(old);
            }
        }
        seen
    }

    /// The sentinel's pending signals (per-thread and shared), from /proc.
    fn pending(&self) -> SignalSet {
        let status =
            lllqos::file::read_small(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let mask = |key: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
                .unwrap_or(0)
        };
        let bits = mask("SigPnd:") | mask("ShdPnd:");
        SignalSet::of((1..=64).filter(|s| bits & (1u64 << (s - 1)) != 0))
    }
}

impl Sentinel {
    /// Kills the sentinel without waiting for it: it dies while lllqos goes on, and is reaped when
    /// dropped.
    pub(crate) fn kill(&self) {
        let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        kill_and_reap(self.pid);
    }
}

fn kill_and_reap(pid: Pid) {
    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
}

fn fork_sentinel() -> io::Result<Pid> {
    let parent = nix::unistd::getpid();
    // The argument area of this process (fields 48 and 49 of /proc/self/stat), rewritten in the
    // sentinel's copy of memory so that its command line does not read as lllqos's.
    let args = argument_area();
    // SAFETY: lllqos is single-threaded here; the child makes only system calls and writes into
    // its own copy of the argument area, then sleeps until it is killed.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => unsafe {
            let _ = SignalSet::all().block();
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent.as_raw() {
                libc::_exit(0); // lllqos is already gone
            }
            libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
            let mut comm = [0u8; 16];
            comm[..NAME.len()].copy_from_slice(NAME);
            libc::prctl(libc::PR_SET_NAME, comm.as_ptr());
            if let Some((start, end)) = args
                && end > start
            {
                let area = std::slice::from_raw_parts_mut(start as *mut u8, end - start);
                area.fill(0);
                let n = NAME.len().min(area.len().saturating_sub(1));
                area[..n].copy_from_slice(&NAME[..n]);
            }
            loop {
                libc::pause();
            }
        },
        nix::unistd::ForkResult::Parent { child } => Ok(child),
    }
}

/// `arg_start` and `arg_end` of this process, from /proc/self/stat.
fn argument_area() -> Option<(usize, usize)> {
    let stat = lllqos::file::read_small("/proc/self/stat").ok()?;
    let fields = lllqos::file::stat_fields(&stat)?;
    let field = |n: usize| fields.get(n - 3)?.parse::<usize>().ok();
    Some((field(48)?, field(49)?))
}
