//! Per-CPU resume-latency constraints, restored on every exit path and shared safely between
//! overlapping holders.
//!
//! The global request keeps *every* CPU out of deep idle states. A machine with isolated real-time
//! CPUs wants the constraint only where the latency-critical thread runs, so that the others still
//! save power. The kernel offers that in `/sys/devices/system/cpu/cpuN/power/pm_qos_resume_latency_us`;
//! the limit a CPU obeys is the smaller of that value and the global one.
//!
//! Three properties of these files make them hard to use well, and this module exists for them:
//!
//! 1. **The text is inverted.** `0` means *no constraint*, `n/a` means *zero tolerance* (poll
//!    only). A request for 0 us must be written `n/a`; writing `0` silently asks for nothing.
//!    [`ResumeLatency`] is the only place that translates.
//! 2. **The value is persistent.** Nothing releases it when the writer dies, so whoever sets it must
//!    restore it on every exit path. [`CpuConstraint`] restores on drop; the binary blocks signals
//!    before it writes (its `run` module) so that no signal interrupts it between write and
//!    restore; a holder killed by SIGKILL is noticed and dropped by the next lllqos that touches
//!    the registry.
//! 3. **Anyone may write it**, including other lllqos instances on overlapping CPUs, and other
//!    tools. lllqos keeps a registry (below) so that on each CPU the value in force is always the
//!    strictest live request, and the value found before the first holder comes back only when the
//!    last one leaves. A value that is not what lllqos last wrote was set by another tool: lllqos
//!    warns and leaves it (do no harm); while holders remain it is kept as the value to restore.
//!
//! # The registry
//!
//! `/run/lllqos/registry.json` (tmpfs: gone at reboot, as are the values it describes), guarded by
//! `flock` on `/run/lllqos/lock`. It records, per CPU, the value found before the first holder
//! (`original`) and the value lllqos last wrote (`written`); and per holder, its pid, its process
//! start time (so that a reused pid is not mistaken for a live holder), its CPUs and latency. The
//! directory is created mode 0700 and must be owned by root (or the effective user) and writable
//! by nobody else; every file is opened relative to it with `O_NOFOLLOW`, and the registry is
//! replaced by `rename`, so a reader never sees half a file. When nothing is held, the directory is
//! removed. A registry that cannot be parsed is an error that names the file; it is never
//! overwritten, since it holds the originals.
//!
//! Ordering makes a crash at any point recoverable: on acquire the registry is written *before*
//! the CPUs (the original is on disk before it is changed), on release the CPUs are restored
//! *before* the registry forgets them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, Flock, FlockArg, OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};
use nix::unistd::UnlinkatFlags;
use serde::{Deserialize, Serialize};

use crate::cpulist::{CpuList, resume_latency_path};
use crate::latency::Latency;

/// The registry's directory.
pub const REGISTRY_DIR: &str = "/run/lllqos";
const REGISTRY_FILE: &str = "registry.json";
const REGISTRY_TEMP: &str = "registry.json.tmp";
const LOCK_FILE: &str = "lock";
/// Larger than any real registry; a bigger file is not ours.
const REGISTRY_MAX_BYTES: u64 = 1 << 20;
/// The largest CPU number a registry may name (as `--cpu` accepts).
const MAX_REGISTRY_CPU: u32 = 65_535;

/// What a CPU's `pm_qos_resume_latency_us` file says, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeLatency {
    /// `0` in the file: the CPU may enter any idle state.
    Unconstrained,
    /// A limit in microseconds; `n/a` in the file when it is 0 (zero tolerance).
    Limit(Latency),
}

impl ResumeLatency {
    /// The largest limit the file accepts (2147483647 is the kernel's "no constraint", EINVAL).
    pub const MAX_LIMIT_US: u32 = i32::MAX as u32 - 1;

