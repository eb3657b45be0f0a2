//! `--output FILE`: the metrics written where a textfile collector reads them, replaced atomically,
//! and safely when the directory is shared.
//!
//! A temporary file in FILE's directory (`.NAME.XXXXXX`, which the collector skips: it reads
//! `*.prom`) is created with `O_EXCL`, written, flushed to disk, then renamed over FILE: a reader
//! sees the old file or the new one, never half of one. Root runs this from a timer or cron, so the
//! directory may be one another user can write (`/tmp`): there, between two system calls on a path,
//! that user could put a symlink to a file of root's in place of the temporary file, and root's
//! `chmod` would make it world-readable, its `rename` put it in FILE's place. So:
//!
//! - everything happens relative to the directory's descriptor, and after the open, on the file's
//!   own descriptor (`fchmod`, `fsync`), never on a path again; before the rename, the entry is
//!   checked to still be the file written;
//! - a directory others can write is refused unless it is sticky (no one but an entry's owner may
//!   remove or rename it, so the temporary file stays ours) and FILE, when it exists, is the
//!   caller's own regular file;
//! - the writer holds a lock on its temporary file while it writes: a temporary file of FILE's
//!   name that nobody holds was left by a run that was killed, and is removed by the next;
//! - the temporary name fits where FILE's fits: FILE's name is shortened in it as needed.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, Flock, FlockArg, OFlag, openat, renameat};
use nix::sys::stat::{Mode, fchmod, fstat, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// The longest name a directory entry may have (Linux's NAME_MAX).
const NAME_MAX: usize = 255;
/// The random part of a temporary file's name.
const RANDOM: usize = 6;

/// Why `--output` could not be written: a refusal that explains itself, or the system's error.
#[derive(Debug)]
pub enum OutputError {
    Refused(String),
    Io(io::Error),
}

impl From<io::Error> for OutputError {
    fn from(error: io::Error) -> OutputError {
        OutputError::Io(error)
    }
}

impl From<Errno> for OutputError {
    fn from(errno: Errno) -> OutputError {
        OutputError::Io(errno.into())
    }
}

/// The prefix of the temporary files of `name`: `.NAME.`, NAME shortened so that the whole
/// temporary name (with its random part) is at most [`NAME_MAX`] bytes.
fn temporary_prefix(name: &[u8]) -> Vec<u8> {
    let room = NAME_MAX - 2 - RANDOM;
    let mut prefix = vec![b'.'];
    prefix.extend_from_slice(&name[..name.len().min(room)]);
    prefix.push(b'.');
    prefix
}

/// Whether the directory `dir` (as `fstat` gives it) can be written by someone other than this
/// user and root: everyone, its group when that group is neither root's nor this user's, or its
/// owner when that is another user.
fn writable_by_others(dir: &libc::stat) -> bool {
    let (euid, egid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let mode = dir.st_mode;
    mode & libc::S_IWOTH != 0
        || (mode & libc::S_IWGRP != 0 && dir.st_gid != 0 && dir.st_gid != egid)
        || (dir.st_uid != 0 && dir.st_uid != euid)
}

/// Replaces `path` with `text`, as the module documentation says.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), OutputError> {
    let dir_path = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = match path.file_name() {
        Some(name) if !path.as_os_str().as_bytes().ends_with(b"/") => name.as_bytes(),
        _ => return Err(OutputError::Refused("names no file".into())),
    };
    let dir = nix::fcntl::open(
        dir_path,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let dir_stat = fstat(&dir)?;
    if writable_by_others(&dir_stat) {
        if dir_stat.st_mode & libc::S_ISVTX == 0 {
            return Err(OutputError::Refused(format!(
                "{} can be written by other users and is not sticky (one of them could swap a file in place of the one written): write to a directory only this user writes, such as /var/lib/prometheus/node-exporter",
                dir_path.display()
            )));
        }
        check_own_file(&dir, name, path)?;
    }
    let prefix = temporary_prefix(name);
    remove_stale(&dir, &prefix);
    let (temporary, file) = create_temporary(&dir, &prefix)?;
    let written = write_and_rename(&dir, &temporary, &file, name, text);
    if written.is_err() {
        let _ = unlinkat(&dir, temporary.as_slice(), UnlinkatFlags::NoRemoveDir);
    }
    written
}

/// In a shared (sticky) directory, FILE must be this user's own regular file, if it exists.
fn check_own_file(dir: &OwnedFd, name: &[u8], path: &Path) -> Result<(), OutputError> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(found) if found.st_mode & libc::S_IFMT != libc::S_IFREG => {
            Err(OutputError::Refused(format!(
                "{} is not a regular file (a symlink, in a directory other users can write): refusing to replace it",
                path.display()
            )))
        }
        Ok(found) if found.st_uid != nix::unistd::geteuid().as_raw() => {
            Err(OutputError::Refused(format!(
                "{} belongs to uid {}, in a directory other users can write: refusing to replace it",
                path.display(),
                found.st_uid
            )))
        }
        Ok(_) => Ok(()),
    }
}

