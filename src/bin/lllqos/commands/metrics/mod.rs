//! `lllqos metrics`: what `status` shows, for a fleet: the Prometheus text exposition format, in
//! base units (seconds), every family with `# HELP` and `# TYPE`, for node_exporter's textfile
//! collector (which has no cpuidle collector, and nothing of PM QoS) or any scraper.
//!
//! The metrics are views of the one [`Machine`] model, plus the kernel's cumulative idle-state
//! counters. What cannot be read leaves its family out, and `lllqos_scrape_error{source=...}` says
//! so (0 for each source that was read). A limit that constrains nothing is `+Inf`; a value the
//! kernel does not tell (the request of a holder that is not lllqos, among several) is `NaN`.
//! docs/metrics.md lists every family.
//!
//! `--output FILE` replaces FILE atomically, safely in a directory others can write ([`output`]).

mod exposition;
mod output;

use anyhow::{Result, anyhow};
use lllqos::Latency;
use lllqos::cli::MetricsArgs;
use lllqos::internal::oserror::os_message;
use lllqos::percpu::ResumeLatency;

use crate::exit::ExitStatus;
use crate::machine::{self, Machine, Reading};
use crate::output::emit;
use exposition::{Exposition, Kind, Sample};

/// `lllqos metrics [--output FILE]`.
pub fn metrics(args: &MetricsArgs) -> Result<ExitStatus> {
    let text = render(&machine::collect());
    match &args.output {
        None => Ok(emit(&text)),
        Some(path) => {
            output::write_atomically(path, &text).map_err(|e| match e {
                output::OutputError::Refused(why) => anyhow!("--output {}: {why}", path.display()),
                output::OutputError::Io(e) => {
                    anyhow!("--output {}: {}", path.display(), os_message(&e))
                }
            })?;
            Ok(ExitStatus::Exited(0))
        }
    }
}

/// Seconds, from a limit (`+Inf` for none).
fn seconds(limit: Option<Latency>) -> f64 {
    limit.map_or(f64::INFINITY, |l| f64::from(l.as_micros()) / 1e6)
}

/// The metrics of `machine` as exposition text.
fn render(machine: &Machine) -> String {
    let mut out = Exposition::default();
    // In this order: each writes its families, then says whether its source could be read.
    let mut errors: Vec<(&'static str, bool)> = vec![
        ("cpu_latency", global(&mut out, machine)),
        ("holders", holders(&mut out, machine)),
        ("resume_latency", per_cpu(&mut out, machine)),
        ("idle_states", idle_states(&mut out, machine)),
        ("registry", registry(&mut out, machine)),
    ];
    if let Some(wakeup) = &machine.wakeup {
        errors.push(("wakeup_latency", wakeup_latency(&mut out, wakeup)));
    }
    out.family(
        "lllqos_scrape_error",
        Kind::Gauge,
        "1 when this source could not be read (what depends on it is left out), 0 when it was.",
        (errors.into_iter())
            .map(|(source, failed)| {
                Sample::new(vec![("source", source.into())], f64::from(u8::from(failed)))
            })
            .collect(),
    );
    out.text().to_owned()
}

/// The limit CPU `cpu` obeys, when every limit it depends on was read: the global one and its
/// own (`Some(None)`: none constrains it); `None` when one of them could not be read.
fn effective_limit(machine: &Machine, cpu: &machine::Cpu) -> Option<Option<Latency>> {
    let global = machine.cpu_latency.as_ref().ok()?;
    cpu.resume_latency.as_ref().ok()?;
    Some(cpu.effective_limit(*global))
}

/// The CPU latency limit in force, and whether anything constrains a CPU. True on an error.
fn global(out: &mut Exposition, machine: &Machine) -> bool {
    let Ok(limit) = machine.cpu_latency else {
        return true;
    };
    out.family(
        "lllqos_cpu_latency_limit_seconds",
        Kind::Gauge,
        "The CPU latency limit in force (/dev/cpu_dma_latency): the smallest request of all holders; +Inf when none constrains.",
        vec![Sample::bare(seconds(limit))],
    );
    let own: Option<Vec<ResumeLatency>> = (machine.cpus.iter())
        .map(|cpu| cpu.resume_latency.clone().ok())
        .collect();
    if let Some(own) = own {
        let constrained =
            limit.is_some() || own.iter().any(|v| matches!(v, ResumeLatency::Limit(_)));
        out.family(
            "lllqos_cpu_latency_constrained",
            Kind::Gauge,
            "1 when a CPU latency constraint is in force, global or on any CPU; 0 when none is.",
            vec![Sample::bare(f64::from(u8::from(constrained)))],
        );
    }
    false
}

