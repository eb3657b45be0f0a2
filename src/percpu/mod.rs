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
//! step and other tools' writes), `change` (the I/O that runs a planned change in its three steps,
//! and undoes it when one fails), `constraint` (the guard); here, the types they share and what
//! the registry records.

mod change;
mod constraint;
mod error;
mod plan;
mod registry;
mod sysfs;
mod watchdog;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use constraint::CpuConstraint;
pub use error::{CpuError, CpuErrorKind, Left};
pub use sysfs::ResumeLatency;
pub use watchdog::Watchdog;

use crate::cpulist::CpuList;
use crate::latency::Latency;
use change::{Check, prepare, store_intent, write_all};
use registry::{Locked, Registry};

type Result<T, E = CpuError> = std::result::Result<T, E>;

/// How long a per-CPU change waits for the registry's lock while the registry does not change,
/// before it gives up ([`CpuErrorKind::Stalled`]). A change holds the lock for milliseconds: one
/// that holds it this long without storing anything is stopped (a capability install's user
/// can stop their own lllqos there) or starved, and no user may make the others wait for ever.
pub const STALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

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
    /// `/run/lllqos` belonged to another user (made by a capability install of an older
    /// lllqos): root replaced it by its own, and the records in it are gone. The CPUs they
    /// constrained keep their values.
    Replaced {
        /// The user who owned it.
        uid: u32,
    },
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
            Notice::Replaced { uid } => write!(
                f,
                "{} belonged to uid {uid}, not root: replaced by root's, its records dropped (the CPUs they constrained keep their values)",
                registry::REGISTRY_DIR
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
    let Some((dir, registry)) = Registry::read()? else {
        return Ok(None);
    };
    let live = registry::Liveness::new(&dir);
    let holders = (registry.holders.iter())
        .filter_map(|h| {
            let life = live.of(h);
            Some(RegisteredHolder {
                pid: match life {
                    registry::Life::Runs(Some(pid)) => pid,
                    _ => h.pid,
                },
                cpus: CpuList::new(h.cpus.iter().copied())?,
                latency: Latency::from_micros(h.latency_us)?,
                live: life != registry::Life::Gone,
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
    let change = prepare(
        &locked,
        loaded.clone(),
        &BTreeSet::new(),
        Check::All,
        |_| every,
    )?;
    if change.writes.is_empty() && change.done == loaded {
        // Nothing to change: only the files nobody needs go.
        let _ = locked.sweep(&loaded);
        return Ok(change.notices);
    }
    store_intent(&locked, &change)?;
    write_all(&change).map_err(|(_, error)| error)?;
    locked.store(&change.done)?;
    Ok(change.notices)
}
