//! `lllqos measure`: wake-up latency without and with the request, side by side.
//!
//! The method is cyclictest's (and the Python package's abs-sleep example): a loop sleeps until an
//! absolute time on CLOCK_MONOTONIC (`clock_nanosleep` with `TIMER_ABSTIME`), reads the clock when it
//! wakes, and records how late it is. Absolute deadlines do not drift, so every sample measures one
//! wake-up: timer interrupt, idle-state exit, scheduling. Phase one runs with no request of
//! lllqos's own, phase two with it (global, or per CPU with the thread pinned to those CPUs).
//!
//! Samples go into a fixed-size [`Histogram`] of 1 us buckets, so memory stays constant however
//! long it runs; min, max and the average are exact, percentiles are to the microsecond (the
//! resolution cyclictest reports).
//!
//! Things that change the numbers are reported with them: the scheduling policy (SCHED_OTHER
//! threads get a timer slack, 50 us by default, that SCHED_FIFO threads do not), and any request
//! already in force during phase one, which makes the baseline not clean.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::mman::{MlockAllFlags, mlockall};
use nix::sys::signal::Signal;
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, ClockNanosleepFlags};
use serde::Serialize;

use crate::exit::ExitStatus;
use lllqos::cpulist::CpuList;
use lllqos::idle::{self, StateCounters};
use lllqos::latency::Latency;
use lllqos::lease::{CPU_DMA_LATENCY, Lease, read_limit};
use lllqos::percpu::{CpuConstraint, CpuLimits, ResumeLatency, read_cpu};

/// Buckets of 1 us; later samples count in `overflow` (and still in min, max and the average).
const BUCKETS: usize = 10_000;

/// Wake-up lateness, in a fixed amount of memory.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Box<[u64]>,
    overflow: u64,
    samples: u64,
    sum_ns: u128,
    min_ns: u64,
    max_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS].into_boxed_slice(),
            overflow: 0,
            samples: 0,
            sum_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
        }
    }
}

impl Histogram {
    /// Records one sample, in nanoseconds.
    pub fn record(&mut self, ns: u64) {
        match self.buckets.get_mut((ns / 1000) as usize) {
            Some(bucket) => *bucket += 1,
            None => self.overflow += 1,
        }
        self.samples += 1;
        self.sum_ns += u128::from(ns);
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// The smallest whole microsecond at or below which at least `fraction` of the samples lie.
    /// Samples beyond the buckets count as the maximum.
    pub fn percentile_us(&self, fraction: f64) -> u64 {
        if self.samples == 0 {
            return 0;
        }
        let rank = ((fraction * self.samples as f64).ceil() as u64).clamp(1, self.samples);
        let mut seen = 0;
        for (us, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return us as u64;
            }
        }
        self.max_ns / 1000
    }

    /// Adds another histogram's samples to this one (the total of several threads).
    pub fn merge(&mut self, other: &Histogram) {
        for (bucket, count) in self.buckets.iter_mut().zip(&other.buckets) {
            *bucket += count;
        }
        self.overflow += other.overflow;
        self.samples += other.samples;
        self.sum_ns += other.sum_ns;
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// The statistics the output shows.
    pub fn stats(&self) -> Stats {
        let empty = self.samples == 0;
        Stats {
            samples: self.samples,
            min_us: if empty { 0 } else { self.min_ns / 1000 },
            avg_us: if empty {
                0.0
            } else {
                (self.sum_ns as f64 / self.samples as f64 / 1000.0 * 100.0).round() / 100.0
            },
            p50_us: self.percentile_us(0.50),
            p99_us: self.percentile_us(0.99),
            max_us: self.max_ns / 1000,
        }
    }

    /// Non-empty buckets as (microseconds, count), then the overflow as (`BUCKETS`, count).
    pub fn counts(&self) -> Vec<(u64, u64)> {
        let mut counts: Vec<(u64, u64)> = (self.buckets.iter().enumerate())
            .filter(|(_, c)| **c > 0)
            .map(|(us, c)| (us as u64, *c))
            .collect();
        if self.overflow > 0 {
            counts.push((BUCKETS as u64, self.overflow));
        }
        counts
    }
}

/// One phase's statistics, of one loop or of all: keys of the `--json` output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub samples: u64,
    pub min_us: u64,
    pub avg_us: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

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

/// One CPU's idle-state residency over a phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuResidency {
    pub cpu: u32,
    pub states: Vec<StateResidency>,
}

