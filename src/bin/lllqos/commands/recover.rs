//! `lllqos recover`: restores what per-CPU holders that were killed (SIGKILL) left, through the
//! library's registry, and says what it did.

use anyhow::{Context, Result};

use crate::exit::ExitStatus;
use crate::output::emit;

/// `lllqos recover`: what it restored, one line each, on stdout.
pub fn recover() -> Result<ExitStatus> {
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