/// Removes the temporary files of `prefix` a killed run left: this user's regular files that no
/// writer holds locked.
fn remove_stale(dir: &OwnedFd, prefix: &[u8]) {
    let Ok(listing) = nix::dir::Dir::from_fd(match nix::unistd::dup(dir) {
        Ok(fd) => fd,
        Err(_) => return,
    }) else {
        return;
    };
    let mut listing = listing;
    let stale: Vec<Vec<u8>> = listing
        .iter()
        .flatten()
        .map(|entry| entry.file_name().to_bytes().to_vec())
        .filter(|name| name.len() == prefix.len() + RANDOM && name.starts_with(prefix))
        .collect();
    for name in stale {
        let opened = openat(
            dir,
            name.as_slice(),
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        let Ok(fd) = opened else { continue };
        let Ok(stat) = fstat(&fd) else { continue };
        if stat.st_mode & libc::S_IFMT != libc::S_IFREG
            || stat.st_uid != nix::unistd::geteuid().as_raw()
        {
            continue;
        }
        // Held: another run writes it now. Not held: left by a run that was killed.
        if let Ok(_lock) = Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock) {
            let _ = unlinkat(dir, name.as_slice(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// A new temporary file `PREFIX` + random, made with `O_EXCL` and locked: its name and the lock.
fn create_temporary(dir: &OwnedFd, prefix: &[u8]) -> Result<(Vec<u8>, Flock<File>), OutputError> {
    const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    loop {
        let random = {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        let mut name = prefix.to_vec();
        name.extend((0..RANDOM).map(|i| LETTERS[(random >> (i * 6)) as usize % LETTERS.len()]));
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match openat(dir, name.as_slice(), flags, Mode::S_IRUSR | Mode::S_IWUSR) {
            Ok(fd) => {
                let lock = Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock)
                    .map_err(|(_, e)| OutputError::from(e))?;
                return Ok((name, lock));
            }
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Makes the temporary file readable by all, writes and flushes it (all on its descriptor), checks
/// that its entry is still the file written, and renames it over `name`.
fn write_and_rename(
    dir: &OwnedFd,
    temporary: &[u8],
    file: &Flock<File>,
    name: &[u8],
    text: &str,
) -> Result<(), OutputError> {
    // Made 0600: a metrics file is for others to read.
    fchmod(file.as_fd(), Mode::from_bits_truncate(0o644))?;
    let mut writer: &File = file;
    writer.write_all(text.as_bytes())?;
    file.sync_all()?;
    let ours = fstat(file.as_fd())?;
    let there = fstatat(dir, temporary, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    if (there.st_dev, there.st_ino) != (ours.st_dev, ours.st_ino) {
        return Err(OutputError::Refused(
            "the temporary file was replaced while it was written: nothing renamed".into(),
        ));
    }
    renameat(dir, temporary, dir, name)?;
    // The rename itself on disk too (as the file's content is).
    let _ = nix::unistd::fsync(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_name_fits_where_the_name_fits() {
        let long = vec![b'x'; NAME_MAX];
        let prefix = temporary_prefix(&long);
        assert_eq!(prefix.len() + RANDOM, NAME_MAX);
        assert_eq!(temporary_prefix(b"a.prom"), b".a.prom.".to_vec());
    }

    #[test]
    fn the_file_is_replaced_and_nothing_else_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.prom");
        // What a killed run left: a temporary file nobody holds.
        std::fs::write(dir.path().join(".x.prom.AbCdEf"), "half").unwrap();
        write_atomically(&path, "one\n").unwrap();
        write_atomically(&path, "two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["x.prom"]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn a_name_of_255_bytes_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m".repeat(NAME_MAX));
        write_atomically(&path, "x\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\n");
    }
}
