//! What a command line does: parses it with the one definition ([`lllqos::cli`]), runs
//! the wrapper or a subcommand, and turns every outcome into an [`ExitStatus`].
//!
//! Errors are printed here and only here, each on one line with the `lllqos: ` prefix; warnings
//! carry `lllqos: warning: ` and are silenced by `--quiet`.

use std::ffi::OsString;

use anyhow::Result;
use lllqos::cli::{Cli, Subcommand};

use crate::commands;
use crate::exit::ExitStatus;
use crate::output::emit;

/// Runs lllqos with these arguments (the first is the program name) and returns how to exit.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitStatus {
    use clap::FromArgMatches;
    crate::process::init_process();
    // The same definition the man page and completions are rendered from.
    let parsed = lllqos::cli::command()
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
        None => crate::wrap::wrap(&cli.hold),
        Some(Subcommand::Status(args)) => commands::status::status(&args),
        Some(Subcommand::Measure(args)) => commands::measure::run(&args),
        Some(Subcommand::Trace(args)) => commands::trace::run(&args),
        Some(Subcommand::Recover) => commands::recover::recover(),
        Some(Subcommand::OciHook) => commands::oci_hook::oci_hook(),
    }
}
