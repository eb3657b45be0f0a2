//! The request: in force while the command runs, its value, its environment, and what lllqos says when it cannot be placed.

use super::*;

#[test]
fn request_is_in_force_while_the_command_runs_and_gone_after() {
    let kernel = kernel!();
    let out = lllqos([
        "-l",
        "42",
        "--",
        "od",
        "-An",
        "-td4",
        "-N4",
        crate::common::NODE,
    ])
    .assert()
    .success()
    .get_output()
    .stdout
    .clone();
    let seen: i32 = String::from_utf8(out).unwrap().trim().parse().unwrap();
    assert_eq!(seen, kernel.expect(42));
    assert_eq!(read_node(), kernel.baseline);
}

#[test]
fn units_are_converted_to_microseconds() {
    let kernel = kernel!();
    for (value, us) in [("0.5ms", 500), ("1500ns", 1), ("77us", 77), ("77µs", 77)] {
        lllqos([
            "-l",
            value,
            "--",
            "sh",
            "-c",
            "echo $LLLQOS_LATENCY_US; od -An -td4 -N4 /dev/cpu_dma_latency",
        ])
        .assert()
        .success()
        .stdout(predicate::str::is_match(format!(r"^{us}\s+{}\s*$", kernel.expect(us))).unwrap());
    }
}

#[test]
fn default_latency_is_zero() {
    let _kernel = kernel!();
    lllqos(["od", "-An", "-td4", "-N4", crate::common::NODE])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"^\s*0\s*$").unwrap());
}

#[test]
fn environment_says_the_request_is_in_force() {
    let _kernel = kernel!();
    lllqos(["-l", "33", "sh", "-c", "echo $LLLQOS_LATENCY_US"])
        .env("LLLQOS_LATENCY_US", "999")
        .assert()
        .success()
        .stdout("33\n");
}

#[test]
fn environment_variable_is_removed_when_the_request_is_not_placed() {
    lllqos([
        "--device",
        "/nonexistent/node",
        "sh",
        "-c",
        "echo ${LLLQOS_LATENCY_US-unset}",
    ])
    .env("LLLQOS_LATENCY_US", "999")
    .assert()
    .success()
    .stdout("unset\n")
    .stderr(predicate::str::contains(
        "warning: cannot open /nonexistent/node",
    ));
}

#[test]
fn bad_latency_values_exit_125_with_one_line_naming_the_value() {
    let marker = tempfile::tempdir().unwrap();
    let touched = marker.path().join("ran");
    for bad in [
        "-1",
        "abc",
        "",
        "1e3",
        "2147483648",
        "5xs",
        "0.5.1ms",
        "99999999999999999999999",
    ] {
        let assert = lllqos(["-l", bad, "touch"])
            .arg(&touched)
            .assert()
            .code(125);
        let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("lllqos: "), "{stderr}");
        assert!(stderr.contains(&format!("'{bad}'")), "{stderr}");
        assert!(!touched.exists(), "the command ran for {bad:?}");
    }
}

#[test]
fn the_command_and_its_descendants_do_not_inherit_the_request() {
    let kernel = kernel!();
    // The command leaves a grandchild behind; the request must end with the command anyway.
    let out = lllqos(["-l", "42", "sh", "-c", "sleep 5 >/dev/null 2>&1 & echo $!"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let grandchild: i32 = String::from_utf8(out).unwrap().trim().parse().unwrap();
    let _cleanup = crate::common::KillOnDrop(grandchild);
    assert!(std::path::Path::new(&format!("/proc/{grandchild}")).exists());
    assert_eq!(read_node(), kernel.baseline);
    for fd in std::fs::read_dir(format!("/proc/{grandchild}/fd")).unwrap() {
        let target = std::fs::read_link(fd.unwrap().path()).unwrap_or_default();
        assert_ne!(target, std::path::Path::new(crate::common::NODE));
    }
}

#[test]
fn missing_node_warns_once_and_runs_the_command() {
    lllqos(["--device", "/nonexistent/node", "echo", "ran"])
        .assert()
        .success()
        .stdout("ran\n")
        .stderr(predicate::str::is_match("^lllqos: warning: cannot open /nonexistent/node: No such file or directory; [^\n]*\n$").unwrap());
}

#[test]
fn strict_refuses_to_run_without_the_request() {
    let marker = tempfile::tempdir().unwrap();
    let touched = marker.path().join("ran");
    lllqos(["--strict", "--device", "/nonexistent/node", "touch"])
        .arg(&touched)
        .assert()
        .code(125)
        .stderr("lllqos: cannot open /nonexistent/node: No such file or directory\n");
    assert!(!touched.exists());
}

#[test]
fn quiet_drops_warnings() {
    lllqos(["-q", "--device", "/nonexistent/node", "true"])
        .assert()
        .success()
        .stderr("");
}

#[test]
fn device_must_be_a_pm_qos_node() {
    lllqos(["--strict", "--device", "/dev/null", "true"])
        .assert()
        .code(125)
        .stderr("lllqos: cannot use /dev/null: not a PM QoS device node\n");
    lllqos(["--strict", "--device", "/etc/hostname", "true"])
        .assert()
        .code(125)
        .stderr("lllqos: cannot use /etc/hostname: not a character device\n");
}

#[test]
fn verbose_reports_the_request_and_the_limit_in_force() {
    let kernel = kernel!();
    lllqos(["-v", "-l", "44", "true"])
        .assert()
        .success()
        .stderr(format!(
            "lllqos: requested 44 us on /dev/cpu_dma_latency; limit in force: {} us\n",
            kernel.expect(44)
        ));
}

#[test]
fn without_proc_the_global_request_is_placed_all_the_same() {
    let kernel = kernel!();
    require_program!("unshare", "util-linux");
    // The node is opened by its path, and checked on the descriptor: /proc is not needed (a
    // privileged lllqos reopens through /proc/self/fd, and says so when /proc is missing).
    let out = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "umount -l /proc && exec \"$0\" --strict -l 5 -- od -An -td4 -N4 /dev/cpu_dma_latency",
        ])
        .arg(crate::common::bin())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let seen: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(seen, kernel.expect(5));
}

#[test]
fn verbose_calls_a_request_above_the_kernel_default_no_constraint() {
    let kernel = kernel!();
    applicable!(
        kernel.baseline == crate::common::UNCONSTRAINED,
        "another process holds a request on this machine"
    );
    lllqos(["-v", "-l", "2147483647", "true"])
        .assert()
        .success()
        .stderr(predicate::str::contains("limit in force: no constraint"));
}

#[test]
fn a_name_must_be_printable_and_not_empty() {
    for name in ["", "a\u{1b}[2Jb"] {
        lllqos(["--name", name, "true"])
            .assert()
            .code(125)
            .stderr(predicate::str::starts_with("lllqos: invalid value"))
            .stderr(predicate::str::is_match("\\A[^\n]*\n\\z").unwrap());
    }
}

#[test]
fn a_named_lllqos_carries_the_name_and_its_command_does_not() {
    let _kernel = kernel!();
    // lllqos's own name (its parent, seen from the command), and the command's.
    lllqos([
        "--name",
        "named-holder",
        "--",
        "sh",
        "-c",
        "cat /proc/$PPID/comm /proc/self/comm",
    ])
    .assert()
    .success()
    .stdout("named-holder\ncat\n");
}
