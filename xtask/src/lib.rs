//! Renders lllqos's man pages and shell completions from its clap definition
//! ([`cli::command`]), so that they can never describe options the binary does not have.
//!
//! `cargo xtask gen` writes them into `man/` and `completions/`, where they are committed (users
//! and packagers get them without building anything); a test fails when the committed files
//! differ from what this renders now. Nothing is generated at build time: build scripts must not
//! write into the source tree.
//!
//! [`man`]: clap_mangen's rendering of the options, plus the sections a command wrapper needs and
//! clap knows nothing about (exit status, signals, environment, files, examples, JSON keys).
//! [`completions`]: clap_complete's, plus completing COMMAND as a command line of its own.

mod completions;
mod man;

use std::path::PathBuf;

use clap_complete::{Generator, Shell};

/// The command line's one definition, which the `lllqos` binary parses (compiled once, in the
/// library, hidden from its documented API).
pub use lllqos::cli;

use lllqos::internal::sigset::{MAX_SIGNAL, NOT_RELAYED};

/// `every signal from 1 to 64, real-time signals included, except SIGKILL, SIGSTOP, SIGTTIN and
/// SIGTTOU`, from the list the binary relays by: the man page says it, and the README must.
pub fn relayed_signals() -> String {
    let names: Vec<&str> = NOT_RELAYED.iter().map(|&(_, name)| name).collect();
    let (last, rest) = names.split_last().map_or(("", &[][..]), |(l, r)| (*l, r));
    format!(
        "every signal from 1 to {MAX_SIGNAL}, real-time signals included, except {} and {last}",
        rest.join(", ")
    )
}

/// Every generated file: its path relative to the repository root, and its contents.
pub fn generate() -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let date = man::release_date()?;
    let mut files = vec![(PathBuf::from("man/lllqos.1"), man::main_page(&date)?)];
    for sub in built().get_subcommands() {
        let name = sub.get_name();
        files.push((
            PathBuf::from(format!("man/lllqos-{name}.1")),
            man::subcommand_page(name, &date)?,
        ));
    }
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        files.push((
            PathBuf::from("completions").join(shell.file_name("lllqos")),
            completions::render(shell),
        ));
    }
    Ok(files)
}

/// The repository root (the parent of this crate's directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The command line, built (defaults and derived settings filled in, as the binary sees it).
fn built() -> clap::Command {
    let mut command = cli::command();
    command.build();
    command
}
