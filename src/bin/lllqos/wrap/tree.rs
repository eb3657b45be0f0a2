//! `--descendants`: lllqos as the child subreaper of what its command leaves running, and the
//! processes below it, found and signalled without ever hitting a reused pid.

use std::io;

use lllqos::internal::procfs;
use nix::unistd::Pid;

use crate::process::PidFd;

/// Makes lllqos the child subreaper of what it starts next (`--descendants`): a process whose
/// parent exits is reparented to lllqos, which reaps it.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One process found in /proc: its pid and start time (which, together, no other process has).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    pub pid: Pid,
    start_time: u64,
}

impl Process {
    /// Its parent and itself.
    fn read(pid: i32) -> Option<(i32, Process)> {
        let stat = procfs::stat(pid)?;
        let process = Process {
            pid: Pid::from_raw(pid),
            start_time: stat.start_time,
        };
        Some((stat.parent, process))
    }

    /// Sends `signal` to this process, if it is still the one found (a pidfd pins it, and its
    /// start time says it was not replaced between the scan and the pidfd).
    pub fn signal(self, signal: i32) {
        let Ok(pidfd) = PidFd::open(self.pid.as_raw()) else {
            return; // gone
        };
        if Process::read(self.pid.as_raw()).map(|(_, p)| p) == Some(self) {
            pidfd.signal(signal);
        }
    }
}

/// Every process below `me` (children, their children, ...), but `not` (the sentinel).
pub fn below(me: Pid, not: Option<Pid>) -> Vec<Process> {
    let all: Vec<(i32, Process)> = procfs::pids()
        .filter_map(Process::read)
        .filter(|(_, p)| Some(p.pid) != not)
        .collect();
    let mut found: Vec<Process> = Vec::new();
    let mut parents = vec![me.as_raw()];
    while let Some(parent) = parents.pop() {
        for &(of, process) in &all {
            if of == parent && !found.contains(&process) {
                found.push(process);
                parents.push(process.pid.as_raw());
            }
        }
    }
    found
}