    /// Decodes the file's text (`0`, `n/a` or a decimal number, with or without a newline).
    pub fn parse(text: &str) -> Option<ResumeLatency> {
        match text.trim_end_matches('\n') {
            "0" => Some(ResumeLatency::Unconstrained),
            "n/a" => Some(ResumeLatency::Limit(Latency::ZERO)),
            digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                let us: u32 = digits.parse().ok().filter(|&us| us <= Self::MAX_LIMIT_US)?;
                Latency::from_micros(us).map(ResumeLatency::Limit)
            }
            _ => None,
        }
    }

    /// The text to write for this value: the inverse of [`ResumeLatency::parse`].
    pub fn sysfs_text(self) -> String {
        match self {
            ResumeLatency::Unconstrained => "0".to_owned(),
            ResumeLatency::Limit(l) if l == Latency::ZERO => "n/a".to_owned(),
            ResumeLatency::Limit(l) => l.as_micros().to_string(),
        }
    }

    /// The limit in microseconds, `None` without constraint.
    pub fn limit_us(self) -> Option<u32> {
        match self {
            ResumeLatency::Unconstrained => None,
            ResumeLatency::Limit(l) => Some(l.as_micros()),
        }
    }
}

/// Reads CPU `cpu`'s resume-latency file, trimmed.
pub fn read_cpu(cpu: u32) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(resume_latency_path(cpu))?
        .trim_end()
        .to_owned())
}

/// Why a per-CPU constraint could not be checked, placed or released. The message names the file
/// or CPU and the cause; [`CpuError::kind`] tells the cases apart.
#[derive(Debug)]
pub struct CpuError {
    kind: CpuErrorKind,
    message: String,
}

/// What kind of failure a [`CpuError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CpuErrorKind {
    /// A CPU named does not exist on this machine (nothing was changed).
    NoSuchCpu,
    /// A limit the per-CPU file cannot take (nothing was changed).
    OutOfRange,
    /// This process may not write a CPU's file or keep the registry (not root).
    Permission,
    /// `/sys` is mounted read-only (as in most containers).
    ReadOnlySysfs,
    /// The registry is corrupt or not safe to trust; the message names the file, which is never
    /// overwritten.
    Registry,
    /// Any other failure of the system (a /proc or sysfs file that cannot be read, a full /run).
    Io,
}

impl CpuError {
    fn new(kind: CpuErrorKind, message: impl Into<String>) -> CpuError {
        CpuError {
            kind,
            message: message.into(),
        }
    }

    /// `what: reason`, the kind from the errno.
    fn os(what: impl fmt::Display, errno: Errno) -> CpuError {
        let kind = match errno {
            Errno::EACCES | Errno::EPERM => CpuErrorKind::Permission,
            Errno::EROFS => CpuErrorKind::ReadOnlySysfs,
            _ => CpuErrorKind::Io,
        };
        let message = match kind {
            CpuErrorKind::ReadOnlySysfs => format!("{what}: {} ({READ_ONLY_SYSFS})", errno.desc()),
            _ => format!("{what}: {}", errno.desc()),
        };
        CpuError::new(kind, message)
    }

    fn io(what: impl fmt::Display, error: &std::io::Error) -> CpuError {
        match error.raw_os_error() {
            Some(code) => CpuError::os(what, Errno::from_raw(code)),
            None => CpuError::new(
                CpuErrorKind::Io,
                format!("{what}: {}", crate::lease::os_message(error)),
            ),
        }
    }