/// The labels of a holder of a node.
fn holder_labels(holder: &machine::Holder) -> Vec<(&'static str, String)> {
    vec![
        ("pid", holder.pid.to_string()),
        ("command", holder.command.clone()),
        ("user", holder.user.clone()),
        ("container", holder.container.clone().unwrap_or_default()),
        ("pod", holder.pod.clone().unwrap_or_default()),
    ]
}

/// Each holder of the global request, and how many there are by user, container and pod. True
/// when some could not be seen (not root).
fn holders(out: &mut Exposition, machine: &Machine) -> bool {
    if !machine.holders_complete {
        return true;
    }
    out.family(
        "lllqos_cpu_latency_request_seconds",
        Kind::Gauge,
        "Each holder of the global CPU latency request and the value it asked for (NaN where the kernel does not tell: a holder other than lllqos, among several).",
        (machine.holders.iter())
            .map(|h| Sample::new(holder_labels(h), h.asked.map_or(f64::NAN, |a| seconds(Some(a)))))
            .collect(),
    );
    let mut counts: std::collections::BTreeMap<(String, String, String), usize> =
        std::collections::BTreeMap::new();
    for h in &machine.holders {
        let key = (
            h.user.clone(),
            h.container.clone().unwrap_or_default(),
            h.pod.clone().unwrap_or_default(),
        );
        *counts.entry(key).or_default() += 1;
    }
    out.family(
        "lllqos_cpu_latency_holders",
        Kind::Gauge,
        "Holders of the global CPU latency request by user, container and pod: the aggregate without one series per process.",
        (counts.into_iter())
            .map(|((user, container, pod), n)| {
                let labels = vec![("user", user), ("container", container), ("pod", pod)];
                Sample::new(labels, n as f64)
            })
            .collect(),
    );
    false
}

/// Each CPU's own constraint and the limit it obeys, for the CPUs whose values were read. True
/// when one could not be.
fn per_cpu(out: &mut Exposition, machine: &Machine) -> bool {
    let limit = |value: ResumeLatency| match value {
        ResumeLatency::Limit(limit) => Some(limit),
        ResumeLatency::Unconstrained => None,
    };
    out.family(
        "lllqos_cpu_resume_latency_seconds",
        Kind::Gauge,
        "Each CPU's own resume latency constraint (pm_qos_resume_latency_us); +Inf when none.",
        (machine.cpus.iter())
            .filter_map(|cpu| {
                let value = cpu.resume_latency.clone().ok()?;
                Some(Sample::new(
                    vec![("cpu", cpu.cpu.to_string())],
                    seconds(limit(value)),
                ))
            })
            .collect(),
    );
    out.family(
        "lllqos_cpu_effective_latency_limit_seconds",
        Kind::Gauge,
        "The limit each CPU obeys: the smaller of the global limit and its own; +Inf when none. Absent for a CPU where either could not be read.",
        (machine.cpus.iter())
            .filter_map(|cpu| {
                let limit = effective_limit(machine, cpu)?;
                Some(Sample::new(
                    vec![("cpu", cpu.cpu.to_string())],
                    seconds(limit),
                ))
            })
            .collect(),
    );
    machine.cpus.iter().any(|cpu| cpu.resume_latency.is_err())
}

/// Per CPU and idle state: time and entries (the kernel's counters), exit latency, and whether the
/// limits in force allow it (only where every limit was read, and the state's own files). True
/// when a state's files could not be read (that state is left out).
fn idle_states(out: &mut Exposition, machine: &Machine) -> bool {
    let tree = lllqos::idle::Cpuidle::configured();
    let mut failed = false;
    let (mut time, mut entries, mut latency, mut allowed) = (vec![], vec![], vec![], vec![]);
    for cpu in &machine.cpus {
        let limit = effective_limit(machine, cpu);
        let (counters, error) = tree.cpu_counters_checked(cpu.cpu);
        failed |= error.is_some() || cpu.idle_states_error.is_some();
        for counters in counters {
            let labels = vec![
                ("cpu", cpu.cpu.to_string()),
                ("state", counters.name.clone()),
            ];
            time.push(Sample::new(labels.clone(), counters.time_us as f64 / 1e6));
            entries.push(Sample::new(labels.clone(), counters.entries as f64));
            let exit = f64::from(counters.exit_latency_us) / 1e6;
            latency.push(Sample::new(labels.clone(), exit));
            let state = cpu.idle_states.iter().find(|s| s.name == counters.name);
            if let (Some(state), Some(limit)) = (state, limit) {
                let yes = machine::allowed(state, limit);
                allowed.push(Sample::new(labels, f64::from(u8::from(yes))));
            }
        }
    }
    out.family(
        "lllqos_cpu_idle_state_time_seconds_total",
        Kind::Counter,
        "Time each CPU has spent in each idle state since boot (cpuidle stateK/time).",
        time,
    );
    out.family(
        "lllqos_cpu_idle_state_entries_total",
        Kind::Counter,
        "Times each CPU has entered each idle state since boot (cpuidle stateK/usage).",
        entries,
    );
    out.family(
        "lllqos_cpu_idle_state_exit_latency_seconds",
        Kind::Gauge,
        "Each idle state's exit latency (cpuidle stateK/latency): the limit that still allows it.",
        latency,
    );
    out.family(
        "lllqos_cpu_idle_state_allowed",
        Kind::Gauge,
        "1 when the CPU may enter the idle state under the limits in force (not disabled, exit latency within the CPU's limit), 0 when not. Absent where a limit or the state could not be read.",
        allowed,
    );
    failed
}

