//! What to place: `--latency` or `--max-state`, on the global node or on `--cpu`'s CPUs, asked for
//! by the command line or by a container's annotations ([`annotations`]). Everything is resolved,
//! and every bad value reported, before anything is placed: the wrapper, the hold, `measure` and
//! the OCI hook all start from a [`Request`].

pub mod annotations;

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};

use lllqos::cli::RequestArgs;
use lllqos::idle::{self, Fallback, Resolution, StateNames};
use lllqos::{CpuConstraint, CpuLimits, CpuList, Latency};

/// What to place: the global request, a limit per CPU, or nothing.
#[derive(Debug, Clone)]
pub enum Request {
    /// One limit, on the global node.
    Global(Latency),
    /// Each CPU its limit, through its resume latency.
    PerCpu(CpuLimits),
    /// No request: `--max-state` matched no state and its list ends with `none`. The CPUs of
    /// `--cpu`, when it was given (`measure` still runs its loop there).
    Nothing(Option<CpuList>),
}

impl Request {
    /// The CPUs of a per-CPU request (or of `--cpu`, for no request).
    pub fn cpus(&self) -> Option<&CpuList> {
        match self {
            Request::Global(_) => None,
            Request::PerCpu(limits) => Some(limits.cpus()),
            Request::Nothing(cpus) => cpus.as_ref(),
        }
    }

    /// The limit, or the strictest of the per-CPU ones; `None` for no request.
    pub fn latency(&self) -> Option<Latency> {
        match self {
            Request::Global(latency) => Some(*latency),
            Request::PerCpu(limits) => Some(limits.strictest()),
            Request::Nothing(_) => None,
        }
    }
}

/// Where the request was asked for, as messages name it: lllqos's options, or the annotations an
/// OCI hook read (`lllqos oci-hook`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `--max-state C6`, `--cpu 2-3`.
    Options,
    /// `lllqos.io/max-state=C6`, `lllqos.io/cpus=2-3`.
    Annotations,
}

impl Naming {
    /// How messages name `--max-state` and its value.
    fn max_state(self, names: &StateNames) -> String {
        match self {
            Naming::Options => format!("--max-state {names}"),
            Naming::Annotations => format!("{}={names}", annotations::MAX_STATE),
        }
    }

    /// How messages name `--cpu` and its CPUs.
    fn cpu(self, cpus: &CpuList) -> String {
        match self {
            Naming::Options => format!("--cpu {cpus}"),
            Naming::Annotations => format!("{}={cpus}", annotations::CPUS),
        }
    }
}

/// What [`resolve`] says on stderr as it resolves `--max-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chatter {
    /// Nothing (`--quiet`).
    Quiet,
    /// That a `none` fallback leaves CPUs without a request (a warning).
    Warnings,
    /// That, and which state or fallback each CPU got (`--verbose`).
    Verbose,
}

/// Turns `--latency` or `--max-state`, with `--cpu`, into what to place. The CPUs of `--cpu` are
/// checked here, once, before any idle state is looked up or anything placed (placing them later
/// reads each CPU's value before writing any, which finds a CPU taken away since). `chatter`: what
/// to say about `--max-state`'s choice.
pub fn resolve(asked: &RequestArgs, chatter: Chatter, naming: Naming) -> Result<Request> {
    let (latency, max_state) = (asked.latency, asked.max_state.as_ref());
    let cpus = match &asked.cpu {
        Some(spec) => Some(
            spec.resolve()
                .context("--cpu auto: cannot read this process's affinity")?,
        ),
        None => None,
    };
    let Some(names) = max_state else {
        let Some(cpus) = cpus else {
            return Ok(Request::Global(latency));
        };
        let limits = CpuLimits::uniform(&cpus, latency);
        CpuConstraint::validate_each(&limits).with_context(|| naming.cpu(&cpus))?;
        return Ok(Request::PerCpu(limits));
    };
    let label = naming.max_state(names);
    match cpus {
        None => resolve_global(names, &label, chatter),
        Some(cpus) => resolve_per_cpu(names, &label, cpus, chatter, naming),
    }
}

/// `--max-state` for the global request.
fn resolve_global(names: &StateNames, label: &str, chatter: Chatter) -> Result<Request> {
    let resolution = idle::resolve_global(names, &idle::Cpuidle::configured().all_states())
        .map_err(|e| anyhow!("{label}: {e}"))?;
    let everywhere = CpuList::listed();
    let cpus = everywhere
        .as_ref()
        .map_or_else(String::new, CpuList::describe);
    let request = match resolution.latency() {
        Some(latency) => Request::Global(latency),
        None => Request::Nothing(None),
    };
    tell(label, &resolution, &cpus, chatter);
    Ok(request)
}

