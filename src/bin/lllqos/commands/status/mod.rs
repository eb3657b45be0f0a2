//! `lllqos status`: what is in force, who holds it, and what it does to idle states.
//!
//! Two views of one [`Machine`](crate::machine::Machine): [`text`], the summary for people, and the
//! library's JSON document (`lllqos::status::json`, a stable interface documented in docs/json.md,
//! which the Python package returns too). `status` always succeeds: what cannot be read is said in
//! place of the value.

pub mod text;

use anyhow::Result;
use lllqos::cli::StatusArgs;
use lllqos::status::json;

use crate::exit::ExitStatus;
use crate::output::emit;

/// `lllqos status [--json]`: always exits 0 (but for a write error).
pub fn status(args: &StatusArgs) -> Result<ExitStatus> {
    let machine = crate::machine::collect();
    Ok(if args.json {
        emit(&(json::Status::from(&machine).to_json() + "\n"))
    } else {
        emit(&text::render(&machine))
    })
}
