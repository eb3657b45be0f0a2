//! The wrapper: `lllqos [OPTIONS] [--] [COMMAND [ARGS]...]`, and the hold without a command.
//!
//! One order, whatever happens: everything the user named is checked; the signals are blocked
//! ([`crate::signals`]); the request is placed (the library's `Lease` or `CpuConstraint`); the
//! command is started as a direct exec would start it ([`spawn`]) and supervised until it is reaped
//! ([`supervise`]), or lllqos holds until a signal or the `--pid` processes end ([`hold`]); the
//! request is released the moment that happens; lllqos exits as the command did ([`ExitStatus`]).
//! The request is in force before the command's first instruction and gone when it is reaped.

pub mod hold;
pub mod sentinel;
pub mod spawn;
pub mod supervise;
mod tree;

use std::io::IsTerminal;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result, bail};
use lllqos::cli::HoldArgs;
use lllqos::internal::oserror::os_message;
use lllqos::internal::sigset::ENDING;
use lllqos::latency::Latency;
use lllqos::lease::{CPU_DMA_LATENCY, CPU_WAKEUP_LATENCY, Lease, LeaseError};
use lllqos::percpu::{CpuConstraint, CpuErrorKind, CpuLimits, Notice, ResumeLatency};

use crate::exit::ExitStatus;
use crate::output::describe_limit;
use crate::process::{self, PidFd};
use crate::request::{self, Chatter, Naming, Request};
use crate::signals::{Mode, Signals};
use spawn::EnvChange;

/// The environment variable that tells the command the request is in force, and its value in us.
pub const LATENCY_ENV: &str = "LLLQOS_LATENCY_US";
/// With `--cpu`: the CPUs constrained, as a cpulist.
pub const CPUS_ENV: &str = "LLLQOS_CPUS";
/// With `--pass-fd`: the number of the request's descriptor the command inherited.
pub const FD_ENV: &str = "LLLQOS_FD";

/// `lllqos [OPTIONS] [COMMAND...]`: place the request, run or hold, release.
pub fn wrap(args: &HoldArgs) -> Result<ExitStatus> {
    // Everything the user named is checked before anything is placed.
    let pids = check(args)?;
    if let Some(name) = &args.name {
        process::set_name(name);
    }
    let chatter = if args.quiet {
        Chatter::Quiet
    } else if args.verbose {
        Chatter::Verbose
    } else {
        Chatter::Warnings
    };
    let request = request::resolve(&args.request, chatter, Naming::Options)?;
    let mode = if args.command.is_empty() {
        Mode::Hold
    } else {
        Mode::Relay
    };
    // From here on no signal can interrupt lllqos before it has restored what it changes.
    let signals = Signals::block(mode).context("cannot block signals")?;
    let held = match &request {
        Request::PerCpu(limits) => place_per_cpu(args, limits)?,
        Request::Global(latency) => place_global(args, *latency)?,
        // --max-state fell back to `none` (and said so): the command runs, as --strict allows.
        Request::Nothing(_) => Held::Nothing,
    };
    if let Held::Interrupted = held {
        return interrupted(&signals, mode);
    }
    // The witness of group-wide signals, once the command has run (see `supervise`).
    let mut witness = None;
    let status = match mode {
        Mode::Hold => {
            if !args.quiet && std::io::stderr().is_terminal() {
                announce_hold(&held, &pids);
            }
            process::notify_ready();
            hold::hold(&signals, &pids).context("waiting failed")
        }
        Mode::Relay => run_command(args, &held, &signals).map(|(status, sentinel)| {
            witness = sentinel;
            status
        }),
    };
    // The witness goes first (killed and reaped: microseconds): a clone that had not yet run its
    // first instructions would still hold a copy of the request's descriptor, and the request
    // would outlive the command until it ran.
    drop(witness);
    let released = held.release(args);
    match status {
        // A release that failed leaves a CPU changed: the caller must know. The command's own
        // failure, when it failed, is what a caller would see without lllqos, and is kept.
        Ok(ExitStatus::Exited(0)) if !released => Ok(ExitStatus::Failure),
        status => status,
    }
}

/// The options that need a command, and the `--pid` processes (opened now: a pid that is not a
/// process is an error before anything is placed).
fn check(args: &HoldArgs) -> Result<Vec<PidFd>> {
    if args.command.is_empty() {
        if args.pass_fd {
            bail!("--pass-fd needs a COMMAND: a hold has no process to pass the descriptor to");
        }
        if args.descendants {
            bail!(
                "--descendants needs a COMMAND: a hold has no process whose descendants to wait for"
            );
        }
    }
    args.pid
        .iter()
        .map(|&pid| {
            PidFd::open(pid)
                .map_err(|e| anyhow::anyhow!("--pid {pid}: {}", os_message(&e).to_lowercase()))
        })
        .collect()
}

