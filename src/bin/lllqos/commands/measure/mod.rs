//! `lllqos measure`: wake-up latency without and with the request, side by side.
//!
//! The method is cyclictest's (and the Python package's abs-sleep example): a loop sleeps until an
//! absolute time on CLOCK_MONOTONIC ([`lllqos::Periodic`]), reads the clock when it wakes, and
//! records how late it is. Absolute deadlines do not drift, so every sample measures one wake-up:
//! timer interrupt, idle-state exit, scheduling. Phase one runs with no request of lllqos's own,
//! phase two with it (global, or per CPU with the loop pinned to those CPUs).
//!
//! The parts: [`loops`] (the measuring threads: where they run, their priority, the loop),
//! [`histogram`] (samples in fixed memory, exact statistics), [`residency`] (where the CPUs slept,
//! the cause of a difference), [`report`] (the JSON document and the human report), [`plot`] (the
//! chart of `--plot`) and [`progress`] (the line on a terminal). Here: the two phases, and what
//! ends them early.
//!
//! Things that change the numbers are reported with them: the scheduling policy (SCHED_OTHER
//! threads get a timer slack, 50 us by default, that SCHED_FIFO threads do not), and any request
//! already in force during phase one, which makes the baseline not clean.
//!
//! # Signals
//!
//! The same model as the wrapper's ([`crate::signals`]): the signals that end a process are blocked
//! before anything is placed, in every thread, and read from a signalfd. A watcher thread reads
//! them; the loops see its flag within one period, the request is released (a per-CPU value
//! restored), what was measured is reported, and lllqos then dies of the signal, as cyclictest
//! reports its statistics on Ctrl-C.

mod histogram;
mod loops;
mod plot;
mod progress;
mod report;
mod residency;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use lllqos::cli::MeasureArgs;
use lllqos::lease::{CPU_DMA_LATENCY, Lease, read_limit};
use lllqos::percpu::ResumeLatency;
use lllqos::{CpuConstraint, CpuList, Latency};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::mman::{MlockAllFlags, mlockall};
use nix::sys::signal::Signal;

use crate::exit::ExitStatus;
use crate::output::emit;
use crate::request::{self, Chatter, Naming, Request};
use crate::signals::{Mode, Signals};
use histogram::Histogram;
use report::{CpuStats, Histograms, Ratios, Report, ReportSettings, Summary, render};
use residency::{CpuResidency, IdleSnapshot};

/// `lllqos measure`: both phases, then the report.
pub fn run(args: &MeasureArgs) -> Result<ExitStatus> {
    let settings = Settings {
        duration: args.duration,
        interval_us: args.interval,
        priority: args.priority,
        request: request::resolve(&args.request, Chatter::Warnings, Naming::Options)?,
        histogram: args.histogram,
        smp: args.smp,
    };
    let plot = args.plot.as_deref().map(plot::PlotFile::open).transpose()?;
    let measured = measure(&settings)?;
    if let Some(plot) = plot {
        let svg = plot::svg(&measured.report, &measured.histograms)
            .with_context(|| format!("--plot {}", plot.path().display()))?;
        plot.write(&svg)?;
    }
    let printed = if args.json {
        emit(&(serde_json::to_string_pretty(&measured.report)? + "\n"))
    } else {
        emit(&render(&measured.report))
    };
    // Interrupted: the partial report is out, and lllqos now dies of the signal (cyclictest too
    // prints its statistics on Ctrl-C).
    Ok(measured.interrupted.unwrap_or(printed))
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
    /// The request of phase two; a per-CPU one pins the loop to its CPUs.
    pub request: Request,
    /// Print the histograms.
    pub histogram: bool,
    /// One loop per CPU, each pinned to its CPU (`--smp`): those of a per-CPU request, or every
    /// online CPU lllqos may run on.
    pub smp: bool,
}

/// A measurement: the report, and the signal that ended it early, if one did (then the report
/// holds what was measured until then; the caller prints it and dies of the signal).
#[derive(Debug)]
pub struct Measured {
    pub report: Report,
    /// Both phases' histograms (in the report too with `--histogram`).
    pub histograms: Histograms,
    pub interrupted: Option<ExitStatus>,
}

