//! `lllqos status`: what is in force, who holds it, and what it does to idle states.
//!
//! Two views of one [`Machine`]: [`text`], the summary for people, and [`json`], the `--json`
//! document (a stable interface, documented in docs/json.md). `status` always succeeds: what cannot
//! be read is said in place of the value.

pub mod json;
pub mod text;

use anyhow::Result;
use lllqos::cli::StatusArgs;

use crate::exit::ExitStatus;
use crate::machine::Machine;
use crate::output::emit;

/// `lllqos status [--json]`: always exits 0 (but for a write error).
pub fn status(args: &StatusArgs) -> Result<ExitStatus> {
    let machine = Machine::collect();
    Ok(if args.json {
        emit(&(serde_json::to_string_pretty(&json::Status::from(&machine))? + "\n"))
    } else {
        emit(&text::render(&machine))
    })
}
