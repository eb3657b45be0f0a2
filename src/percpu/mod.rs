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
//!    before it writes so that no signal interrupts it between write and restore; a holder killed
//!    by SIGKILL, even half-way through a change, is noticed by the next lllqos that touches the
//!    registry, which finishes or undoes what it left.
//! 3. **Anyone may write it**, including other lllqos instances on overlapping CPUs, and other
//!    tools. lllqos keeps a registry so that on each CPU the value in force is always the strictest
//!    of the live requests and of the value found before the first holder, which comes back only
//!    when the last holder leaves. A value that is not what lllqos last wrote was set by another
//!    tool: lllqos warns and never loosens it; when no holder remains it is left as it is.
//!
//! The parts, each in its own module: `sysfs` (the file and its text), `registry` (what was changed
//! and who holds it, stored safely, with holder liveness that works across PID namespaces), `plan`
//! (the algorithm, a pure function with property tests over arrivals, departures, SIGKILL at every
//! step and other tools' writes), and here the I/O that runs a planned change in its three steps.

mod error;
mod plan;
mod registry;
mod sysfs;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use nix::fcntl::{AT_FDCWD, AtFlags};

pub use error::{CpuError, CpuErrorKind, Left};
pub use sysfs::ResumeLatency;

use registry::{CpuEntry, Holder, REGISTRY_DIR, Registry};
use sysfs::resume_latency_path;

use crate::cpulist::CpuList;
use crate::latency::Latency;
use error::Place;
use plan::{Change, Values};
use registry::{HolderFile, Locked};

type Result<T, E = CpuError> = std::result::Result<T, E>;

/// Something lllqos noticed while placing or releasing a constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Another tool changed a CPU's value since lllqos wrote it.
    Changed {
        /// The CPU.
        cpu: u32,
        /// The value lllqos wrote.
        wrote: ResumeLatency,
        /// The value lllqos found.
        found: ResumeLatency,
        /// True when lllqos left the value as it found it (no holder remains); false when holders
        /// remain and the found value becomes the one to restore at the end.
        left: bool,
    },
    /// A holder that died without releasing (SIGKILL) was dropped from the registry.
    Stale {
        /// The holder's process id (in its own PID namespace).
        pid: i32,
    },
    /// A CPU no live holder needs any more was set back (after a holder that died, or a change
    /// cut short).
    Restored {
        /// The CPU.
        cpu: u32,
        /// The value it had.
        from: ResumeLatency,
        /// The value it has now.
        to: ResumeLatency,
    },
    /// The registry had lost this holder's record; its CPUs were restored from memory.
    Lost,
}

impl Notice {
    /// Whether the user should see it without `--verbose`.
    pub fn is_warning(&self) -> bool {
        !matches!(self, Notice::Stale { .. } | Notice::Restored { .. })
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
            Notice::Restored { cpu, from, to } => write!(
                f,
                "cpu{cpu}: resume latency set back to {}, from {}",
                to.describe(),
                from.describe()
            ),
            Notice::Lost => write!(
                f,
                "the registry had lost this holder's record; restored from memory"
            ),
        }
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
                Some(format!("{latency} on {}", CpuList::new(cpus)?.describe()))
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
    /// This constraint's records in the registry: one per distinct limit.
    me: Vec<Holder>,
    /// The registry's entries for our CPUs after acquiring: restored from here if the registry
    /// loses our record.
    saved: BTreeMap<u32, CpuEntry>,
    notices: Vec<Notice>,
    released: bool,
    /// Locked for as long as the constraint holds: what tells other lllqos processes it is alive.
    _holder: HolderFile,
}

impl CpuConstraint {
    /// Checks that every CPU of `cpus` exists on this machine (has a resume-latency file);
    /// [`CpuErrorKind::NoSuchCpu`] names the first that does not, and the CPUs there are.
    pub fn check_cpus(cpus: &CpuList) -> Result<()> {
        match (cpus.cpus().iter()).find(|&&cpu| !resume_latency_path(cpu).exists()) {
            Some(&cpu) => Err(no_such_cpu(cpu)),
            None => Ok(()),
        }
    }

