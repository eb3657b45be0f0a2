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
//! This is the Rust form of the Python package's
//! `with low_wakeup_latency(0) as lease: lease.acquired()`: [`Lease::best_effort`] never fails (the
//! Python package's contract, a missing node or permission is not an error), [`Lease::acquire`]
//! returns the error instead.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::latency::Latency;
use crate::privilege;

/// The global CPU latency node.
pub const CPU_DMA_LATENCY: &str = "/dev/cpu_dma_latency";
/// The system wake-up latency node of Linux 6.19+ (`CONFIG_PM_QOS_CPU_SYSTEM_WAKEUP`).
pub const CPU_WAKEUP_LATENCY: &str = "/dev/cpu_wakeup_latency";

/// Device names (as in `/sys/dev/char/M:m/uevent`) of the kernel's PM QoS request nodes.
const PM_QOS_DEVICE_NAMES: &[&str] = &[
    "cpu_dma_latency",
    "cpu_wakeup_latency",
    "network_latency",
    "network_throughput",
];

/// Why a request could not be placed. Its message names the node and the cause.
#[derive(Debug)]
pub struct LeaseError {
    path: PathBuf,
    action: &'static str,
    source: io::Error,
}

impl LeaseError {
    /// The node that was asked for.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The operating-system error behind it.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }

    /// True when the node does not exist (no `CONFIG_CPU_IDLE`, or a wrong `--device`).
    pub fn is_missing(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }

    /// True when the node exists but this user may not open it.
    pub fn is_permission(&self) -> bool {
        self.source.kind() == io::ErrorKind::PermissionDenied
    }
}

impl std::fmt::Display for LeaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot {} {}: {}",
            self.action,
            self.path.display(),
            os_message(&self.source)
        )
    }
}

/// The cause is part of the message (and available from [`LeaseError::io_error`]); it is not also
/// reported as `source()`, which would print it twice in an error chain.
impl std::error::Error for LeaseError {}

/// An I/O error's text without Rust's " (os error N)" suffix, as C tools print it: the form this
/// library's error messages use, for a program that prints its own errors beside them.
pub fn os_message(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => error.to_string(),
    }
}

/// A CPU latency request, in force while this value lives.
///
/// ```no_run
/// use lllqos::{Latency, Lease};
///
/// // Strict: an error when the node is missing or not permitted.
/// let lease = Lease::acquire(Latency::ZERO)?;
/// assert!(lease.acquired());
/// println!("limit in force: {}", lease.limit_in_force()?);
/// drop(lease); // the request is gone
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// ```no_run
/// use lllqos::{Latency, Lease};
///
/// // Best effort, like the Python package: never fails, says whether it worked.
/// let lease = Lease::best_effort(Latency::from_micros(50).unwrap());
/// if !lease.acquired() {
///     eprintln!("running without a latency request: {}", lease.error().unwrap());
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
    /// privileged (see [`crate::privilege`]).
    pub fn acquire_on(path: impl AsRef<Path>, latency: Latency) -> Result<Lease, LeaseError> {
        let path = path.as_ref();
        let file = open_node(path, true)?;
        (&file)
            .write_all(&latency.as_i32().to_ne_bytes())
            .map_err(|source| LeaseError {
                path: path.to_owned(),
                action: "write to",
                source,
            })?;
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

    /// Whether the request is in force (always true for a lease from [`Lease::acquire`]).
    pub fn acquired(&self) -> bool {
        self.file.is_some()
    }

    /// The value this lease asked for.
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

    /// The limit the kernel enforces now: the minimum over every holder of the node, this lease
    /// included. Reads the node back, so it proves the request is in force.
    pub fn limit_in_force(&self) -> io::Result<Latency> {
        match &self.file {
            Some(file) => read_value(file),
            None => read_limit(&self.path),
        }
    }

    /// Removes the request now (dropping the lease does the same).
    pub fn release(self) {}
}