/// A signal that ends lllqos arrived before the command was started: while lllqos waited for the
/// registry (nothing was placed), or before the command was made (see [`spawn::Spawned`]). A hold
/// ends as that signal ends a hold; the command is not started, and lllqos ends as the command
/// would have.
fn interrupted(signals: &Signals, mode: Mode) -> Result<ExitStatus> {
    match mode {
        Mode::Hold => hold::hold(signals, &[]).context("waiting failed"),
        Mode::Relay => {
            let signal =
                (signals.wait_for(&ENDING.map(|(signal, _)| signal))).context("waiting failed")?;
            Ok(ExitStatus::Signaled(signal))
        }
    }
}

/// Starts the command with what is `held` and supervises it until it is reaped (with
/// `--descendants`, until what it left has exited too): its status, and the witness of group-wide
/// signals.
fn run_command(
    args: &HoldArgs,
    held: &Held,
    signals: &Signals,
) -> Result<(ExitStatus, Option<sentinel::Sentinel>)> {
    let passed = if args.pass_fd {
        held.pass().context("--pass-fd")?
    } else {
        None
    };
    if args.descendants {
        tree::become_subreaper().context("--descendants")?;
    }
    let started = spawn::spawn(
        &args.command,
        &held.environment(passed.as_ref()),
        signals.chld_was_ignored(),
    );
    // The command has its copy; lllqos's own descriptor holds the request.
    drop(passed);
    match started {
        Ok(spawn::Spawned::Running { child, early }) => {
            supervise::supervise(signals, child, early, args.descendants)
                .context("waiting for the command failed")
        }
        Ok(spawn::Spawned::Cancelled) => Ok((interrupted(signals, Mode::Relay)?, None)),
        Err(error) => {
            say!("lllqos: {error}");
            Ok((error.status(), None))
        }
    }
}

/// What lllqos placed, released by [`Held::release`] the moment the command is reaped.
enum Held {
    Global(Lease),
    PerCpu(CpuConstraint),
    Nothing,
    /// Nothing: an ending signal came while lllqos waited to place the request.
    Interrupted,
}

