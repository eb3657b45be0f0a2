//! The registry's directory and its files: opened safely, locked, replaced atomically, tidied.
//!
//! See the parent module for what they hold and why each precaution is taken.

use std::cell::RefCell;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, Flock, FlockArg, OFlag, renameat};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat};
use nix::unistd::UnlinkatFlags;

use super::doorbell::{Doorbell, RingOnDrop};
use super::{
    HOLDER_PREFIX, LOCK_FILE, POSIX_MARK, REGISTRY_DIR, REGISTRY_FILE, REGISTRY_MAX_BYTES,
    REGISTRY_TEMP, Registry, Result,
};
use crate::internal::file::{self, Kind};
use crate::internal::privilege::{self, elevated};
use crate::internal::sigset::{self, SignalSet};
use crate::percpu::STALL_LIMIT;
use crate::percpu::error::{CpuError, CpuErrorKind, Place};

/// How long a holder waits for the registry lock before it says what it waits for.
const PATIENCE: Duration = Duration::from_secs(1);
/// The longest pause between two tries of the lock (the shortest is 1 ms, doubling).
const MAX_PAUSE: Duration = Duration::from_millis(50);
/// The signals by which a terminal stops a process (its job control): blocked while the registry
/// is locked, so that a key pressed then stops lllqos after it has let the registry go.
const JOB_CONTROL: [i32; 3] = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];

/// `what: reason`, the reason as C tools print it.
fn failed(what: impl std::fmt::Display, errno: Errno) -> CpuError {
    CpuError::os(Place::Registry, what, errno)
}

/// For `fstat` of a descriptor lllqos holds, which fails only on a broken system.
fn stat(fd: impl AsFd, what: &str) -> Result<FileStat> {
    fstat(fd).map_err(|e| failed(format!("cannot stat {what}"), e))
}

/// Opens the registry directory (creating it when asked) and checks it is safe to trust; `None`
/// when it does not exist (nothing was ever held since boot, and it was not asked for). `take`:
/// replace another user's (for a change of the registry, never for a reading).
///
/// The directory is root's in every install mode, so that no user can plant the values lllqos
/// restores nor keep another from using it (the package makes it at boot, `tmpfiles.d`):
///
/// - made here only by root (or a setuid-root install, raised); a capability install, whose files
///   would be its user's, refuses instead, naming the fix;
/// - one that another user owns (left by a capability install of an older lllqos) cannot be
///   trusted: root moves it aside and removes it, and makes its own (the records in it are lost:
///   the CPUs they changed keep their values, said in [`Taken`]); anyone else refuses it.
pub(super) fn open_dir(create: bool, take: bool) -> Result<Option<(OwnedFd, Option<Taken>)>> {
    let root = nix::unistd::geteuid().is_root();
    let mut taken = None;
    loop {
        let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY;
        match file::open(
            None,
            Path::new(REGISTRY_DIR),
            flags,
            Mode::empty(),
            Kind::Directory,
        ) {
            Ok(dir) => {
                let st = stat(&dir, REGISTRY_DIR)?;
                if st.st_uid != 0 && root && take {
                    take_over(st.st_uid)?;
                    taken = Some(Taken { uid: st.st_uid });
                    continue;
                }
                check_directory(&st)?;
                return Ok(Some((dir, taken)));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                if !create && taken.is_none() {
                    return Ok(None);
                }
                if !root && privilege::is_privileged() {
                    return Err(CpuError::new(
                        CpuErrorKind::Registry,
                        format!(
                            "{REGISTRY_DIR} does not exist, and a capability install cannot make it root's: make it as root (systemd-tmpfiles --create lllqos.conf with the package's /usr/lib/tmpfiles.d/lllqos.conf, or mkdir -m 0700 {REGISTRY_DIR})"
                        ),
                    ));
                }
                match nix::unistd::mkdir(REGISTRY_DIR, Mode::S_IRWXU) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(failed(format!("cannot create {REGISTRY_DIR}"), e)),
                }
            }
            Err(e) => {
                // Not a directory (a symlink, a file): said so; anything else (not permitted, for
                // a user who reads the registry of root's) as it is.
                let what = match e.raw_os_error() {
                    Some(libc::ELOOP | libc::ENOTDIR) | None => format!(
                        "cannot open {REGISTRY_DIR} (it must be a directory, not a symlink)"
                    ),
                    Some(_) => format!("cannot open {REGISTRY_DIR}"),
                };
                return Err(CpuError::io(
                    Place::Registry,
                    what,
                    &e,
                    CpuErrorKind::Registry,
                ));
            }
        }
    }
}

