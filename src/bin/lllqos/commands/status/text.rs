//! The summary for people: one key per line in a column of its own, CPUs that read the same
//! grouped into one cpulist, what cannot be read said in place of the value.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use lllqos::lease::{CPU_DMA_LATENCY, CPU_WAKEUP_LATENCY};
use lllqos::percpu::ResumeLatency;
use lllqos::{CpuList, Latency};

use crate::machine::{self, Cpu, Holder, Machine, Reading, Registry};
use crate::output::{describe_limit, printable};

/// A node's limit for people ("20 us", "no constraint"), or why it is unreadable.
fn human_reading(reading: &Reading<Latency>) -> String {
    match reading {
        Ok(limit) => describe_limit(*limit),
        Err(e) => format!("unreadable ({e})"),
    }
}

/// The lines of the human summary: a key in a column of its own, then the value.
#[derive(Default)]
struct Summary(String);

impl Summary {
    fn line(&mut self, key: &str, value: &str) {
        let _ = writeln!(self.0, "{key:<19}{value}");
    }

    /// Lines under one key: the key on the first only.
    fn lines(&mut self, key: &str, values: impl IntoIterator<Item = String>) {
        for (i, value) in values.into_iter().enumerate() {
            self.line(if i == 0 { key } else { "" }, &value);
        }
    }
}

/// The human summary.
pub fn render(machine: &Machine) -> String {
    let mut out = Summary::default();
    let limit = human_reading(&machine.cpu_latency);
    out.line(
        "CPU latency limit",
        &format!("{limit}  ({CPU_DMA_LATENCY})"),
    );
    render_holders(&mut out, &machine.holders, machine.holders_complete);
    out.line("cpuidle", &describe_cpuidle(machine));
    render_resume_latency(&mut out, &machine.cpus);
    render_idle_states(&mut out, &machine.cpus, machine.global_limit());
    render_registry(&mut out, &machine.registry);
    if let Some(w) = &machine.wakeup {
        let limit = human_reading(&w.limit);
        out.line(
            "Wake-up latency",
            &format!("{limit}  ({CPU_WAKEUP_LATENCY})"),
        );
        render_holders(&mut out, &w.holders, machine.holders_complete);
    }
    out.0
}

fn describe_cpuidle(machine: &Machine) -> String {
    match (&machine.driver, &machine.governor) {
        (Some(d), Some(g)) => format!("driver {d}, governor {g}"),
        (Some(d), None) => format!("driver {d}"),
        _ => "not available (no cpuidle in this kernel)".to_owned(),
    }
}

/// `CPU 0: text` lines, CPUs with the same text grouped into one cpulist.
fn grouped(by_text: BTreeMap<String, Vec<u32>>) -> impl Iterator<Item = String> {
    by_text.into_iter().map(|(text, cpus)| {
        let list = CpuList::new(cpus).map(|l| l.describe()).unwrap_or_default();
        format!("{list}: {text}")
    })
}

/// Resume-latency constraints, only where there is one.
fn render_resume_latency(out: &mut Summary, cpus: &[Cpu]) {
    let mut by_value: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for cpu in cpus {
        let value = match &cpu.resume_latency {
            Err(e) => format!("unreadable ({e})"),
            Ok(ResumeLatency::Limit(limit)) if *limit == Latency::ZERO => {
                "n/a (zero tolerance)".to_owned()
            }
            Ok(ResumeLatency::Limit(limit)) => limit.to_string(),
            Ok(ResumeLatency::Unconstrained) => continue,
        };
        by_value.entry(value).or_default().push(cpu.cpu);
    }
    if by_value.is_empty() {
        out.line("Resume latency", "no per-CPU constraint");
    }
    out.lines("Resume latency", grouped(by_value));
}

/// The idle states each CPU may enter under the limits in force, and those it may not.
fn render_idle_states(out: &mut Summary, cpus: &[Cpu], global: Option<Latency>) {
    let mut by_states: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for cpu in cpus {
        by_states
            .entry(describe_idle_states(cpu, global))
            .or_default()
            .push(cpu.cpu);
    }
    out.lines("Idle states", grouped(by_states));
}