    /// Checks that the CPUs of `limits` exist and each limit can be written, changing nothing.
    pub fn validate_each(limits: &CpuLimits) -> Result<()> {
        CpuConstraint::check_cpus(limits.cpus())?;
        check_range(limits)
    }

    /// Checks, without changing anything, that this process may place constraints on `cpus`: write
    /// their files and keep the registry (for a caller that has work to do before it places them).
    pub fn check_access(cpus: &CpuList) -> Result<()> {
        let writable = |path: &std::path::Path, place: Place| {
            nix::unistd::faccessat(
                AT_FDCWD,
                path,
                nix::unistd::AccessFlags::W_OK,
                AtFlags::AT_EACCESS,
            )
            .map_err(|e| CpuError::os(place, format!("cannot write {}", path.display()), e))
        };
        for &cpu in cpus.cpus() {
            writable(&resume_latency_path(cpu), Place::Sysfs)?;
        }
        let registry = std::path::Path::new(REGISTRY_DIR);
        let place = if registry.exists() {
            registry
        } else {
            std::path::Path::new("/run")
        };
        writable(place, Place::Registry)
    }

    /// Places `latency` on `cpus`. An error changes nothing: a limit out of range is refused
    /// first, and a CPU that does not exist when its value is read, before any is written.
    pub fn acquire(cpus: &CpuList, latency: Latency) -> Result<CpuConstraint> {
        CpuConstraint::acquire_each(&CpuLimits::uniform(cpus, latency))
    }

    /// Places each CPU's own limit, in one change of the registry (an error changes nothing, as
    /// with [`CpuConstraint::acquire`]).
    pub fn acquire_each(limits: &CpuLimits) -> Result<CpuConstraint> {
        CpuConstraint::acquire_each_with(limits, &mut |_| {})
    }