/// 64 random bits (the standard library's hash keys, drawn from the kernel's randomness), for
/// names no one can guess.
pub(crate) fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Renames the temporary file to the registry file in `dir`, exchanging the two when `exchange`
/// (`RENAME_EXCHANGE`): the kernel's `renameat2` itself either way (the C library makes a plain
/// rename another call, and musl has no wrapper), so that every store is the same system call.
fn rename_in(dir: &OwnedFd, exchange: bool) -> nix::Result<()> {
    let flags = if exchange { libc::RENAME_EXCHANGE } else { 0 };
    use nix::NixPath;
    let done = REGISTRY_TEMP.with_nix_path(|from| {
        REGISTRY_FILE.with_nix_path(|to| {
            // SAFETY: renameat2 with our directory's descriptor, two NUL-terminated names that
            // live through the call, and flags.
            unsafe {
                libc::syscall(
                    libc::SYS_renameat2,
                    dir.as_raw_fd(),
                    from.as_ptr(),
                    dir.as_raw_fd(),
                    to.as_ptr(),
                    flags,
                )
            }
        })
    })??;
    Errno::result(done).map(drop)
}

/// Another user's registry directory, which root replaced by its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    /// Its owner.
    pub(crate) uid: u32,
}

/// Moves another user's registry directory aside (a name in `/run` only root may write), then
/// removes it without following a link it holds. The removal is best effort: its owner may still
/// be writing in it, and what is left of it is theirs, under a name no lllqos uses.
fn take_over(uid: u32) -> Result<()> {
    let aside = format!("{REGISTRY_DIR}.of-uid-{uid}.{:016x}", random());
    renameat(AT_FDCWD, REGISTRY_DIR, AT_FDCWD, aside.as_str()).map_err(|e| {
        failed(
            format!("cannot move {REGISTRY_DIR} (owner uid {uid}) aside"),
            e,
        )
    })?;
    let _ = std::fs::remove_dir_all(&aside);
    Ok(())
}

/// The registry directory must be root's and writable by no one else: otherwise another user
/// could plant the values lllqos restores, or keep others from using it.
fn check_directory(stat: &FileStat) -> Result<()> {
    let why = if stat.st_uid != 0 {
        format!(
            "it belongs to uid {}, not root (root's next lllqos on a CPU, or lllqos recover, replaces it)",
            stat.st_uid
        )
    } else if stat.st_mode & 0o022 != 0 {
        format!(
            "it must be writable by root alone (mode {:o})",
            stat.st_mode & 0o7777
        )
    } else {
        return Ok(());
    };
    Err(CpuError::new(
        CpuErrorKind::Registry,
        format!("refusing to use {REGISTRY_DIR}: {why}"),
    ))
}

