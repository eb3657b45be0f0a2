//! The PM QoS nodes themselves, on Linux: opened without side effects on anything else, read and
//! written as the kernel wants (4-byte native-endian `s32`s).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

use super::LeaseError;
use crate::internal::privilege;
use crate::latency::Latency;

/// Device names (as in `/sys/dev/char/M:m/uevent`) of the kernel's PM QoS request nodes.
const PM_QOS_DEVICE_NAMES: &[&str] = &[
    "cpu_dma_latency",
    "cpu_wakeup_latency",
    "network_latency",
    "network_throughput",
];

/// Sets the request of `file` to `latency`: one write of the binary `s32` (any other length is
/// read by the kernel as a hex string).
pub(super) fn write(file: &File, latency: Latency) -> io::Result<()> {
    let mut file = file;
    file.write_all(&latency.as_i32().to_ne_bytes())
}

/// The limit in force on the node `file` is open on: `None` for no constraint (the kernel's
/// default, 2000000000 us, or anything above it).
pub(super) fn read(file: &File) -> io::Result<Option<Latency>> {
    let mut buf = [0u8; 4];
    // The node keeps a file position: pread at 0 reads the current value however often it is asked.
    file.read_exact_at(&mut buf, 0)?;
    let value = i32::from_ne_bytes(buf);
    let latency = u32::try_from(value)
        .ok()
        .and_then(Latency::from_micros)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("node reads {value}")))?;
    Ok((latency < Latency::UNCONSTRAINED).then_some(latency))
}

/// Opens a PM QoS node without side effects on anything else.
///
/// The path is looked at before it is opened (`stat`, which runs no driver code): it must be a
/// character device, and, by device number (`/sys/dev/char/M:m/uevent`), one of the kernel's PM
/// QoS nodes, whatever path or symlink led to it, so that no other device's driver is ever opened.
///
/// When lllqos is privileged (setuid, file capabilities), the path must first be reachable by the
/// real user, and the node is then opened for I/O through `/proc/self/fd` of an `O_PATH` handle
/// checked as above, which opens that very inode: nothing can be swapped in between the check and
/// the use. Otherwise the path is opened as it is and the descriptor checked to be the node looked
/// at (the seed's five system calls: a request is cheap to place).
pub(super) fn open(path: &Path, write: bool) -> Result<File, LeaseError> {
    if privilege::is_privileged() {
        return open_privileged(path, write);
    }
    let fail = |action, source| LeaseError::new(path, action, source);
    let meta = std::fs::metadata(path).map_err(|e| fail("open", e))?;
    check_node(path, &meta, false)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .map_err(|e| fail("open", e))?;
    let opened = file.metadata().map_err(|e| fail("open", e))?;
    if (opened.dev(), opened.ino(), opened.rdev()) != (meta.dev(), meta.ino(), meta.rdev()) {
        return Err(fail(
            "use",
            io::Error::other("it was replaced while it was being opened"),
        ));
    }
    Ok(file)
}

/// Refuses what `meta` describes unless it is a PM QoS node (or, unprivileged, a character
/// device whose name cannot be read: sysfs missing).
fn check_node(path: &Path, meta: &std::fs::Metadata, privileged: bool) -> Result<(), LeaseError> {
    let fail = |action, source| LeaseError::new(path, action, source);
    if !meta.file_type().is_char_device() {
        return Err(fail("use", io::Error::other("not a character device")));
    }
    match device_name(meta.rdev()) {
        Some(name) if PM_QOS_DEVICE_NAMES.contains(&name.as_str()) => Ok(()),
        Some(_) => Err(fail("use", io::Error::other("not a PM QoS device node"))),
        None if privileged => Err(fail(
            "use",
            io::Error::other("cannot verify it is a PM QoS device node"),
        )),
        None => Ok(()),
    }
}

/// [`open`] in a privileged process: see there.
fn open_privileged(path: &Path, write: bool) -> Result<File, LeaseError> {
    let fail = |action, source| LeaseError::new(path, action, source);
    // The path is the real user's to name: it must resolve with their rights (access(2) checks
    // with the real uid and gid and without capabilities), so that a privileged lllqos does not
    // even tell them whether a file they cannot reach exists.
    nix::unistd::access(path, nix::unistd::AccessFlags::F_OK)
        .map_err(|e| fail("open", io::Error::from(e)))?;
    let handle = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| fail("open", io::Error::from(e)))?;
    let handle = File::from(handle);
    let meta = handle.metadata().map_err(|e| fail("open", e))?;
    check_node(path, &meta, true)?;
    // Reopening through the descriptor's /proc link opens this very inode, with fresh permission
    // checks; lllqos needs /proc anyway (start times, status).
    // To place a request, with the privilege of a setuid or capability install (the path was
    // resolved, and the node checked, with the real user's rights above).
    let proc_path = format!("/proc/self/fd/{}", handle.as_raw_fd());
    let reopen = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .open(&proc_path)
    };
    let reopened = if write {
        privilege::elevated(reopen)
    } else {
        reopen()
    };
    reopened.map_err(|e| match e.kind() {
        io::ErrorKind::NotFound if !Path::new("/proc/self/fd").exists() => fail(
            "open",
            io::Error::other("/proc is not mounted (lllqos opens the node through /proc/self/fd)"),
        ),
        _ => fail("open", e),
    })
}

/// The kernel's name for character device `rdev`, from `/sys/dev/char/MAJOR:MINOR/uevent`. A PM
/// QoS node's is read once in a process: such a node is made at boot and never removed, so its
/// number names it for good (another device's number may be reused, and is read each time).
fn device_name(rdev: u64) -> Option<String> {
    static NAMES: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let cached = |names: &[(u64, String)]| {
        names
            .iter()
            .find(|(known, _)| *known == rdev)
            .map(|(_, name)| name.clone())
    };
    if let Some(name) = cached(&NAMES.lock().unwrap_or_else(|e| e.into_inner())) {
        return Some(name);
    }
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let uevent =
        crate::internal::file::read_small(format!("/sys/dev/char/{major}:{minor}/uevent")).ok()?;
    let name = uevent
        .lines()
        .find_map(|line| line.strip_prefix("DEVNAME="))
        .map(str::to_owned)?;
    if PM_QOS_DEVICE_NAMES.contains(&name.as_str()) {
        let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        if cached(&names).is_none() {
            names.push((rdev, name.clone()));
        }
    }
    Some(name)
}
