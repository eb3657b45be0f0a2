//! [`CpuConstraint`]: the RAII guard of per-CPU constraints, placed, changed and released as one
//! change of the registry each (see [`super::change`]).

use std::collections::{BTreeMap, BTreeSet};

use nix::fcntl::{AT_FDCWD, AtFlags};

use super::change::{
    Check, abandon, check_range, no_such_cpu, prepare, store_intent, undo, write_all,
    write_and_store,
};
use super::error::Place;
use super::plan::Change;
use super::registry::{CpuEntry, Holder, HolderFile, Locked, REGISTRY_DIR};
use super::sysfs::{self, resume_latency_path};
use super::{CpuError, CpuErrorKind, CpuLimits, Left, Notice, Result, Watchdog};
use crate::cpulist::CpuList;
use crate::internal::privilege::elevated;
use crate::latency::Latency;

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
    /// The watchdog of [`CpuConstraint::acquire_each_watched`]: dropped after the release.
    _watchdog: Option<Watchdog>,
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
        // As the privilege a setuid or capability install places constraints with would see it.
        elevated(|| check_writable(cpus))
    }
}

/// [`CpuConstraint::check_access`] with this process's effective credentials.
fn check_writable(cpus: &CpuList) -> Result<()> {
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

impl CpuConstraint {
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
        CpuConstraint::acquire_now(limits, on_wait)
    }

    /// [`CpuConstraint::acquire_each`], guarded by a [`Watchdog`] started first: should this process
    /// end without releasing (SIGKILL, the OOM killer), the watchdog restores the CPUs at once,
    /// as `lllqos recover` would. For a program that nothing else watches (an interpreter, a
    /// service without `ExecStopPost=lllqos recover`).
    pub fn acquire_each_watched(limits: &CpuLimits) -> Result<CpuConstraint> {
        let watchdog = Watchdog::start()?;
        let mut constraint = CpuConstraint::acquire_each(limits)?;
        constraint._watchdog = Some(watchdog);
        Ok(constraint)
    }

    fn acquire_now(limits: &CpuLimits, on_wait: &mut dyn FnMut(&str)) -> Result<CpuConstraint> {
        check_range(limits)?;
        // A CPU that does not exist is refused before the registry is touched (checked again,
        // under its lock, when the CPU is read).
        let cpus = limits.cpus().cpus();
        if let Some(&cpu) = cpus.iter().find(|&&cpu| !resume_latency_path(cpu).exists()) {
            return Err(no_such_cpu(cpu));
        }
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
        let me = records(limits, pid, start_time, Some(holder.name().to_owned()));
        let ours: BTreeSet<u32> = limits.cpus().cpus().iter().copied().collect();
        let change = prepare(
            &locked,
            before.clone(),
            &ours,
            Check::Deciding,
            |registry| {
                registry.holders.extend(me.iter().cloned());
                BTreeSet::new()
            },
        )
        .map_err(|e| abandon(&locked, e, &before))?;
        store_intent(&locked, &change).map_err(|e| abandon(&locked, e, &before))?;
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
        Ok(CpuConstraint {
            limits: limits.clone(),
            me,
            saved: saved(limits, &change),
            notices: change.notices,
            released: false,
            _holder: holder,
            _watchdog: None,
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
        self.set_now(latency)
    }

    fn set_now(&mut self, latency: Latency) -> Result<Vec<Notice>> {
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
        let records = records(&limits, pid, start_time, lock);
        let ours: BTreeSet<u32> = limits.cpus().cpus().iter().copied().collect();
        let change = prepare(
            &locked,
            before.clone(),
            &ours,
            Check::Deciding,
            |registry| {
                for record in &self.me {
                    if let Some(at) = registry.holders.iter().position(|h| h == record) {
                        registry.holders.remove(at);
                    }
                }
                registry.holders.extend(records.iter().cloned());
                BTreeSet::new()
            },
        )?;
        store_intent(&locked, &change)?;
        if let Err((applied, error)) = write_and_store(&locked, &change) {
            return Err(undo(&locked, error, &change, applied, &before, None));
        }
        self.saved = saved(&limits, &change);
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
        let change = prepare(&locked, loaded, &ours, Check::Deciding, |registry| {
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
        store_intent(&locked, &change)?;
        write_all(&change).map_err(|(_, error)| error)?;
        locked.store(&change.done)?;
        let mut notices = change.notices;
        if lost {
            notices.insert(0, Notice::Lost);
        }
        Ok(notices)
    }
}

/// A holder's records for `limits`: one per group of CPUs that share a limit.
fn records(limits: &CpuLimits, pid: i32, start_time: u64, lock: Option<String>) -> Vec<Holder> {
    (limits.groups().into_iter())
        .map(|(latency, cpus)| Holder {
            pid,
            start_time,
            lock: lock.clone(),
            cpus,
            latency_us: latency.as_micros(),
        })
        .collect()
}

/// What `change` recorded for each CPU of `limits`: the value to restore, and what was written.
fn saved(limits: &CpuLimits, change: &Change) -> BTreeMap<u32, CpuEntry> {
    (limits.cpus().cpus().iter())
        .filter_map(|c| Some((*c, change.done.cpus.get(c)?.clone())))
        .collect()
}

impl Drop for CpuConstraint {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.release_now(&mut |_| {});
        }
    }
}
