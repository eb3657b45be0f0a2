//! What a command line does: parses it with [`crate::cli`], places the request with the library,
//! runs or holds with [`crate::run`], and turns every outcome into an [`ExitStatus`].
//!
//! Errors are printed here and only here, each on one line with the `lllqos: ` prefix; warnings
//! carry `lllqos: warning: ` and are silenced by `--quiet`.

use std::ffi::OsString;
use std::io::IsTerminal;

use anyhow::{Context, Result, bail};

use crate::cli::{Cli, HoldArgs};
use crate::exit::ExitStatus;
use crate::lease::{CPU_DMA_LATENCY, Lease, LeaseError, os_message};
use crate::run::{self, Mode, PidFd, Signals};

/// The environment variable that tells the command the request is in force, and its value in us.
pub const LATENCY_ENV: &str = "LLLQOS_LATENCY_US";

/// Runs lllqos with these arguments (the first is the program name) and returns how to exit.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitStatus {
    use clap::Parser;
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    match run(cli) {
        Ok(status) => status,
        Err(error) => {
            eprintln!("lllqos: {error:#}");
            ExitStatus::Failure
        }
    }
}

/// Help and version go to stdout with status 0; every usage error is one line and status 125
/// (clap's own default, 2, would look like the command's status).
fn usage_error(error: clap::Error) -> ExitStatus {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            print!("{error}");
            ExitStatus::Exited(0)
        }
        _ => {
            let text = error.to_string();
            let line = text.lines().next().unwrap_or_default();
            eprintln!("lllqos: {}", line.strip_prefix("error: ").unwrap_or(line));
            ExitStatus::Failure
        }
    }
}

fn run(cli: Cli) -> Result<ExitStatus> {
    wrap(&cli.hold)
}

/// `lllqos [OPTIONS] [COMMAND...]`: place the request, run or hold, release.
fn wrap(args: &HoldArgs) -> Result<ExitStatus> {
    // Every --pid is checked before anything is placed.
    let pids = args
        .pid
        .iter()
        .map(|&pid| {
            PidFd::open(pid)
                .map_err(|e| anyhow::anyhow!("--pid {pid}: {}", os_message(&e).to_lowercase()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mode = if args.command.is_empty() {
        Mode::Hold
    } else {
        Mode::Relay
    };
    let signals = Signals::block(mode).context("cannot block signals")?;
    let lease = place(args)?;
    let status = if args.command.is_empty() {
        if !args.quiet && std::io::stderr().is_terminal() {
            announce_hold(lease.as_ref(), &pids);
        }
        run::hold(&signals, &pids).context("waiting failed")?
    } else {
        let env = [(
            LATENCY_ENV,
            lease.as_ref().map(|l| l.requested().as_us().to_string()),
        )];
        match run::spawn(&signals, &args.command, &env) {
            Ok(child) => {
                run::supervise(&signals, child).context("waiting for the command failed")?
            }
            Err(error) => {
                drop(lease);
                eprintln!("lllqos: {error}");
                return Ok(error.status());
            }
        }
    };
    drop(lease);
    Ok(status)
}

/// Places the global request; without `--strict`, a request that cannot be placed is a warning.
fn place(args: &HoldArgs) -> Result<Option<Lease>> {
    match Lease::acquire_on(&args.device, args.latency) {
        Ok(lease) => {
            if args.verbose {
                let limit = match lease.limit_in_force() {
                    Ok(limit) => describe_limit(limit.as_us()),
                    Err(e) => format!("unreadable ({e})"),
                };
                eprintln!(
                    "lllqos: requested {} on {}; limit in force: {limit}",
                    lease.requested(),
                    lease.path().display()
                );
            }
            Ok(Some(lease))
        }
        Err(error) if args.strict => bail!("{error}{}", hint(&error)),
        Err(error) => {
            if !args.quiet {
                eprintln!(
                    "lllqos: warning: {error}; running without a latency request{}",
                    hint(&error)
                );
            }
            Ok(None)
        }
    }
}

/// The fix for a request that could not be placed, when there is one to suggest.
fn hint(error: &LeaseError) -> &'static str {
    if error.is_permission() {
        " (run as root, or give a group access with a udev rule: see 'Non-root access' in the README)"
    } else if error.is_missing() && error.path() == std::path::Path::new(CPU_DMA_LATENCY) {
        " (this kernel has no PM QoS CPU latency node: it needs CONFIG_CPU_IDLE)"
    } else {
        ""
    }
}

/// `2000000000` is the kernel's "nobody asks for anything".
fn describe_limit(us: u32) -> String {
    if us == crate::Latency::UNCONSTRAINED.as_us() {
        "no constraint".to_owned()
    } else {
        format!("{us} us")
    }
}

/// On a terminal, say once what is held and how to stop it.
fn announce_hold(lease: Option<&Lease>, pids: &[PidFd]) {
    let what = match lease {
        Some(lease) => format!(
            "holding {} on {}",
            lease.requested(),
            lease.path().display()
        ),
        None => "holding nothing (the request could not be placed)".to_owned(),
    };
    let until = if pids.is_empty() {
        "press Ctrl-C or send SIGTERM to release".to_owned()
    } else {
        let list: Vec<String> = pids.iter().map(|p| p.pid().to_string()).collect();
        format!("until process {} exits, or Ctrl-C", list.join(", "))
    };
    eprintln!("lllqos: {what}; {until}");
}
