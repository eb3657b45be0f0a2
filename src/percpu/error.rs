//! [`CpuError`]: why a per-CPU constraint could not be checked, placed or released.

use std::fmt;

use nix::errno::Errno;

/// Why a per-CPU constraint could not be checked, placed or released. The message names the file
/// or CPU and the cause; [`CpuError::kind`] tells the cases apart.
#[derive(Debug)]
pub struct CpuError {
    kind: CpuErrorKind,
    message: String,
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
    /// The registry is corrupt or not safe to trust (not a regular file, too large, owned by
    /// another user); the message names the file, which is never overwritten. Nothing was changed.
    Registry,
    /// A signal that ends the process (SIGHUP, SIGINT, SIGQUIT, SIGTERM) was pending, blocked,
    /// while this process waited for another lllqos to finish with the registry: it gave up,
    /// changing nothing.
    Interrupted,
    /// Any other failure of the system (a /proc or sysfs file that cannot be read, a full /run).
    Io,
}

/// Why `--cpu` fails where /sys is mounted read-only: containers, unless privileged.
const READ_ONLY_SYSFS: &str =
    "/sys is mounted read-only, as in most containers: --cpu needs a writable /sys";

impl CpuError {
    pub(crate) fn new(kind: CpuErrorKind, message: impl Into<String>) -> CpuError {
        CpuError {
            kind,
            message: message.into(),
        }
    }

    /// `what: reason`, the kind from the errno.
    pub(crate) fn os(what: impl fmt::Display, errno: Errno) -> CpuError {
        let kind = match errno {
            Errno::EACCES | Errno::EPERM => CpuErrorKind::Permission,
            Errno::EROFS => CpuErrorKind::ReadOnlySysfs,
            _ => CpuErrorKind::Io,
        };
        let message = match kind {
            CpuErrorKind::ReadOnlySysfs => format!("{what}: {} ({READ_ONLY_SYSFS})", errno.desc()),
            _ => format!("{what}: {}", errno.desc()),
        };
        CpuError::new(kind, message)
    }

    /// `what: reason` for an I/O error; one that is not the system's (a file of the wrong type,
    /// too large) is `kind`.
    pub(crate) fn io(
        what: impl fmt::Display,
        error: &std::io::Error,
        kind: CpuErrorKind,
    ) -> CpuError {
        match error.raw_os_error() {
            Some(code) => CpuError::os(what, Errno::from_raw(code)),
            None => CpuError::new(kind, format!("{what}: {}", crate::lease::os_message(error))),
        }
    }

    /// The same error, its message prefixed with `what: `.
    pub(crate) fn context(self, what: impl fmt::Display) -> CpuError {
        CpuError {
            kind: self.kind,
            message: format!("{what}: {}", self.message),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> CpuErrorKind {
        self.kind
    }
}

impl fmt::Display for CpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The cause is part of the message; it is not also reported as `source()`.
impl std::error::Error for CpuError {}
