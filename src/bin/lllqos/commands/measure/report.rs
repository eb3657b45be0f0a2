//! What a measurement reports: the `--json` document's types, and the human report rendered
//! from them.

use std::fmt::Write as _;

use serde::Serialize;

use super::histogram::{BUCKETS, Stats};
use super::residency::{CpuResidency, StateResidency};
use lllqos::CpuList;
use lllqos::lease::CPU_DMA_LATENCY;

/// One phase's result: the statistics of every sample, and where the CPUs slept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    #[serde(flatten)]
    pub stats: Stats,
    /// Where each CPU slept during the phase (empty without a cpuidle driver).
    pub idle_states: Vec<CpuResidency>,
}

/// One CPU's loop under `--smp`: its statistics in each phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuStats {
    pub cpu: u32,
    pub without: Stats,
    pub with: Stats,
}

/// Everything a measurement reports: the `--json` document.
#[derive(Debug, Serialize)]
pub struct Report {
    pub without: Summary,
    pub with: Summary,
    /// `with / without` for each statistic.
    pub ratio: Ratios,
    pub settings: ReportSettings,
    /// With `--smp`: each CPU's loop, in CPU order (`without` and `with` above are their total).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_cpu: Option<Vec<CpuStats>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histograms>,
    /// The signal that ended the measurement early (`"SIGINT"`), when one did: the statistics
    /// cover what was measured until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted_by: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Ratios {
    pub min: Option<f64>,
    pub avg: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Histograms {
    /// `[microseconds, count]` for each non-empty bucket; `[10000, n]` counts later samples.
    pub without: Vec<(u64, u64)>,
    pub with: Vec<(u64, u64)>,
}

#[derive(Debug, Serialize)]
pub struct ReportSettings {
    pub duration_s: f64,
    pub interval_us: u32,
    /// "SCHED_FIFO" or "SCHED_OTHER".
    pub policy: &'static str,
    pub priority: Option<u8>,
    /// The thread's timer slack; SCHED_FIFO threads are not subject to it.
    pub timer_slack_ns: u64,
    /// The request of phase two (the strictest, per CPU); `null` when `--max-state` fell back to
    /// `none` and phase two ran without one.
    pub latency_us: Option<u32>,
    /// The CPUs of a per-CPU request (and of the loops' affinity), `null` for the global one.
    pub cpus: Option<String>,
    /// One loop per CPU (`--smp`).
    pub smp: bool,
    /// The global limit in force during phase one; `null` for no constraint.
    pub baseline_limit_us: Option<u32>,
    /// False when another process already held a request during phase one.
    pub baseline_clean: bool,
    pub baseline_note: Option<String>,
}

/// `CPU 1` or `CPUs 0-1`, for a report's cpulist.
pub fn describe_cpus(list: &str) -> String {
    list.parse::<CpuList>()
        .map_or_else(|_| format!("CPUs {list}"), |l| l.describe())
}

/// Phase two's request for people: `20 us on CPUs 0-1`, `0 us on /dev/cpu_dma_latency`, or
/// `no request` (`--max-state` fell back to `none`).
pub fn describe_request(s: &ReportSettings) -> String {
    match (s.latency_us, &s.cpus) {
        (None, None) => "no request".to_owned(),
        (None, Some(cpus)) => format!("no request on {}", describe_cpus(cpus)),
        (Some(us), Some(cpus)) => format!("{us} us on {}", describe_cpus(cpus)),
        (Some(us), None) => format!("{us} us on {CPU_DMA_LATENCY}"),
    }
}

/// The human report.
pub fn render(report: &Report) -> String {
    let s = &report.settings;
    let mut out = String::new();
    let policy = match s.priority {
        Some(p) => format!("SCHED_FIFO priority {p} (no timer slack)"),
        None => format!("SCHED_OTHER (timer slack {} us)", s.timer_slack_ns / 1000),
    };
    let pinned = if s.cpus.is_some() && !s.smp {
        " (the loop pinned there)"
    } else {
        ""
    };
    let request = format!("{}{pinned}", describe_request(s));
    let _ = writeln!(
        out,
        "lllqos measure: {} s per phase, interval {} us, {policy}",
        s.duration_s, s.interval_us
    );
    let _ = writeln!(out, "request in phase two: {request}");
    if let Some(per_cpu) = &report.per_cpu {
        let cpus =
            CpuList::new(per_cpu.iter().map(|c| c.cpu)).map_or_else(String::new, |l| l.describe());
        let _ = writeln!(out, "loops: one per CPU, each pinned to it: {cpus}");
    }
    if let Some(signal) = &report.interrupted_by {
        let _ = writeln!(
            out,
            "interrupted by {signal}: the figures cover what was measured until then"
        );
    }
    if let Some(note) = &s.baseline_note {
        let _ = writeln!(out, "\nWARNING: the baseline is not clean: {note}.\n");
    }
    let _ = writeln!(
        out,
        "{:<12}{:>12}{:>12}{:>10}",
        "", "without", "with", "ratio"
    );
    let (a, b, r) = (&report.without.stats, &report.with.stats, &report.ratio);
    let ratio = |r: Option<f64>| r.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into());
    let _ = writeln!(out, "{:<12}{:>12}{:>12}", "samples", a.samples, b.samples);
    for (name, x, y, q) in [
        ("min (us)", a.min_us as f64, b.min_us as f64, r.min),
        ("avg (us)", a.avg_us, b.avg_us, r.avg),
        ("p50 (us)", a.p50_us as f64, b.p50_us as f64, r.p50),
        ("p99 (us)", a.p99_us as f64, b.p99_us as f64, r.p99),
        ("max (us)", a.max_us as f64, b.max_us as f64, r.max),
    ] {
        let num = |v: f64| {
            if name.starts_with("avg") {
                format!("{v:.2}")
            } else {
                format!("{v:.0}")
            }
        };
        let _ = writeln!(
            out,
            "{name:<12}{:>12}{:>12}{:>10}",
            num(x),
            num(y),
            ratio(q)
        );
    }
    if let Some(per_cpu) = &report.per_cpu {
        render_per_cpu(&mut out, per_cpu, a, b);
    }
    render_idle(
        &mut out,
        &report.without.idle_states,
        &report.with.idle_states,
    );
    if let Some(h) = &report.histogram {
        let _ = writeln!(
            out,
            "\nhistogram (us: without with; {BUCKETS} = {BUCKETS} us or more)"
        );
        let mut rows: std::collections::BTreeMap<u64, (u64, u64)> = Default::default();
        for &(us, n) in &h.without {
            rows.entry(us).or_default().0 = n;
        }
        for &(us, n) in &h.with {
            rows.entry(us).or_default().1 = n;
        }
        for (us, (x, y)) in rows {
            let _ = writeln!(out, "{us:>6}{x:>12}{y:>12}");
        }
    }
    out
}

