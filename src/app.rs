//! What a command line does: parses it with [`crate::cli`], places the request with the library,
//! runs or holds with [`crate::run`], and turns every outcome into an [`ExitStatus`].
//!
//! Errors are printed here and only here, each on one line with the `lllqos: ` prefix; warnings
//! carry `lllqos: warning: ` and are silenced by `--quiet`.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result, bail};

use crate::cli::{Cli, HoldArgs, MeasureArgs, StatusArgs, Subcommand, TraceArgs};
use crate::exit::ExitStatus;
use crate::oserror::os_message;
use crate::request::{self, Chatter, Naming, Request};
use crate::run::{self, Mode, PidFd, Signals};
use crate::spawn::{self, EnvChange};
use lllqos::latency::Latency;
use lllqos::lease::{CPU_DMA_LATENCY, CPU_WAKEUP_LATENCY, Lease, LeaseError};
use lllqos::percpu::{CpuConstraint, CpuErrorKind, CpuLimits, Notice, ResumeLatency};

/// The environment variable that tells the command the request is in force, and its value in us.
pub const LATENCY_ENV: &str = "LLLQOS_LATENCY_US";
/// With `--cpu`: the CPUs constrained, as a cpulist.
pub const CPUS_ENV: &str = "LLLQOS_CPUS";
/// With `--pass-fd`: the number of the request's descriptor the command inherited.
pub const FD_ENV: &str = "LLLQOS_FD";

/// Writes a command's output to stdout. A reader that went away (`lllqos status | head -1`) ends
/// lllqos quietly by SIGPIPE, as any filter ends; another write error (a full disk) is one line on
/// stderr and status 125. Called only once nothing is held.
fn emit(text: &str) -> ExitStatus {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitStatus::Exited(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitStatus::Signaled(libc::SIGPIPE),
        Err(e) => {
            say!("lllqos: write error: {}", os_message(&e));
            ExitStatus::Failure
        }
    }
}

/// Runs lllqos with these arguments (the first is the program name) and returns how to exit.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitStatus {
    use clap::FromArgMatches;
    spawn::init_process();
    // The same definition the man page and completions are rendered from.
    let parsed = crate::cli::command()
        .try_get_matches_from(args)
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    match run(cli) {
        Ok(status) => status,
        Err(error) => {
            say!("lllqos: {error:#}");
            ExitStatus::Failure
        }
    }
}

/// Help and version go to stdout with status 0; every usage error is one line and status 125
/// (clap's own default, 2, would look like the command's status).
fn usage_error(error: clap::Error) -> ExitStatus {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => emit(&error.to_string()),
        _ => {
            say!("lllqos: {}", clap_message(&error.to_string()));
            ExitStatus::Failure
        }
    }
}

/// The message of a rendered clap error, without its `error: ` prefix and the tip, usage and
/// "For more information" sections that follow it after a blank line. The message quotes what the
/// user typed, which may hold newlines: `say!` shows those escaped, on the one line.
fn clap_message(rendered: &str) -> &str {
    let message = rendered.strip_prefix("error: ").unwrap_or(rendered);
    let end = ["\n\n  tip:", "\n\nUsage:", "\n\nFor more information"]
        .iter()
        .filter_map(|section| message.find(section))
        .min()
        .unwrap_or(message.len());
    message[..end].trim_end()
}

fn run(cli: Cli) -> Result<ExitStatus> {
    match cli.subcommand {
        None => wrap(&cli.hold),
        Some(Subcommand::Status(args)) => status(&args),
        Some(Subcommand::Measure(args)) => measure(&args),
        Some(Subcommand::Trace(args)) => trace(&args),
        Some(Subcommand::Recover) => recover(),
        Some(Subcommand::OciHook) => crate::ocihook::oci_hook(),
    }
}

/// `lllqos recover`: what it restored, one line each, on stdout.
fn recover() -> Result<ExitStatus> {
    let notices = lllqos::percpu::recover_with(&mut |waiting| say!("lllqos: {waiting}"))
        .context("recover")?;
    if notices.is_empty() {
        return Ok(emit("lllqos recover: nothing to recover\n"));
    }
    let lines: String = notices
        .iter()
        .map(|notice| format!("lllqos recover: {notice}\n"))
        .collect();
    Ok(emit(&lines))
}

/// `lllqos trace`: the log, until a signal or `--duration`.
fn trace(args: &TraceArgs) -> Result<ExitStatus> {
    crate::trace::trace(&crate::trace::Settings {
        duration: args.duration,
        pids: args.pid.clone(),
        commands: args.command.clone(),
        json: args.json,
    })
}