/// One idle state's share of a phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateResidency {
    pub name: String,
    pub exit_latency_us: u32,
    /// Percent of the phase's time spent in the state, to 0.1.
    pub time_pct: f64,
    /// Times the state was entered during the phase.
    pub entries: u64,
}

/// The idle-state counters of every CPU, and when they were read (monotonic, ns).
#[derive(Debug, Clone)]
struct IdleSnapshot {
    at_ns: i128,
    cpus: Vec<(u32, Vec<StateCounters>)>,
}

impl IdleSnapshot {
    fn take() -> IdleSnapshot {
        IdleSnapshot {
            at_ns: now(),
            cpus: lllqos::cpulist::listed_cpus()
                .into_iter()
                .map(|cpu| (cpu, idle::cpu_counters(cpu)))
                .filter(|(_, states)| !states.is_empty())
                .collect(),
        }
    }
}

/// The residency between two snapshots: for each CPU and state of `after` that `before` has too
/// (same name, in the same place), the time and entries between them. The phase's length is the
/// time between the snapshots; a counter that went backwards (a CPU taken offline and back) counts
/// zero.
fn residency(before: &IdleSnapshot, after: &IdleSnapshot) -> Vec<CpuResidency> {
    let elapsed_us = ((after.at_ns - before.at_ns) / 1000).max(1) as f64;
    after
        .cpus
        .iter()
        .filter_map(|(cpu, states)| {
            let earlier = &before.cpus.iter().find(|(c, _)| c == cpu)?.1;
            let states = states
                .iter()
                .zip(earlier)
                .filter(|(now, then)| now.name == then.name)
                .map(|(now, then)| {
                    let time_us = now.time_us.saturating_sub(then.time_us) as f64;
                    StateResidency {
                        name: now.name.clone(),
                        exit_latency_us: now.exit_latency_us,
                        time_pct: time_us / elapsed_us * 100.0,
                        entries: now.entries.saturating_sub(then.entries),
                    }
                })
                .collect();
            Some(CpuResidency {
                cpu: *cpu,
                states: within_the_phase(states),
            })
        })
        .collect()
}

/// Shares of a phase, rounded to 0.1, whose total is at most 100%. The kernel counts a stay in an
/// idle state when the CPU leaves it, so a CPU idle when the phase began has that whole stay
/// counted in the phase, from before it began: the shares are scaled down to what the phase can
/// hold.
fn within_the_phase(mut states: Vec<StateResidency>) -> Vec<StateResidency> {
    let total: f64 = states.iter().map(|s| s.time_pct).sum();
    let scale = if total > 100.0 { 100.0 / total } else { 1.0 };
    for state in &mut states {
        state.time_pct = ((state.time_pct * scale * 10.0).round() / 10.0).min(100.0);
    }
    states
}

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
    fn cpus(&self) -> Option<&CpuList> {
        match self {
            Request::Global(_) => None,
            Request::PerCpu(limits) => Some(limits.cpus()),
        }
    }

    /// The limit, or the strictest of the per-CPU ones.
    fn latency(&self) -> Latency {
        match self {
            Request::Global(latency) => *latency,
            Request::PerCpu(limits) => limits.strictest(),
        }
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Length of each phase.
    pub duration: Duration,
    /// Period of the loop, in microseconds.
    pub interval_us: u32,
    /// SCHED_FIFO priority, or normal scheduling.
    pub priority: Option<u8>,
    /// The request of phase two; a per-CPU one pins the thread to its CPUs.
    pub request: Request,
    /// Print the histograms.
    pub histogram: bool,
    /// One loop per CPU, each pinned to its CPU (`--smp`): those of a per-CPU request, or every
    /// online CPU lllqos may run on.
    pub smp: bool,
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
    pub latency_us: u32,
    /// The CPUs of a per-CPU request (and of the loops' affinity), `null` for the global one.
    pub cpus: Option<String>,
    /// One loop per CPU (`--smp`).
    pub smp: bool,
    /// The global limit in force during phase one; `2000000000` when nobody held a request.
    pub baseline_limit_us: Option<u32>,
    /// False when another process already held a request during phase one.
    pub baseline_clean: bool,
    pub baseline_note: Option<String>,
}