    /// The same error, its message prefixed with `what: `.
    fn context(self, what: impl fmt::Display) -> CpuError {
        CpuError {
            kind: self.kind,
            message: format!("{what}: {}", self.message),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> CpuErrorKind {
        self.kind
    }
}

impl fmt::Display for CpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The cause is part of the message; it is not also reported as `source()`.
impl std::error::Error for CpuError {}

type Result<T, E = CpuError> = std::result::Result<T, E>;

/// Why `--cpu` fails where /sys is mounted read-only: containers, unless privileged.
const READ_ONLY_SYSFS: &str =
    "/sys is mounted read-only, as in most containers: --cpu needs a writable /sys";

fn write_cpu(cpu: u32, text: &str) -> Result<()> {
    let path = resume_latency_path(cpu);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| CpuError::io(format!("cannot open {}", path.display()), &e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| CpuError::io(format!("cannot write '{text}' to {}", path.display()), &e))
}

/// Something lllqos noticed while placing or releasing a constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Another tool changed a CPU's value since lllqos wrote it.
    Changed {
        /// The CPU.
        cpu: u32,
        /// The file's text as lllqos wrote it.
        wrote: String,
        /// The file's text as lllqos found it.
        found: String,
        /// True when lllqos left the value as it found it (no holder remains); false when holders
        /// remain and the found value becomes the one to restore at the end.
        left: bool,
    },
    /// A holder that died without releasing (SIGKILL) was dropped from the registry.
    Stale {
        /// The holder's process id.
        pid: i32,
    },
    /// The registry had lost this holder's record; its CPUs were restored from memory.
    Lost,
}

impl Notice {
    /// Whether the user should see it without `--verbose`.
    pub fn is_warning(&self) -> bool {
        !matches!(self, Notice::Stale { .. })
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Changed {
                cpu,
                wrote,
                found,
                left: true,
            } => write!(
                f,
                "cpu{cpu}: resume latency was changed by another tool (lllqos wrote {wrote}, found {found}): left as it is"
            ),
            Notice::Changed {
                cpu,
                wrote,
                found,
                left: false,
            } => write!(
                f,
                "cpu{cpu}: resume latency was changed by another tool (lllqos wrote {wrote}, found {found}): {found} will be restored when the last holder leaves"
            ),
            Notice::Stale { pid } => {
                write!(
                    f,
                    "dropped holder pid {pid} from the registry: it exited without releasing"
                )
            }
            Notice::Lost => write!(
                f,
                "the registry had lost this holder's record; restored from memory"
            ),
        }
    }
}

/// The registry's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// The format's version (1).
    pub version: u32,
    /// The CPUs lllqos has changed, by number.
    pub cpus: BTreeMap<u32, CpuEntry>,
    /// The processes holding constraints (a process may have one record per distinct limit).
    pub holders: Vec<Holder>,
}

/// One CPU lllqos has changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuEntry {
    /// The file's text before the first holder (or as another tool last set it).
    pub original: String,
    /// The file's text as lllqos last wrote it.
    pub written: String,
}

/// One lllqos process holding constraints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    /// The holder's process id.
    pub pid: i32,
    /// Field 22 of /proc/PID/stat: with the pid, identifies the process for its whole life.
    pub start_time: u64,
    /// The CPUs it constrains.
    pub cpus: Vec<u32>,
    /// Its limit on them, in microseconds.
    pub latency_us: u32,
}

impl Holder {
    /// Whether the process that registered is still running (not a later process with its pid).
    pub fn is_alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }
}

