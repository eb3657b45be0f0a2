//! The wrapper against the real kernel: the request's lifetime, the exit statuses, the signals.
//! One behaviour per test; every test that touches the node holds [`crate::common::Kernel`].

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Reaped, lllqos, lllqos_std, read_node, wait_for_node};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use predicates::prelude::*;

mod exit;
mod hold;
mod relay;
mod request;
mod start;

/// `script` run by sh in a process group of its own (as a script run from an interactive shell
/// is), with `$B` the lllqos binary, `$NODE` the node and `$W` empty or lllqos as a wrapper
/// (`$B -q --`); its stdout.
fn script(script: &str, wrapped: bool) -> String {
    let wrapper = if wrapped {
        format!("{} -q --", crate::common::bin().display())
    } else {
        String::new()
    };
    let out = Command::new("sh")
        .args(["-c", script])
        .env("B", crate::common::bin())
        .env("NODE", crate::common::NODE)
        .env("W", wrapper)
        .process_group(0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// In sh: `wait_for_node US` waits until the node reads US; `wait_bounded PID` waits up to 10 s
/// for PID to exit, then says it is still running and kills it, and prints `status N`.
const WAIT_FOR_NODE: &str = r#"wait_for_node() {
    i=0; until [ "$(od -An -td4 -N4 "$NODE" | tr -d ' ')" = "$1" ]; do
        [ $i -lt 1000 ] || { echo "the node never read $1"; return 1; }; sleep 0.01; i=$((i + 1))
    done
}
wait_bounded() {
    i=0; while kill -0 "$1" 2>/dev/null && [ $i -lt 1000 ]; do sleep 0.01; i=$((i + 1)); done
    kill -0 "$1" 2>/dev/null && { echo "still running"; kill -KILL "$1"; }
    wait "$1"; echo "status $?"
}"#;
