//! `--max-state NAME[,NAME...]`: limits named by idle state, placed on the real kernel and read back.

use crate::common::idle::{IdleTree, Source, State};
use crate::common::{lllqos, read_cpu};
use predicates::prelude::*;

/// A tree's states, the deepest with a latency of its own on each CPU (100 us on CPU 0, 133 on
/// CPU 1...): a state's global limit is its smallest latency over the CPUs, a CPU's its own.
fn sources() -> Vec<Source> {
    Source::both(IdleTree::lay_out(|cpu| {
        vec![
            State::new("POLL", 0),
            State::new("C1", 2),
            State::new("C1E", 10),
            State::new("C6", 100 + 33 * cpu),
        ]
    }))
}

const READ_NODE: &str = "od -An -td4 -N4 /dev/cpu_dma_latency; echo \"env=$LLLQOS_LATENCY_US\"";

#[test]
fn each_state_places_its_own_exit_latency() {
    let kernel = kernel!();
    for source in sources() {
        for name in source.names() {
            let us = source.global_latency(&name);
            let expected = format!(
                "{}\nenv={us}\n",
                kernel.expect(us as i32).to_string().trim()
            );
            let output = source
                .lllqos(["--max-state", &name, "sh", "-c", READ_NODE])
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{source}: --max-state {name}: {output:?}"
            );
            let stdout = String::from_utf8_lossy(&output.stdout);
            let normalized: String = stdout.lines().map(|l| l.trim().to_owned() + "\n").collect();
            assert_eq!(normalized, expected, "{source}: --max-state '{name}'");
        }
    }
}

#[test]
fn names_match_case_insensitively() {
    let kernel = kernel!();
    for source in sources() {
        // A name with letters, and of a state deeper than 0 us where there is one.
        let names = source.names();
        let name = (names.iter())
            .max_by_key(|n| source.global_latency(n))
            .unwrap();
        let us = source.global_latency(name);
        for variant in [name.to_uppercase(), name.to_lowercase()] {
            source
                .lllqos(["--max-state", &variant, "od", "-An", "-td4", "-N4"])
                .arg(crate::common::NODE)
                .assert()
                .success()
                .stdout(predicate::str::contains(
                    kernel.expect(us as i32).to_string(),
                ));
        }
    }
}

#[test]
fn the_first_name_this_machine_has_wins_and_v_names_it() {
    let kernel = kernel!();
    for source in sources() {
        let names = source.names();
        let name = names.last().unwrap();
        let us = source.global_latency(name);
        let list = format!("NoSuchStateHere,{name},{}", names[0]);
        source
            .lllqos(["-v", "--max-state", &list, "sh", "-c", READ_NODE])
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
}

#[test]
fn per_cpu_each_cpu_gets_its_own_states_latency_and_is_restored() {
    let _kernel = kernel!();
    for source in sources() {
        let (&cpu, list) = source.states.iter().next_back().unwrap();
        let before = read_cpu(cpu);
        for (name, us) in list {
            // 0 is written as "n/a" (zero tolerance); "0" would mean no constraint.
            let text = if *us == 0 {
                "n/a".to_owned()
            } else {
                us.to_string()
            };
            source
                .lllqos(["--cpu", &cpu.to_string(), "--max-state", name, "cat"])
                .arg(crate::common::cpu_file(cpu))
                .assert()
                .success()
                .stdout(format!("{text}\n"));
            assert_eq!(read_cpu(cpu), before, "{source}");
        }
    }
}

#[test]
fn an_unknown_state_lists_the_states_and_changes_nothing() {
    let kernel = kernel!();
    for source in sources() {
        let (&cpu, _) = source.states.iter().next_back().unwrap();
        let before = read_cpu(cpu);
        let marker = tempfile::tempdir().unwrap();
        let ran = marker.path().join("ran");
        for extra in [vec![], vec!["--cpu".to_owned(), cpu.to_string()]] {
            let mut listed = predicate::str::contains("no idle state 'C99'").boxed();
            for name in source.names() {
                listed = listed.and(predicate::str::contains(name)).boxed();
            }
            source
                .lllqos(extra)
                .args(["--max-state", "C99", "touch"])
                .arg(&ran)
                .assert()
                .code(125)
                .stderr(listed)
                .stderr(predicate::str::is_match("\\A[^\n]*\n\\z").unwrap());
            assert!(!ran.exists(), "{source}: the command ran");
            assert_eq!(read_cpu(cpu), before);
            assert_eq!(crate::common::read_node(), kernel.baseline);
        }
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
    let _kernel = kernel!();
    for source in sources() {
        source
            .lllqos(["measure", "--duration", "10s", "--max-state", "C99"])
            .timeout(std::time::Duration::from_secs(5))
            .assert()
            .code(125)
            .stderr(predicate::str::starts_with(
                "lllqos: --max-state C99: no idle state 'C99'",
            ));
    }
}

/// Without a cpuidle driver there are no states to name: an error that says so, and the command
/// does not run.
#[test]
fn without_idle_states_a_name_is_an_error_that_says_so() {
    let kernel = kernel!();
    let empty = tempfile::tempdir().unwrap();
    lllqos(["--max-state", "C1", "true"])
        .env("LLLQOS_SYSFS_CPU", empty.path())
        .assert()
        .code(125)
        .stderr(predicate::str::is_match("\\Alllqos: --max-state C1: [^\n]*\n\\z").unwrap());
    assert_eq!(crate::common::read_node(), kernel.baseline);
}