/// The catchable signals whose default action ends a process (the synchronous faults excepted, and
/// SIGABRT, which is lllqos's own abort). Each ends a measurement early: the loop notices, the
/// request is released (a per-CPU value restored), what was measured is reported, and lllqos then
/// dies of the signal, as cyclictest reports its statistics on Ctrl-C.
const ENDING: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGTERM,
    Signal::SIGSTKFLT,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGIO,
    Signal::SIGPWR,
];

/// A measurement: the report, and the signal that ended it early, if one did (then the report
/// holds what was measured until then; the caller prints it and dies of the signal).
#[derive(Debug)]
pub struct Measured {
    pub report: Report,
    /// Both phases' histograms (in the report too with `--histogram`).
    pub histograms: Histograms,
    pub interrupted: Option<ExitStatus>,
}

/// Runs both phases, or as much of them as a signal (see [`ENDING`]) lets run.
pub fn measure(settings: &Settings) -> Result<Measured> {
    // Catch the signals that would end a measurement: the loop notices the flag when its sleep is
    // interrupted, and releases the request (a per-CPU value must be restored) before dying.
    // A signal ignored at start (a background job of a script) stays ignored, but SIGINT and
    // SIGTERM, which always end a measurement, as they end a hold (see run::ALWAYS_END).
    let caught = Arc::new(AtomicUsize::new(0));
    for &signal in ENDING {
        let signal_number = signal as i32;
        if crate::run::ALWAYS_END.contains(&signal_number)
            || !crate::sigset::is_ignored(signal_number)
        {
            signal_hook::flag::register_usize(signal as i32, Arc::clone(&caught), signal as usize)?;
        }
    }
    if let Request::PerCpu(limits) = &settings.request {
        let cpus = limits.cpus();
        CpuConstraint::validate_each(limits).with_context(|| format!("--cpu {cpus}"))?;
        pin(cpus.cpus())?;
    }
    let loops = loops(settings)?;
    let policy = match settings.priority {
        Some(priority) => {
            set_fifo(priority)?;
            "SCHED_FIFO"
        }
        None => "SCHED_OTHER",
    };
    // Phase two must be possible before phase one is spent: a missing node or permission is
    // reported now, not after the first --duration.
    match settings.request.cpus() {
        Some(cpus) => CpuConstraint::check_access(cpus).with_context(|| format!("--cpu {cpus}"))?,
        None => lllqos::lease::check_access(CPU_DMA_LATENCY)
            .map_err(|e| anyhow::anyhow!("{e}: phase two needs the request (run as root)"))?,
    }
    // Page faults in the loop would be measured as latency. Failure (no CAP_IPC_LOCK, a low
    // RLIMIT_MEMLOCK) leaves memory unlocked, as cyclictest -m does: the measurement still runs.
    let _ = mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE);
    let timer_slack_ns = nix::sys::prctl::get_timerslack()
        .map(|s| s as u64)
        .unwrap_or(0);

    let progress = Progress::new(settings.duration);
    let before = baseline(settings, &loops);
    let without = measured_phase(|| run_loops(settings, &loops, &progress, 1, &caught))?;
    let after = baseline(settings, &loops);
    // Phase two: the request is placed, or the measurement stops here with the reason.
    let with = match &settings.request {
        _ if caught.load(Ordering::Relaxed) != 0 => {
            (vec![Histogram::default(); loops.len()], Vec::new())
        }
        Request::PerCpu(limits) => {
            let constraint = CpuConstraint::acquire_each(limits)
                .with_context(|| format!("--cpu {}", limits.cpus()));
            let constraint = constraint?;
            let with = measured_phase(|| run_loops(settings, &loops, &progress, 2, &caught));
            constraint.release()?;
            with?
        }
        Request::Global(latency) => {
            let lease = Lease::acquire(*latency)?;
            let with = measured_phase(|| run_loops(settings, &loops, &progress, 2, &caught));
            drop(lease);
            with?
        }
    };
    drop(progress);
    // What constrained the CPUs before or after phase one, each said once.
    let mut notes: Vec<String> = Vec::new();
    for note in before.1.into_iter().chain(after.1) {
        if !notes.contains(&note) {
            notes.push(note);
        }
    }
    let ((without, without_idle), (with, with_idle)) = (without, with);
    let per_cpu = settings.smp.then(|| {
        (loops.iter().zip(without.iter().zip(&with)))
            .map(|(&cpu, (without, with))| CpuStats {
                cpu: cpu.unwrap_or_default(),
                without: without.stats(),
                with: with.stats(),
            })
            .collect()
    });
    let (without, with) = (total(&without), total(&with));
    let histograms = Histograms {
        without: without.counts(),
        with: with.counts(),
    };
    let (a, b) = (without.stats(), with.stats());
    let ratio = |a: f64, b: f64| (a > 0.0).then(|| (b / a * 100.0).round() / 100.0);
    let report = Report {
        ratio: Ratios {
            min: ratio(a.min_us as f64, b.min_us as f64),
            avg: ratio(a.avg_us, b.avg_us),
            p50: ratio(a.p50_us as f64, b.p50_us as f64),
            p99: ratio(a.p99_us as f64, b.p99_us as f64),
            max: ratio(a.max_us as f64, b.max_us as f64),
        },
        without: Summary {
            stats: a,
            idle_states: without_idle,
        },
        with: Summary {
            stats: b,
            idle_states: with_idle,
        },
        per_cpu,
        settings: ReportSettings {
            duration_s: settings.duration.as_secs_f64(),
            interval_us: settings.interval_us,
            policy,
            priority: settings.priority,
            timer_slack_ns,
            latency_us: settings.request.latency().as_micros(),
            cpus: settings.request.cpus().map(ToString::to_string),
            smp: settings.smp,
            baseline_limit_us: before.0,
            baseline_clean: notes.is_empty(),
            baseline_note: (!notes.is_empty()).then(|| notes.join("; ")),
        },
        histogram: settings.histogram.then(|| histograms.clone()),
        interrupted_by: match caught.load(Ordering::Relaxed) as i32 {
            0 => None,
            signal => Some(signal_name(signal)),
        },
    };
    Ok(Measured {
        report,
        histograms,
        interrupted: interrupted(&caught),
    })
}