/// lllqos's per-CPU holders, live and stale. True on an error.
fn registry(out: &mut Exposition, machine: &Machine) -> bool {
    let registry = match &machine.registry {
        Err(_) => return true,
        Ok(registry) => registry.as_ref(),
    };
    let holders = registry.map_or(&[][..], |r| r.holders.as_slice());
    let mut requests = Vec::new();
    for h in holders {
        for &cpu in h.holder.cpus.cpus() {
            let labels = vec![
                ("cpu", cpu.to_string()),
                ("pid", h.holder.pid.to_string()),
                ("command", h.command.clone().unwrap_or_default()),
                ("container", h.container.clone().unwrap_or_default()),
                ("pod", h.pod.clone().unwrap_or_default()),
                ("stale", (!h.holder.live).to_string()),
            ];
            requests.push(Sample::new(labels, seconds(Some(h.holder.latency))));
        }
    }
    out.family(
        "lllqos_percpu_request_seconds",
        Kind::Gauge,
        "Each per-CPU request lllqos's registry records, per CPU; stale=\"true\" for a holder that was killed without releasing (lllqos recover restores its CPUs).",
        requests,
    );
    let mut counts: std::collections::BTreeMap<(String, String, bool), usize> =
        std::collections::BTreeMap::new();
    for h in holders {
        let key = (
            h.container.clone().unwrap_or_default(),
            h.pod.clone().unwrap_or_default(),
            !h.holder.live,
        );
        *counts.entry(key).or_default() += 1;
    }
    out.family(
        "lllqos_percpu_holders",
        Kind::Gauge,
        "Holders of per-CPU requests lllqos's registry records, by container, pod and staleness: the aggregate without one series per process.",
        (counts.into_iter())
            .map(|((container, pod, stale), n)| {
                let labels = vec![
                    ("container", container),
                    ("pod", pod),
                    ("stale", stale.to_string()),
                ];
                Sample::new(labels, n as f64)
            })
            .collect(),
    );
    let stale = holders.iter().filter(|h| !h.holder.live).count();
    out.family(
        "lllqos_percpu_stale_holders",
        Kind::Gauge,
        "Per-CPU holders that were killed without releasing, whose CPUs lllqos recover would restore.",
        vec![Sample::bare(stale as f64)],
    );
    false
}

