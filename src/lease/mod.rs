//! The global CPU latency request: an RAII lease on `/dev/cpu_dma_latency`.
//!
//! The kernel's PM QoS interface for CPU latency is a misc device. Opening it adds a request, writing
//! a 4-byte native-endian `s32` sets that request in microseconds, and closing it (explicitly, or
//! implicitly when the process dies, even by SIGKILL) removes it. The limit in force is the minimum
//! over all open requests, and that is what a read returns: 4 bytes, `2000000000` when nobody asks
//! for anything. So the natural Rust shape is a value that owns the open file: the request is in
//! force exactly as long as the [`Lease`] lives.
//!
//! Three details matter and are easy to get wrong:
//!
//! - Any write that is not exactly 4 bytes is parsed as a *hex string*: `echo 10 >` asks for 16 us.
//!   [`Lease`] always writes the binary `s32`.
//! - The file descriptor is opened `O_CLOEXEC`. A request lives as long as its open file
//!   description, so a child that inherited the descriptor would keep the request alive after the
//!   lease is dropped (and a daemonizing grandchild would keep it forever).
//! - Negative values other than -1 are silently ignored since Linux 6.6, so the value is validated
//!   here, by the type: a [`Latency`] is `0..=i32::MAX`.
//!
//! The request can be changed while it is held ([`Lease::set`]): the kernel takes a new value on
//! the same descriptor, and the request is never absent in between.
//!
//! This is the Rust form of the Python package's
//! `with low_wakeup_latency(0) as lease: lease.acquired()`: [`Lease::best_effort`] never fails (the
//! Python package's contract, a missing node or permission is not an error), [`Lease::acquire`]
//! returns the error instead. Off Linux, where there is no such node, a best-effort lease is simply
//! not acquired.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::latency::Latency;

#[cfg_attr(target_os = "linux", path = "node.rs")]
#[cfg_attr(not(target_os = "linux"), path = "unsupported.rs")]
mod node;
/// The other platforms' nodes, compiled on Linux too for its tests of their contract.
#[cfg(all(test, target_os = "linux"))]
mod unsupported;

/// The global CPU latency node.
pub const CPU_DMA_LATENCY: &str = "/dev/cpu_dma_latency";
/// The system wake-up latency node of Linux 6.19+ (`CONFIG_PM_QOS_CPU_SYSTEM_WAKEUP`).
pub const CPU_WAKEUP_LATENCY: &str = "/dev/cpu_wakeup_latency";

/// Why a request could not be placed or changed. Its message names the node and the cause; the
/// cause is [`LeaseError::io_error`].
#[derive(Debug)]
pub struct LeaseError {
    path: PathBuf,
    action: &'static str,
    source: io::Error,
}

impl LeaseError {
    fn new(path: &Path, action: &'static str, source: io::Error) -> LeaseError {
        LeaseError {
            path: path.to_owned(),
            action,
            source,
        }
    }

    /// The node that was asked for.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The operating-system error behind it.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }

    /// True when the node does not exist (no `CONFIG_CPU_IDLE`, or a wrong path).
    pub fn is_missing(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }

    /// True when the node exists but this user may not open it.
    pub fn is_permission(&self) -> bool {
        self.source.kind() == io::ErrorKind::PermissionDenied
    }

    /// True on a platform without PM QoS (anything but Linux).
    pub fn is_unsupported(&self) -> bool {
        self.source.kind() == io::ErrorKind::Unsupported
    }
}

impl std::fmt::Display for LeaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cause = match self.source.raw_os_error() {
            #[cfg(target_os = "linux")]
            Some(_) => crate::internal::oserror::os_message(&self.source),
            _ => self.source.to_string(),
        };
        write!(f, "cannot {} {}: {cause}", self.action, self.path.display())
    }
}

/// The cause is part of the message (and available from [`LeaseError::io_error`]); it is not also
/// reported as `source()`, which would print it twice in an error chain.
impl std::error::Error for LeaseError {}

/// A CPU latency request, in force while this value lives.
///
/// ```no_run
/// use lllqos::{Latency, Lease};
///
/// // Strict: an error when the node is missing or not permitted.
/// let mut lease = Lease::acquire(Latency::ZERO)?;
/// assert!(lease.acquired());
/// println!("limit in force: {:?}", lease.limit_in_force()?);
/// // The load is lighter for a while: allow 50 us, on the same request.
/// lease.set(Latency::micros(50))?;
/// drop(lease); // the request is gone
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// ```no_run
/// use lllqos::{Latency, Lease};
///
/// // Best effort, like the Python package: never fails, says whether it worked.
/// let lease = Lease::best_effort(Latency::micros(50));
/// if let Some(error) = lease.error() {
///     eprintln!("running without a latency request: {error}");
/// }
/// ```
#[derive(Debug)]
#[must_use = "the request ends when this lease is dropped"]
pub struct Lease {
    file: Option<File>,
    requested: Latency,
    path: PathBuf,
    error: Option<LeaseError>,
}

impl Lease {
    /// Requests `latency` on `/dev/cpu_dma_latency`.
    pub fn acquire(latency: Latency) -> Result<Lease, LeaseError> {
        Lease::acquire_on(CPU_DMA_LATENCY, latency)
    }

