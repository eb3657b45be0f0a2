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
//! Each holder keeps a lock on its own file, `/run/lllqos/holder.PID.RANDOM.posix`, for as long
//! as it holds: an `fcntl` (POSIX) write lock, which belongs to the process itself. The kernel
//! drops it when the process exits, however it exits, and nothing else keeps it: not a copy of
//! the descriptor in another process (the `lllqos` command's witness of group-wide signals is a
//! clone that holds copies of its descriptors for a moment; a forked child), which would keep a
//! `flock` lock, nor the process's PID namespace (a holder in a container sharing /run, or under
//! systemd's `PrivatePIDs=`, has a pid that means another process, or nothing, to everyone
//! else), nor pid reuse. `F_GETLK` on the file tells, in one system call, whether its holder
//! runs and its pid as the asker sees it (0 from another PID namespace): no reading of the
//! kernel's global lock table (`/proc/locks`, which stalls every file lock on the machine while
//! it is read), no look at `/proc/PID`.
//!
//! A process drops its own fcntl locks on a file when it closes any descriptor of that file, so
//! lllqos never opens the holder files of its own process (it knows them: [`held_here`]). The
//! holder also takes a `flock` lock on its file, which is what lllqos 0.1 looks at, so that a
//! release by an lllqos of before the upgrade still sees the new holders; files without the
//! `.posix` mark (made by lllqos 0.1) are asked with `flock`. Records without a holder file
//! (older still) fall back to pid and start time.
//!
//! A change does not ask every holder: it asks, strictest first, the holders of each CPU it sets
//! until one runs (the others are looser: they do not change the CPU's value), and a few others
//! at random, so that a holder that died on a CPU nobody changes is found after a few changes;
//! when there are few holders, it asks them all (see `super::change`).
//!
//! # Storage
//!
//! The directory is root's, mode 0700, in every install mode (the package makes it at boot, with
//! `tmpfiles.d`; root's lllqos makes it when it is missing), and writable by nobody else, so that
//! no user can plant the values lllqos restores nor keep another user from using it. It stays
//! when nothing is held, with its lock file. Every file is opened relative to it as
//! [`crate::internal::file`] opens files (never blocking, never following a link, of the expected
//! type, bounded in size). The registry is replaced by writing a temporary file and renaming it,
//! so a reader sees the old or the new registry, never half of one. A registry that cannot be
//! trusted is an error that names the file; it is never overwritten, since it holds the
//! originals.

mod doorbell;
mod store;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Mutex;