/// The system wake-up latency node (Linux 6.19+). True on an error.
fn wakeup_latency(out: &mut Exposition, wakeup: &machine::Wakeup) -> bool {
    let Reading::Ok(limit) = wakeup.limit else {
        return true;
    };
    out.family(
        "lllqos_wakeup_latency_limit_seconds",
        Kind::Gauge,
        "The system wake-up latency limit in force (/dev/cpu_wakeup_latency); +Inf when none constrains.",
        vec![Sample::bare(seconds(limit))],
    );
    out.family(
        "lllqos_wakeup_latency_request_seconds",
        Kind::Gauge,
        "Each holder of the system wake-up latency request and the value it asked for (NaN where unknown).",
        (wakeup.holders.iter())
            .map(|h| Sample::new(holder_labels(h), h.asked.map_or(f64::NAN, |a| seconds(Some(a)))))
            .collect(),
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Cpu;
    use lllqos::idle::IdleState;

    fn machine() -> Machine {
        Machine {
            cpu_latency: Ok(Latency::from_micros(123)),
            holders: vec![machine::Holder {
                pid: 7,
                user: "root".into(),
                command: "lllqos -l 123".into(),
                container: None,
                pod: None,
                asked: Latency::from_micros(123),
            }],
            holders_complete: true,
            driver: None,
            governor: None,
            cpus: vec![Cpu {
                cpu: 1,
                online: true,
                resume_latency: Ok(ResumeLatency::Limit(Latency::micros(45))),
                idle_states: vec![IdleState {
                    name: "POLL".into(),
                    exit_latency_us: 0,
                    disabled: false,
                }],
                idle_states_error: None,
            }],
            registry: Ok(None),
            wakeup: None,
        }
    }

    #[test]
    fn values_are_seconds_and_every_family_has_help_and_type() {
        let text = render(&machine());
        assert!(
            text.contains("\nlllqos_cpu_latency_limit_seconds 0.000123\n"),
            "{text}"
        );
        assert!(
            text.contains("lllqos_cpu_resume_latency_seconds{cpu=\"1\"} 4.5e-05\n"),
            "{text}"
        );
        assert!(text.contains("lllqos_cpu_effective_latency_limit_seconds{cpu=\"1\"} 4.5e-05\n"));
        assert!(text.contains("lllqos_cpu_latency_constrained 1\n"));
        assert!(text.contains(
            "lllqos_cpu_latency_request_seconds{pid=\"7\",command=\"lllqos -l 123\",user=\"root\",container=\"\",pod=\"\"} 0.000123\n"
        ));
        assert!(text.contains("lllqos_scrape_error{source=\"registry\"} 0\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
    }

    #[test]
    fn what_cannot_be_read_is_left_out_and_said() {
        let mut unreadable = machine();
        unreadable.cpu_latency = Err("Permission denied".into());
        unreadable.holders_complete = false;
        unreadable.registry = Err("Permission denied".into());
        let text = render(&unreadable);
        assert!(!text.contains("lllqos_cpu_latency_limit_seconds"), "{text}");
        assert!(
            !text.contains("lllqos_cpu_latency_request_seconds"),
            "{text}"
        );
        assert!(!text.contains("lllqos_percpu_"), "{text}");
        for source in ["cpu_latency", "holders", "registry"] {
            assert!(text.contains(&format!("lllqos_scrape_error{{source=\"{source}\"}} 1\n")));
        }
        assert!(text.contains("lllqos_scrape_error{source=\"resume_latency\"} 0\n"));
    }

    #[test]
    fn a_limit_that_cannot_be_read_leaves_out_what_depends_on_it() {
        // The global limit unread: no CPU's effective limit, no state's allowed.
        let mut global = machine();
        global.cpu_latency = Err("Permission denied".into());
        let text = render(&global);
        assert!(
            !text.contains("lllqos_cpu_effective_latency_limit_seconds{"),
            "{text}"
        );
        assert!(!text.contains("lllqos_cpu_idle_state_allowed{"), "{text}");
        assert!(text.contains("lllqos_scrape_error{source=\"cpu_latency\"} 1\n"));
        // A CPU's own value unread: its effective limit and states' allowed go, its own value too.
        let mut own = machine();
        own.cpus[0].resume_latency = Err("Permission denied".into());
        let text = render(&own);
        assert!(
            !text.contains("lllqos_cpu_resume_latency_seconds{"),
            "{text}"
        );
        assert!(
            !text.contains("lllqos_cpu_effective_latency_limit_seconds{"),
            "{text}"
        );
        assert!(!text.contains("lllqos_cpu_idle_state_allowed{"), "{text}");
        assert!(text.contains("lllqos_scrape_error{source=\"resume_latency\"} 1\n"));
        assert!(text.contains("lllqos_scrape_error{source=\"cpu_latency\"} 0\n"));
        // A state that cannot be read: said.
        let mut state = machine();
        state.cpus[0].idle_states_error = Some("state1/latency: Permission denied".into());
        let text = render(&state);
        assert!(
            text.contains("lllqos_scrape_error{source=\"idle_states\"} 1\n"),
            "{text}"
        );
        assert!(render(&machine()).contains("lllqos_scrape_error{source=\"idle_states\"} 0\n"));
    }

    #[test]
    fn holders_are_counted_by_user_container_and_pod_too() {
        let mut two = machine();
        let mut other = two.holders[0].clone();
        other.pid = 8;
        other.container = Some("c1".into());
        two.holders.push(other.clone());
        other.pid = 9;
        two.holders.push(other);
        let text = render(&two);
        assert!(
            text.contains("lllqos_cpu_latency_holders{user=\"root\",container=\"\",pod=\"\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "lllqos_cpu_latency_holders{user=\"root\",container=\"c1\",pod=\"\"} 2\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn no_constraint_is_infinity() {
        let mut free = machine();
        free.cpu_latency = Ok(None);
        free.cpus[0].resume_latency = Ok(ResumeLatency::Unconstrained);
        let text = render(&free);
        assert!(
            text.contains("\nlllqos_cpu_latency_limit_seconds +Inf\n"),
            "{text}"
        );
        assert!(
            text.contains("lllqos_cpu_latency_constrained 0\n"),
            "{text}"
        );
    }
}