/// Runs a phase between two snapshots of the idle-state counters.
fn measured_phase(
    phase: impl FnOnce() -> Result<Vec<Histogram>>,
) -> Result<(Vec<Histogram>, Vec<CpuResidency>)> {
    wake_every_cpu();
    let before = IdleSnapshot::take();
    let histograms = phase()?;
    Ok((histograms, residency(&before, &IdleSnapshot::take())))
}

/// Runs this thread on every CPU in turn, then puts its affinity back. The kernel counts a stay in
/// an idle state when the CPU leaves it: a CPU asleep since before the phase (before its request)
/// would have that whole stay counted in the phase. Once this thread has run on a CPU, its
/// current stay began after, in this phase and under its request. (Placing a request wakes idle
/// CPUs too, but by an interrupt that may come after the snapshot.)
fn wake_every_cpu() {
    let me = nix::unistd::Pid::from_raw(0);
    let Ok(allowed) = nix::sched::sched_getaffinity(me) else {
        return;
    };
    for cpu in lllqos::cpulist::listed_cpus() {
        let mut one = nix::sched::CpuSet::new();
        if one.set(cpu as usize).is_ok() {
            // A CPU this thread may not run on (offline, outside a cpuset) is left as it is.
            let _ = nix::sched::sched_setaffinity(me, &one);
        }
    }
    let _ = nix::sched::sched_setaffinity(me, &allowed);
}

/// All the loops' samples in one histogram.
fn total(histograms: &[Histogram]) -> Histogram {
    histograms
        .iter()
        .fold(Histogram::default(), |mut total, h| {
            total.merge(h);
            total
        })
}

