//! How lllqos ends: the exit statuses of a command wrapper.
//!
//! lllqos follows `env`, `nice`, `timeout` and `chroot`: the command's own status passes through;
//! 125, 126 and 127 are lllqos's. A command killed by a signal makes lllqos die by the same signal,
//! so that the parent sees `WIFSIGNALED` exactly as if it had run the command directly. That matters:
//! bash stops a script's loop when a foreground job died of SIGINT, but not when it exited 130.

/// The status lllqos exits with: the command's own, or 125, 126, 127 (see the tests below).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The command exited with this code (0-255); a hold ended normally with 0.
    Exited(i32),
    /// The command was killed by signal number N (1-64, real-time signals included): lllqos dies of
    /// it too (128 + N if it cannot).
    Signaled(i32),
    /// lllqos itself failed: a usage error, a bad value, a request that `--strict` could not place.
    Failure,
    /// The command exists but could not be executed (permission denied, not an executable).
    CannotExecute,
    /// The command was not found.
    NotFound,
}

impl ExitStatus {
    /// The numeric exit code (for [`ExitStatus::Signaled`], the shell's 128 + N).
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(signal) => 128 + signal,
            ExitStatus::Failure => 125,
            ExitStatus::CannotExecute => 126,
            ExitStatus::NotFound => 127,
        }
    }

    /// Ends the process with this status. Everything lllqos changed must already be restored.
    pub fn exit(self) -> ! {
        if let ExitStatus::Signaled(signal) = self {
            die_by(signal);
        }
        std::process::exit(self.code())
    }
}

/// Dies of `signal`, the way the child did.
///
/// lllqos's own core dump is disabled first (RLIMIT_CORE 0 is not enough when `core_pattern` is a
/// pipe, hence PR_SET_DUMPABLE too): the child has already dumped if it was going to. Then the
/// signal's default action is restored, it is unblocked, and raised.
fn die_by(signal: i32) -> ! {
    use nix::sys::resource::{Resource, setrlimit};
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    let _ = nix::sys::prctl::set_dumpable(false);
    // SAFETY: installing SIG_DFL runs no code of ours; raise takes a plain integer.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
    // Blocked (lllqos reads its signals from a signalfd): unblocking delivers it. Raw, since
    // glibc would not unblock 32 and 33 (see lllqos::internal::sigset).
    let _ = lllqos::internal::sigset::SignalSet::of([signal]).unblock();
    // Still here: a signal whose default action is not fatal (it cannot be, the child died of it,
    // but the kernel is the judge). Exit the way a shell would report it.
    std::process::exit(128 + signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrappers_own_statuses_are_125_126_127() {
        assert_eq!(ExitStatus::Failure.code(), 125);
        assert_eq!(ExitStatus::CannotExecute.code(), 126);
        assert_eq!(ExitStatus::NotFound.code(), 127);
        assert_eq!(ExitStatus::Exited(3).code(), 3);
    }
}