    /// [`CpuConstraint::acquire_each`], calling `on_wait` once, with a message such as `waiting for
    /// /run/lllqos/lock held by pid 42`, if another lllqos keeps the registry busy for a second.
    ///
    /// While it waits, an ending signal (SIGHUP, SIGINT, SIGQUIT, SIGTERM) that this thread blocks
    /// makes it give up with [`CpuErrorKind::Interrupted`], changing nothing.
    pub fn acquire_each_with(
        limits: &CpuLimits,
        on_wait: &mut dyn FnMut(&str),
    ) -> Result<CpuConstraint> {
        check_range(limits)?;
        let pid = std::process::id() as i32;
        let start_time = crate::internal::procfs::start_time(pid).ok_or_else(|| {
            CpuError::new(
                CpuErrorKind::Io,
                "cannot read this process's start time from /proc",
            )
        })?;
        let locked = Locked::lock(true, on_wait)?;
        let before = locked.load()?;
        // From here on, a failure puts everything back as it was before it reports itself: the
        // CPUs, the registry on disk, and no file of this process left in /run/lllqos.
        let holder = locked
            .new_holder_file()
            .map_err(|e| abandon(&locked, e, &before))?;
        let me: Vec<Holder> = limits
            .groups()
            .into_iter()
            .map(|(latency, cpus)| Holder {
                pid,
                start_time,
                lock: Some(holder.name().to_owned()),
                cpus,
                latency_us: latency.as_micros(),
            })
            .collect();
        let ours: BTreeSet<u32> = limits.cpus().cpus().iter().copied().collect();
        let change = prepare(&locked, before.clone(), &ours, |registry| {
            registry.holders.extend(me.iter().cloned());
            BTreeSet::new()
        })
        .map_err(|e| abandon(&locked, e, &before))?;
        locked
            .store(&change.staged)
            .map_err(|e| abandon(&locked, e, &before))?;
        if let Err((applied, error)) = write_and_store(&locked, &change) {
            return Err(undo(
                &locked,
                error,
                &change,
                applied,
                &before,
                Some(&holder),
            ));
        }
        let saved = limits
            .cpus()
            .cpus()
            .iter()
            .filter_map(|c| Some((*c, change.done.cpus.get(c)?.clone())))
            .collect();
        Ok(CpuConstraint {
            limits: limits.clone(),
            me,
            saved,
            notices: change.notices,
            released: false,
            _holder: holder,
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

    /// Changes the limit of every CPU of this constraint to `latency`, in one change of the
    /// registry: each CPU gets the strictest of the live requests with this one's new limit (a
    /// looser limit than before loosens a CPU only if no other holder needs it stricter). A
    /// change that fails is undone and this constraint keeps its limits; where the undo falls
    /// short, the error names what stays changed ([`CpuError::left_changed`]).
    pub fn set(&mut self, latency: Latency) -> Result<Vec<Notice>> {
        let limits = CpuLimits::uniform(self.limits.cpus(), latency);
        check_range(&limits)?;
        let locked = Locked::lock(false, &mut |_| {})?;
        let before = locked.load()?;
        let (pid, start_time, lock) = match self.me.first() {
            Some(me) => (me.pid, me.start_time, me.lock.clone()),
            None => {
                return Err(CpuError::new(
                    CpuErrorKind::Io,
                    "this constraint has no record",
                ));
            }
        };
        let records: Vec<Holder> = limits
            .groups()
            .into_iter()
            .map(|(latency, cpus)| Holder {
                pid,
                start_time,
                lock: lock.clone(),
                cpus,
                latency_us: latency.as_micros(),
            })
            .collect();
        let ours: BTreeSet<u32> = limits.cpus().cpus().iter().copied().collect();
        let change = prepare(&locked, before.clone(), &ours, |registry| {
            for record in &self.me {
                if let Some(at) = registry.holders.iter().position(|h| h == record) {
                    registry.holders.remove(at);
                }
            }
            registry.holders.extend(records.iter().cloned());
            BTreeSet::new()
        })?;
        locked.store(&change.staged)?;
        if let Err((applied, error)) = write_and_store(&locked, &change) {
            return Err(undo(&locked, error, &change, applied, &before, None));
        }
        self.saved = (limits.cpus().cpus().iter())
            .filter_map(|c| Some((*c, change.done.cpus.get(c)?.clone())))
            .collect();
        self.me = records;
        self.limits = limits;
        Ok(change.notices)
    }

    /// Removes this holder's constraints: each CPU gets the strictest remaining request (never
    /// looser than the value to restore), or the value to restore when no holder remains (unless
    /// another tool changed it meanwhile).
    pub fn release(self) -> Result<Vec<Notice>> {
        self.release_with(&mut |_| {})
    }

    /// [`CpuConstraint::release`], calling `on_wait` as [`CpuConstraint::acquire_each_with`] does.
    /// A release is not interrupted by signals: it waits until the registry is free.
    pub fn release_with(mut self, on_wait: &mut dyn FnMut(&str)) -> Result<Vec<Notice>> {
        self.released = true;
        self.release_now(on_wait)
    }

    fn release_now(&self, on_wait: &mut dyn FnMut(&str)) -> Result<Vec<Notice>> {
        self.try_release(on_wait).map_err(|error| {
            // Whatever failed, each of our CPUs that does not read what it read before lllqos is
            // named, with that value: the caller must know what stays changed.
            let left = self.saved.iter().filter_map(|(&cpu, entry)| {
                let value = sysfs::read_value(cpu).ok()?;
                (value != entry.original).then_some(Left {
                    cpu,
                    value,
                    before: entry.original,
                })
            });
            error
                .context("cannot restore CPU resume latency")
                .leaving(left.collect::<Vec<_>>())
        })
    }

    fn try_release(&self, on_wait: &mut dyn FnMut(&str)) -> Result<Vec<Notice>> {
        let locked = Locked::lock(false, on_wait)?;
        let loaded = locked.load()?;
        let ours: BTreeSet<u32> = self.limits.cpus().cpus().iter().copied().collect();
        let mut lost = false;
        let change = prepare(&locked, loaded, &ours, |registry| {
            // Each of our records once: another constraint of this process may hold an equal one.
            for record in &self.me {
                match registry.holders.iter().position(|h| h == record) {
                    Some(at) => {
                        registry.holders.remove(at);
                    }
                    None => lost = true,
                }
            }
            if lost {
                for (cpu, entry) in &self.saved {
                    registry.cpus.entry(*cpu).or_insert_with(|| entry.clone());
                }
            }
            BTreeSet::new()
        })?;
        // A failure from here on leaves the registry with this holder's record, and the intent of
        // what was being written: once this process has exited, the next change of the registry
        // finds the record dead and finishes the release.
        locked.store(&change.staged)?;
        write_all(&change).map_err(|(_, error)| error)?;
        locked.store(&change.done)?;
        let mut notices = change.notices;
        if lost {
            notices.insert(0, Notice::Lost);
        }
        Ok(notices)
    }
}

/// What the registry records, read without locking or creating anything: the holders of per-CPU
/// constraints, alive or not, and each CPU lllqos has changed with the value it will restore. The
/// file's own format is lllqos's and may change; this is its meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Registered {
    /// Each holder's constraint, one per distinct limit.
    pub holders: Vec<RegisteredHolder>,
    /// Each CPU lllqos has changed.
    pub cpus: Vec<RegisteredCpu>,
}

/// A holder's constraint, as [`registered`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegisteredHolder {
    /// The holder's process id as this process sees it: from the lock it keeps (so a holder in
    /// another PID namespace has its pid here), or, when it does not run, the pid it recorded.
    pub pid: i32,
    /// The CPUs it constrains.
    pub cpus: CpuList,
    /// Its limit on them.
    pub latency: Latency,
    /// Whether it still runs (false: it was killed, and the next change of the registry, or
    /// [`recover`], restores its CPUs).
    pub live: bool,
}

/// A CPU lllqos has changed, as [`registered`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegisteredCpu {
    /// The CPU.
    pub cpu: u32,
    /// The value to restore when the last holder leaves: found before the first holder, or set by
    /// another tool since.
    pub original: ResumeLatency,
    /// The value lllqos last wrote.
    pub written: ResumeLatency,
    /// While a change is under way (or was, when its holder was killed during it): the value
    /// lllqos is about to write.
    pub intent: Option<ResumeLatency>,
}

