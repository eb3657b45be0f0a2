//! The registry: what lllqos changed on each CPU and who holds it, kept where every lllqos (and
//! `lllqos status`) finds it, and safe against a crash at any point, another user, and files
//! replaced by something that is not a file.
//!
//! `/run/lllqos/registry.json` (tmpfs: gone at reboot, as are the values it describes), guarded by
//! `flock` on `/run/lllqos/lock`. Per CPU it records the value to restore (`original`: found before
//! the first holder, or set by another tool since), the value lllqos last wrote (`written`), and,
//! only while a change is under way, the value lllqos is about to write (`intent`). Per holder it
//! records the pid (for people), its CPUs and latency, and the name of its *holder file*.
//!
//! # Who is alive
//!
//! Each holder keeps an exclusive `flock` on its own file, `/run/lllqos/holder.PID.RANDOM`, for as
//! long as it holds. The kernel drops the lock when the process dies, however it dies, so a holder
//! is alive exactly when its file is locked. Unlike a pid, this holds across PID namespaces (a
//! holder in a container sharing /run, or under systemd's `PrivatePIDs=`, has a pid that means
//! another process, or nothing, to everyone else) and across pid reuse. Records without a holder
//! file (written by lllqos 0.1 before an upgrade) fall back to pid and start time.
//!
//! # Storage
//!
//! The directory is created mode 0700 and must be owned by root (or the effective user) and
//! writable by nobody else; every file is opened relative to it as [`crate::internal::file`] opens files
//! (never blocking, never following a link, of the expected type, bounded in size). The registry is
//! replaced by writing a temporary file, `fsync`, and `rename`, so a reader sees the old or the new
//! registry, never half of one. When nothing is held the directory is removed. A registry that
//! cannot be trusted is an error that names the file; it is never overwritten, since it holds the
//! originals.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, Flock, FlockArg, OFlag, renameat};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat};
use nix::unistd::UnlinkatFlags;
use serde::{Deserialize, Serialize};

use super::error::{CpuError, CpuErrorKind, Place};
use super::sysfs::ResumeLatency;
use crate::internal::file::{self, Kind};
use crate::internal::procfs;
use crate::internal::sigset::{self, SignalSet};

/// The registry's directory.
macro_rules! registry_dir {
    () => {
        "/run/lllqos"
    };
}
pub(crate) const REGISTRY_DIR: &str = registry_dir!();
const REGISTRY_FILE: &str = "registry.json";
/// The registry file's path, for people.
pub(crate) const REGISTRY_FILE_PATH: &str = concat!(registry_dir!(), "/registry.json");
const REGISTRY_TEMP: &str = "registry.json.tmp";
const LOCK_FILE: &str = "lock";
/// Holder files are named `holder.PID.RANDOM`.
const HOLDER_PREFIX: &str = "holder.";
/// Larger than any real registry; a bigger file is not ours, and is not read.
const REGISTRY_MAX_BYTES: u64 = 1 << 20;
/// The largest CPU number a registry may name (as `--cpu` accepts).
const MAX_REGISTRY_CPU: u32 = 65_535;
/// How long a holder waits for the registry lock before it says what it waits for.
const PATIENCE: Duration = Duration::from_secs(1);
/// The longest pause between two tries of the lock (the shortest is 1 ms, doubling).
const MAX_PAUSE: Duration = Duration::from_millis(50);

type Result<T, E = CpuError> = std::result::Result<T, E>;

/// The registry's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Registry {
    /// The format's version (1).
    pub(crate) version: u32,
    /// The CPUs lllqos has changed, by number.
    pub(crate) cpus: BTreeMap<u32, CpuEntry>,
    /// The constraints held (a process has one record per distinct limit of each constraint).
    pub(crate) holders: Vec<Holder>,
}

/// One CPU lllqos has changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CpuEntry {
    /// The value to restore when the last holder leaves: the file's value before the first holder,
    /// or the value another tool set since. lllqos never places a looser one while holders remain.
    pub(crate) original: ResumeLatency,
    /// The file's value as lllqos last wrote it.
    pub(crate) written: ResumeLatency,
    /// While a change is under way: the value lllqos is about to write. Found by a later lllqos,
    /// it tells a change that was cut short (the CPU reads `written` or `intent`) from a value
    /// another tool set (anything else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) intent: Option<ResumeLatency>,
}

/// One constraint held by an lllqos process (one record per distinct limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Holder {
    /// The holder's process id, in its own PID namespace (for people; liveness is the holder file).
    pub(crate) pid: i32,
    /// Field 22 of /proc/PID/stat: with the pid, identifies the process (records without `lock`).
    pub(crate) start_time: u64,
    /// The holder file's name in the registry directory, locked by the holder while it lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lock: Option<String>,
    /// The CPUs it constrains.
    pub(crate) cpus: Vec<u32>,
    /// Its limit on them, in microseconds.
    pub(crate) latency_us: u32,
}

