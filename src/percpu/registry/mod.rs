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
//! One exception: a lock lives as long as any copy of its descriptor, and the `lllqos` command's
//! witness of group-wide signals is a clone that holds copies of its descriptors for the moment
//! between its creation and its first instructions, which close them. A holder killed by SIGKILL
//! in that moment kept its lock until its witness ran: long enough, once in a thousand random
//! kills, for the last remaining holder to see it alive and leave its value in force. So a locked
//! file also asks `/proc/locks` who took the lock: a taker that is gone holds nothing (where the
//! taker cannot be seen, another PID namespace's, the lock alone decides).
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

mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use super::error::CpuError;
use super::sysfs::ResumeLatency;
use crate::internal::file::{self, Kind};
use crate::internal::procfs;
use store::{lock_owner, open_dir, read_registry};

pub(crate) use store::{HolderFile, Locked};

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
            Err((file, Errno::EWOULDBLOCK)) => lock_owner_runs(&file),
            Err(_) => true,
        }
    }
}

/// Whether the process that took the lock on `file` still runs, as far as this process can tell.
///
/// A lock outlives its taker while another process holds a copy of its descriptor: the witness of
/// group-wide signals is a clone of its lllqos, which shares its descriptors from the clone until
/// its first instructions close them. An lllqos killed in that moment would look alive to the
/// others until its witness ran (a dead holder's value kept, a holder file left). `/proc/locks`
/// names the process that took the lock, in this PID namespace (0 when it cannot: another
/// namespace's, whose pid is gone): a taker that is gone, or a zombie, holds nothing.
fn lock_owner_runs(file: &File) -> bool {
    match lock_owner(file) {
        Some(pid) if pid > 0 => {
            procfs::stat(pid).is_some_and(|stat| !matches!(stat.state, 'Z' | 'X'))
        }
        // Cannot tell: alive, so that nothing is taken from a holder that runs.
        _ => true,
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