/// The registry's records ([`Registered`]); `None` when there is no registry (nothing is held).
pub fn registered() -> Result<Option<Registered>> {
    let Some(registry) = Registry::read()? else {
        return Ok(None);
    };
    let holders = (registry.holders.iter())
        .filter_map(|h| {
            Some(RegisteredHolder {
                pid: h.pid_here().unwrap_or(h.pid),
                cpus: CpuList::new(h.cpus.iter().copied())?,
                latency: Latency::from_micros(h.latency_us)?,
                live: h.is_alive(),
            })
        })
        .collect();
    let cpus = (registry.cpus.iter())
        .map(|(&cpu, entry)| RegisteredCpu {
            cpu,
            original: entry.original,
            written: entry.written,
            intent: entry.intent,
        })
        .collect();
    Ok(Some(Registered { holders, cpus }))
}

impl Registered {
    /// Where the registry is kept, to tell people where to look (its format is lllqos's own and
    /// not an interface: [`registered`] is).
    pub fn location() -> &'static std::path::Path {
        std::path::Path::new(registry::REGISTRY_FILE_PATH)
    }
}

/// Restores what holders that died without releasing (SIGKILL, a whole systemd unit killed) left,
/// and finishes changes cut short: takes the registry's lock, drops the dead holders, and sets
/// every CPU back to what the live holders need (its value from before lllqos when none does).
/// Returns what it did; nothing (and nothing created) when there is no registry. This is what the
/// next lllqos on these CPUs would do anyway; `lllqos recover` runs it when no other comes.
pub fn recover() -> Result<Vec<Notice>> {
    recover_with(&mut |_| {})
}