/// A process's start time in clock ticks since boot (field 22 of /proc/PID/stat).
pub fn start_time(pid: i32) -> Option<u64> {
    parse_start_time(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Field 22 of a /proc/PID/stat line. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from the last ')'.
fn parse_start_time(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

impl Registry {
    const VERSION: u32 = 1;

    fn is_empty(&self) -> bool {
        self.cpus.is_empty() && self.holders.is_empty()
    }

    fn parse(text: &[u8]) -> std::result::Result<Registry, String> {
        let registry: Registry = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        if registry.version != Self::VERSION {
            return Err(format!("unknown version {}", registry.version));
        }
        for (cpu, entry) in &registry.cpus {
            for text in [&entry.original, &entry.written] {
                if ResumeLatency::parse(text).is_none() {
                    return Err(format!("cpu {cpu}: '{text}' is not a resume-latency value"));
                }
            }
        }
        // Every field of every holder is checked too: the values are used to plan sysfs writes.
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
        }
        if let Some(cpu) = registry.cpus.keys().find(|&&cpu| cpu > MAX_REGISTRY_CPU) {
            return Err(format!("CPU {cpu} is out of range"));
        }
        Ok(registry)
    }

    /// Reads the registry without locking or creating anything (for `lllqos status`). `None` when
    /// there is none, which means nothing is held.
    pub fn read() -> Result<Option<Registry>> {
        match open_dir(false)? {
            Some(dir) => read_registry(&dir),
            None => Ok(None),
        }
    }

    /// Drops holders that no longer run; returns the CPUs they held.
    fn prune(&mut self, notices: &mut Vec<Notice>) -> BTreeSet<u32> {
        let mut cpus = BTreeSet::new();
        self.holders.retain(|holder| {
            let alive = holder.is_alive();
            if !alive {
                notices.push(Notice::Stale { pid: holder.pid });
                cpus.extend(&holder.cpus);
            }
            alive
        });
        cpus
    }

    /// Brings the records of `cpus` in line with the live holders, reading each CPU's current
    /// value, and returns the writes that make the CPUs match.
    fn reconcile(
        &mut self,
        cpus: &BTreeSet<u32>,
        notices: &mut Vec<Notice>,
    ) -> Result<Vec<CpuWrite>> {
        let mut writes = Vec::new();
        for &cpu in cpus {
            let strictest = self
                .holders
                .iter()
                .filter(|h| h.cpus.contains(&cpu))
                .map(|h| h.latency_us)
                .min();
            let current = read_cpu(cpu).map_err(|e| {
                io_failed(
                    format!("cannot read {}", resume_latency_path(cpu).display()),
                    &e,
                )
            })?;
            let mut write = |to: String| {
                if to != current {
                    writes.push(CpuWrite {
                        cpu,
                        from: current.clone(),
                        to,
                    });
                }
            };
            match (self.cpus.get_mut(&cpu), strictest) {
                (None, None) => {}
                (None, Some(us)) => {
                    let text = limit_text(us);
                    self.cpus.insert(
                        cpu,
                        CpuEntry {
                            original: current.clone(),
                            written: text.clone(),
                        },
                    );
                    write(text);
                }
                (Some(entry), Some(us)) => {
                    if current != entry.written {
                        notices.push(Notice::Changed {
                            cpu,
                            wrote: entry.written.clone(),
                            found: current.clone(),
                            left: false,
                        });
                        entry.original = current.clone();
                    }
                    entry.written = limit_text(us);
                    write(entry.written.clone());
                }
                (Some(entry), None) => {
                    if current == entry.written {
                        write(entry.original.clone());
                    } else {
                        notices.push(Notice::Changed {
                            cpu,
                            wrote: entry.written.clone(),
                            found: current.clone(),
                            left: true,
                        });
                    }
                    self.cpus.remove(&cpu);
                }
            }
        }
        Ok(writes)
    }
}

/// The sysfs text for a limit of `us` microseconds. Total: a value beyond what the file accepts
/// (the parser refuses such holders, so it cannot come from the registry) is clamped to the largest.
fn limit_text(us: u32) -> String {
    let us = us.min(ResumeLatency::MAX_LIMIT_US);
    Latency::from_micros(us)
        .map_or(ResumeLatency::Unconstrained, ResumeLatency::Limit)
        .sysfs_text()
}

/// One planned change of a CPU's file.
#[derive(Debug)]
struct CpuWrite {
    cpu: u32,
    from: String,
    to: String,
}

/// Performs `writes`; if one fails, undoes those already done and returns the error.
fn apply(writes: &[CpuWrite]) -> Result<()> {
    for (done, write) in writes.iter().enumerate() {
        if let Err(error) = write_cpu(write.cpu, &write.to) {
            for undo in writes[..done].iter().rev() {
                let _ = write_cpu(undo.cpu, &undo.from);
            }
            return Err(error);
        }
    }
    Ok(())
}

/// `what: reason`, the reason as C tools print it.
fn failed(what: impl fmt::Display, errno: Errno) -> CpuError {
    CpuError::os(what, errno)
}

fn io_failed(what: impl fmt::Display, error: &std::io::Error) -> CpuError {
    CpuError::io(what, error)
}

/// For `fstat` of a descriptor lllqos holds, which fails only on a broken system.
fn stat(fd: impl std::os::fd::AsFd, what: &str) -> Result<FileStat> {
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
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let dir = match nix::fcntl::open(REGISTRY_DIR, flags, Mode::empty()) {
        Ok(dir) => dir,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => {
            let what =
                format!("cannot open {REGISTRY_DIR} (it must be a directory, not a symlink)");
            return Err(failed(what, e));
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

fn read_registry(dir: &OwnedFd) -> Result<Option<Registry>> {
    let path = format!("{REGISTRY_DIR}/{REGISTRY_FILE}");
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = match openat(dir, REGISTRY_FILE, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(failed(format!("cannot open {path}"), e)),
    };
    let stat = stat(&fd, &path)?;
    check_owner(&stat, &path)?;
    if SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
        return Err(CpuError::new(
            CpuErrorKind::Registry,
            format!("refusing to use {path}: not a regular file"),
        ));
    }
    let mut text = Vec::new();
    File::from(fd)
        .take(REGISTRY_MAX_BYTES)
        .read_to_end(&mut text)
        .map_err(|e| io_failed(format!("cannot read {path}"), &e))?;
    Registry::parse(&text).map(Some).map_err(|why| {
        CpuError::new(
            CpuErrorKind::Registry,
            format!(
                "corrupt registry {path} ({why}): it records the values to restore on each CPU; fix or remove it by hand"
            ),
        )
    })
}

/// The registry, locked for the duration of one acquire or release.
struct Locked {
    dir: OwnedFd,
    _lock: Flock<File>,
}

impl Locked {
    fn lock() -> Result<Locked> {
        // Another lllqos may remove the directory (when nothing is held any more) between our
        // opening and our locking; then the lock we got is on a file no longer in use. Retry until
        // the locked file is the one at the path.
        loop {
            let Some(dir) = open_dir(true)? else {
                continue;
            };
            let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let lock = match openat(&dir, LOCK_FILE, flags, Mode::S_IRUSR | Mode::S_IWUSR) {
                Ok(fd) => File::from(fd),
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(failed(format!("cannot open {REGISTRY_DIR}/{LOCK_FILE}"), e)),
            };
            let lock = Flock::lock(lock, FlockArg::LockExclusive)
                .map_err(|(_, e)| failed(format!("cannot lock {REGISTRY_DIR}/{LOCK_FILE}"), e))?;
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
                return Ok(Locked { dir, _lock: lock });
            }
        }
    }

    fn load(&self) -> Result<Registry> {
        Ok(read_registry(&self.dir)?.unwrap_or(Registry {
            version: Registry::VERSION,
            ..Registry::default()
        }))
    }

    /// Replaces the registry atomically, or removes it and the directory when nothing is held.
    fn store(&self, registry: &Registry) -> Result<()> {
        if registry.is_empty() {
            for name in [REGISTRY_FILE, REGISTRY_TEMP, LOCK_FILE] {
                match nix::unistd::unlinkat(&self.dir, name, UnlinkatFlags::NoRemoveDir) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(e) => {
                        return Err(failed(format!("cannot remove {REGISTRY_DIR}/{name}"), e));
                    }
                }
            }
            // Fails (harmlessly) if another lllqos has just created its lock file in it.
            let _ = nix::unistd::unlinkat(AT_FDCWD, REGISTRY_DIR, UnlinkatFlags::RemoveDir);
            return Ok(());
        }
        let text = serde_json::to_vec_pretty(registry).map_err(|e| {
            CpuError::new(CpuErrorKind::Io, format!("cannot encode the registry: {e}"))
        })?;
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_TRUNC
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC;
        let temp = format!("{REGISTRY_DIR}/{REGISTRY_TEMP}");
        let mut file = File::from(
            openat(
                &self.dir,
                REGISTRY_TEMP,
                flags,
                Mode::S_IRUSR | Mode::S_IWUSR,
            )
            .map_err(|e| failed(format!("cannot create {temp}"), e))?,
        );
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_failed(format!("cannot write {temp}"), &e))?;
        renameat(&self.dir, REGISTRY_TEMP, &self.dir, REGISTRY_FILE)
            .map_err(|e| failed(format!("cannot replace {REGISTRY_DIR}/{REGISTRY_FILE}"), e))?;
        Ok(())
    }
}

/// The limit to place on each CPU of a per-CPU constraint: the same for all (`--latency`), or each
/// CPU its own (`--max-state` resolves a state's exit latency per CPU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuLimits {
    cpus: CpuList,
    limits: BTreeMap<u32, Latency>,
}

