//! Requests that follow the work, against the real kernel: `--pass-fd` (the command changes its own
//! request), `--max-state` fallbacks (`C6,C1,20us`, `...,none`), and `--descendants` (a command
//! that leaves processes running). Each compares with what a direct run of the command does.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{Reaped, lllqos, lllqos_std, read_node, wait_until};
use nix::sys::signal::Signal;
use predicates::prelude::*;

mod descendants;
mod fallbacks;
mod pass_fd;

/// Prints the limit in force, then what the environment says.
const READ_NODE: &str = "od -An -td4 -N4 /dev/cpu_dma_latency | tr -d ' '; \
                         echo \"latency=${LLLQOS_LATENCY_US-unset} cpus=${LLLQOS_CPUS-unset} fd=${LLLQOS_FD-unset}\"";

/// The command's output, trimmed lines.
fn lines(output: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .collect()
}

/// Whether process `pid` exists (a zombie counts as gone).
fn alive(pid: i32) -> bool {
    !matches!(crate::common::state(pid), '?' | 'Z')
}

/// Reads a pid a shell wrote to `path`, once it is there.
fn pid_in(path: &Path) -> i32 {
    wait_until(&format!("{} to be written", path.display()), || {
        std::fs::read_to_string(path).is_ok_and(|t| t.ends_with('\n'))
    });
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}