/// [`recover`], calling `on_wait` as [`CpuConstraint::acquire_each_with`] does.
pub fn recover_with(on_wait: &mut dyn FnMut(&str)) -> Result<Vec<Notice>> {
    let Some(locked) = Locked::lock_existing(on_wait)? else {
        return Ok(Vec::new());
    };
    let loaded = locked.load()?;
    let mut every: BTreeSet<u32> = loaded.cpus.keys().copied().collect();
    for holder in &loaded.holders {
        every.extend(&holder.cpus);
    }
    let change = prepare(&locked, loaded.clone(), &BTreeSet::new(), |_| every)?;
    if change.writes.is_empty() && change.done == loaded {
        // Nothing to change: only the files nobody needs (an empty directory's lock) go.
        let _ = locked.tidy(&loaded);
        return Ok(change.notices);
    }
    locked.store(&change.staged)?;
    write_all(&change).map_err(|(_, error)| error)?;
    locked.store(&change.done)?;
    Ok(change.notices)
}

/// An acquire that failed before it wrote anything: the registry on disk is `before`; this
/// process's holder file (and, when nothing else is held, the whole directory) goes. Returns
/// `error`, with a note of what could not be removed.
fn abandon(locked: &Locked, error: CpuError, before: &Registry) -> CpuError {
    match locked.tidy(before) {
        Ok(()) => error,
        Err(e) => error.note(format!("and {e}")),
    }
}

/// A change that failed after its intent was stored (the registry on disk is `change.staged`) and
/// its first `applied` writes were made: they are written back, last first, and the registry
/// stored as it was (`before`). Returns `error`, with what could not be undone. `holder`: the
/// holder file of an acquire, removed where the undo falls short, so that its record is dead and
/// the next change of these CPUs restores them (a holder that goes on holding keeps its file).
fn undo(
    locked: &Locked,
    error: CpuError,
    change: &Change,
    applied: usize,
    before: &Registry,
    holder: Option<&HolderFile>,
) -> CpuError {
    let mut left = Vec::new();
    for write in change.writes[..applied].iter().rev() {
        if sysfs::write_value(write.cpu, write.from).is_err() {
            left.push(Left {
                cpu: write.cpu,
                value: sysfs::read_value(write.cpu).unwrap_or(write.to),
                before: write.from,
            });
        }
    }
    if !left.is_empty() {
        // The registry on disk keeps the intent of each write, and this process's record, dead
        // once its file is gone: the next change of these CPUs restores them.
        if let Some(holder) = holder {
            let _ = locked.remove_holder_file(holder);
        }
        return error.leaving(left);
    }
    match locked.store(before) {
        Ok(()) => error,
        Err(e) => {
            // Every CPU is as it was; the registry still names this attempt, whose record is
            // dead once its file is gone: the next change of the registry drops it.
            if let Some(holder) = holder {
                let _ = locked.remove_holder_file(holder);
            }
            error.note(format!(
                "the CPUs were set back, but the registry could not be ({e}): the next lllqos drops this attempt's record"
            ))
        }
    }
}

/// [`CpuErrorKind::NoSuchCpu`] for `cpu`, naming the CPUs there are.
fn no_such_cpu(cpu: u32) -> CpuError {
    let message = match CpuList::present() {
        Some(present) => format!(
            "CPU {cpu} does not exist (this machine has {})",
            present.describe()
        ),
        None => format!("CPU {cpu} does not exist"),
    };
    CpuError::new(CpuErrorKind::NoSuchCpu, message)
}