/// Each CPU's loop under `--smp`, and the total of all of them.
fn render_per_cpu(out: &mut String, per_cpu: &[CpuStats], without: &Stats, with: &Stats) {
    let _ = writeln!(
        out,
        "\n{:<8}{:>20}{:>20}{:>18}{:>18}",
        "per CPU", "samples", "avg (us)", "p99 (us)", "max (us)"
    );
    let _ = writeln!(
        out,
        "{:<8}{:>10}{:>10}{:>10}{:>10}{:>9}{:>9}{:>9}{:>9}",
        "", "without", "with", "without", "with", "without", "with", "without", "with"
    );
    let rows = (per_cpu.iter())
        .map(|c| (format!("cpu{}", c.cpu), &c.without, &c.with))
        .chain([("all".to_owned(), without, with)]);
    for (label, a, b) in rows {
        let _ = writeln!(
            out,
            "{label:<8}{:>10}{:>10}{:>10.2}{:>10.2}{:>9}{:>9}{:>9}{:>9}",
            a.samples, b.samples, a.avg_us, b.avg_us, a.p99_us, b.p99_us, a.max_us, b.max_us
        );
    }
}

/// Where the CPUs slept in each phase: the cause of the difference, or why there is none.
fn render_idle(out: &mut String, without: &[CpuResidency], with: &[CpuResidency]) {
    if without.is_empty() && with.is_empty() {
        let _ = writeln!(
            out,
            "\nidle states: none (no cpuidle driver): every idle CPU halts the same way, so a request cannot change how it wakes"
        );
        return;
    }
    let _ = writeln!(
        out,
        "\nidle states (share of the phase; entries)    without              with"
    );
    for cpu in without {
        let other = with.iter().find(|c| c.cpu == cpu.cpu);
        for state in &cpu.states {
            let then = other.and_then(|c| c.states.iter().find(|s| s.name == state.name));
            let cell = |s: Option<&StateResidency>| match s {
                Some(s) => format!("{:>6.1}% {:>10}", s.time_pct, s.entries),
                None => format!("{:>18}", "-"),
            };
            let label = format!(
                "cpu{} {} ({} us)",
                cpu.cpu, state.name, state.exit_latency_us
            );
            let _ = writeln!(out, "{label:<38}{}  {}", cell(Some(state)), cell(then));
        }
    }
}