impl CpuLimits {
    /// `latency` on every CPU of `cpus`.
    pub fn uniform(cpus: &CpuList, latency: Latency) -> CpuLimits {
        CpuLimits {
            cpus: cpus.clone(),
            limits: cpus.cpus().iter().map(|&cpu| (cpu, latency)).collect(),
        }
    }

    /// A limit per CPU (the last one given for a CPU counts); `None` if there is no CPU.
    pub fn new(limits: impl IntoIterator<Item = (u32, Latency)>) -> Option<CpuLimits> {
        let limits: BTreeMap<u32, Latency> = limits.into_iter().collect();
        Some(CpuLimits {
            cpus: CpuList::new(limits.keys().copied())?,
            limits,
        })
    }

    /// The CPUs constrained.
    pub fn cpus(&self) -> &CpuList {
        &self.cpus
    }

    /// The limit of each CPU, by CPU number.
    pub fn iter(&self) -> impl Iterator<Item = (u32, Latency)> + '_ {
        self.limits.iter().map(|(&cpu, &latency)| (cpu, latency))
    }

    /// The smallest limit of all CPUs.
    pub fn strictest(&self) -> Latency {
        self.limits.values().copied().min().unwrap_or(Latency::ZERO)
    }

    /// The CPUs of each distinct limit.
    fn groups(&self) -> BTreeMap<Latency, Vec<u32>> {
        let mut groups: BTreeMap<Latency, Vec<u32>> = BTreeMap::new();
        for (cpu, latency) in self.iter() {
            groups.entry(latency).or_default().push(cpu);
        }
        groups
    }
}