/// Checks that each limit of `limits` can be written to a CPU's file.
fn check_range(limits: &CpuLimits) -> Result<()> {
    let loosest = limits.iter().map(|(_, l)| l).max().unwrap_or(Latency::ZERO);
    if ResumeLatency::limit(loosest).is_some() {
        return Ok(());
    }
    Err(CpuError::new(
        CpuErrorKind::OutOfRange,
        format!(
            "{loosest} cannot be set per CPU (at most {} us; 2147483647 is the kernel's \"no constraint\")",
            ResumeLatency::MAX_LIMIT_US
        ),
    ))
}

/// The first half of every change: recovers what an interrupted change left, drops dead holders,
/// lets `edit` add or remove this process's records, reads the CPUs concerned, and plans.
fn prepare(
    locked: &Locked,
    mut registry: Registry,
    ours: &BTreeSet<u32>,
    edit: impl FnOnce(&mut Registry) -> BTreeSet<u32>,
) -> Result<Change> {
    let mut others: BTreeSet<u32> = registry.cpus.keys().copied().collect();
    for holder in &registry.holders {
        others.extend(&holder.cpus);
    }
    // Our CPUs must be readable; another CPU that is not (taken away since) keeps its record, and
    // any intent in it, until it can be read again.
    let mut values = Values::new();
    for &cpu in others.difference(ours) {
        if let Ok(value) = sysfs::read_value(cpu) {
            values.insert(cpu, value);
        }
    }
    for &cpu in ours {
        let value = sysfs::read_value(cpu).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                // The one check of a CPU's existence on an acquire: nothing is written yet.
                return no_such_cpu(cpu);
            }
            CpuError::io(
                Place::Sysfs,
                format!("cannot read {}", resume_latency_path(cpu).display()),
                &e,
                CpuErrorKind::Io,
            )
        })?;
        values.insert(cpu, value);
    }
    let mut affected = plan::recover(&mut registry, &values);
    let mut notices = Vec::new();
    registry.holders.retain(|holder| {
        let alive = locked.is_alive(holder);
        if !alive {
            let stale = Notice::Stale { pid: holder.pid };
            if !notices.contains(&stale) {
                notices.push(stale);
            }
            affected.extend(&holder.cpus);
        }
        alive
    });
    affected.extend(ours);
    affected.extend(edit(&mut registry));
    let mut change = plan::plan(registry, &affected, &values);
    notices.append(&mut change.notices);
    // What was set back on CPUs this change is not about: a dead holder's, or an interrupted
    // change's.
    notices.extend(
        (change.writes.iter())
            .filter(|w| !ours.contains(&w.cpu))
            .map(|w| Notice::Restored {
                cpu: w.cpu,
                from: w.from,
                to: w.to,
            }),
    );
    change.notices = notices;
    Ok(change)
}

/// The second and third steps of a change: its writes, then the registry that records them done.
/// A failure says how many writes were made (all of them, when the store failed), for [`undo`].
fn write_and_store(locked: &Locked, change: &Change) -> std::result::Result<(), (usize, CpuError)> {
    write_all(change)?;
    locked
        .store(&change.done)
        .map_err(|error| (change.writes.len(), error))
}

/// The second step of a change: its writes, in order; stops at the first that fails, and then
/// says how many were made.
fn write_all(change: &Change) -> std::result::Result<(), (usize, CpuError)> {
    for (done, write) in change.writes.iter().enumerate() {
        sysfs::write_value(write.cpu, write.to).map_err(|e| {
            let path = resume_latency_path(write.cpu);
            let error = CpuError::io(
                Place::Sysfs,
                format!("cannot write '{}' to {}", write.to, path.display()),
                &e,
                CpuErrorKind::Io,
            );
            (done, error)
        })?;
    }
    Ok(())
}

impl Drop for CpuConstraint {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.release_now(&mut |_| {});
        }
    }
}
