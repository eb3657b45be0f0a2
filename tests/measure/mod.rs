//! `lllqos measure`: short real runs (a fraction of a second per phase), their JSON, bad arguments.
//! The statistics themselves are unit-tested on known inputs in src/bin/lllqos/commands/measure/histogram.rs.

use std::os::unix::process::{CommandExt, ExitStatusExt};

use crate::common::{Missing, Reaped, lllqos, lllqos_std, read_cpu, wait_for_cpu, wait_for_node};
use nix::sys::signal::Signal;
use serde_json::Value;

mod loops;
mod report;

fn measure_json(args: &[&str]) -> Value {
    let out = lllqos(["measure", "--json"])
        .args(args)
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(
        out.stderr.is_empty(),
        "no progress display off a terminal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("measure --json is JSON")
}

fn check_phase(result: &Value, expected_samples: u64) {
    let get = |k: &str| {
        result[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {result}"))
    };
    let (min, p50, p99, max) = (get("min_us"), get("p50_us"), get("p99_us"), get("max_us"));
    assert!(min <= p50 && p50 <= p99 && p99 <= max, "{result}");
    let avg = result["avg_us"].as_f64().unwrap();
    assert!(min as f64 <= avg && avg <= max as f64 + 1.0, "{result}");
    let samples = get("samples");
    assert!(
        samples <= expected_samples && samples * 10 >= expected_samples * 7,
        "{samples} of {expected_samples}"
    );
}

/// The exit latency of this machine's deepest idle state, or what is missing when the kernel has
/// no cpuidle driver or only states that a 0 us request allows.
fn deep_states() -> Result<u32, Missing> {
    let deepest = lllqos::idle::all_states()
        .values()
        .flatten()
        .map(|s| s.exit_latency_us)
        .max();
    match deepest {
        Some(us) if us > 0 => Ok(us),
        _ => {
            let driver = std::fs::read_to_string("/sys/devices/system/cpu/cpuidle/current_driver")
                .unwrap_or_else(|_| "none".into());
            Err(Missing::Hardware(format!(
                "no idle state deeper than 0 us here (cpuidle driver: {})",
                driver.trim()
            )))
        }
    }
}