/// The signal that ends a measurement early, when one has come.
#[derive(Debug, Default)]
pub struct Stop(AtomicI32);

impl Stop {
    /// The signal, once one has come.
    pub fn signal(&self) -> Option<i32> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            signal => Some(signal),
        }
    }
}

/// Runs both phases, or as much of them as a signal lets run.
pub fn measure(settings: &Settings) -> Result<Measured> {
    // Blocked here, before any thread is made: the loops inherit the mask.
    let signals = Signals::block(Mode::Hold).context("cannot block signals")?;
    let stop = Stop::default();
    let (done, watching) = nix::unistd::pipe().context("cannot make a pipe")?;
    std::thread::scope(|scope| {
        scope.spawn(|| watch(signals, &stop, watching));
        let measured = phases(settings, &stop);
        // The watcher ends when the pipe's write end closes.
        drop(done);
        measured
    })
}

/// Reads the signalfd until an ending signal comes (then sets `stop`) or `done` closes.
fn watch(signals: Signals, stop: &Stop, done: OwnedFd) {
    loop {
        let mut fds = [
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(done.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        let [signal, finished] = fds.map(|fd| fd.any().unwrap_or(true));
        if signal && let Ok(Some(number)) = signals.ending_signal() {
            stop.0.store(number, Ordering::Relaxed);
            return;
        }
        if finished {
            return;
        }
    }
}

/// Both phases: set-up checked first, phase one, the request, phase two, the report.
fn phases(settings: &Settings, stop: &Stop) -> Result<Measured> {
    if let Some(cpus) = settings.request.cpus() {
        loops::pin(cpus.cpus())?;
    }
    let places = loops::places(settings.smp, settings.request.cpus())?;
    let policy = match settings.priority {
        Some(priority) => {
            loops::set_fifo(priority)?;
            "SCHED_FIFO"
        }
        None => "SCHED_OTHER",
    };
    // Phase two must be possible before phase one is spent: a missing node or permission is
    // reported now, not after the first --duration.
    match &settings.request {
        Request::PerCpu(limits) => {
            let cpus = limits.cpus();
            CpuConstraint::check_access(cpus).with_context(|| format!("--cpu {cpus}"))?;
        }
        Request::Global(_) => lllqos::lease::check_access(CPU_DMA_LATENCY)
            .map_err(|e| anyhow::anyhow!("{e}: phase two needs the request (run as root)"))?,
        Request::Nothing(_) => {}
    }
    // Page faults in the loop would be measured as latency. Failure (no CAP_IPC_LOCK, a low
    // RLIMIT_MEMLOCK) leaves memory unlocked, as cyclictest -m does: the measurement still runs.
    let _ = mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE);
    let timer_slack_ns = nix::sys::prctl::get_timerslack()
        .map(|s| s as u64)
        .unwrap_or(0);

    let progress = progress::Progress::new(settings.duration);
    let phase = |number| loops::Phase {
        number,
        duration: settings.duration,
        interval: Duration::from_micros(u64::from(settings.interval_us)),
        priority: settings.priority,
        progress: &progress,
        stop,
    };
    let (baseline_limit, mut notes) = baseline(settings, &places);
    let without = measured_phase(|| loops::run(&places, phase(1)))?;
    for note in baseline(settings, &places).1 {
        // What constrained the CPUs before or after phase one, each said once.
        if !notes.contains(&note) {
            notes.push(note);
        }
    }
    // Phase two: the request is placed, or the measurement stops here with the reason.
    let with = match &settings.request {
        _ if stop.signal().is_some() => (vec![Histogram::default(); places.len()], Vec::new()),
        Request::PerCpu(limits) => {
            let constraint = CpuConstraint::acquire_each(limits)
                .with_context(|| format!("--cpu {}", limits.cpus()))?;
            let with = measured_phase(|| loops::run(&places, phase(2)));
            constraint.release()?;
            with?
        }
        Request::Global(latency) => {
            let lease = Lease::acquire(*latency)?;
            let with = measured_phase(|| loops::run(&places, phase(2)));
            drop(lease);
            with?
        }
        // --max-state fell back to `none`: phase two measures the same machine again.
        Request::Nothing(_) => measured_phase(|| loops::run(&places, phase(2)))?,
    };
    drop(progress);
    let settings_report = ReportSettings {
        duration_s: settings.duration.as_secs_f64(),
        interval_us: settings.interval_us,
        policy,
        priority: settings.priority,
        timer_slack_ns,
        latency_us: settings.request.latency().map(Latency::as_micros),
        cpus: settings.request.cpus().map(ToString::to_string),
        smp: settings.smp,
        baseline_limit_us: baseline_limit,
        baseline_clean: notes.is_empty(),
        baseline_note: (!notes.is_empty()).then(|| notes.join("; ")),
    };
    Ok(reported(
        settings,
        &places,
        without,
        with,
        settings_report,
        stop,
    ))
}

/// The report of both phases' histograms (per loop) and residencies.
fn reported(
    settings: &Settings,
    places: &[Option<u32>],
    (without, without_idle): (Vec<Histogram>, Vec<CpuResidency>),
    (with, with_idle): (Vec<Histogram>, Vec<CpuResidency>),
    settings_report: ReportSettings,
    stop: &Stop,
) -> Measured {
    let per_cpu = settings.smp.then(|| {
        (places.iter().zip(without.iter().zip(&with)))
            .map(|(&cpu, (without, with))| CpuStats {
                cpu: cpu.unwrap_or_default(),
                without: without.stats(),
                with: with.stats(),
            })
            .collect()
    });
    let (without, with) = (loops::total(&without), loops::total(&with));
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
        settings: settings_report,
        histogram: settings.histogram.then(|| histograms.clone()),
        interrupted_by: stop.signal().map(signal_name),
    };
    Measured {
        report,
        histograms,
        interrupted: stop.signal().map(ExitStatus::Signaled),
    }
}