/// Where the loops run: one loop (pinned to a per-CPU request's CPUs, or where the scheduler puts
/// it), or with `--smp` one per CPU, each pinned there: the CPUs of a per-CPU request, or the
/// online CPUs lllqos may run on (`sched_getaffinity` leaves out offline ones; taskset narrows it).
fn loops(settings: &Settings) -> Result<Vec<Option<u32>>> {
    if !settings.smp {
        return Ok(vec![None]);
    }
    let cpus = match settings.request.cpus() {
        Some(cpus) => cpus.clone(),
        None => CpuList::affinity().context("cannot read the CPUs lllqos may run on")?,
    };
    Ok(cpus.cpus().iter().copied().map(Some).collect())
}

/// The stack of a loop's thread: it needs little, and under `mlockall` every byte is locked.
const LOOP_STACK: usize = 256 * 1024;

/// One phase of every loop, at once: the histogram of each, in the order of `loops`. A single
/// unpinned loop runs on this thread; with `--smp` each runs on its own thread, pinned to its CPU
/// and at the same priority, and the first reports progress.
fn run_loops(
    settings: &Settings,
    loops: &[Option<u32>],
    progress: &Progress,
    phase: u8,
    caught: &AtomicUsize,
) -> Result<Vec<Histogram>> {
    if let [None] = loops {
        return Ok(vec![run_phase(settings, Some(progress), phase, caught)]);
    }
    std::thread::scope(|scope| {
        let threads = (loops.iter().enumerate())
            .map(|(i, &cpu)| {
                let name = cpu.map_or_else(|| "measure".into(), |cpu| format!("measure cpu{cpu}"));
                std::thread::Builder::new()
                    .name(name)
                    .stack_size(LOOP_STACK)
                    .spawn_scoped(scope, move || -> Result<Histogram> {
                        if let Some(cpu) = cpu {
                            pin(&[cpu])?;
                        }
                        if let Some(priority) = settings.priority {
                            set_fifo(priority)?;
                        }
                        let progress = (i == 0).then_some(progress);
                        Ok(run_phase(settings, progress, phase, caught))
                    })
                    .context("cannot start a measuring thread")
            })
            .collect::<Result<Vec<_>>>()?;
        threads
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .map_err(|_| anyhow::anyhow!("a measuring thread panicked"))?
            })
            .collect()
    })
}

/// `SIGINT` for 2: how a signal is named in the report.
fn signal_name(signal: i32) -> String {
    Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned())
}

fn interrupted(caught: &AtomicUsize) -> Option<ExitStatus> {
    match caught.load(Ordering::Relaxed) as i32 {
        0 => None,
        signal => Some(ExitStatus::Signaled(signal)),
    }
}

/// The global limit now, and what already constrains the CPUs the loops run on: the global
/// request, and each of those CPUs' resume latency.
fn baseline(settings: &Settings, loops: &[Option<u32>]) -> (Option<u32>, Vec<String>) {
    let global = read_limit(CPU_DMA_LATENCY).ok().map(Latency::as_micros);
    let mut notes = Vec::new();
    if let Some(us) = global.filter(|&us| us != Latency::UNCONSTRAINED.as_micros()) {
        notes.push(format!(
            "another process holds a CPU latency request ({us} us in force)"
        ));
    }
    // The CPUs measured: a per-CPU request's (the loop is pinned there), the loops' with --smp,
    // or, for one unpinned loop, every CPU it may run on.
    let cpus: Vec<u32> = match (settings.request.cpus(), loops) {
        (Some(cpus), _) => cpus.cpus().to_vec(),
        (None, [None]) => CpuList::affinity().map_or_else(|_| Vec::new(), |l| l.cpus().to_vec()),
        (None, loops) => loops.iter().flatten().copied().collect(),
    };
    for cpu in cpus {
        let value = read_cpu(cpu).ok().and_then(|t| ResumeLatency::parse(&t));
        if let Some(value @ ResumeLatency::Limit(_)) = value {
            notes.push(format!(
                "cpu{cpu} already has a resume-latency constraint ({})",
                value.describe()
            ));
        }
    }
    (global, notes)
}

/// Pins the calling thread to these CPUs.
fn pin(cpus: &[u32]) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for &cpu in cpus {
        set.set(cpu as usize)
            .with_context(|| format!("CPU {cpu} cannot be pinned to"))?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).with_context(|| {
        let list = CpuList::new(cpus.iter().copied()).map_or_else(String::new, |l| l.describe());
        format!("cannot pin the measuring thread to {list}")
    })
}