impl Holder {
    /// Whether the holder is still running: its holder file is locked (or, for a record without
    /// one, a process with its pid and start time runs).
    pub(crate) fn is_alive(&self) -> bool {
        match open_dir(false) {
            Ok(Some(dir)) => self.alive_in(&dir),
            // No directory: nobody can hold anything.
            Ok(None) => false,
            // Cannot tell: alive, so that nothing is taken from a holder that runs.
            Err(_) => true,
        }
    }

    /// The holder's process id as this process sees it: the owner of the lock on its holder file,
    /// from `/proc/locks`, which the kernel translates into the reader's PID namespace. `None`
    /// when the holder does not run, runs in a PID namespace this process cannot see into, or has
    /// no holder file (records of lllqos 0.1).
    pub(crate) fn pid_here(&self) -> Option<i32> {
        let dir = open_dir(false).ok()??;
        let fd = file::open(
            Some(&dir),
            Path::new(self.lock.as_deref()?),
            OFlag::O_RDONLY,
            Mode::empty(),
            Kind::Regular,
        )
        .ok()?;
        lock_owner(&fd).filter(|&pid| pid > 0)
    }

    fn alive_in(&self, dir: &OwnedFd) -> bool {
        let Some(name) = &self.lock else {
            return procfs::start_time(self.pid) == Some(self.start_time);
        };
        let fd = match file::open(
            Some(dir),
            Path::new(name),
            OFlag::O_RDONLY,
            Mode::empty(),
            Kind::Regular,
        ) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return false,
            Err(_) => return true,
        };
        match Flock::lock(File::from(fd), FlockArg::LockSharedNonblock) {
            Ok(_) => false,
            Err((_, Errno::EWOULDBLOCK)) => true,
            Err(_) => true,
        }
    }
}

/// A holder file name: `holder.` and at most 64 letters, digits and dots, a letter or digit first
/// (no `/`, no `..`).
fn valid_lock_name(name: &str) -> bool {
    name.strip_prefix(HOLDER_PREFIX).is_some_and(|rest| {
        rest.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && rest.len() <= 64
            && !rest.contains("..")
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
    })
}

impl Registry {
    const VERSION: u32 = 1;