impl fmt::Display for CpuLimits {
    /// `0 us on CPUs 0-1`, or `1 us on CPU 0, 2 us on CPU 1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .groups()
            .into_iter()
            .filter_map(|(latency, cpus)| {
                let list = CpuList::new(cpus)?;
                let noun = if list.cpus().len() == 1 {
                    "CPU"
                } else {
                    "CPUs"
                };
                Some(format!("{latency} on {noun} {list}"))
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// Resume-latency constraints on some CPUs, in force while this value lives.
///
/// ```no_run
/// use lllqos::{CpuConstraint, CpuList, Latency};
///
/// let cpus: CpuList = "1".parse()?;
/// let constraint = CpuConstraint::acquire(&cpus, Latency::ZERO)?; // cpu1 now reads "n/a"
/// for notice in constraint.notices() {
///     eprintln!("{notice}");
/// }
/// // ... latency-critical work pinned to CPU 1 ...
/// constraint.release()?; // cpu1 reads what it read before (dropping does the same, silently)
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "the constraints are removed when this value is dropped"]
pub struct CpuConstraint {
    limits: CpuLimits,
    /// This process's records in the registry: one per distinct limit.
    me: Vec<Holder>,
    /// The registry's entries for our CPUs after acquiring: restored from here if the registry
    /// loses our record.
    saved: BTreeMap<u32, CpuEntry>,
    notices: Vec<Notice>,
    released: bool,
}

impl CpuConstraint {
    /// Checks that `cpus` exist and `latency` can be written per CPU, changing nothing.
    pub fn validate(cpus: &CpuList, latency: Latency) -> Result<()> {
        CpuConstraint::validate_each(&CpuLimits::uniform(cpus, latency))
    }

    /// Checks that the CPUs of `limits` exist and each limit can be written, changing nothing.
    pub fn validate_each(limits: &CpuLimits) -> Result<()> {
        limits
            .cpus()
            .check_exist()
            .map_err(|e| CpuError::new(CpuErrorKind::NoSuchCpu, e))?;
        let loosest = limits.iter().map(|(_, l)| l).max().unwrap_or(Latency::ZERO);
        if loosest.as_micros() > ResumeLatency::MAX_LIMIT_US {
            return Err(CpuError::new(
                CpuErrorKind::OutOfRange,
                format!(
                    "{loosest} cannot be set per CPU (at most {} us; 2147483647 is the kernel's \"no constraint\")",
                    ResumeLatency::MAX_LIMIT_US
                ),
            ));
        }
        Ok(())
    }

    /// Checks, without changing anything, that this process may place constraints on `cpus`: write
    /// their files and keep the registry (for a caller that has work to do before it places them).
    pub fn check_access(cpus: &CpuList) -> Result<()> {
        let writable = |path: &std::path::Path| {
            nix::unistd::faccessat(
                AT_FDCWD,
                path,
                nix::unistd::AccessFlags::W_OK,
                AtFlags::AT_EACCESS,
            )
            .map_err(|e| failed(format!("cannot write {}", path.display()), e))
        };
        for &cpu in cpus.cpus() {
            writable(&resume_latency_path(cpu))?;
        }
        let registry = std::path::Path::new(REGISTRY_DIR);
        writable(if registry.exists() {
            registry
        } else {
            std::path::Path::new("/run")
        })
    }

    /// Places `latency` on `cpus` ([`CpuConstraint::validate`]d first: an error changes nothing).
    pub fn acquire(cpus: &CpuList, latency: Latency) -> Result<CpuConstraint> {
        CpuConstraint::acquire_each(&CpuLimits::uniform(cpus, latency))
    }

    /// Places each CPU's own limit, in one change of the registry
    /// ([`CpuConstraint::validate_each`]d first: an error changes nothing).
    pub fn acquire_each(limits: &CpuLimits) -> Result<CpuConstraint> {
        CpuConstraint::validate_each(limits)?;
        let pid = std::process::id() as i32;
        let start_time = start_time(pid).ok_or_else(|| {
            CpuError::new(
                CpuErrorKind::Io,
                "cannot read this process's start time from /proc",
            )
        })?;
        let me: Vec<Holder> = limits
            .groups()
            .into_iter()
            .map(|(latency, cpus)| Holder {
                pid,
                start_time,
                cpus,
                latency_us: latency.as_micros(),
            })
            .collect();
        let registry = Locked::lock()?;
        let before = registry.load()?;
        let mut state = before.clone();
        let mut notices = Vec::new();
        let mut affected = state.prune(&mut notices);
        affected.extend(limits.cpus().cpus());
        state.holders.extend(me.iter().cloned());
        let writes = state.reconcile(&affected, &mut notices)?;
        registry.store(&state)?;
        if let Err(error) = apply(&writes) {
            registry.store(&before)?;
            return Err(error);
        }
        let saved = limits
            .cpus()
            .cpus()
            .iter()
            .filter_map(|c| Some((*c, state.cpus.get(c)?.clone())))
            .collect();
        Ok(CpuConstraint {
            limits: limits.clone(),
            me,
            saved,
            notices,
            released: false,
        })
    }

    /// What [`CpuConstraint::acquire`] noticed (values changed by other tools, stale holders).
    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    /// The CPUs constrained.
    pub fn cpus(&self) -> &CpuList {
        self.limits.cpus()
    }

    /// The limit of each CPU.
    pub fn limits(&self) -> &CpuLimits {
        &self.limits
    }

    /// The strictest limit requested (the only one, unless CPUs were given limits of their own).
    pub fn latency(&self) -> Latency {
        self.limits.strictest()
    }

    /// Removes this holder's constraints: each CPU gets the strictest remaining request, or its
    /// original value when no holder remains (unless another tool changed it meanwhile).
    pub fn release(mut self) -> Result<Vec<Notice>> {
        self.released = true;
        self.release_now()
    }

    fn release_now(&self) -> Result<Vec<Notice>> {
        let registry = Locked::lock()?;
        let mut state = registry.load().map_err(|error| {
            let held: Vec<String> = self
                .saved
                .iter()
                .map(|(cpu, e)| format!("cpu{cpu} was '{}' before lllqos", e.original))
                .collect();
            error.context(format!(
                "cannot restore CPU resume latency ({}); left as it is",
                held.join(", ")
            ))
        })?;
        let mut notices = Vec::new();
        let mut affected = state.prune(&mut notices);
        // Each of our records once: another constraint of this process may hold an equal one.
        let mut lost = false;
        for record in &self.me {
            match state.holders.iter().position(|h| h == record) {
                Some(at) => {
                    state.holders.remove(at);
                }
                None => lost = true,
            }
        }
        if lost {
            notices.push(Notice::Lost);
            for (cpu, entry) in &self.saved {
                state.cpus.entry(*cpu).or_insert_with(|| entry.clone());
            }
        }
        affected.extend(self.limits.cpus().cpus());
        let writes = state.reconcile(&affected, &mut notices)?;
        apply(&writes)?;
        registry.store(&state)?;
        Ok(notices)
    }
}

impl Drop for CpuConstraint {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.release_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_written_as_na_and_no_constraint_as_0() {
        assert_eq!(ResumeLatency::Limit(Latency::ZERO).sysfs_text(), "n/a");
        assert_eq!(ResumeLatency::Unconstrained.sysfs_text(), "0");
        assert_eq!(
            ResumeLatency::Limit(Latency::from_micros(20).unwrap()).sysfs_text(),
            "20"
        );
    }

    #[test]
    fn file_text_decodes_inverted() {
        assert_eq!(
            ResumeLatency::parse("0\n"),
            Some(ResumeLatency::Unconstrained)
        );
        assert_eq!(
            ResumeLatency::parse("n/a\n"),
            Some(ResumeLatency::Limit(Latency::ZERO))
        );
        assert_eq!(
            ResumeLatency::parse("777").and_then(ResumeLatency::limit_us),
            Some(777)
        );
        for bad in ["", "-1", "2147483647", "0x10", "abc", "n/a x"] {
            assert_eq!(ResumeLatency::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn registry_parse_rejects_garbage_without_panicking() {
        for bad in [&b""[..], b"{", b"[]", b"{\"version\":2,\"cpus\":{},\"holders\":[]}", b"{\"version\":1,\"cpus\":{\"1\":{\"original\":\"x\",\"written\":\"0\"}},\"holders\":[]}"] {
            assert!(Registry::parse(bad).is_err());
        }
        let good = b"{\"version\":1,\"cpus\":{\"1\":{\"original\":\"0\",\"written\":\"n/a\"}},\"holders\":[{\"pid\":5,\"start_time\":9,\"cpus\":[1],\"latency_us\":0}]}";
        assert_eq!(Registry::parse(good).unwrap().holders[0].pid, 5);
    }

    #[test]
    fn start_time_survives_odd_command_names() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some());
        assert_eq!(start_time(-1), None);
        let fields = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 4242 19 20";
        assert_eq!(
            parse_start_time(&format!("7 (a) b (c)) {fields}")),
            Some(4242)
        );
        assert_eq!(parse_start_time("7 (a"), None);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic_on_any_text(text in ".*", bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = ResumeLatency::parse(&text);
            let _ = parse_start_time(&text);
            let _ = Registry::parse(&bytes);
            let _ = Registry::parse(text.as_bytes());
        }

        #[test]
        fn sysfs_text_round_trips(us in 0u32..=ResumeLatency::MAX_LIMIT_US) {
            let value = ResumeLatency::Limit(Latency::from_micros(us).unwrap());
            proptest::prop_assert_eq!(ResumeLatency::parse(&value.sysfs_text()), Some(value));
            proptest::prop_assert_ne!(value.sysfs_text(), "0");
        }

        #[test]
        fn registry_text_round_trips(original in "(0|n/a|[1-9][0-9]{0,8})", pid in 1i32.., start in 0u64..) {
            let mut registry = Registry { version: Registry::VERSION, ..Registry::default() };
            registry.cpus.insert(3, CpuEntry { original: original.clone(), written: "n/a".into() });
            registry.holders.push(Holder { pid, start_time: start, cpus: vec![3], latency_us: 0 });
            let text = serde_json::to_vec(&registry).unwrap();
            proptest::prop_assert_eq!(Registry::parse(&text), Ok(registry));
        }
    }
}
