//! `--max-state` fallbacks: a latency, or `none`, where no name matches.

use super::*;

// --max-state fallbacks

#[test]
fn a_none_fallback_runs_the_command_without_a_request_and_warns_once() {
    let kernel = kernel!();
    for strict in [&[][..], &["--strict"][..]] {
        let output = lllqos(strict)
            .args(["--max-state", "NoSuchState,none", "sh", "-c"])
            .arg(format!("{READ_NODE}; exit 0"))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        assert_eq!(
            lines(&output),
            [
                kernel.baseline.to_string(),
                "latency=unset cpus=unset fd=unset".to_owned()
            ]
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("lllqos: warning: --max-state NoSuchState,none: ")
                && stderr.contains("no idle state 'NoSuchState'")
                && stderr.contains("no request on"),
            "{stderr}"
        );
    }
    // --quiet says nothing.
    lllqos(["-q", "--max-state", "NoSuchState,none", "true"])
        .assert()
        .success()
        .stderr("");
}

#[test]
fn under_a_none_fallback_the_exit_status_is_the_commands() {
    let _kernel = kernel!();
    for code in [0, 3] {
        let direct = Command::new("sh")
            .args(["-c", &format!("exit {code}")])
            .status()
            .unwrap();
        let wrapped = lllqos_std(["--max-state", "NoSuchState,none", "sh", "-c"])
            .arg(format!("exit {code}"))
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(wrapped.code(), direct.code());
    }
}

#[test]
fn a_latency_fallback_is_placed_where_no_name_matches() {
    let kernel = kernel!();
    let output = lllqos([
        "--max-state",
        "NoSuchState,Other,20us",
        "sh",
        "-c",
        READ_NODE,
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        lines(&output),
        [
            kernel.expect(20).to_string(),
            "latency=20 cpus=unset fd=unset".to_owned()
        ]
    );
    // A latency fallback is the request asked for: said with --verbose only.
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert_eq!(read_node(), kernel.baseline);
}

#[test]
fn per_cpu_fallbacks_place_the_latency_or_nothing_and_restore() {
    let kernel = kernel!();
    let cpu = crate::common::last_cpu();
    let before = crate::common::read_cpu(cpu);
    let script = format!(
        "cat {}; echo \"${{LLLQOS_CPUS-unset}}\"",
        crate::common::cpu_file(cpu).display()
    );
    let cpu_arg = cpu.to_string();
    lllqos([
        "--cpu",
        &cpu_arg,
        "--max-state",
        "NoSuchState,25us",
        "sh",
        "-c",
        &script,
    ])
    .assert()
    .success()
    .stdout(format!("25\n{cpu}\n"));
    assert_eq!(crate::common::read_cpu(cpu), before);
    lllqos([
        "--cpu",
        &cpu_arg,
        "--max-state",
        "NoSuchState,none",
        "sh",
        "-c",
        &script,
    ])
    .assert()
    .success()
    .stdout(format!("{before}\nunset\n"))
    .stderr(predicate::str::contains(format!("no request on CPU {cpu}")));
    assert_eq!(crate::common::read_cpu(cpu), before);
    assert_eq!(read_node(), kernel.baseline);
}

#[test]
fn a_hold_with_a_none_fallback_holds_nothing_until_sigterm() {
    let kernel = kernel!();
    let mut hold =
        Reaped::spawn(lllqos_std(["--max-state", "NoSuchState,none"]).stderr(Stdio::piped()));
    // The warning comes once nothing is to be placed; signals are blocked by then.
    let mut warning = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(hold.0.stderr.as_mut().unwrap()),
        &mut warning,
    )
    .unwrap();
    assert!(warning.contains("no request on"), "{warning}");
    wait_until("the hold to wait for a signal", || {
        crate::common::state(hold.pid()) == 'S'
    });
    assert_eq!(read_node(), kernel.baseline);
    hold.signal(Signal::SIGTERM);
    assert_eq!(hold.wait().code(), Some(0));
}

#[test]
fn measure_with_a_none_fallback_measures_phase_two_without_a_request() {
    let _kernel = kernel!();
    let output = lllqos([
        "measure",
        "--duration",
        "300ms",
        "--max-state",
        "NoSuchState,none",
        "--json",
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["settings"]["latency_us"], serde_json::Value::Null);
    assert!(report["with"]["samples"].as_u64().unwrap() > 0, "{report}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("warning: --max-state NoSuchState,none"),
        "{stderr}"
    );
}

#[test]
fn a_fallback_must_come_last_and_a_list_needs_a_name() {
    for list in ["none,C1", "C1,20us,C2", "20us", "C1,none,none"] {
        lllqos(["--max-state", list, "true"])
            .assert()
            .code(125)
            .stderr(predicate::str::contains(format!(
                "invalid state list '{list}'"
            )))
            .stderr(predicate::str::is_match("\\A[^\n]*\n\\z").unwrap());
    }
}
