//! The I/O of a change: what the pure planner ([`super::plan`]) decided, run in its three steps
//! (the intent stored, the files written, the registry stored done), and undone when a step fails.

use std::collections::BTreeSet;

use super::error::Place;
use super::plan::{self, Change, Values};
use super::registry::{Holder, HolderFile, Life, Locked, Registry, random};
use super::sysfs::{self, ResumeLatency, resume_latency_path};
use super::{CpuError, CpuErrorKind, CpuLimits, Left, Notice, Result};
use crate::cpulist::CpuList;
use crate::internal::privilege::elevated;
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

/// How many holders a change asks at random, besides those deciding the CPUs it sets: with no more
/// holders than this, it asks them all.
const SAMPLE: usize = 16;

/// Which holders a change asks whether they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// Those that decide a CPU this change sets, and [`SAMPLE`] others (see [`dead_holders`]).
    Deciding,
    /// Every one (`lllqos recover`).
    All,
}

/// The holders (by index) that do not run (`gone`), of those asked: on each CPU in `affected`,
/// strictest first, every one until one that runs (its request is the CPU's strictest: the looser
/// ones do not change the CPU's value, and are asked when they do), and [`SAMPLE`] holders from
/// the place `start` (every holder, with [`Check::All`] or few holders). A CPU of a holder found
/// dead is decided again, so `affected` grows with them. Each holder is asked once at most.
///
/// So a change asks a few holders however many there are (each: an open, a lock query, a
/// close), and a holder that died where nobody changes anything is still found, after a number
/// of changes near the number of holders divided by [`SAMPLE`]; `lllqos recover` finds it at once.
fn dead_holders(
    holders: &[Holder],
    affected: &mut BTreeSet<u32>,
    check: Check,
    start: u64,
    mut gone: impl FnMut(&Holder) -> bool,
) -> BTreeSet<usize> {
    let count = holders.len();
    let asked: Vec<usize> = match check {
        Check::All => (0..count).collect(),
        Check::Deciding if count <= SAMPLE => (0..count).collect(),
        Check::Deciding => {
            let from = (start % count as u64) as usize;
            (0..SAMPLE).map(|i| (from + i) % count).collect()
        }
    };
    let mut dead: BTreeSet<usize> = BTreeSet::new();
    let mut runs: BTreeSet<usize> = BTreeSet::new();
    for i in asked {
        if gone(&holders[i]) {
            dead.insert(i);
            affected.extend(&holders[i].cpus);
        } else {
            runs.insert(i);
        }
    }
    let mut decided: BTreeSet<u32> = BTreeSet::new();
    while let Some(&cpu) = affected.difference(&decided).next() {
        decided.insert(cpu);
        let mut on_cpu: Vec<usize> = (0..count)
            .filter(|i| !dead.contains(i) && holders[*i].cpus.contains(&cpu))
            .collect();
        on_cpu.sort_by_key(|&i| holders[i].latency_us);
        for i in on_cpu {
            if runs.contains(&i) {
                break;
            }
            if !gone(&holders[i]) {
                runs.insert(i);
                break;
            }
            dead.insert(i);
            affected.extend(&holders[i].cpus);
        }
    }
    dead
}

