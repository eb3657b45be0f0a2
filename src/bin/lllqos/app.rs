//! What a command line does: parses it with the one definition ([`lllqos::cli`]), runs
//! the wrapper or a subcommand, and turns every outcome into an [`ExitStatus`].
//!
//! Errors are printed here and only here, each on one line with the `lllqos: ` prefix; warnings
//! carry `lllqos: warning: ` and are silenced by `--quiet`.

use std::ffi::OsString;

use anyhow::{Result, bail};
use lllqos::cli::{Cli, Subcommand};
use lllqos::internal::oserror::os_message;
use lllqos::internal::privilege;

use crate::commands;
use crate::exit::ExitStatus;
use crate::output::emit;

/// Runs lllqos with these arguments (the first is the program name) and returns how to exit.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitStatus {
    use clap::FromArgMatches;
    crate::process::init_process();
    // A setuid or capability install works with the real user's rights from here on, but for the
    // request itself (see lllqos::internal::privilege).
    if let Err(error) = privilege::lower() {
        say!("lllqos: cannot give up privilege: {}", os_message(&error));
        return ExitStatus::Failure;
    }
    // The same definition the man page and completions are rendered from.
    let args: Vec<OsString> = args.into_iter().collect();
    let command = lllqos::cli::command();
    let parsed = command
        .clone()
        .try_get_matches_from(&args)
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(error) => return usage_error(error, &help_for(&command, &args)),
    };
    match run(cli) {
        Ok(status) => status,
        Err(error) => {
            say!("lllqos: {}", crate::output::describe_error(&error));
            ExitStatus::Failure
        }
    }
}

/// Help and version go to stdout with status 0; every usage error is one line and status 125
/// (clap's own default, 2, would look like the command's status), ending, as coreutils' and
/// util-linux's do, with where to read more: `--help` of the command or subcommand it is about.
fn usage_error(error: clap::Error, help: &str) -> ExitStatus {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => emit(&error.to_string()),
        _ => {
            say!(
                "lllqos: {} (try '{help} --help')",
                clap_message(&error.to_string())
            );
            ExitStatus::Failure
        }
    }
}

/// What a usage error is about: `lllqos`, or `lllqos measure` when the line names a subcommand
/// (which comes first: lllqos's options and its subcommands do not mix).
fn help_for(command: &clap::Command, args: &[OsString]) -> String {
    match args.get(1).and_then(|word| word.to_str()) {
        Some(word) if command.find_subcommand(word).is_some() => format!("lllqos {word}"),
        _ => "lllqos".to_owned(),
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
    refuse_under_privilege(cli.subcommand.as_ref())?;
    match cli.subcommand {
        None => crate::wrap::wrap(&cli.hold),
        Some(Subcommand::Status(args)) => commands::status::status(&args),
        Some(Subcommand::Measure(args)) => commands::measure::run(&args),
        Some(Subcommand::Trace(args)) => commands::trace::run(&args),
        Some(Subcommand::Metrics(args)) => commands::metrics::metrics(&args),
        Some(Subcommand::Recover) => commands::recover::recover(),
        Some(Subcommand::OciHook) => commands::oci_hook::oci_hook(),
        Some(Subcommand::Nri(args)) => commands::nri::run(&args),
    }
}

/// A setuid or capability install places requests and does nothing else with its privilege: the
/// subcommands that are about something else are root's, and refused there before they change
/// anything (docs/reference.md, "Privilege").
fn refuse_under_privilege(subcommand: Option<&Subcommand>) -> Result<()> {
    if !privilege::is_privileged() {
        return Ok(());
    }
    let (name, why) = match subcommand {
        Some(Subcommand::Trace(_)) => (
            "trace",
            "tracing every process's requests needs root: run it with sudo",
        ),
        Some(Subcommand::OciHook) => (
            "oci-hook",
            "runtimes run hooks as root, and the paths and processes of a container state are theirs to name",
        ),
        Some(Subcommand::Nri(_)) => (
            "nri",
            "a runtime's plugin runs as root, and the sockets it connects to are root's to name",
        ),
        Some(Subcommand::Recover) => (
            "recover",
            "it restores what other holders left: run it as root (the units' ExecStopPost= does), or let the next lllqos on those CPUs do it",
        ),
        _ => return Ok(()),
    };
    bail!(
        "{name}: refused in a setuid or file-capability install, whose privilege places requests and nothing else: {why}"
    )
}