impl Held {
    /// For `--pass-fd`: a copy of the request's descriptor that the command inherits (not
    /// close-on-exec, 3 or above), or `None` when no global request is held. Closed once the
    /// command is started.
    fn pass(&self) -> Result<Option<OwnedFd>> {
        let Held::Global(lease) = self else {
            return Ok(None);
        };
        let Some(file) = lease.file() else {
            return Ok(None);
        };
        let fd = nix::fcntl::fcntl(file, nix::fcntl::FcntlArg::F_DUPFD(3))
            .context("cannot copy the request's descriptor")?;
        // SAFETY: fcntl just returned this new descriptor, owned by nothing else.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// `LLLQOS_LATENCY_US` (and `LLLQOS_CPUS` per CPU) when a request is in force, `LLLQOS_FD`
    /// when its descriptor is `passed`; each removed otherwise.
    fn environment(&self, passed: Option<&OwnedFd>) -> [EnvChange; 3] {
        let (latency, cpus) = match self {
            Held::Global(lease) => (Some(lease.requested()), None),
            // CPUs with limits of their own (--max-state per CPU): the strictest.
            Held::PerCpu(c) => (Some(c.latency()), Some(c.cpus().to_string())),
            Held::Nothing | Held::Interrupted => (None, None),
        };
        [
            (LATENCY_ENV, latency.map(|l| l.as_micros().to_string())),
            (CPUS_ENV, cpus),
            (FD_ENV, passed.map(|fd| fd.as_raw_fd().to_string())),
        ]
    }

    /// Releases; false when a per-CPU value could not be restored (the error is printed).
    fn release(self, args: &HoldArgs) -> bool {
        if let Held::PerCpu(constraint) = self {
            match constraint.release_with(&mut |waiting| say_waiting(args, waiting)) {
                Ok(notices) => report(args, &notices),
                Err(error) => {
                    say!("lllqos: {error:#}");
                    return false;
                }
            }
        }
        // A Lease is released by dropping it (closing the node cannot fail to release).
        true
    }
}

/// Places the global request; without `--strict`, a request that cannot be placed is a warning.
fn place_global(args: &HoldArgs, latency: Latency) -> Result<Held> {
    match Lease::acquire_on(&args.device, latency) {
        Ok(lease) => {
            if args.verbose {
                let limit = match lease.limit_in_force() {
                    Ok(limit) => describe_limit(limit),
                    Err(e) => format!("unreadable ({})", os_message(&e)),
                };
                say!(
                    "lllqos: requested {} on {}; limit in force: {limit}",
                    lease.requested(),
                    lease.path().display()
                );
            }
            Ok(Held::Global(lease))
        }
        Err(error) if args.strict => bail!("{error}{}", hint(&error)),
        Err(error) => {
            if !args.quiet {
                say!(
                    "lllqos: warning: {error}; running without a latency request{}",
                    hint(&error)
                );
            }
            Ok(Held::Nothing)
        }
    }
}

/// Says that lllqos waits for the registry's lock (and who holds it), unless `--quiet`.
fn say_waiting(args: &HoldArgs, waiting: &str) {
    if !args.quiet {
        say!("lllqos: {waiting}");
    }
}

/// Places per-CPU constraints, with the same strict and best-effort rules.
fn place_per_cpu(args: &HoldArgs, limits: &CpuLimits) -> Result<Held> {
    let cpus = limits.cpus();
    match CpuConstraint::acquire_each_with(limits, &mut |waiting| say_waiting(args, waiting)) {
        Err(error) if error.kind() == CpuErrorKind::Interrupted => Ok(Held::Interrupted),
        Ok(constraint) => {
            report(args, constraint.notices());
            if args.verbose {
                let values: Vec<String> = cpus
                    .cpus()
                    .iter()
                    .map(|&cpu| match ResumeLatency::of_cpu(cpu) {
                        Ok(value) => format!("cpu{cpu}={value}"),
                        Err(e) => format!("cpu{cpu} unreadable ({})", os_message(&e)),
                    })
                    .collect();
                say!(
                    "lllqos: requested {limits}; resume latency now {}",
                    values.join(" ")
                );
            }
            Ok(Held::PerCpu(constraint))
        }
        Err(error) if args.strict => {
            Err(anyhow::Error::new(error).context(format!("--cpu {cpus}")))
        }
        Err(error) => {
            if !args.quiet {
                say!("lllqos: warning: --cpu {cpus}: {error:#}; running without a latency request");
            }
            Ok(Held::Nothing)
        }
    }
}

/// Prints the per-CPU notices: warnings unless `--quiet`, the rest with `--verbose`.
fn report(args: &HoldArgs, notices: &[Notice]) {
    for notice in notices {
        if notice.is_warning() && !args.quiet {
            say!("lllqos: warning: {notice}");
        } else if !notice.is_warning() && args.verbose {
            say!("lllqos: {notice}");
        }
    }
}

/// The fix for a request that could not be placed, when there is one to suggest.
fn hint(error: &LeaseError) -> &'static str {
    let node = [CPU_DMA_LATENCY, CPU_WAKEUP_LATENCY]
        .iter()
        .any(|n| error.path() == std::path::Path::new(n));
    if error.is_permission() && node {
        " (run as root, or be a member of the group lllqos, which the udev rule 70-lllqos.rules gives the node: usermod -aG lllqos USER, then log in again; see lllqos(1), SECURITY)"
    } else if error.is_missing() && error.path() == std::path::Path::new(CPU_DMA_LATENCY) {
        if std::path::Path::new("/sys/class/misc/cpu_dma_latency").exists() {
            // The kernel has the device; this /dev does not show it.
            " (the kernel has the node but this /dev lacks it: in a container, pass it in, e.g. docker run --device /dev/cpu_dma_latency)"
        } else {
            " (this kernel has no PM QoS CPU latency node: it needs CONFIG_CPU_IDLE)"
        }
    } else {
        ""
    }
}

/// On a terminal, say once what is held and how to stop it.
fn announce_hold(held: &Held, pids: &[PidFd]) {
    let what = match held {
        Held::Global(lease) => format!(
            "holding {} on {}",
            lease.requested(),
            lease.path().display()
        ),
        Held::PerCpu(c) => format!("holding {}", c.limits()),
        Held::Nothing | Held::Interrupted => "holding no request".to_owned(),
    };
    let until = if pids.is_empty() {
        "press Ctrl-C or send SIGTERM to release".to_owned()
    } else {
        let list: Vec<String> = pids.iter().map(|p| p.pid().to_string()).collect();
        format!("until process {} exits, or Ctrl-C", list.join(", "))
    };
    say!("lllqos: {what}; {until}");
}