/// Checks, without placing a request, that a lease on `path` could be acquired (the node is
/// opened for writing and closed: a new open file holds only the default, which lowers nothing).
pub fn check_access(path: impl AsRef<Path>) -> Result<(), LeaseError> {
    open_node(path.as_ref(), true).map(drop)
}

/// Reads the limit in force on a PM QoS node without placing a request of one's own (a read-only
/// open adds a default request, which cannot lower the minimum).
pub fn read_limit(path: impl AsRef<Path>) -> io::Result<Latency> {
    let file = open_node(path.as_ref(), false).map_err(|e| e.source)?;
    read_value(&file)
}

fn read_value(file: &File) -> io::Result<Latency> {
    let mut buf = [0u8; 4];
    // The node keeps a file position: pread at 0 reads the current value however often it is asked.
    file.read_exact_at(&mut buf, 0)?;
    let value = i32::from_ne_bytes(buf);
    u32::try_from(value)
        .ok()
        .and_then(Latency::from_micros)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("node reads {value}")))
}

/// Opens a PM QoS node without side effects on anything else.
///
/// When lllqos is privileged, the path must first be reachable by the real user. The path is then
/// opened with `O_PATH`, which runs no driver code, and the inode is checked to be
/// a character device; when the process is privileged it must also be one of the kernel's PM QoS
/// nodes, by device number (`/sys/dev/char/M:m/uevent`), whatever path or symlink led to it. Only
/// then is it reopened for I/O through `/proc/self/fd`, which opens that very inode: nothing can be
/// swapped in between the check and the use.
fn open_node(path: &Path, write: bool) -> Result<File, LeaseError> {
    let fail = |action, source| LeaseError {
        path: path.to_owned(),
        action,
        source,
    };
    if privilege::is_privileged() {
        // The path is the real user's to name: it must resolve with their rights (access(2) checks
        // with the real uid and gid and without capabilities), so that a privileged lllqos does not
        // even tell them whether a file they cannot reach exists.
        nix::unistd::access(path, nix::unistd::AccessFlags::F_OK)
            .map_err(|e| fail("open", io::Error::from(e)))?;
    }
    let handle = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| fail("open", io::Error::from(e)))?;
    let handle = File::from(handle);
    let meta = handle.metadata().map_err(|e| fail("open", e))?;
    if !meta.file_type().is_char_device() {
        return Err(fail("use", io::Error::other("not a character device")));
    }
    match device_name(meta.rdev()) {
        Some(name) if PM_QOS_DEVICE_NAMES.contains(&name.as_str()) => {}
        Some(_) => return Err(fail("use", io::Error::other("not a PM QoS device node"))),
        None if privilege::is_privileged() => {
            return Err(fail(
                "use",
                io::Error::other("cannot verify it is a PM QoS device node"),
            ));
        }
        None => {}
    }
    // Reopening through the descriptor's /proc link opens this very inode, with fresh permission
    // checks; lllqos needs /proc anyway (start times, status).
    let proc_path = format!("/proc/self/fd/{}", handle.as_raw_fd());
    std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .open(&proc_path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound if !Path::new("/proc/self/fd").exists() => fail(
                "open",
                io::Error::other(
                    "/proc is not mounted (lllqos opens the node through /proc/self/fd)",
                ),
            ),
            _ => fail("open", e),
        })
}

/// The kernel's name for character device `rdev`, from `/sys/dev/char/MAJOR:MINOR/uevent`.
fn device_name(rdev: u64) -> Option<String> {
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let uevent = crate::file::read_small(format!("/sys/dev/char/{major}:{minor}/uevent")).ok()?;
    uevent
        .lines()
        .find_map(|line| line.strip_prefix("DEVNAME="))
        .map(str::to_owned)
}

/// The guards may move to another thread (a worker that holds the request while it runs).
const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<Lease>();
    is_send::<crate::CpuConstraint>();
};