    /// Requests `latency` on another PM QoS node, such as [`CPU_WAKEUP_LATENCY`] (the Python
    /// package's `dev_path`). Only genuine PM QoS device nodes are accepted when the process is
    /// privileged (setuid, or file capabilities): the path is the real user's to name.
    pub fn acquire_on(path: impl AsRef<Path>, latency: Latency) -> Result<Lease, LeaseError> {
        let path = path.as_ref();
        let file = node::open(path, true)?;
        node::write(&file, latency).map_err(|e| LeaseError::new(path, "write to", e))?;
        Ok(Lease {
            file: Some(file),
            requested: latency,
            path: path.to_owned(),
            error: None,
        })
    }

    /// Like [`Lease::acquire`], but never fails: check [`Lease::acquired`].
    pub fn best_effort(latency: Latency) -> Lease {
        Lease::best_effort_on(CPU_DMA_LATENCY, latency)
    }

    /// Like [`Lease::acquire_on`], but never fails: check [`Lease::acquired`].
    pub fn best_effort_on(path: impl AsRef<Path>, latency: Latency) -> Lease {
        let path = path.as_ref();
        Lease::acquire_on(path, latency).unwrap_or_else(|error| Lease {
            file: None,
            requested: latency,
            path: path.to_owned(),
            error: Some(error),
        })
    }

    /// Changes the request to `latency`, in place: the same request takes the new value, so that
    /// no moment is without one (what an application that adapts to its load needs). On a lease
    /// that was not acquired, an error that says so, and nothing changes.
    pub fn set(&mut self, latency: Latency) -> Result<(), LeaseError> {
        let Some(file) = &self.file else {
            let not_held = io::Error::new(
                io::ErrorKind::NotConnected,
                "the lease holds no request (it was not acquired)",
            );
            return Err(LeaseError::new(
                &self.path,
                "change the request on",
                not_held,
            ));
        };
        node::write(file, latency).map_err(|e| LeaseError::new(&self.path, "write to", e))?;
        self.requested = latency;
        Ok(())
    }

    /// Whether the request is in force (always true for a lease from [`Lease::acquire`]).
    pub fn acquired(&self) -> bool {
        self.file.is_some()
    }

    /// The value this lease asks for.
    pub fn requested(&self) -> Latency {
        self.requested
    }

    /// The node this lease was placed on (or tried to be).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why a best-effort lease was not acquired.
    pub fn error(&self) -> Option<&LeaseError> {
        self.error.as_ref()
    }

    /// The limit the kernel enforces now, `None` for no constraint: the minimum over every holder
    /// of the node, this lease included. Reads the node back, so it proves the request is in
    /// force.
    pub fn limit_in_force(&self) -> io::Result<Option<Latency>> {
        match &self.file {
            Some(file) => node::read(file),
            None => read_limit(&self.path),
        }
    }

    /// Removes the request now (dropping the lease does the same).
    pub fn release(self) {}

    /// The open node, for a program that hands the request on to a process of its own (the
    /// `lllqos` command's `--pass-fd`).
    #[cfg(target_os = "linux")]
    pub fn file(&self) -> Option<&File> {
        self.file.as_ref()
    }
}

/// Checks, without placing a request, that a lease on `path` could be acquired (the node is
/// opened for writing and closed: a new open file holds only the default, which lowers nothing).
pub fn check_access(path: impl AsRef<Path>) -> Result<(), LeaseError> {
    node::open(path.as_ref(), true).map(drop)
}

/// The limit in force on a PM QoS node, `None` for no constraint, read without placing a request
/// of one's own (a read-only open adds a default request, which cannot lower the minimum).
pub fn read_limit(path: impl AsRef<Path>) -> io::Result<Option<Latency>> {
    let file = node::open(path.as_ref(), false).map_err(|e| e.source)?;
    node::read(&file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_not_acquired_cannot_be_set_and_keeps_its_value() {
        let mut lease = Lease::best_effort_on("/nonexistent/cpu_dma_latency", Latency::ZERO);
        assert!(!lease.acquired());
        assert!(lease.error().is_some_and(LeaseError::is_missing));
        let error = lease.set(Latency::micros(50)).unwrap_err();
        assert_eq!(error.io_error().kind(), io::ErrorKind::NotConnected);
        assert_eq!(
            error.to_string(),
            "cannot change the request on /nonexistent/cpu_dma_latency: the lease holds no request (it was not acquired)"
        );
        assert_eq!(lease.requested(), Latency::ZERO);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn off_linux_every_operation_says_there_is_no_pm_qos() {
        let path = Path::new(CPU_DMA_LATENCY);
        let error = unsupported::open(path, true).unwrap_err();
        assert!(error.is_unsupported() && !error.is_missing());
        assert!(
            error
                .to_string()
                .contains("this platform has no PM QoS interface"),
            "{error}"
        );
        let file = File::open("/dev/null").unwrap();
        assert!(unsupported::write(&file, Latency::ZERO).is_err());
        assert!(unsupported::read(&file).is_err());
    }
}
