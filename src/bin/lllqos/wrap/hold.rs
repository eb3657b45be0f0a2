//! A hold without a command: `lllqos -l 0` until SIGTERM, SIGINT or SIGHUP, or `--pid` until those
//! processes exit.
//!
//! Waiting costs nothing: one `poll` on the signalfd and the processes' pidfds, no timeout.

use std::io;
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::exit::ExitStatus;
use crate::process::PidFd;
use crate::signals::Signals;

/// Holds until a signal that ends a process arrives, or until every process in `pids` has exited.
/// Returns `Exited(0)` for SIGTERM/SIGINT/SIGHUP and the processes' end, `Signaled` for another
/// ending signal (the caller releases the request, then dies of it).
pub fn hold(signals: &Signals, pids: &[PidFd]) -> io::Result<ExitStatus> {
    let mut alive: Vec<&PidFd> = pids.iter().collect();
    loop {
        if !pids.is_empty() && alive.is_empty() {
            return Ok(ExitStatus::Exited(0));
        }
        let mut fds: Vec<PollFd> = std::iter::once(signals.as_fd())
            .chain(alive.iter().map(|p| p.as_fd()))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds.iter().map(|fd| fd.any().unwrap_or(false)).collect();
        drop(fds);
        if ready[0]
            && let Some(status) = signals.ending()?
        {
            return Ok(status);
        }
        // ready[0] is the signalfd; ready[1..] follow `alive`.
        alive = alive
            .into_iter()
            .zip(&ready[1..])
            .filter(|(_, exited)| !**exited)
            .map(|(p, _)| p)
            .collect();
    }
}