use nix::fcntl::{FcntlArg, Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use super::error::CpuError;
use super::sysfs::ResumeLatency;
use crate::internal::file::{self, Kind};
use crate::internal::procfs;
use store::{open_dir, read_registry};

pub(crate) use store::{HolderFile, Locked, random};

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
/// Holder files are named `holder.PID.RANDOM.posix` (`holder.PID.RANDOM` by lllqos 0.1).
const HOLDER_PREFIX: &str = "holder.";
/// What ends the name of a holder file whose holder keeps an fcntl lock on it.
const POSIX_MARK: &str = ".posix";
/// Larger than any real registry; a bigger file is not ours, and is not read.
const REGISTRY_MAX_BYTES: u64 = 1 << 20;
/// The largest CPU number a registry may name (as `--cpu` accepts).
const MAX_REGISTRY_CPU: u32 = 65_535;

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

/// The holder files this process holds: never opened by it, since closing a descriptor of one
/// would drop the process's fcntl lock on it (see "Who is alive").
static HELD_HERE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Adds or removes `name` from [`HELD_HERE`].
fn set_held_here(name: &str, held: bool) {
    let mut names = HELD_HERE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if held {
        names.insert(name.to_owned());
    } else {
        names.remove(name);
    }
}

/// Whether this process holds the holder file `name`.
fn held_here(name: &str) -> bool {
    (HELD_HERE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
    .contains(name)
}

/// The whole file, for `F_SETLK` and `F_GETLK`.
fn whole_file(kind: libc::c_int) -> libc::flock {
    // SAFETY: flock is plain data, valid zeroed; the fields set make it "the whole file".
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock
}

/// Takes this process's fcntl write lock on the whole file open (for writing) on `fd`, without
/// waiting.
fn lock_for_process(fd: impl AsFd) -> nix::Result<()> {
    nix::fcntl::fcntl(fd, FcntlArg::F_SETLK(&whole_file(libc::F_WRLCK))).map(drop)
}

/// The process that holds an fcntl lock on the file open on `fd`: `None` when none does; else its
/// pid as this process sees it, 0 when it is in a PID namespace this one cannot see into.
fn process_locking(fd: impl AsFd) -> nix::Result<Option<i32>> {
    let mut lock = whole_file(libc::F_WRLCK);
    nix::fcntl::fcntl(fd, FcntlArg::F_GETLK(&mut lock))?;
    Ok((lock.l_type != libc::F_UNLCK as libc::c_short).then_some(lock.l_pid))
}

/// What a holder's file says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Life {
    /// It runs: with its pid as this process sees it, when that can be told.
    Runs(Option<i32>),
    /// It does not run (its file is gone, or unlocked).
    Gone,
}

/// Whether holders run, asked of their holder files in the registry's directory (see "Who is
/// alive"). One holder costs an open, a lock query and a close.
pub(crate) struct Liveness<'a> {
    dir: &'a OwnedFd,
}

impl<'a> Liveness<'a> {
    pub(crate) fn new(dir: &'a OwnedFd) -> Liveness<'a> {
        Liveness { dir }
    }

    /// Whether `holder` runs. A holder this cannot tell of runs: nothing is taken from a holder
    /// that may run.
    pub(crate) fn of(&self, holder: &Holder) -> Life {
        let Some(name) = &holder.lock else {
            return if procfs::start_time(holder.pid) == Some(holder.start_time) {
                Life::Runs(Some(holder.pid))
            } else {
                Life::Gone
            };
        };
        if held_here(name) {
            return Life::Runs(Some(std::process::id() as i32));
        }
        let fd = match file::open(
            Some(self.dir),
            Path::new(name),
            OFlag::O_RDONLY,
            Mode::empty(),
            Kind::Regular,
        ) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Life::Gone,
            Err(_) => return Life::Runs(None),
        };
        if name.ends_with(POSIX_MARK) {
            return match process_locking(&fd) {
                Ok(None) => Life::Gone,
                Ok(Some(pid)) => Life::Runs(Some(pid).filter(|&pid| pid > 0)),
                Err(_) => Life::Runs(None),
            };
        }
        // lllqos 0.1's holder: its flock lock (its pid is the record's, in its own namespace).
        match Flock::lock(File::from(fd), FlockArg::LockSharedNonblock) {
            Ok(_) => Life::Gone,
            Err(_) => Life::Runs(None),
        }
    }

    /// The pid of the process that holds the fcntl lock on the file open on `fd`, as this process
    /// sees it (for a message).
    pub(crate) fn locker(fd: impl AsFd) -> Option<i32> {
        process_locking(fd).ok().flatten().filter(|&pid| pid > 0)
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

    /// Reads the registry without locking or creating anything (for `lllqos status`), with its
    /// directory. `None` when there is none, which means nothing is held.
    pub(crate) fn read() -> Result<Option<(OwnedFd, Registry)>> {
        let Some((dir, _)) = open_dir(false, false)? else {
            return Ok(None);
        };
        Ok(read_registry(&dir)?.map(|registry| (dir, registry)))
    }

    /// The holder file names the registry refers to.
    pub(crate) fn lock_names(&self) -> HashSet<&str> {
        self.holders
            .iter()
            .filter_map(|h| h.lock.as_deref())
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
        assert!(valid_lock_name("holder.42.00ff00ff00ff00ff.posix"));
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
