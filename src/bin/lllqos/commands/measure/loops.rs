//! The measuring loops: one (where the scheduler puts it, or pinned to a per-CPU request's CPUs),
//! or with `--smp` one per CPU, each pinned there, all at the same priority. Each sleeps to its
//! next deadline ([`lllqos::Periodic`]: an absolute sleep, so deadlines do not drift) and records
//! how late it woke.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::Stop;
use super::histogram::Histogram;
use super::progress::Progress;
use lllqos::{CpuList, Periodic};

/// Where the loops run: one loop (pinned to a per-CPU request's CPUs, or where the scheduler puts
/// it), or with `--smp` one per CPU, each pinned there: the CPUs of a per-CPU request, or the
/// online CPUs lllqos may run on (`sched_getaffinity` leaves out offline ones; taskset narrows it).
pub fn places(smp: bool, cpus: Option<&CpuList>) -> Result<Vec<Option<u32>>> {
    if !smp {
        return Ok(vec![None]);
    }
    let cpus = match cpus {
        Some(cpus) => cpus.clone(),
        None => CpuList::affinity().context("cannot read the CPUs lllqos may run on")?,
    };
    Ok(cpus.cpus().iter().copied().map(Some).collect())
}

/// What each loop does in a phase.
#[derive(Debug, Clone, Copy)]
pub struct Phase<'a> {
    /// 1 (without the request) or 2 (with it), for the progress line.
    pub number: u8,
    pub duration: Duration,
    pub interval: Duration,
    /// SCHED_FIFO priority of every loop thread, or normal scheduling.
    pub priority: Option<u8>,
    pub progress: &'a Progress,
    pub stop: &'a Stop,
}

/// The stack of a loop's thread: it needs little, and under `mlockall` every byte is locked.
const LOOP_STACK: usize = 256 * 1024;

/// One phase of every loop, at once: the histogram of each, in the order of `places`. A single
/// unpinned loop runs on this thread; with `--smp` each runs on its own thread, pinned to its CPU
/// and at the same priority, and the first reports progress.
pub fn run(places: &[Option<u32>], phase: Phase) -> Result<Vec<Histogram>> {
    if let [None] = places {
        return Ok(vec![run_one(phase, true)]);
    }
    std::thread::scope(|scope| {
        let threads = (places.iter().enumerate())
            .map(|(i, &cpu)| {
                let name = cpu.map_or_else(|| "measure".into(), |cpu| format!("measure cpu{cpu}"));
                std::thread::Builder::new()
                    .name(name)
                    .stack_size(LOOP_STACK)
                    .spawn_scoped(scope, move || -> Result<Histogram> {
                        if let Some(cpu) = cpu {
                            pin(&[cpu])?;
                        }
                        if let Some(priority) = phase.priority {
                            set_fifo(priority)?;
                        }
                        Ok(run_one(phase, i == 0))
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

/// One loop for one phase; ends early, with what it measured, when a signal stops the measurement
/// (it notices within a period).
fn run_one(phase: Phase, reports_progress: bool) -> Histogram {
    let start = Instant::now();
    let end = start + phase.duration;
    let mut periodic = Periodic::new(phase.interval);
    let mut histogram = Histogram::default();
    let mut last_report = start;
    while periodic.deadline() <= end {
        let deadline = periodic.wait();
        let woke = Instant::now();
        if phase.stop.signal().is_some() {
            break;
        }
        histogram.record(woke.saturating_duration_since(deadline).as_nanos() as u64);
        if reports_progress && woke.duration_since(last_report) >= Duration::from_millis(100) {
            let left = end.saturating_duration_since(woke);
            phase.progress.update(phase.number, left);
            last_report = woke;
        }
    }
    histogram
}

/// All the loops' samples in one histogram.
pub fn total(histograms: &[Histogram]) -> Histogram {
    histograms
        .iter()
        .fold(Histogram::default(), |mut total, h| {
            total.merge(h);
            total
        })
}

/// Pins the calling thread to these CPUs.
pub fn pin(cpus: &[u32]) -> Result<()> {
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

/// Makes the calling thread SCHED_FIFO at `priority`.
pub fn set_fifo(priority: u8) -> Result<()> {
    crate::sched::set(libc::SCHED_FIFO, i32::from(priority)).map_err(|error| {
        anyhow::anyhow!(
            "cannot run at SCHED_FIFO priority {priority}: {}{}",
            lllqos::internal::oserror::os_message(&error),
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