    /// An empty registry.
    pub(crate) fn empty() -> Registry {
        Registry {
            version: Registry::VERSION,
            ..Registry::default()
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.cpus.is_empty() && self.holders.is_empty()
    }

    /// Parses and validates every field: the values plan sysfs writes and name files.
    fn parse(text: &[u8]) -> std::result::Result<Registry, String> {
        let registry: Registry = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        if registry.version != Self::VERSION {
            return Err(format!("unknown version {}", registry.version));
        }
        if let Some(cpu) = registry.cpus.keys().find(|&&cpu| cpu > MAX_REGISTRY_CPU) {
            return Err(format!("CPU {cpu} is out of range"));
        }
        for holder in &registry.holders {
            if holder.pid <= 0 {
                return Err(format!("holder pid {} is not a process id", holder.pid));
            }
            if holder.cpus.is_empty() {
                return Err(format!("holder pid {} holds no CPU", holder.pid));
            }
            if let Some(cpu) = holder.cpus.iter().find(|&&cpu| cpu > MAX_REGISTRY_CPU) {
                return Err(format!(
                    "holder pid {}: CPU {cpu} is out of range",
                    holder.pid
                ));
            }
            if holder.latency_us > ResumeLatency::MAX_LIMIT_US {
                return Err(format!(
                    "holder pid {}: latency {} us is out of range (at most {} us per CPU)",
                    holder.pid,
                    holder.latency_us,
                    ResumeLatency::MAX_LIMIT_US
                ));
            }
            if let Some(lock) = &holder.lock
                && !valid_lock_name(lock)
            {
                return Err(format!(
                    "holder pid {}: '{lock}' is not a holder file name",
                    holder.pid
                ));
            }
        }
        Ok(registry)
    }

    /// Reads the registry without locking or creating anything (for `lllqos status`). `None` when
    /// there is none, which means nothing is held.
    pub(crate) fn read() -> Result<Option<Registry>> {
        match open_dir(false)? {
            Some(dir) => read_registry(&dir),
            None => Ok(None),
        }
    }

    /// The holder file names the registry refers to.
    fn lock_names(&self) -> BTreeSet<&str> {
        self.holders
            .iter()
            .filter_map(|h| h.lock.as_deref())
            .collect()
    }
}

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
fn open_dir(create: bool) -> Result<Option<OwnedFd>> {
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
            let what =
                format!("cannot open {REGISTRY_DIR} (it must be a directory, not a symlink)");
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

fn read_registry(dir: &OwnedFd) -> Result<Option<Registry>> {
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
fn lock_owner(fd: impl AsFd) -> Option<i32> {
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
            let Some(dir) = open_dir(create)? else {
                if create {
                    continue;
                }
                return Ok(None);
            };
            let flags = OFlag::O_RDWR | OFlag::O_CREAT;
            let file = match open_in(&dir, LOCK_FILE, flags, Mode::S_IRUSR | Mode::S_IWUSR) {
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
                fstatat(&dir, LOCK_FILE, AtFlags::AT_SYMLINK_NOFOLLOW),
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
        Ok(read_registry(&self.dir)?.unwrap_or_else(Registry::empty))
    }

    /// Whether `holder` still runs.
    pub(crate) fn is_alive(&self, holder: &Holder) -> bool {
        holder.alive_in(&self.dir)
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
            let fd = match open_in(&self.dir, &name, flags, Mode::S_IRUSR | Mode::S_IWUSR) {
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
            open_in(
                &self.dir,
                REGISTRY_TEMP,
                flags,
                Mode::S_IRUSR | Mode::S_IWUSR,
            )
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
        renameat(&self.dir, REGISTRY_TEMP, &self.dir, REGISTRY_FILE)
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
            let _ = nix::unistd::unlinkat(AT_FDCWD, REGISTRY_DIR, UnlinkatFlags::RemoveDir);
        }
        Ok(())
    }

    /// Removes this process's holder file: a record that names it is dead from now on, and is
    /// dropped by the next change of the registry (for a change that failed half-way).
    pub(crate) fn remove_holder_file(&self, holder: &HolderFile) -> Result<()> {
        self.unlink(&holder.name)
    }

    fn unlink(&self, name: &str) -> Result<()> {
        match nix::unistd::unlinkat(&self.dir, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(failed(format!("cannot remove {REGISTRY_DIR}/{name}"), e)),
        }
    }

    /// The names in the registry directory.
    fn entries(&self) -> Vec<String> {
        std::fs::read_dir(REGISTRY_DIR)
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_parse_rejects_garbage_without_panicking() {
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            b"{\"version\":2,\"cpus\":{},\"holders\":[]}",
            b"{\"version\":1,\"cpus\":{\"1\":{\"original\":\"x\",\"written\":\"0\"}},\"holders\":[]}",
            b"{\"version\":1,\"cpus\":{},\"holders\":[{\"pid\":5,\"start_time\":9,\"lock\":\"../x\",\"cpus\":[1],\"latency_us\":0}]}",
            b"{\"version\":1,\"cpus\":{},\"holders\":[{\"pid\":5,\"start_time\":9,\"lock\":\"holder.a/b\",\"cpus\":[1],\"latency_us\":0}]}",
        ] {
            assert!(Registry::parse(bad).is_err());
        }
        let good = b"{\"version\":1,\"cpus\":{\"1\":{\"original\":\"0\",\"written\":\"n/a\"}},\"holders\":[{\"pid\":5,\"start_time\":9,\"cpus\":[1],\"latency_us\":0}]}";
        let registry = Registry::parse(good).unwrap();
        assert_eq!(registry.holders[0].pid, 5);
        assert_eq!(registry.holders[0].lock, None);
        assert_eq!(
            registry.cpus[&1].written,
            ResumeLatency::Limit(crate::Latency::ZERO)
        );
    }

    #[test]
    fn holder_file_names_are_plain() {
        assert!(valid_lock_name("holder.42.00ff00ff00ff00ff"));
        for bad in [
            "holder.",
            "holder..",
            "holder./x",
            "lock",
            "holder.a b",
            "holder.../x",
        ] {
            assert!(!valid_lock_name(bad), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic_on_any_text(text in ".*", bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = Registry::parse(&bytes);
            let _ = Registry::parse(text.as_bytes());
        }

        #[test]
        fn registry_text_round_trips(us in 0u32..=ResumeLatency::MAX_LIMIT_US, pid in 1i32.., start in 0u64.., lock in "[a-z0-9]{1,20}") {
            let mut registry = Registry::empty();
            let value = ResumeLatency::Limit(crate::Latency::micros(us));
            registry.cpus.insert(3, CpuEntry { original: value, written: ResumeLatency::Unconstrained, intent: Some(value) });
            registry.holders.push(Holder { pid, start_time: start, lock: Some(format!("holder.{lock}")), cpus: vec![3], latency_us: us });
            let text = serde_json::to_vec(&registry).unwrap();
            proptest::prop_assert_eq!(Registry::parse(&text), Ok(registry));
        }
    }
}