/// `--max-state` per CPU: each CPU its own state, or the list's fallback.
fn resolve_per_cpu(
    names: &StateNames,
    label: &str,
    cpus: CpuList,
    chatter: Chatter,
    naming: Naming,
) -> Result<Request> {
    CpuConstraint::check_cpus(&cpus).with_context(|| naming.cpu(&cpus))?;
    if let Some(cpu) = (cpus.cpus().iter()).find(|&&cpu| !lllqos::cpulist::is_online(cpu)) {
        bail!(
            "{label}: cpu{cpu} is offline: the kernel lists a CPU's idle states only while it is online"
        );
    }
    let states = (cpus.cpus().iter())
        .map(|&cpu| (cpu, idle::Cpuidle::configured().cpu_states(cpu)))
        .collect();
    let resolved =
        idle::resolve_per_cpu(names, &cpus, &states).map_err(|e| anyhow!("{label}: {e}"))?;
    // CPUs that got the same, said once.
    let mut groups: BTreeMap<Outcome, Vec<u32>> = BTreeMap::new();
    for (&cpu, resolution) in &resolved {
        let outcome = match resolution {
            Resolution::State(choice) => Outcome::State(&choice.name, choice.latency),
            Resolution::Fallback { fallback, missing } => {
                Outcome::Fallback(*fallback, missing.available())
            }
        };
        groups.entry(outcome).or_default().push(cpu);
    }
    for (outcome, group) in groups {
        let Some(list) = CpuList::new(group) else {
            continue;
        };
        let cpus = list.describe();
        match outcome {
            Outcome::State(name, latency) if chatter == Chatter::Verbose => {
                say!("lllqos: {label}: '{name}', exit latency {latency} ({cpus})");
            }
            Outcome::State(..) => {}
            Outcome::Fallback(fallback, available) => {
                let lacking = missing_on(names, &list, available);
                fell_back(label, &lacking, fallback, &cpus, chatter);
            }
        }
    }
    // Exit latencies are far below the files' largest limit (placing refuses one that is not).
    let limits = (resolved.iter()).filter_map(|(&cpu, r)| Some((cpu, r.latency()?)));
    Ok(match CpuLimits::new(limits) {
        Some(limits) => Request::PerCpu(limits),
        None => Request::Nothing(Some(cpus)),
    })
}

/// What a CPU got from `--max-state`, for saying it once for all CPUs that got the same.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome<'a> {
    /// A state, by name, and its exit latency.
    State(&'a str, Latency),
    /// The list's fallback, and the states the CPU has instead.
    Fallback(Fallback, &'a str),
}

/// Says what the global `--max-state` (`label`) resolved to: a `none` fallback as a warning, the
/// rest with `--verbose`.
fn tell(label: &str, resolution: &Resolution, cpus: &str, chatter: Chatter) {
    match resolution {
        Resolution::State(choice) if chatter == Chatter::Verbose => say!(
            "lllqos: {label}: '{}', exit latency {} ({cpus})",
            choice.name,
            choice.latency
        ),
        Resolution::State(_) => {}
        Resolution::Fallback { fallback, missing } => {
            fell_back(label, &missing.to_string(), *fallback, cpus, chatter);
        }
    }
}

/// Says that no name matched on `cpus` (`missing`: why) and what applies instead.
fn fell_back(label: &str, missing: &str, fallback: Fallback, cpus: &str, chatter: Chatter) {
    match fallback {
        Fallback::Latency(latency) if chatter == Chatter::Verbose => {
            say!("lllqos: {label}: {missing}: {latency} instead ({cpus})");
        }
        Fallback::Nothing if chatter != Chatter::Quiet => {
            say!("lllqos: warning: {label}: {missing}: no request on {cpus}");
        }
        _ => {}
    }
}

/// `CPUs 0-1 have no idle state 'C6'; states: POLL (0 us)`, for CPUs where no name matched.
fn missing_on(names: &StateNames, cpus: &CpuList, available: &str) -> String {
    let quoted: Vec<String> = names.names().iter().map(|n| format!("'{n}'")).collect();
    let have = if cpus.cpus().len() == 1 {
        "has"
    } else {
        "have"
    };
    let states = if available.is_empty() {
        "this kernel lists no idle states (no cpuidle driver)".to_owned()
    } else {
        format!("states: {available}")
    };
    format!(
        "{} {have} no idle state {}; {states}",
        cpus.describe(),
        quoted.join(" or ")
    )
}