/// `lllqos measure`: both phases, then the report.
fn measure(args: &MeasureArgs) -> Result<ExitStatus> {
    let settings = crate::measure::Settings {
        duration: args.duration,
        interval_us: args.interval,
        priority: args.priority,
        request: request::resolve(
            args.latency,
            args.max_state.as_ref(),
            args.cpu.as_ref(),
            Chatter::Warnings,
            Naming::Options,
        )?,
        histogram: args.histogram,
        smp: args.smp,
    };
    let plot = args
        .plot
        .as_deref()
        .map(crate::plot::PlotFile::open)
        .transpose()?;
    let measured = crate::measure::measure(&settings)?;
    if let Some(plot) = plot {
        let svg = crate::plot::svg(&measured.report, &measured.histograms)
            .with_context(|| format!("--plot {}", plot.path().display()))?;
        plot.write(&svg)?;
    }
    let printed = if args.json {
        emit(&(serde_json::to_string_pretty(&measured.report)? + "\n"))
    } else {
        emit(&crate::measure::render(&measured.report))
    };
    // Interrupted: the partial report is out, and lllqos now dies of the signal (cyclictest too
    // prints its statistics on Ctrl-C).
    Ok(measured.interrupted.unwrap_or(printed))
}

/// `lllqos status [--json]`: always exits 0; what cannot be read is said in place of the value.
fn status(args: &StatusArgs) -> Result<ExitStatus> {
    let status = crate::status::collect();
    Ok(if args.json {
        emit(&(serde_json::to_string_pretty(&status)? + "\n"))
    } else {
        emit(&crate::status::render(&status))
    })
}

/// `lllqos [OPTIONS] [COMMAND...]`: place the request, run or hold, release.
fn wrap(args: &HoldArgs) -> Result<ExitStatus> {
    // Everything the user named is checked before anything is placed.
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
    let pids = args
        .pid
        .iter()
        .map(|&pid| {
            PidFd::open(pid)
                .map_err(|e| anyhow::anyhow!("--pid {pid}: {}", os_message(&e).to_lowercase()))
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(name) = &args.name {
        run::set_name(name);
    }
    let request = request::resolve(
        args.latency,
        args.max_state.as_ref(),
        args.cpu.as_ref(),
        if args.quiet {
            Chatter::Quiet
        } else if args.verbose {
            Chatter::Verbose
        } else {
            Chatter::Warnings
        },
        Naming::Options,
    )?;
    let mode = if args.command.is_empty() {
        Mode::Hold
    } else {
        Mode::Relay
    };
    // From here on no signal can interrupt lllqos before it has restored what it changes.
    let mut signals = Signals::block(mode).context("cannot block signals")?;
    let held = match &request {
        Request::PerCpu(limits) => place_per_cpu(args, limits)?,
        Request::Global(latency) => place_global(args, *latency)?,
        // --max-state fell back to `none` (and said so): the command runs, as --strict allows.
        Request::Nothing(_) => Held::Nothing,
    };
    if let Held::Interrupted = held {
        // A signal that ends lllqos arrived while it waited for the registry: nothing was placed.
        // A hold ends as that signal ends a hold; the command is not started, and lllqos ends as
        // the command would have.
        return match mode {
            Mode::Hold => run::hold(&signals, &[]).context("waiting failed"),
            Mode::Relay => {
                let ending = [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM];
                let signal = run::wait_for_signal(&signals, &ending).context("waiting failed")?;
                Ok(ExitStatus::Signaled(signal))
            }
        };
    }
    let status = if args.command.is_empty() {
        if !args.quiet && std::io::stderr().is_terminal() {
            announce_hold(&held, &pids);
        }
        run::notify_ready();
        run::hold(&signals, &pids).context("waiting failed")
    } else {
        let passed = if args.pass_fd {
            held.pass().context("--pass-fd")?
        } else {
            None
        };
        if args.descendants {
            run::become_subreaper().context("--descendants")?;
        }
        let started = spawn::spawn(
            &args.command,
            &held.environment(passed.as_ref()),
            signals.chld_was_ignored(),
        );
        // The command has its copy; lllqos's own descriptor holds the request.
        drop(passed);
        match started {
            Ok(child) => run::supervise(&mut signals, child, args.descendants)
                .context("waiting for the command failed"),
            Err(error) => {
                say!("lllqos: {error}");
                Ok(error.status())
            }
        }
    };
    let released = held.release(args);
    match status {
        // A release that failed leaves a CPU changed: the caller must know. The command's own
        // failure, when it failed, is what a caller would see without lllqos, and is kept.
        Ok(ExitStatus::Exited(0)) if !released => Ok(ExitStatus::Failure),
        status => status,
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
            match constraint.release_with(&mut |waiting| say!("lllqos: {waiting}")) {
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

/// Places per-CPU constraints, with the same strict and best-effort rules.
fn place_per_cpu(args: &HoldArgs, limits: &CpuLimits) -> Result<Held> {
    let cpus = limits.cpus();
    let on_wait = &mut |waiting: &str| {
        if !args.quiet {
            say!("lllqos: {waiting}");
        }
    };
    match CpuConstraint::acquire_each_with(limits, on_wait) {
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

/// A limit in force for people: `20 us`, or `no constraint`.
pub fn describe_limit(limit: Option<Latency>) -> String {
    limit.map_or_else(|| "no constraint".to_owned(), |l| l.to_string())
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
        " (run as root, or give a group access to the node with a udev rule: see lllqos(1), SECURITY)"
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