fn set_fifo(priority: u8) -> Result<()> {
    crate::sched::set(libc::SCHED_FIFO, i32::from(priority)).map_err(|error| {
        anyhow::anyhow!(
            "cannot run at SCHED_FIFO priority {priority}: {}{}",
            lllqos::lease::os_message(&error),
            fifo_refused_because(&error, priority)
        )
    })
}

/// Why SCHED_FIFO may have been refused, for the error message. EPERM for root (or a holder of
/// CAP_SYS_NICE) is not a matter of rights: real-time time is not granted here.
fn fifo_refused_because(error: &std::io::Error, priority: u8) -> String {
    if error.raw_os_error() != Some(libc::EPERM) {
        return String::new();
    }
    if nix::unistd::geteuid().is_root() {
        " (root was refused real-time scheduling: a cgroup without real-time time, as in most \
         containers and under systemd's CPUAccounting, cpu.rt_runtime_us 0, or the kernel's \
         sched_rt_runtime_us; run it where real-time time is granted, or without --priority)"
            .to_owned()
    } else {
        format!(" (needs root, CAP_SYS_NICE, or an RLIMIT_RTPRIO of at least {priority})")
    }
}

/// The monotonic clock, in nanoseconds (it cannot fail on Linux; 0 if it ever did).
fn now() -> i128 {
    nix::time::clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |t| ns(&t))
}

fn ns(t: &TimeSpec) -> i128 {
    i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec())
}

/// One phase of the periodic loop; ends early, with what it measured, when a signal is caught.
fn run_phase(
    settings: &Settings,
    progress: Option<&Progress>,
    phase: u8,
    caught: &AtomicUsize,
) -> Histogram {
    let interval = i128::from(settings.interval_us) * 1000;
    let start = now();
    let end = start + settings.duration.as_nanos() as i128;
    let mut next = start + interval;
    let mut histogram = Histogram::default();
    let mut last_report = start;
    while next <= end {
        let deadline = TimeSpec::from_duration(Duration::from_nanos(next.max(0) as u64));
        let slept = nix::time::clock_nanosleep(
            ClockId::CLOCK_MONOTONIC,
            ClockNanosleepFlags::TIMER_ABSTIME,
            &deadline,
        );
        if caught.load(Ordering::Relaxed) != 0 {
            return histogram;
        }
        if slept == Err(Errno::EINTR) {
            continue;
        }
        let woke = now();
        histogram.record((woke - next).max(0) as u64);
        next += interval;
        if next <= woke {
            // Fell behind by whole periods (a very long stall): start again from now.
            next = woke + interval;
        }
        if let Some(progress) = progress.filter(|_| woke - last_report >= 100_000_000) {
            progress.update(phase, Duration::from_nanos((end - woke).max(0) as u64));
            last_report = woke;
        }
    }
    histogram
}

/// The progress line on stderr, only on a terminal.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(phase: Duration) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new(2 * phase.as_millis() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{msg:48} [{bar:30}]") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message("phase 1/2, without the request");
        Progress(Some(bar))
    }

    fn update(&self, phase: u8, left: Duration) {
        if let Some(bar) = &self.0 {
            let len = bar.length().unwrap_or(0);
            let done = len / 2 * u64::from(phase) - (left.as_millis() as u64).min(len / 2);
            bar.set_position(done);
            let what = if phase == 1 { "without" } else { "with" };
            bar.set_message(format!(
                "phase {phase}/2, {what} the request: {:.0} s left",
                left.as_secs_f64().ceil()
            ));
        }
    }
}

/// However the measurement ends, the line is cleared before anything else is printed.
impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// `CPU 1` or `CPUs 0-1`, for a report's cpulist.
pub fn describe_cpus(list: &str) -> String {
    list.parse::<CpuList>()
        .map_or_else(|_| format!("CPUs {list}"), |l| l.describe())
}

