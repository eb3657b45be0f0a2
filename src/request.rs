//! What to place, from the command line: `--latency` or `--max-state`, on the global node or on
//! `--cpu`'s CPUs. Everything is resolved, and every bad value reported, before anything is
//! placed: the wrapper, the hold and `measure` all start from a [`Request`].

use anyhow::{Context, Result, anyhow, bail};

use crate::cli::CpuSpec;
use lllqos::idle::{self, StateNames};
use lllqos::{CpuConstraint, CpuLimits, CpuList, Latency};

/// What to place: the global request, or a limit per CPU.
#[derive(Debug, Clone)]
pub enum Request {
    /// One limit, on the global node.
    Global(Latency),
    /// Each CPU its limit, through its resume latency.
    PerCpu(CpuLimits),
}

impl Request {
    /// The CPUs of a per-CPU request.
    pub fn cpus(&self) -> Option<&CpuList> {
        match self {
            Request::Global(_) => None,
            Request::PerCpu(limits) => Some(limits.cpus()),
        }
    }

    /// The limit, or the strictest of the per-CPU ones.
    pub fn latency(&self) -> Latency {
        match self {
            Request::Global(latency) => *latency,
            Request::PerCpu(limits) => limits.strictest(),
        }
    }
}

/// Turns `--latency` or `--max-state`, with `--cpu`, into what to place. The CPUs of `--cpu` are
/// checked here, once, before any idle state is looked up or anything placed (placing them later
/// reads each CPU's value before writing any, which finds a CPU taken away since). With `verbose`,
/// says which state `--max-state` chose.
pub fn resolve(
    latency: Latency,
    max_state: Option<&StateNames>,
    cpu: Option<&CpuSpec>,
    verbose: bool,
) -> Result<Request> {
    let cpus = match cpu {
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
        CpuConstraint::validate_each(&limits).with_context(|| format!("--cpu {cpus}"))?;
        return Ok(Request::PerCpu(limits));
    };
    let Some(cpus) = cpus else {
        let choice = idle::resolve_global(names, &idle::all_states())
            .map_err(|e| anyhow!("--max-state {names}: {e}"))?;
        if verbose {
            say!(
                "lllqos: --max-state {names}: '{}', exit latency {} ({})",
                choice.name,
                choice.latency,
                choice.cpus.describe()
            );
        }
        return Ok(Request::Global(choice.latency));
    };
    CpuConstraint::check_cpus(&cpus).with_context(|| format!("--cpu {cpus}"))?;
    if let Some(cpu) = (cpus.cpus().iter()).find(|&&cpu| !lllqos::cpulist::is_online(cpu)) {
        bail!(
            "--max-state {names}: cpu{cpu} is offline: the kernel lists a CPU's idle states only while it is online"
        );
    }
    let states = (cpus.cpus().iter())
        .map(|&cpu| (cpu, idle::cpu_states(cpu)))
        .collect();
    let chosen = idle::resolve_per_cpu(names, &cpus, &states)
        .map_err(|e| anyhow!("--max-state {names}: {e}"))?;
    if verbose {
        let mut groups: std::collections::BTreeMap<(&str, Latency), Vec<u32>> = Default::default();
        for (&cpu, choice) in &chosen {
            groups
                .entry((&choice.name, choice.latency))
                .or_default()
                .push(cpu);
        }
        for ((name, latency), cpus) in groups {
            let list = CpuList::new(cpus).map(|l| l.describe());
            say!(
                "lllqos: --max-state {names}: '{name}', exit latency {latency} ({})",
                list.unwrap_or_default()
            );
        }
    }
    // Exit latencies are far below the files' largest limit (placing refuses one that is not).
    let limits = CpuLimits::new(chosen.iter().map(|(&cpu, choice)| (cpu, choice.latency)))
        .ok_or_else(|| anyhow!("--cpu {cpus}: no CPU"))?;
    Ok(Request::PerCpu(limits))
}
