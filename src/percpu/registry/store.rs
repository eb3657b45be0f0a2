//! The registry's directory and its files: opened safely, locked, replaced atomically, tidied.
//!
//! See the parent module for what they hold and why each precaution is taken.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, Flock, FlockArg, OFlag, renameat};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat};
use nix::unistd::UnlinkatFlags;

use super::{
    HOLDER_PREFIX, Holder, LOCK_FILE, REGISTRY_DIR, REGISTRY_FILE, REGISTRY_MAX_BYTES,
    REGISTRY_TEMP, Registry, Result,
};
use crate::internal::file::{self, Kind};
use crate::internal::privilege::elevated;
use crate::internal::procfs;
use crate::internal::sigset::{self, SignalSet};
use crate::percpu::error::{CpuError, CpuErrorKind, Place};

/// How long a holder waits for the registry lock before it says what it waits for.
const PATIENCE: Duration = Duration::from_secs(1);
/// The longest pause between two tries of the lock (the shortest is 1 ms, doubling).
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// `what: reason`, the reason as C tools print it.
fn failed(what: impl std::fmt::Display, errno: Errno) -> CpuError {
    CpuError::os(Place::Registry, what, errno)
}

/// For `fstat` of a descriptor lllqos holds, which fails only on a broken system.
fn stat(fd: impl AsFd, what: &str) -> Result<FileStat> {
    fstat(fd).map_err(|e| failed(format!("cannot stat {what}"), e))
}

/// Opens the registry directory (creating it when asked) and checks it is safe to trust; `None`
/// when it does not exist (nothing is held, or another lllqos has just removed it).
pub(super) fn open_dir(create: bool) -> Result<Option<OwnedFd>> {
    if create {
        match nix::unistd::mkdir(REGISTRY_DIR, Mode::S_IRWXU) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(failed(format!("cannot create {REGISTRY_DIR}"), e)),
        }
    }
    let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY;
    let dir = match file::open(
        None,
        Path::new(REGISTRY_DIR),
        flags,
        Mode::empty(),
        Kind::Directory,
    ) {
        Ok(dir) => dir,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => {
            // Not a directory (a symlink, a file): said so; anything else (not permitted, for a
            // user who reads the registry of root's) as it is.
            let what = match e.raw_os_error() {
                Some(libc::ELOOP | libc::ENOTDIR) | None => {
                    format!("cannot open {REGISTRY_DIR} (it must be a directory, not a symlink)")
                }
                Some(_) => format!("cannot open {REGISTRY_DIR}"),
            };
            return Err(CpuError::io(
                Place::Registry,
                what,
                &e,
                CpuErrorKind::Registry,
            ));
        }
    };
    check_owner(&stat(&dir, REGISTRY_DIR)?, REGISTRY_DIR)?;
    Ok(Some(dir))
}

