//! The I/O of a change: what the pure planner ([`super::plan`]) decided, run in its three steps
//! (the intent stored, the files written, the registry stored done), and undone when a step fails.

use std::collections::BTreeSet;

use super::error::Place;
use super::plan::{self, Change, Values};
use super::registry::{HolderFile, Locked, Registry};
use super::sysfs::{self, ResumeLatency, resume_latency_path};
use super::{CpuError, CpuErrorKind, CpuLimits, Left, Notice, Result};
use crate::cpulist::CpuList;
use crate::latency::Latency;

/// An acquire that failed before it wrote anything: the registry on disk is `before`; this
/// process's holder file (and, when nothing else is held, the whole directory) goes. Returns
/// `error`, with a note of what could not be removed.
pub(super) fn abandon(locked: &Locked, error: CpuError, before: &Registry) -> CpuError {
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
pub(super) fn undo(
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
pub(super) fn no_such_cpu(cpu: u32) -> CpuError {
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
pub(super) fn check_range(limits: &CpuLimits) -> Result<()> {
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
pub(super) fn prepare(
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
pub(super) fn write_and_store(
    locked: &Locked,
    change: &Change,
) -> std::result::Result<(), (usize, CpuError)> {
    write_all(change)?;
    locked
        .store(&change.done)
        .map_err(|error| (change.writes.len(), error))
}

/// The second step of a change: its writes, in order; stops at the first that fails, and then
/// says how many were made.
pub(super) fn write_all(change: &Change) -> std::result::Result<(), (usize, CpuError)> {
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