fn describe_idle_states(cpu: &Cpu, global: Option<Latency>) -> String {
    let limit = cpu.effective_limit(global);
    let describe = |s: &&lllqos::idle::IdleState| format!("{} ({} us)", s.name, s.exit_latency_us);
    let (allowed, refused): (Vec<_>, Vec<_>) =
        (cpu.idle_states.iter()).partition(|s| machine::allowed(s, limit));
    let allowed: Vec<String> = allowed.iter().map(describe).collect();
    let refused: Vec<String> = (refused.iter())
        .map(|s| {
            if s.disabled {
                format!("{} (disabled)", s.name)
            } else {
                describe(s)
            }
        })
        .collect();
    let mut text = if !cpu.online {
        "offline".to_owned()
    } else if cpu.idle_states.is_empty() {
        "none listed (without a cpuidle driver a CPU idles the architecture's default way)"
            .to_owned()
    } else if allowed.is_empty() {
        "none allowed".to_owned()
    } else {
        allowed.join(", ")
    };
    if !refused.is_empty() {
        let _ = write!(text, "; not allowed: {}", refused.join(", "));
    }
    if let Some(error) = &cpu.idle_states_error {
        let _ = write!(text, "; a state cannot be read ({error})");
    }
    text
}

fn render_registry(out: &mut Summary, registry: &Result<Option<Registry>, String>) {
    let location = lllqos::percpu::Registered::location().display().to_string();
    let r = match registry {
        Ok(None) => return out.line("lllqos registry", "empty"),
        Err(e) => return out.line("lllqos registry", &format!("unreadable ({e})")),
        Ok(Some(r)) => r,
    };
    out.line("lllqos registry", &location);
    for h in &r.holders {
        let state = if h.holder.live {
            "live"
        } else {
            "stale: exited without releasing"
        };
        let by = match &h.command {
            Some(command) => format!(
                " ({}{})",
                printable(command),
                workload(h.container.as_deref(), h.pod.as_deref(), ", ")
            ),
            None => String::new(),
        };
        let text = format!(
            "pid {}{by} holds {} on {} ({state})",
            h.holder.pid,
            h.holder.latency,
            h.holder.cpus.describe()
        );
        out.line("", &text);
    }
    for c in &r.cpus {
        let cpu = c.cpu;
        let under_way = match &c.intent {
            Some(intent) => format!(
                "; a change to {intent} was under way (a holder was killed during it, or is making it now)"
            ),
            None => String::new(),
        };
        let text = format!(
            "cpu{cpu}: found {}, lllqos wrote {}{under_way}",
            c.original, c.written
        );
        out.line("", &text);
    }
}

fn render_holders(out: &mut Summary, holders: &[Holder], complete: bool) {
    if holders.is_empty() {
        let none = if complete {
            "none"
        } else {
            "none visible (run as root to see every process)"
        };
        out.line("Holders", none);
        return;
    }
    let user_width = holders.iter().map(|h| h.user.len()).max().unwrap_or(0);
    let pid_width = (holders.iter())
        .map(|h| h.pid.to_string().len())
        .max()
        .unwrap_or(0);
    out.lines(
        "Holders",
        holders.iter().map(|h| {
            let container = match workload(h.container.as_deref(), h.pod.as_deref(), "") {
                named if named.is_empty() => named,
                named => format!(" ({named})"),
            };
            format!(
                "{:>pid_width$}  {:<user_width$}  {}{container}",
                h.pid,
                h.user,
                printable(&h.command)
            )
        }),
    );
    if !complete {
        out.line(
            "",
            "(only your own processes: run as root to see every holder)",
        );
    }
}

/// `container ID` and `pod NAMESPACE/NAME`, when a holder says them, after `lead`; empty when it
/// says neither.
fn workload(container: Option<&str>, pod: Option<&str>, lead: &str) -> String {
    match (container, pod) {
        (Some(container), Some(pod)) => format!(
            "{lead}container {}, pod {}",
            printable(container),
            printable(pod)
        ),
        (Some(container), None) => format!("{lead}container {}", printable(container)),
        (None, Some(pod)) => format!("{lead}pod {}", printable(pod)),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lllqos::idle::IdleState;

    fn cpu(cpu: u32, online: bool, idle_states: Vec<IdleState>) -> Cpu {
        Cpu {
            cpu,
            online,
            resume_latency: Ok(ResumeLatency::Unconstrained),
            idle_states,
            idle_states_error: None,
        }
    }

    #[test]
    fn an_offline_cpu_is_said_offline_and_a_single_cpu_singular() {
        let machine = Machine {
            cpu_latency: Ok(None),
            holders: Vec::new(),
            holders_complete: true,
            driver: Some("haltpoll".into()),
            governor: Some("haltpoll".into()),
            cpus: vec![
                cpu(
                    0,
                    true,
                    vec![IdleState {
                        name: "POLL".into(),
                        exit_latency_us: 0,
                        disabled: false,
                    }],
                ),
                cpu(1, false, Vec::new()),
            ],
            registry: Ok(None),
            wakeup: None,
        };
        let text = render(&machine);
        assert!(text.contains("CPU 1: offline\n"), "{text}");
        assert!(!text.contains("no cpuidle driver"), "{text}");
        assert!(text.contains("CPU 0: POLL (0 us)"), "{text}");
    }
}