/// The human report.
pub fn render(report: &Report) -> String {
    let s = &report.settings;
    let mut out = String::new();
    let policy = match s.priority {
        Some(p) => format!("SCHED_FIFO priority {p} (no timer slack)"),
        None => format!("SCHED_OTHER (timer slack {} us)", s.timer_slack_ns / 1000),
    };
    let request = match &s.cpus {
        Some(cpus) if s.smp => format!("{} us on {}", s.latency_us, describe_cpus(cpus)),
        Some(cpus) => format!(
            "{} us on {} (the loop pinned there)",
            s.latency_us,
            describe_cpus(cpus)
        ),
        None => format!("{} us on {CPU_DMA_LATENCY}", s.latency_us),
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(at_ms: i128, states: &[(&str, u32, u64, u64)]) -> IdleSnapshot {
        IdleSnapshot {
            at_ns: at_ms * 1_000_000,
            cpus: vec![(
                1,
                states
                    .iter()
                    .map(|&(name, exit_latency_us, time_us, entries)| StateCounters {
                        name: name.into(),
                        exit_latency_us,
                        time_us,
                        entries,
                    })
                    .collect(),
            )],
        }
    }

    #[test]
    fn residency_is_the_share_of_the_time_between_snapshots() {
        let before = snapshot(0, &[("POLL", 0, 100, 5), ("C1", 1, 1_000, 10)]);
        let after = snapshot(2000, &[("POLL", 0, 200_100, 15), ("C1", 1, 1_801_000, 30)]);
        let r = residency(&before, &after);
        assert_eq!(r.len(), 1);
        let pct: Vec<(f64, u64)> = r[0]
            .states
            .iter()
            .map(|s| (s.time_pct, s.entries))
            .collect();
        assert_eq!(pct, [(10.0, 10), (90.0, 20)]);
        // A counter that went backwards counts zero; a CPU missing before is left out.
        // A stay that began before the phase is counted in it by the kernel: never above 100%.
        let long_stay = snapshot(2300, &[("POLL", 0, 200_100, 15), ("C1", 1, 2_800_000, 31)]);
        let shares: Vec<f64> = residency(&after, &long_stay)[0]
            .states
            .iter()
            .map(|s| s.time_pct)
            .collect();
        assert_eq!(shares, [0.0, 100.0]);
        let reset = snapshot(4000, &[("POLL", 0, 0, 0), ("C1", 1, 0, 0)]);
        assert_eq!(residency(&after, &reset)[0].states[1].time_pct, 0.0);
        let mut other = after.clone();
        other.cpus[0].0 = 7;
        assert!(residency(&before, &other).is_empty());
    }

    fn histogram(samples_us: &[u64]) -> Histogram {
        let mut h = Histogram::default();
        for &us in samples_us {
            h.record(us * 1000);
        }
        h
    }

    #[test]
    fn statistics_on_known_inputs() {
        let h = histogram(&(1..=100).collect::<Vec<_>>());
        let s = h.stats();
        assert_eq!((s.samples, s.min_us, s.max_us), (100, 1, 100));
        assert_eq!(s.avg_us, 50.5);
        assert_eq!(s.p50_us, 50);
        assert_eq!(s.p99_us, 99);
    }

    #[test]
    fn exact_min_max_average_in_nanoseconds() {
        let mut h = Histogram::default();
        for ns in [1500, 2500, 3500] {
            h.record(ns);
        }
        let s = h.stats();
        assert_eq!((s.min_us, s.max_us, s.avg_us), (1, 3, 2.5));
        assert_eq!(s.p50_us, 2);
    }

    #[test]
    fn samples_beyond_the_buckets_count_as_the_maximum() {
        let mut h = histogram(&[5; 98]);
        h.record(50_000_000);
        h.record(60_000_000);
        let s = h.stats();
        assert_eq!(s.p50_us, 5);
        assert_eq!(s.p99_us, 60_000);
        assert_eq!(s.max_us, 60_000);
        assert_eq!(h.counts(), vec![(5, 98), (BUCKETS as u64, 2)]);
    }

    #[test]
    fn empty_histogram_is_all_zero() {
        let s = Histogram::default().stats();
        assert_eq!((s.samples, s.min_us, s.p99_us, s.max_us), (0, 0, 0, 0));
    }

    #[test]
    fn memory_does_not_grow_with_samples() {
        let mut h = Histogram::default();
        for i in 0..1_000_000u64 {
            h.record(i % 20_000_000);
        }
        assert_eq!(h.buckets.len(), BUCKETS);
        assert_eq!(h.stats().samples, 1_000_000);
    }
}
