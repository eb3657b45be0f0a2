//! `--max-state NAME[,NAME...]`: limits named by idle state, placed on the real kernel and read back.

use std::collections::BTreeMap;

use crate::common::{lllqos, read_cpu};
use predicates::prelude::*;

/// Takes the kernel, or skips (with a line saying why) where it or the idle states are missing.
macro_rules! kernel_with_states {
    () => {{
        let kernel = kernel!();
        let states = states();
        applicable!(
            !states.is_empty(),
            "this kernel lists no cpuidle states (no cpuidle driver)"
        );
        (kernel, states)
    }};
}

/// Every CPU's idle states as sysfs lists them: cpu -> [(name, exit latency us)].
fn states() -> BTreeMap<u32, Vec<(String, u32)>> {
    let mut all = BTreeMap::new();
    for cpu in crate::common::cpus() {
        let dir = format!("/sys/devices/system/cpu/cpu{cpu}/cpuidle");
        let mut list = Vec::new();
        for index in 0.. {
            let state = format!("{dir}/state{index}");
            let Ok(name) = std::fs::read_to_string(format!("{state}/name")) else {
                break;
            };
            let latency = std::fs::read_to_string(format!("{state}/latency")).unwrap();
            list.push((name.trim().to_owned(), latency.trim().parse().unwrap()));
        }
        if !list.is_empty() {
            all.insert(cpu, list);
        }
    }
    all
}

/// The smallest exit latency of the state called `name` over all CPUs.
fn global_latency(states: &BTreeMap<u32, Vec<(String, u32)>>, name: &str) -> u32 {
    states
        .values()
        .flatten()
        .filter(|(n, _)| n == name)
        .map(|(_, us)| *us)
        .min()
        .unwrap()
}

fn names(states: &BTreeMap<u32, Vec<(String, u32)>>) -> Vec<String> {
    let mut names: Vec<String> = states.values().flatten().map(|(n, _)| n.clone()).collect();
    names.sort();
    names.dedup();
    names
}

const READ_NODE: &str = "od -An -td4 -N4 /dev/cpu_dma_latency; echo \"env=$LLLQOS_LATENCY_US\"";

#[test]
fn each_state_places_its_own_exit_latency() {
    let (kernel, states) = kernel_with_states!();
    for name in names(&states) {
        let us = global_latency(&states, &name);
        let expected = format!(
            "{}\nenv={us}\n",
            kernel.expect(us as i32).to_string().trim()
        );
        let output = lllqos(["--max-state", &name, "sh", "-c", READ_NODE])
            .output()
            .unwrap();
        assert!(output.status.success(), "--max-state {name}: {output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let normalized: String = stdout.lines().map(|l| l.trim().to_owned() + "\n").collect();
        assert_eq!(normalized, expected, "--max-state '{name}'");
    }
}

#[test]
fn names_match_case_insensitively() {
    let (kernel, states) = kernel_with_states!();
    let name = names(&states).pop().unwrap();
    let us = global_latency(&states, &name);
    for variant in [name.to_uppercase(), name.to_lowercase()] {
        lllqos([
            "--max-state",
            &variant,
            "od",
            "-An",
            "-td4",
            "-N4",
            crate::common::NODE,
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            kernel.expect(us as i32).to_string(),
        ));
    }
}

#[test]
fn the_first_name_this_machine_has_wins_and_v_names_it() {
    let (kernel, states) = kernel_with_states!();
    let name = names(&states).pop().unwrap();
    let us = global_latency(&states, &name);
    let list = format!("NoSuchStateHere,{name},{}", names(&states)[0]);
    lllqos(["-v", "--max-state", &list, "sh", "-c", READ_NODE])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("env={us}")))
        .stdout(predicate::str::contains(
            kernel.expect(us as i32).to_string(),
        ))
        .stderr(predicate::str::contains(format!(
            "'{name}', exit latency {us} us"
        )));
}

#[test]
fn per_cpu_each_cpu_gets_its_own_states_latency_and_is_restored() {
    let (_kernel, states) = kernel_with_states!();
    let (&cpu, list) = states.iter().next_back().unwrap();
    let before = read_cpu(cpu);
    for (name, us) in list {
        // 0 is written as "n/a" (zero tolerance); "0" would mean no constraint.
        let text = if *us == 0 {
            "n/a".to_owned()
        } else {
            us.to_string()
        };
        lllqos(["--cpu", &cpu.to_string(), "--max-state", name, "cat"])
            .arg(crate::common::cpu_file(cpu))
            .assert()
            .success()
            .stdout(format!("{text}\n"));
        assert_eq!(read_cpu(cpu), before);
    }
}

#[test]
fn an_unknown_state_lists_the_states_and_changes_nothing() {
    let (kernel, states) = kernel_with_states!();
    let (&cpu, _) = states.iter().next_back().unwrap();
    let before = read_cpu(cpu);
    let marker = tempfile::tempdir().unwrap();
    let ran = marker.path().join("ran");
    for extra in [vec![], vec!["--cpu".to_owned(), cpu.to_string()]] {
        let mut listed = predicate::str::contains("no idle state 'C99'").boxed();
        for name in names(&states) {
            listed = listed.and(predicate::str::contains(name)).boxed();
        }
        lllqos(extra)
            .args(["--max-state", "C99", "touch"])
            .arg(&ran)
            .assert()
            .code(125)
            .stderr(listed)
            .stderr(predicate::str::is_match("\\A[^\n]*\n\\z").unwrap());
        assert!(!ran.exists(), "the command ran");
        assert_eq!(read_cpu(cpu), before);
        assert_eq!(crate::common::read_node(), kernel.baseline);
    }
}

#[test]
fn max_state_and_latency_together_are_a_usage_error() {
    lllqos(["--max-state", "POLL", "-l", "5", "true"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains("cannot be used with"));
    lllqos(["measure", "--max-state", "POLL", "-l", "5"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains("cannot be used with"));
}

#[test]
fn an_empty_name_is_a_usage_error() {
    lllqos(["--max-state", "C1,,C2", "true"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains("an empty name"));
}

#[test]
fn measure_refuses_an_unknown_state_before_measuring() {
    let (_kernel, _states) = kernel_with_states!();
    lllqos(["measure", "--duration", "10s", "--max-state", "C99"])
        .timeout(std::time::Duration::from_secs(5))
        .assert()
        .code(125)
        .stderr(predicate::str::starts_with(
            "lllqos: --max-state C99: no idle state 'C99'",
        ));
}
