//! Per-CPU constraints against the real sysfs files: encoding, every exit path, overlapping
//! holders, stale holders, other tools' changes, bad input, the registry's safety.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use crate::common::{
    REGISTRY, REGISTRY_DIR, Reaped, lllqos, lllqos_std, read_cpu, wait_for_cpu, write_cpu,
};
use nix::sys::signal::Signal;
use predicates::prelude::*;

use crate::common::{cpus, last_cpu as cpu};

mod holders;
mod registry;
mod scale;
mod values;

/// Creates the registry by hand, as a crash or another tool could have left it.
fn plant_registry(contents: &str) {
    std::fs::create_dir_all(REGISTRY_DIR).unwrap();
    std::fs::set_permissions(
        REGISTRY_DIR,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    std::fs::write(REGISTRY, contents).unwrap();
}

/// Starts a holder `lllqos --cpu LIST -l US` (no command) and waits until `cpu` reads `expect`.
fn holder(list: &str, us: u32, cpu: u32, expect: &str) -> Reaped {
    let child =
        Reaped::spawn(lllqos_std(["--cpu", list, "-l", &us.to_string()]).stderr(Stdio::piped()));
    wait_for_cpu(cpu, expect);
    child
}

/// Ends a holder with SIGTERM and returns its stderr.
fn stop(mut holder: Reaped) -> String {
    holder.signal(Signal::SIGTERM);
    assert_eq!(holder.wait().code(), Some(0));
    let mut err = String::new();
    std::io::Read::read_to_string(holder.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    err
}