/// Runs a phase between two snapshots of the idle-state counters, every CPU woken first (see
/// [`residency::wake_every_cpu`]).
fn measured_phase(
    phase: impl FnOnce() -> Result<Vec<Histogram>>,
) -> Result<(Vec<Histogram>, Vec<CpuResidency>)> {
    residency::wake_every_cpu();
    let before = IdleSnapshot::take();
    let histograms = phase()?;
    Ok((
        histograms,
        residency::residency(&before, &IdleSnapshot::take()),
    ))
}

/// `SIGINT` for 2: how a signal is named in the report.
fn signal_name(signal: i32) -> String {
    Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned())
}

/// The global limit now (`None`: no constraint), and what already constrains the CPUs the loops
/// run on: the global request, and each of those CPUs' resume latency.
fn baseline(settings: &Settings, places: &[Option<u32>]) -> (Option<u32>, Vec<String>) {
    let global = read_limit(CPU_DMA_LATENCY).ok().flatten();
    let mut notes = Vec::new();
    if let Some(limit) = global {
        notes.push(format!(
            "another process holds a CPU latency request ({limit} in force)"
        ));
    }
    // The CPUs measured: a per-CPU request's (the loop is pinned there), the loops' with --smp,
    // or, for one unpinned loop, every CPU it may run on.
    let cpus: Vec<u32> = match (settings.request.cpus(), places) {
        (Some(cpus), _) => cpus.cpus().to_vec(),
        (None, [None]) => CpuList::affinity().map_or_else(|_| Vec::new(), |l| l.cpus().to_vec()),
        (None, places) => places.iter().flatten().copied().collect(),
    };
    for cpu in cpus {
        if let Ok(value @ ResumeLatency::Limit(_)) = ResumeLatency::of_cpu(cpu) {
            notes.push(format!(
                "cpu{cpu} already has a resume-latency constraint ({})",
                value.describe()
            ));
        }
    }
    (global.map(|l| l.as_micros()), notes)
}