/// A registry file or directory must belong to root or to this effective user, and be writable by
/// no one else: otherwise another user could plant the values lllqos restores.
fn check_owner(stat: &FileStat, what: &str) -> Result<()> {
    let euid = nix::unistd::geteuid().as_raw();
    if (stat.st_uid != 0 && stat.st_uid != euid) || stat.st_mode & 0o022 != 0 {
        return Err(CpuError::new(
            CpuErrorKind::Registry,
            format!(
                "refusing to use {what}: it must be owned by root and writable by no one else (owner uid {}, mode {:o})",
                stat.st_uid,
                stat.st_mode & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Opens `name` in the registry directory as [`file::open`] does.
fn open_in(dir: &OwnedFd, name: &str, flags: OFlag, mode: Mode) -> std::io::Result<OwnedFd> {
    file::open(Some(dir), Path::new(name), flags, mode, Kind::Regular)
}

/// An error opening or reading `name` in the registry directory: a file of the wrong type or size
/// is a [`CpuErrorKind::Registry`] error naming it, a symlink too.
fn open_error(action: &str, name: &str, error: &std::io::Error) -> CpuError {
    let path = format!("{REGISTRY_DIR}/{name}");
    match error.raw_os_error() {
        Some(libc::ELOOP) => CpuError::new(
            CpuErrorKind::Registry,
            format!("refusing to use {path}: it is a symlink"),
        ),
        Some(_) => CpuError::io(
            Place::Registry,
            format!("cannot {action} {path}"),
            error,
            CpuErrorKind::Io,
        ),
        None => CpuError::new(
            CpuErrorKind::Registry,
            format!("refusing to use {path}: {error}"),
        ),
    }
}

pub(super) fn read_registry(dir: &OwnedFd) -> Result<Option<Registry>> {
    let path = format!("{REGISTRY_DIR}/{REGISTRY_FILE}");
    let fd = match open_in(dir, REGISTRY_FILE, OFlag::O_RDONLY, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(open_error("open", REGISTRY_FILE, &e)),
    };
    check_owner(&stat(&fd, &path)?, &path)?;
    let text = file::read_bounded(fd, REGISTRY_MAX_BYTES)
        .map_err(|e| open_error("read", REGISTRY_FILE, &e))?;
    Registry::parse(&text).map(Some).map_err(|why| {
        CpuError::new(
            CpuErrorKind::Registry,
            format!(
                "corrupt registry {path} ({why}): it records the values to restore on each CPU; fix or remove it by hand"
            ),
        )
    })
}

/// One of the signals that end a process ([`sigset::ENDING`]), when one is pending. Pending means
/// blocked: the `lllqos` command blocks them while it places and releases, and reads them later; a
/// program that does not block them is ended (or interrupted) by them as usual.
fn ending_signal_pending() -> Option<&'static str> {
    let pending = SignalSet::pending();
    (sigset::ENDING.iter())
        .find(|&&(signal, _)| pending.contains(signal))
        .map(|&(_, name)| name)
}

/// The pid holding a `flock` on the file open on `fd`, as `/proc/locks` shows it.
pub(super) fn lock_owner(fd: impl AsFd) -> Option<i32> {
    let st = fstat(fd).ok()?;
    procfs::lock_owner(
        libc::major(st.st_dev) as u64,
        libc::minor(st.st_dev) as u64,
        st.st_ino,
    )
}

/// A holder's lock on its own holder file, kept for as long as it holds.
#[derive(Debug)]
pub(crate) struct HolderFile {
    name: String,
    _lock: Flock<File>,
}

impl HolderFile {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

/// The registry, locked for the duration of one acquire or release.
pub(crate) struct Locked {
    dir: OwnedFd,
    _lock: Flock<File>,
}

impl Locked {
    /// Takes the registry lock, creating the directory when there is none. While another lllqos
    /// has it, tries again with pauses (1 ms, doubling to 50 ms), calls `on_wait` once with what
    /// it waits for after a second, and, when `interruptible`, gives up with
    /// [`CpuErrorKind::Interrupted`] as soon as an ending signal is pending (placing a constraint
    /// can be given up; restoring one cannot).
    pub(crate) fn lock(interruptible: bool, on_wait: &mut dyn FnMut(&str)) -> Result<Locked> {
        loop {
            if let Some(locked) = Locked::lock_in(true, interruptible, on_wait)? {
                return Ok(locked);
            }
        }
    }

    /// [`Locked::lock`], but `None` when there is no registry directory: nothing is registered,
    /// and nothing is created.
    pub(crate) fn lock_existing(on_wait: &mut dyn FnMut(&str)) -> Result<Option<Locked>> {
        Locked::lock_in(false, true, on_wait)
    }

    fn lock_in(
        create: bool,
        interruptible: bool,
        on_wait: &mut dyn FnMut(&str),
    ) -> Result<Option<Locked>> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        let mut told = false;
        // Another lllqos may remove the directory (when nothing is held any more) between our
        // opening and our locking; then the lock we got is on a file no longer in use. Retry until
        // the locked file is the one at the path.
        loop {
            let Some(dir) = elevated(|| open_dir(create))? else {
                if create {
                    continue;
                }
                return Ok(None);
            };
            let flags = OFlag::O_RDWR | OFlag::O_CREAT;
            let file =
                match elevated(|| open_in(&dir, LOCK_FILE, flags, Mode::S_IRUSR | Mode::S_IWUSR)) {
                    Ok(fd) => File::from(fd),
                    // The directory was removed after we opened it.
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                    Err(e) => return Err(open_error("open", LOCK_FILE, &e)),
                };
            let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((file, Errno::EWOULDBLOCK)) => {
                    if let Some(signal) = ending_signal_pending().filter(|_| interruptible) {
                        return Err(CpuError::new(
                            CpuErrorKind::Interrupted,
                            format!(
                                "{signal} while waiting for {REGISTRY_DIR}/{LOCK_FILE}: gave up, nothing changed"
                            ),
                        ));
                    }
                    if !told && started.elapsed() >= PATIENCE {
                        told = true;
                        on_wait(&Locked::waiting_for(&file));
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_PAUSE);
                    continue;
                }
                Err((_, e)) => {
                    return Err(failed(format!("cannot lock {REGISTRY_DIR}/{LOCK_FILE}"), e));
                }
            };
            let same = |a: FileStat, b: nix::Result<FileStat>| {
                b.is_ok_and(|b| (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino))
            };
            if same(
                stat(&dir, REGISTRY_DIR)?,
                fstatat(AT_FDCWD, REGISTRY_DIR, AtFlags::AT_SYMLINK_NOFOLLOW),
            ) && same(
                stat(&*lock, LOCK_FILE)?,
                elevated(|| fstatat(&dir, LOCK_FILE, AtFlags::AT_SYMLINK_NOFOLLOW)),
            ) {
                return Ok(Some(Locked { dir, _lock: lock }));
            }
        }
    }

    /// `waiting for /run/lllqos/lock held by pid N` (the pid from /proc/locks, when it shows).
    fn waiting_for(lock: &File) -> String {
        let path = format!("{REGISTRY_DIR}/{LOCK_FILE}");
        let owner = lock_owner(lock);
        match owner {
            Some(pid) => format!("waiting for {path} held by pid {pid}"),
            None => format!("waiting for {path}, held by another process"),
        }
    }

    /// The registry, empty when there is none.
    pub(crate) fn load(&self) -> Result<Registry> {
        Ok(elevated(|| read_registry(&self.dir))?.unwrap_or_else(Registry::empty))
    }

    /// Whether `holder` still runs.
    pub(crate) fn is_alive(&self, holder: &Holder) -> bool {
        elevated(|| holder.alive_in(&self.dir))
    }

    /// Creates and locks a new holder file for this process.
    pub(crate) fn new_holder_file(&self) -> Result<HolderFile> {
        let pid = std::process::id();
        loop {
            let random = {
                use std::hash::{BuildHasher, Hasher};
                std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish()
            };
            let name = format!("{HOLDER_PREFIX}{pid}.{random:016x}");
            let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL;
            let fd = match elevated(|| {
                open_in(&self.dir, &name, flags, Mode::S_IRUSR | Mode::S_IWUSR)
            }) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => return Err(open_error("create", &name, &e)),
            };
            let lock = Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock)
                .map_err(|(_, e)| failed(format!("cannot lock {REGISTRY_DIR}/{name}"), e))?;
            return Ok(HolderFile { name, _lock: lock });
        }
    }

    /// Makes `registry` the one on disk, atomically: written, synced and renamed over the old one,
    /// or, when nothing is held, the old one removed. Either the new registry is on disk and this
    /// returns `Ok`, or the old one still is, with no temporary file left. Then files nobody needs
    /// any more are removed ([`Locked::tidy`]); a failure there leaves one for the next change.
    pub(crate) fn store(&self, registry: &Registry) -> Result<()> {
        if registry.is_empty() {
            self.unlink(REGISTRY_FILE)?;
        } else {
            self.replace(registry).inspect_err(|_| {
                let _ = self.unlink(REGISTRY_TEMP);
            })?;
        }
        let _ = self.tidy(registry);
        Ok(())
    }

    fn replace(&self, registry: &Registry) -> Result<()> {
        let text = serde_json::to_vec_pretty(registry).map_err(|e| {
            CpuError::new(CpuErrorKind::Io, format!("cannot encode the registry: {e}"))
        })?;
        let temp = format!("{REGISTRY_DIR}/{REGISTRY_TEMP}");
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC;
        let mut file = File::from(
            elevated(|| {
                open_in(
                    &self.dir,
                    REGISTRY_TEMP,
                    flags,
                    Mode::S_IRUSR | Mode::S_IWUSR,
                )
            })
            .map_err(|e| open_error("create", REGISTRY_TEMP, &e))?,
        );
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(|e| {
                CpuError::io(
                    Place::Registry,
                    format!("cannot write {temp}"),
                    &e,
                    CpuErrorKind::Io,
                )
            })?;
        elevated(|| renameat(&self.dir, REGISTRY_TEMP, &self.dir, REGISTRY_FILE))
            .map_err(|e| failed(format!("cannot replace {REGISTRY_DIR}/{REGISTRY_FILE}"), e))
    }

    /// Removes what `registry` (the one on disk) does not need: the holder files no record names,
    /// and, when nothing is held, everything, the directory included. Writes nothing, so it works
    /// on a full file system.
    pub(crate) fn tidy(&self, registry: &Registry) -> Result<()> {
        // Holder files no record names: released, dead and pruned, or left by a process killed
        // between creating its file and recording it. Created and recorded under this lock only,
        // so none of them is about to be used.
        let names = registry.lock_names();
        let unused: Vec<String> = self
            .entries()
            .into_iter()
            .filter(|name| name.starts_with(HOLDER_PREFIX) && !names.contains(name.as_str()))
            .collect();
        for name in &unused {
            self.unlink(name)?;
        }
        if registry.is_empty() {
            for name in [REGISTRY_FILE, REGISTRY_TEMP, LOCK_FILE] {
                self.unlink(name)?;
            }
            // Fails (harmlessly) if another lllqos has just created its lock file in it.
            let _ = elevated(|| {
                nix::unistd::unlinkat(AT_FDCWD, REGISTRY_DIR, UnlinkatFlags::RemoveDir)
            });
        }
        Ok(())
    }

    /// Removes this process's holder file: a record that names it is dead from now on, and is
    /// dropped by the next change of the registry (for a change that failed half-way).
    pub(crate) fn remove_holder_file(&self, holder: &HolderFile) -> Result<()> {
        self.unlink(&holder.name)
    }

    fn unlink(&self, name: &str) -> Result<()> {
        match elevated(|| nix::unistd::unlinkat(&self.dir, name, UnlinkatFlags::NoRemoveDir)) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(failed(format!("cannot remove {REGISTRY_DIR}/{name}"), e)),
        }
    }

    /// The names in the registry directory.
    fn entries(&self) -> Vec<String> {
        elevated(|| std::fs::read_dir(REGISTRY_DIR))
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internal::privilege::{self, tests::as_setuid_program};

    /// A caller's callback runs with the caller's credentials, not with the privilege the registry's
    /// files are opened with: `on_wait`, called while the lock is busy, sees the lowered ids and no
    /// effective capability, in a process started as a setuid program is.
    #[test]
    fn a_callback_runs_without_the_privilege() {
        if !nix::unistd::geteuid().is_root() {
            let _ = as_setuid_program("percpu::registry::store::tests::child_waits_for_the_lock");
            return;
        }
        if Path::new(REGISTRY_DIR).exists() {
            eprintln!("SKIPPED: a_callback_runs_without_the_privilege: {REGISTRY_DIR} is in use");
            return;
        }
        std::fs::create_dir(REGISTRY_DIR).unwrap();
        std::fs::set_permissions(
            REGISTRY_DIR,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let busy = File::create(format!("{REGISTRY_DIR}/{LOCK_FILE}")).unwrap();
        let busy = Flock::lock(busy, FlockArg::LockExclusive).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            drop(busy);
        });
        let status = as_setuid_program("percpu::registry::store::tests::child_waits_for_the_lock");
        release.join().unwrap();
        let _ = std::fs::remove_dir_all(REGISTRY_DIR);
        let status = status.unwrap();
        assert!(status.success(), "{status:?}");
    }

    #[test]
    #[ignore = "run by a_callback_runs_without_the_privilege, as a setuid program"]
    fn child_waits_for_the_lock() {
        assert!(privilege::is_privileged());
        privilege::lower().unwrap();
        let mut seen = Vec::new();
        let locked = Locked::lock(false, &mut |_| {
            seen.push(nix::unistd::geteuid().as_raw());
        });
        assert!(locked.is_ok(), "{:?}", locked.err());
        // Called once, after a second of waiting, as the user the program runs for.
        assert_eq!(seen, [65534]);
        assert_eq!(nix::unistd::geteuid().as_raw(), 65534);
    }
}
