//! Opening and reading files that someone else could have replaced, so that nothing lllqos reads
//! can hang it, trick it into following a link, or make it read without bound.
//!
//! lllqos runs as root and reads files other processes can create or swap: its registry in `/run`,
//! `/proc/PID/*`, sysfs. A FIFO where a regular file was expected makes a plain `open(2)` wait for
//! a writer forever (while lllqos holds the registry lock and has its signals blocked: only
//! SIGKILL would end it). So every such file is opened here the same way:
//!
//! - `O_NONBLOCK`, so that the open itself cannot wait (a FIFO opens at once, a device's open does
//!   not wait for carrier), then `fstat` of the descriptor and a refusal of anything that is not
//!   the type expected, before a single byte is read;
//! - `O_NOFOLLOW`, so that a symlink in the last component is refused (`ELOOP`), not followed;
//! - `O_CLOEXEC`, so that no command lllqos runs inherits it;
//! - and, when reading, a size bound checked on the size `fstat` reports and again on what
//!   arrives (sysfs and /proc report sizes that are not the content's).
//!
//! The library and the `lllqos` command both open files this way (the command reads /proc and
//! sysfs with it too); it is no part of the library's interface.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstat, fstatat};

/// The type a file must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (sysfs and /proc attributes are regular files too).
    Regular,
    /// A directory.
    Directory,
}

/// The bound for small text files: a sysfs attribute is at most a page, a /proc line a few KiB.
pub const SMALL: u64 = 64 * 1024;

/// Opens `path` (relative to `dir` when given) with `flags` plus `O_NONBLOCK | O_NOFOLLOW |
/// O_CLOEXEC`, and refuses it unless it is of type `kind`. With `O_CREAT` in `flags`, `mode` is the
/// new file's. A file of the wrong type is an `InvalidData` error that says what it is.
pub fn open(
    dir: Option<&OwnedFd>,
    path: &Path,
    flags: OFlag,
    mode: Mode,
    kind: Kind,
) -> io::Result<OwnedFd> {
    let flags = flags | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let opened = match dir {
        Some(dir) => openat(dir, path, flags, mode),
        None => openat(AT_FDCWD, path, flags, mode),
    };
    let fd = match opened {
        Ok(fd) => fd,
        // A socket cannot be opened (ENXIO), nor a directory for writing (EISDIR): say what it is
        // when that is the reason.
        Err(errno @ (Errno::ENXIO | Errno::EISDIR | Errno::ENODEV)) => {
            let stat = match dir {
                Some(dir) => fstatat(dir, path, AtFlags::AT_SYMLINK_NOFOLLOW),
                None => fstatat(AT_FDCWD, path, AtFlags::AT_SYMLINK_NOFOLLOW),
            };
            return Err(match stat {
                Ok(stat) => check_mode(stat.st_mode, kind).err().unwrap_or(errno.into()),
                Err(_) => errno.into(),
            });
        }
        Err(errno) => return Err(errno.into()),
    };
    check_kind(&fd, kind)?;
    Ok(fd)
}

/// Refuses `fd` unless it is of type `kind`.
pub fn check_kind(fd: impl AsFd, kind: Kind) -> io::Result<()> {
    check_mode(fstat(fd)?.st_mode, kind)
}

fn check_mode(mode: u32, kind: Kind) -> io::Result<()> {
    let found = SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits());
    let wanted = match kind {
        Kind::Regular => SFlag::S_IFREG,
        Kind::Directory => SFlag::S_IFDIR,
    };
    if found == wanted {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} where {} was expected",
            describe(found),
            describe(wanted)
        ),
    ))
}

fn describe(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFLNK => "a symlink",
        _ => "a file of unknown type",
    }
}

/// Reads all of `fd`, refusing more than `max` bytes (by the size `fstat` reports, without
/// reading, and by what arrives).
pub fn read_bounded(fd: OwnedFd, max: u64) -> io::Result<Vec<u8>> {
    let size = u64::try_from(fstat(&fd)?.st_size).unwrap_or(0);
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        )
    };
    if size > max {
        return Err(too_big());
    }
    // sysfs and /proc report 0 or 4096 whatever they hold: start with a page, so that a small file
    // is one read, not a series of growing ones; a regular file's size is its size (at most max).
    let mut bytes = Vec::with_capacity(size.max(4096).min(max + 1) as usize);
    File::from(fd).take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_big());
    }
    Ok(bytes)
}

/// A small regular file's text (a sysfs attribute, a /proc file), read as [`read_small_bytes`]
/// does, invalid UTF-8 replaced.
pub fn read_small(path: impl AsRef<Path>) -> io::Result<String> {
    Ok(String::from_utf8_lossy(&read_small_bytes(path)?).into_owned())
}

/// A small regular file's bytes, opened as [`open`] does, at most [`SMALL`] of them.
pub fn read_small_bytes(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let fd = open(
        None,
        path.as_ref(),
        OFlag::O_RDONLY,
        Mode::empty(),
        Kind::Regular,
    )?;
    read_bounded(fd, SMALL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
        let error = read_small(&fifo).unwrap_err();
        assert_eq!(
            error.to_string(),
            "a FIFO where a regular file was expected"
        );
    }

    #[test]
    fn a_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("target"), "x").unwrap();
        std::os::unix::fs::symlink("target", dir.path().join("link")).unwrap();
        assert_eq!(read_small(dir.path().join("target")).unwrap(), "x");
        let error = read_small(dir.path().join("link")).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn a_directory_is_refused_where_a_file_is_expected_and_the_bound_holds() {
        let dir = tempfile::tempdir().unwrap();
        let error = read_small(dir.path()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "a directory where a regular file was expected"
        );
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 100]).unwrap();
        let fd = open(None, &big, OFlag::O_RDONLY, Mode::empty(), Kind::Regular).unwrap();
        assert_eq!(
            read_bounded(fd, 99).unwrap_err().to_string(),
            "larger than 99 bytes"
        );
        let fd = open(None, &big, OFlag::O_RDONLY, Mode::empty(), Kind::Regular).unwrap();
        assert_eq!(read_bounded(fd, 100).unwrap().len(), 100);
    }

    #[test]
    fn proc_files_whose_size_is_zero_are_read_whole() {
        let stat = read_small("/proc/self/stat").unwrap();
        assert!(stat.starts_with(&std::process::id().to_string()), "{stat}");
    }
}