/// A registry file must be writable by no one but its owner. Its owner is root or a user of a
/// capability install (whose lllqos made it): in root's private directory no user can reach it.
fn check_owner(stat: &FileStat, what: &str) -> Result<()> {
    if stat.st_mode & 0o022 != 0 {
        return Err(CpuError::new(
            CpuErrorKind::Registry,
            format!(
                "refusing to use {what}: it must be writable by its owner alone (mode {:o})",
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

/// A wait for the registry's lock: its pauses, what it told, and since when the registry has not
/// changed.
struct Wait {
    started: Instant,
    pause: Duration,
    told: bool,
    /// The registry file as last seen (inode and change time; `None`: absent), and since when.
    /// Each change replaces it by another file, or removes it: a new value is progress.
    still: (Option<(u64, i64, i64)>, Instant),
}

impl Wait {
    fn new() -> Wait {
        let now = Instant::now();
        Wait {
            started: now,
            pause: Duration::from_millis(1),
            told: false,
            still: (None, now),
        }
    }

    /// Between two tries of the lock on `lock`, before the pause: gives up on an ending signal
    /// (`interruptible`) or a registry that stands still for [`STALL_LIMIT`], and tells `on_wait`
    /// what it waits for after [`PATIENCE`].
    fn check(
        &mut self,
        dir: &OwnedFd,
        lock: &File,
        interruptible: bool,
        on_wait: &mut dyn FnMut(&str),
    ) -> Result<()> {
        if let Some(signal) = ending_signal_pending().filter(|_| interruptible) {
            return Err(CpuError::new(
                CpuErrorKind::Interrupted,
                format!(
                    "{signal} while waiting for {REGISTRY_DIR}/{LOCK_FILE}: gave up, nothing changed"
                ),
            ));
        }
        if !self.told && self.started.elapsed() >= PATIENCE {
            self.told = true;
            on_wait(&format!("waiting for {}", holder_of(lock)));
        }
        let seen = elevated(|| fstatat(dir, REGISTRY_FILE, AtFlags::AT_SYMLINK_NOFOLLOW))
            .ok()
            .map(|st| (st.st_ino, st.st_ctime, st.st_ctime_nsec));
        let now = Instant::now();
        if seen != self.still.0 {
            self.still = (seen, now);
        } else if now.duration_since(self.still.1) >= STALL_LIMIT {
            return Err(CpuError::new(
                CpuErrorKind::Stalled,
                format!(
                    "gave up waiting for {} after {} s in which the registry did not change",
                    holder_of(lock),
                    STALL_LIMIT.as_secs()
                ),
            ));
        }
        Ok(())
    }
}

/// `/run/lllqos/lock held by pid N` (`, stopped` when it is): the lock's fcntl lock tells who.
fn holder_of(lock: &File) -> String {
    let path = format!("{REGISTRY_DIR}/{LOCK_FILE}");
    match super::Liveness::locker(lock) {
        Some(pid) => {
            let stopped = crate::internal::procfs::stat(pid)
                .is_some_and(|stat| matches!(stat.state, 'T' | 't'));
            let stopped = if stopped { ", stopped" } else { "" };
            format!("{path} held by pid {pid}{stopped}")
        }
        None => format!("{path}, held by another process"),
    }
}

/// A holder's locks on its own holder file, kept for as long as it holds: the fcntl lock that
/// tells it runs, and the flock lock that tells lllqos 0.1 (see the parent module).
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

impl Drop for HolderFile {
    fn drop(&mut self) {
        super::set_held_here(&self.name, false);
    }
}

/// The terminal's stop signals ([`JOB_CONTROL`]) blocked on the calling thread until this value is
/// dropped: a stop asked by a key while lllqos waits for or holds the registry's lock takes effect
/// once it has let it go.
struct JobControlBlocked {
    /// The calling thread's blocked signals before (`None`: the mask could not be read or set).
    before: Option<SignalSet>,
}

impl JobControlBlocked {
    fn new() -> JobControlBlocked {
        let before = SignalSet::blocked().ok().filter(|&before| {
            let job_control = SignalSet::of(JOB_CONTROL) - before;
            job_control == SignalSet::default() || job_control.block().is_ok()
        });
        JobControlBlocked { before }
    }
}

impl Drop for JobControlBlocked {
    fn drop(&mut self) {
        if let Some(before) = self.before {
            let _ = before.set_mask();
        }
    }
}

/// The registry, locked for the duration of one acquire or release.
pub(crate) struct Locked {
    dir: OwnedFd,
    _lock: Flock<File>,
    /// Wakes a waiter once the lock is let go (fields drop in order).
    _ring: RingOnDrop,
    /// Dropped after the lock (fields drop in order): no stop lands while it is held, neither
    /// from its user in a setuid install ([`privilege::Shielded`]) nor from the terminal.
    _shield: privilege::Shielded,
    _job_control: JobControlBlocked,
    /// Another user's directory replaced on the way.
    taken: Option<Taken>,
    /// The holder files this change knows of: named by the registry as loaded or last stored, or
    /// made by this change. [`Locked::store`] removes those the new registry no longer names.
    known: RefCell<Vec<String>>,
    /// Whether a registry file is there, as this change last saw it (exchanged, not renamed).
    on_disk: std::cell::Cell<bool>,
}

impl Locked {
    /// Takes the registry lock, creating the directory when there is none. While another lllqos
    /// has it, tries again with pauses (1 ms, doubling to [`MAX_PAUSE`], cut short when the lock
    /// is let go: [`Doorbell`]), calls `on_wait` once with what
    /// it waits for after a second, and gives up with [`CpuErrorKind::Stalled`] when the
    /// registry has not changed for [`STALL_LIMIT`]. When `interruptible`, it also gives up with
    /// [`CpuErrorKind::Interrupted`] as soon as an ending signal is pending (placing a constraint
    /// can be given up at once; a release gives up only when stalled, and leaves its record to
    /// the next change, which finds it dead once this process has exited).
    pub(crate) fn lock(interruptible: bool, on_wait: &mut dyn FnMut(&str)) -> Result<Locked> {
        Locked::lock_in(true, interruptible, on_wait)?.ok_or_else(|| {
            CpuError::new(
                CpuErrorKind::Io,
                format!("{REGISTRY_DIR} vanished while it was being made"),
            )
        })
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
        let job_control = JobControlBlocked::new();
        let mut wait = Wait::new();
        let mut taken = None;
        // An older lllqos removed the directory when nothing was held: the lock got may then be
        // on a file no longer in use. Opened again until the locked file is the one at the path.
        loop {
            let Some((dir, replaced)) = elevated(|| open_dir(create, true))? else {
                return Ok(None);
            };
            taken = taken.or(replaced);
            let flags = OFlag::O_RDWR | OFlag::O_CREAT;
            let mut file =
                match elevated(|| open_in(&dir, LOCK_FILE, flags, Mode::S_IRUSR | Mode::S_IWUSR)) {
                    Ok(fd) => File::from(fd),
                    // The directory was removed after it was opened.
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                    Err(e) => return Err(open_error("open", LOCK_FILE, &e)),
                };
            let doorbell = Doorbell::map(&file);
            let (lock, shield) = loop {
                let seen = doorbell.as_ref().map(Doorbell::seen);
                // Out of reach before the lock is tried: a stop sent before lands now, unlocked.
                let shield = privilege::shield();
                match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                    Ok(lock) => break (lock, shield),
                    Err((again, Errno::EWOULDBLOCK)) => {
                        drop(shield);
                        file = again;
                        wait.check(&dir, &file, interruptible, on_wait)?;
                        match (&doorbell, seen) {
                            (Some(doorbell), Some(seen)) => doorbell.wait(seen, wait.pause),
                            _ => std::thread::sleep(wait.pause),
                        }
                        wait.pause = (wait.pause * 2).min(MAX_PAUSE);
                    }
                    Err((_, e)) => {
                        return Err(failed(format!("cannot lock {REGISTRY_DIR}/{LOCK_FILE}"), e));
                    }
                }
            };
            let same = |a: FileStat, b: nix::Result<FileStat>| {
                b.is_ok_and(|b| (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino))
            };
            if same(
                stat(&dir, REGISTRY_DIR)?,
                elevated(|| fstatat(AT_FDCWD, REGISTRY_DIR, AtFlags::AT_SYMLINK_NOFOLLOW)),
            ) && same(
                stat(&*lock, LOCK_FILE)?,
                elevated(|| fstatat(&dir, LOCK_FILE, AtFlags::AT_SYMLINK_NOFOLLOW)),
            ) {
                // Who holds it, for the others' messages (the flock lock is the one that counts).
                let _ = super::lock_for_process(&*lock);
                return Ok(Some(Locked {
                    dir,
                    _lock: lock,
                    _ring: RingOnDrop(doorbell),
                    _shield: shield,
                    _job_control: job_control,
                    taken,
                    known: RefCell::new(Vec::new()),
                    on_disk: std::cell::Cell::new(true),
                }));
            }
        }
    }

    /// The other user's directory this lock replaced, if it did.
    pub(crate) fn taken(&self) -> Option<Taken> {
        self.taken
    }

    /// The registry, empty when there is none.
    pub(crate) fn load(&self) -> Result<Registry> {
        let registry = elevated(|| read_registry(&self.dir))?;
        self.on_disk.set(registry.is_some());
        let registry = registry.unwrap_or_else(Registry::empty);
        (self.known.borrow_mut()).extend(registry.holders.iter().filter_map(|h| h.lock.clone()));
        Ok(registry)
    }

    /// What tells which holders run, for this change.
    pub(crate) fn liveness(&self) -> super::Liveness<'_> {
        super::Liveness::new(&self.dir)
    }

    /// Creates and locks a new holder file for this process.
    pub(crate) fn new_holder_file(&self) -> Result<HolderFile> {
        let pid = std::process::id();
        loop {
            let name = format!("{HOLDER_PREFIX}{pid}.{:016x}{POSIX_MARK}", random());
            let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL;
            let fd = match elevated(|| {
                open_in(&self.dir, &name, flags, Mode::S_IRUSR | Mode::S_IWUSR)
            }) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => return Err(open_error("create", &name, &e)),
            };
            let cannot_lock = |e| failed(format!("cannot lock {REGISTRY_DIR}/{name}"), e);
            super::lock_for_process(&fd).map_err(cannot_lock)?;
            let lock = Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock)
                .map_err(|(_, e)| cannot_lock(e))?;
            super::set_held_here(&name, true);
            self.known.borrow_mut().push(name.clone());
            return Ok(HolderFile { name, _lock: lock });
        }
    }

    /// Makes `registry` the one on disk, atomically: written and renamed over the old one, or,
    /// when nothing is held, the old one removed. Either the new registry is on disk and this
    /// returns `Ok`, or the old one still is, with no temporary file left. Then the holder files
    /// it no longer names are removed ([`Locked::tidy`]); a failure there leaves one for a later
    /// change.
    ///
    /// Not synced to the disk: the registry describes the kernel's state, which a crash of the
    /// machine resets (and `/run` is a tmpfs), and a rename is atomic for every process whether
    /// synced or not. Compact JSON: a thousand holders are about 100 KiB.
    pub(crate) fn store(&self, registry: &Registry) -> Result<()> {
        if registry.is_empty() {
            self.unlink(REGISTRY_FILE)?;
            self.on_disk.set(false);
        } else {
            self.replace(registry).inspect_err(|_| {
                let _ = self.unlink(REGISTRY_TEMP);
            })?;
            self.on_disk.set(true);
        }
        let _ = self.tidy(registry);
        Ok(())
    }

    /// Writes `registry` into the temporary file and exchanges it with the registry file
    /// (`RENAME_EXCHANGE`): the old registry becomes the next change's temporary file. So a change
    /// allocates and frees no inode, and the temporary file is overwritten in place and cut to
    /// length, never truncated to nothing: ext4 (a `/run` that is not a tmpfs) writes a file
    /// renamed over another, or truncated to nothing and written again, to the disk at once.
    fn replace(&self, registry: &Registry) -> Result<()> {
        let text = serde_json::to_vec(registry).map_err(|e| {
            CpuError::new(CpuErrorKind::Io, format!("cannot encode the registry: {e}"))
        })?;
        let temp = format!("{REGISTRY_DIR}/{REGISTRY_TEMP}");
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT;
        let file = File::from(
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
        (file.write_all_at(&text, 0))
            .and_then(|()| file.set_len(text.len() as u64))
            .map_err(|e| {
                CpuError::io(
                    Place::Registry,
                    format!("cannot write {temp}"),
                    &e,
                    CpuErrorKind::Io,
                )
            })?;
        let rename = |exchange| elevated(|| rename_in(&self.dir, exchange));
        let exchanged = match self.on_disk.get() {
            true => rename(true),
            false => Err(Errno::ENOENT),
        };
        match exchanged {
            // No registry file (yet), or a file system that cannot exchange: renamed over it.
            Err(Errno::ENOENT | Errno::EINVAL) => rename(false),
            done => done,
        }
        .map_err(|e| failed(format!("cannot replace {REGISTRY_DIR}/{REGISTRY_FILE}"), e))
    }

    /// Removes the holder files `registry` (the one on disk) no longer names, of those this
    /// change knows of: released, dead and pruned, or made by an acquire that failed. When
    /// nothing is held, sweeps ([`Locked::sweep`]). Writes nothing, so it works on a full file
    /// system. The directory and its lock stay: they are root's, made once (see [`open_dir`]).
    pub(crate) fn tidy(&self, registry: &Registry) -> Result<()> {
        if registry.is_empty() {
            return self.sweep(registry);
        }
        let names = registry.lock_names();
        let mut known = self.known.borrow_mut();
        let mut failed = Ok(());
        known.retain(|name| {
            if names.contains(name.as_str()) || failed.is_err() {
                return true;
            }
            failed = self.unlink(name);
            failed.is_err()
        });
        failed
    }

    /// Removes every holder file `registry` does not name (what a process killed between making
    /// its holder file and recording it left, which no change knows of), and the temporary file.
    /// Lists the directory: for `lllqos recover`, and when nothing is held (few files).
    pub(crate) fn sweep(&self, registry: &Registry) -> Result<()> {
        // Created and recorded under this lock only: none of them is about to be used.
        let names = registry.lock_names();
        for name in self.entries() {
            let unused = name.starts_with(HOLDER_PREFIX) && !names.contains(name.as_str());
            if unused || name == REGISTRY_TEMP {
                self.unlink(&name)?;
            }
        }
        self.known
            .replace(names.into_iter().map(str::to_owned).collect());
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
        let listed = elevated(|| {
            let mut dir = nix::dir::Dir::openat(
                &self.dir,
                ".",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            Ok::<_, Errno>(
                dir.iter()
                    .filter_map(|entry| Some(entry.ok()?.file_name().to_str().ok()?.to_owned()))
                    .collect::<Vec<String>>(),
            )
        });
        listed.unwrap_or_default()
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
        if Path::new(REGISTRY_DIR).join(REGISTRY_FILE).exists() {
            let why = format!("{REGISTRY_DIR} is in use");
            assert!(
                std::env::var_os("LLLQOS_TEST_REQUIRE").is_none_or(|v| v != "1"),
                "a_callback_runs_without_the_privilege: {why} (LLLQOS_TEST_REQUIRE=1)"
            );
            eprintln!("SKIPPED: a_callback_runs_without_the_privilege: {why}");
            return;
        }
        // The directory stays once made (a package makes it at boot): made here only if missing,
        // and then removed after.
        let made = !Path::new(REGISTRY_DIR).exists();
        if made {
            std::fs::create_dir(REGISTRY_DIR).unwrap();
            std::fs::set_permissions(
                REGISTRY_DIR,
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            )
            .unwrap();
        }
        use std::os::unix::fs::OpenOptionsExt;
        let busy = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(format!("{REGISTRY_DIR}/{LOCK_FILE}"))
            .unwrap();
        let busy = Flock::lock(busy, FlockArg::LockExclusive).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            drop(busy);
        });
        let status = as_setuid_program("percpu::registry::store::tests::child_waits_for_the_lock");
        release.join().unwrap();
        if made {
            let _ = std::fs::remove_dir_all(REGISTRY_DIR);
        }
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
        // Holding the lock, the thread is shielded (root's real and effective ids, so that its
        // user cannot stop it there); the user's ids are back once it is unlocked.
        assert_eq!(nix::unistd::getuid().as_raw(), 0);
        drop(locked);
        assert_eq!(nix::unistd::geteuid().as_raw(), 65534);
        assert_eq!(nix::unistd::getuid().as_raw(), 65534);
    }
}
