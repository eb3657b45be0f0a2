//! [`CpuError`]: why a per-CPU constraint could not be checked, placed or released, and what it
//! left changed when it could not undo its own writes.

use std::fmt;

use nix::errno::Errno;

use super::sysfs::ResumeLatency;

/// Why a per-CPU constraint could not be checked, placed or released. The message names the file
/// or CPU and the cause; [`CpuError::kind`] tells the cases apart, and
/// [`CpuError::left_changed`] lists the CPUs the failure left with another value than before.
#[derive(Debug)]
pub struct CpuError {
    kind: CpuErrorKind,
    message: String,
    left: Vec<Left>,
}

/// What kind of failure a [`CpuError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CpuErrorKind {
    /// A CPU named does not exist on this machine (nothing was changed).
    NoSuchCpu,
    /// A limit the per-CPU file cannot take (nothing was changed).
    OutOfRange,
    /// This process may not write a CPU's file or keep the registry (not root).
    Permission,
    /// `/sys` is mounted read-only (as in most containers).
    ReadOnlySysfs,
    /// The registry's directory, `/run/lllqos`, is on a read-only file system.
    ReadOnlyRegistry,
    /// The registry is corrupt or not safe to trust (not a regular file, too large, owned by
    /// another user); the message names the file, which is never overwritten. Nothing was changed.
    Registry,
    /// A signal that ends the process (SIGHUP, SIGINT, SIGQUIT, SIGTERM) was pending, blocked,
    /// while this process waited for another lllqos to finish with the registry: it gave up,
    /// changing nothing.
    Interrupted,
    /// Another process held the registry's lock while the registry did not change for ten
    /// seconds (it was stopped, or starved): this one gave up waiting. An acquire changed
    /// nothing; a release left its record, which the next change finds dead once this process
    /// has exited (or `lllqos recover`).
    Stalled,
    /// Any other failure of the system (a /proc or sysfs file that cannot be read, a full /run).
    Io,
}

/// A CPU that a failed change left with another value than it had before: the change could not
/// write it back. The next change of the registry on that CPU (`lllqos recover`, or any lllqos
/// that constrains it) restores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Left {
    /// The CPU.
    pub cpu: u32,
    /// Its value now.
    pub value: ResumeLatency,
    /// The value it had before lllqos (or before the failed change).
    pub before: ResumeLatency,
}

impl fmt::Display for Left {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cpu{} stays at {}, it was {}",
            self.cpu,
            self.value.describe(),
            self.before.describe()
        )
    }
}

/// Where a failing file is: the per-CPU files in `/sys`, or the registry in `/run/lllqos`. A
/// read-only file system means something else in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Sysfs,
    Registry,
}

impl CpuError {
    pub(crate) fn new(kind: CpuErrorKind, message: impl Into<String>) -> CpuError {
        CpuError {
            kind,
            message: message.into(),
            left: Vec::new(),
        }
    }

    /// `what: reason`, the kind from the errno and where the file is.
    pub(crate) fn os(place: Place, what: impl fmt::Display, errno: Errno) -> CpuError {
        let kind = match (errno, place) {
            (Errno::EACCES | Errno::EPERM, _) => CpuErrorKind::Permission,
            (Errno::EROFS, Place::Sysfs) => CpuErrorKind::ReadOnlySysfs,
            (Errno::EROFS, Place::Registry) => CpuErrorKind::ReadOnlyRegistry,
            _ => CpuErrorKind::Io,
        };
        let why = match kind {
            CpuErrorKind::ReadOnlySysfs => {
                " (/sys is mounted read-only, as in most containers: --cpu needs a writable /sys)"
            }
            CpuErrorKind::ReadOnlyRegistry => {
                " (per-CPU requests keep their registry in /run/lllqos, which must be writable)"
            }
            _ => "",
        };
        CpuError::new(kind, format!("{what}: {}{why}", errno.desc()))
    }

    /// `what: reason` for an I/O error; one that is not the system's (a file of the wrong type,
    /// too large) is `kind`.
    pub(crate) fn io(
        place: Place,
        what: impl fmt::Display,
        error: &std::io::Error,
        kind: CpuErrorKind,
    ) -> CpuError {
        match error.raw_os_error() {
            Some(code) => CpuError::os(place, what, Errno::from_raw(code)),
            None => CpuError::new(
                kind,
                format!("{what}: {}", crate::internal::oserror::os_message(error)),
            ),
        }
    }

    /// The same error, its message prefixed with `what: `.
    pub(crate) fn context(self, what: impl fmt::Display) -> CpuError {
        CpuError {
            message: format!("{what}: {}", self.message),
            ..self
        }
    }

    /// The same error, with `note` added after its message (`; note`).
    pub(crate) fn note(self, note: impl fmt::Display) -> CpuError {
        CpuError {
            message: format!("{}; {note}", self.message),
            ..self
        }
    }

    /// The same error, with CPUs it left changed.
    pub(crate) fn leaving(mut self, left: impl IntoIterator<Item = Left>) -> CpuError {
        self.left.extend(left);
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> CpuErrorKind {
        self.kind
    }

    /// The CPUs this failure left with another value than they had: empty when the failed change
    /// was undone (or never began).
    pub fn left_changed(&self) -> &[Left] {
        &self.left
    }
}

impl fmt::Display for CpuError {
    /// The message, then what stays changed, if anything does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.left.is_empty() {
            let left: Vec<String> = self.left.iter().map(Left::to_string).collect();
            write!(
                f,
                "; {} ('lllqos recover' restores it once the cause is fixed)",
                left.join("; ")
            )?;
        }
        Ok(())
    }
}

/// The cause is part of the message; it is not also reported as `source()`.
impl std::error::Error for CpuError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Latency;

    #[test]
    fn a_read_only_registry_is_not_blamed_on_sys() {
        let sys = CpuError::os(Place::Sysfs, "cannot write x", Errno::EROFS);
        assert_eq!(sys.kind(), CpuErrorKind::ReadOnlySysfs);
        assert!(sys.to_string().contains("/sys is mounted read-only"));
        let run = CpuError::os(Place::Registry, "cannot create y", Errno::EROFS);
        assert_eq!(run.kind(), CpuErrorKind::ReadOnlyRegistry);
        assert!(!run.to_string().contains("/sys"), "{run}");
        assert!(run.to_string().contains("/run/lllqos"), "{run}");
    }

    #[test]
    fn what_stays_changed_is_said_after_the_cause() {
        let error = CpuError::new(CpuErrorKind::Io, "cannot write z: No space left on device")
            .leaving([Left {
                cpu: 1,
                value: ResumeLatency::Limit(Latency::micros(10)),
                before: ResumeLatency::Limit(Latency::micros(33)),
            }]);
        assert_eq!(
            error.to_string(),
            "cannot write z: No space left on device; cpu1 stays at 10 us, it was 33 us ('lllqos recover' restores it once the cause is fixed)"
        );
        assert_eq!(error.left_changed().len(), 1);
    }
}