/// The first half of every change: recovers what an interrupted change left, drops dead holders
/// ([`dead_holders`]), lets `edit` add or remove this process's records, reads the CPUs
/// concerned, and plans.
pub(super) fn prepare(
    locked: &Locked,
    mut registry: Registry,
    ours: &BTreeSet<u32>,
    check: Check,
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
    affected.extend(ours);
    let mut notices: Vec<Notice> = (locked.taken().into_iter())
        .map(|taken| Notice::Replaced { uid: taken.uid })
        .collect();
    // The holder files are in the registry's private directory: their checks are the library's
    // own I/O, raised once for all of them.
    let live = locked.liveness();
    let dead = elevated(|| {
        dead_holders(&registry.holders, &mut affected, check, random(), |h| {
            live.of(h) == Life::Gone
        })
    });
    let mut index = 0;
    registry.holders.retain(|holder| {
        let keep = !dead.contains(&index);
        index += 1;
        if !keep {
            let stale = Notice::Stale { pid: holder.pid };
            if !notices.contains(&stale) {
                notices.push(stale);
            }
        }
        keep
    });
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

/// The first step of a change: the registry stored with the intent of each write, so that a
/// change cut short is told from another tool's value. Nothing to store when nothing is written.
pub(super) fn store_intent(locked: &Locked, change: &Change) -> Result<()> {
    match &change.staged {
        Some(staged) => locked.store(staged),
        None => Ok(()),
    }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::{Check, SAMPLE, dead_holders};
    use crate::percpu::registry::Holder;

    /// Holders on CPUs 0-3 with limits 0-5 (ties included), each running or not.
    fn holders() -> impl Strategy<Value = Vec<(Holder, bool)>> {
        let holder = (
            proptest::collection::btree_set(0u32..4, 1..3),
            0u32..6,
            any::<bool>(),
        );
        proptest::collection::vec(holder, 0..40).prop_map(|all| {
            (all.into_iter().enumerate())
                .map(|(i, (cpus, latency_us, runs))| {
                    let holder = Holder {
                        pid: i as i32 + 1,
                        start_time: 0,
                        lock: None,
                        cpus: cpus.into_iter().collect(),
                        latency_us,
                    };
                    (holder, runs)
                })
                .collect()
        })
    }

    proptest! {
        /// Whatever the holders and where the sample starts: only holders that do not run are
        /// found dead, each is asked once, every CPU a dead one held is decided, and on each CPU
        /// decided the strictest holder left is as strict as the strictest that runs (the value
        /// planned is the one the running holders ask). With `Check::All` every dead one is
        /// found; with `Check::Deciding`, at most SAMPLE are asked beyond those that decide.
        #[test]
        fn the_dead_found_leave_each_decided_cpu_its_running_strictest(
            all in holders(),
            affected in proptest::collection::btree_set(0u32..4, 0..3),
            start in any::<u64>(),
            every in any::<bool>(),
        ) {
            let holders: Vec<Holder> = all.iter().map(|(h, _)| h.clone()).collect();
            let runs = |h: &Holder| all.iter().any(|(o, r)| *r && o.pid == h.pid);
            let check = if every { Check::All } else { Check::Deciding };
            let mut decided = affected.clone();
            let mut asked = Vec::new();
            let dead = dead_holders(&holders, &mut decided, check, start, |h| {
                asked.push(h.pid);
                !runs(h)
            });
            let mut once = asked.clone();
            once.sort_unstable();
            once.dedup();
            prop_assert_eq!(once.len(), asked.len(), "asked twice: {:?}", asked);
            prop_assert!(affected.is_subset(&decided));
            for &i in &dead {
                prop_assert!(!runs(&holders[i]));
                prop_assert!(holders[i].cpus.iter().all(|c| decided.contains(c)));
            }
            for &cpu in &decided {
                let strictest = |keep: &dyn Fn(usize) -> bool| {
                    (0..holders.len())
                        .filter(|&i| keep(i) && holders[i].cpus.contains(&cpu))
                        .map(|i| holders[i].latency_us)
                        .min()
                };
                let left = strictest(&|i| !dead.contains(&i));
                let running = strictest(&|i| runs(&holders[i]));
                prop_assert_eq!(left, running, "cpu {}", cpu);
            }
            if every {
                let all_dead: BTreeSet<usize> =
                    (0..holders.len()).filter(|&i| !runs(&holders[i])).collect();
                prop_assert_eq!(dead, all_dead);
            } else if holders.len() > SAMPLE {
                let deciding = (0..holders.len())
                    .filter(|&i| holders[i].cpus.iter().any(|c| decided.contains(c)))
                    .count();
                prop_assert!(asked.len() <= SAMPLE + deciding);
            }
        }
    }
}
