//! Signals, read instead of handled: lllqos blocks the signals it cares about and reads them from a
//! `signalfd`, wherever it waits (the wrapper, a hold, `measure`, `trace`).
//!
//! Blocking comes first, before a request is placed: from then on a signal that arrives at any
//! moment (during a spawn, while a per-CPU value is being written) waits, pending, until lllqos is
//! ready for it, and never kills lllqos half-way through a change it must undo. Reading is a
//! blocking `read` or a `poll` with other descriptors: no handler, no timer, no wake-up of lllqos's
//! own. What the wrapper does with each signal is [`crate::wrap`]'s business.
//!
//! A signal ignored when lllqos started is left ignored (not blocked), so that the command inherits
//! SIG_IGN across exec, as it would without lllqos; the dispositions lllqos started with are
//! recorded by [`crate::process::init_process`] before anything changes them.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use lllqos::internal::sigset::{MAX_SIGNAL, NOT_RELAYED, SignalSet};
use nix::errno::Errno;

use crate::exit::ExitStatus;
use crate::process::ignored_at_start;

/// Signals whose default action is not to end the process: continue, stop, or nothing.
const NOT_ENDING: [i32; 7] = [
    libc::SIGCHLD,
    libc::SIGCONT,
    libc::SIGURG,
    libc::SIGWINCH,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Whether `signal`'s default action ends a process (SIGKILL and SIGSTOP aside, which are never
/// read).
pub fn ends_a_process(signal: i32) -> bool {
    (1..=MAX_SIGNAL).contains(&signal) && !NOT_ENDING.contains(&signal)
}

/// Signals that end a hold normally: lllqos releases the request and exits 0.
const HOLD_RELEASE: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Signals that end a hold (or a trace) even when they were ignored at start. There is no command
/// to hand the disposition on to, and a background job of a script starts with SIGINT ignored:
/// `lllqos -l 0 &` then `kill -INT $!` must end it, as it ends `perf trace`. SIGHUP ignored at
/// start (nohup) stays ignored: surviving the terminal's hang-up is what nohup asks for.
const ALWAYS_END: [i32; 2] = [libc::SIGINT, libc::SIGTERM];

/// What the signals are blocked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Running a command: relay signals to it, reap it.
    Relay,
    /// Holding without a command: wait for a signal (or for `--pid` processes to exit).
    Hold,
}

impl Mode {
    /// The signals this mode reads from the signalfd (before leaving out the ignored ones).
    fn wanted(self) -> SignalSet {
        let never = SignalSet::of(NOT_RELAYED.map(|(signal, _)| signal));
        let mut set = SignalSet::all() - never;
        if self == Mode::Hold {
            // A hold reads what ends a process (it releases first); the rest keeps its default.
            set = set - SignalSet::of(NOT_ENDING);
        }
        set
    }
}

/// The blocked signals and the `signalfd` they are read from. Create it before placing a request:
/// from then on no signal can interrupt lllqos until it is ready to act on it.
#[derive(Debug)]
pub struct Signals {
    fd: OwnedFd,
    /// Signals that were SIG_IGN at start; they stay ignored and are not in the blocked set.
    ignored: SignalSet,
    /// SIGCHLD was SIG_IGN at start: lllqos resets it to wait for its child, the child gets SIG_IGN.
    chld_was_ignored: bool,
}

impl Signals {
    /// Blocks the signals `mode` handles and opens the `signalfd` for them.
    pub fn block(mode: Mode) -> io::Result<Signals> {
        let mut ignored = ignored_at_start();
        if mode == Mode::Hold {
            for signal in ALWAYS_END {
                if ignored.contains(signal) {
                    // SAFETY: installing SIG_DFL runs no code of ours; no command inherits it.
                    unsafe { libc::signal(signal, libc::SIG_DFL) };
                }
            }
            ignored = ignored - SignalSet::of(ALWAYS_END);
        }
        let mut set = mode.wanted() - ignored;
        let chld_was_ignored = mode == Mode::Relay && ignored.contains(libc::SIGCHLD);
        if chld_was_ignored {
            // SIG_IGN on SIGCHLD would auto-reap the child and leave nothing to wait for.
            // SAFETY: installing SIG_DFL runs no code of ours.
            unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
            set.insert(libc::SIGCHLD);
        }
        set.block()?;
        let fd = set.signalfd()?;
        Ok(Signals {
            fd,
            ignored,
            chld_was_ignored,
        })
    }

    /// Whether SIGCHLD was ignored when lllqos started (the command must get SIG_IGN back).
    pub fn chld_was_ignored(&self) -> bool {
        self.chld_was_ignored
    }

    /// The signals that were ignored at start and stay so.
    pub fn ignored(&self) -> SignalSet {
        self.ignored
    }

    /// Reads the next signal (blocking) in [`Mode::Hold`]: how a hold ends because of it,
    /// `Exited(0)` for SIGTERM, SIGINT and SIGHUP, `Signaled` for another signal that would end a
    /// process (the caller undoes what it changed, then dies of it).
    pub fn ending(&self) -> io::Result<Option<ExitStatus>> {
        Ok(self.ending_signal()?.map(|signal| {
            if HOLD_RELEASE.contains(&signal) {
                ExitStatus::Exited(0)
            } else {
                ExitStatus::Signaled(signal)
            }
        }))
    }

    /// Reads the next signal (blocking) in [`Mode::Hold`], whose signals all end a process: its
    /// number.
    pub fn ending_signal(&self) -> io::Result<Option<i32>> {
        let signal = self.next()?.ssi_signo as i32;
        Ok((1..=MAX_SIGNAL).contains(&signal).then_some(signal))
    }

    /// Reads signals until one of `wanted` comes (and returns it); the others are dropped.
    pub fn wait_for(&self, wanted: &[i32]) -> io::Result<i32> {
        loop {
            let signal = self.next()?.ssi_signo as i32;
            if wanted.contains(&signal) {
                return Ok(signal);
            }
        }
    }

    /// Reads the next signal, blocking: what the kernel says of it (number, sender, cause).
    pub fn next(&self) -> io::Result<libc::signalfd_siginfo> {
        let mut buf = [0u8; size_of::<libc::signalfd_siginfo>()];
        loop {
            match nix::unistd::read(&self.fd, &mut buf) {
                // SAFETY: the kernel wrote one whole signalfd_siginfo, plain data.
                Ok(n) if n == buf.len() => {
                    return Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) });
                }
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The signalfd, for a caller that polls it with other descriptors (a hold with `--pid`, `trace`).
impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_reads_only_what_ends_a_process_and_nothing_is_read_that_cannot_be() {
        let hold = Mode::Hold.wanted();
        let relay = Mode::Relay.wanted();
        for signal in 1..=MAX_SIGNAL {
            let catchable = !NOT_RELAYED.iter().any(|&(s, _)| s == signal);
            assert_eq!(relay.contains(signal), catchable, "{signal}");
            assert_eq!(
                hold.contains(signal),
                catchable && ends_a_process(signal),
                "{signal}"
            );
        }
    }
}
