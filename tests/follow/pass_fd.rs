//! `--pass-fd`: the command changes its own request.

use super::*;

// --pass-fd

#[test]
fn pass_fd_lets_the_command_change_the_request_in_force() {
    let kernel = kernel!();
    // Writes 12 as a native-endian s32 (this test runs on the machine it tests).
    let bytes: String = 12i32
        .to_ne_bytes()
        .iter()
        .map(|b| format!("\\{b:03o}"))
        .collect();
    let script = format!(
        "{READ_NODE}; printf '{bytes}' >&$LLLQOS_FD; od -An -td4 -N4 /dev/cpu_dma_latency | tr -d ' '"
    );
    let output = lllqos(["-l", "50", "--pass-fd", "--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let lines = lines(&output);
    assert_eq!(lines[0], kernel.expect(50).to_string());
    assert!(
        lines[1].starts_with("latency=50 cpus=unset fd="),
        "{lines:?}"
    );
    assert!(!lines[1].ends_with("fd=unset"), "{lines:?}");
    assert_eq!(lines[2], kernel.expect(12).to_string());
    assert_eq!(read_node(), kernel.baseline);
}

/// What docs/reference.md says the command may write, as the kernel takes it: a write of another
/// length is a hexadecimal string (`printf 12`: 18 us), -1 resets to no constraint, and another
/// negative value is ignored.
#[test]
fn pass_fd_writes_are_taken_as_the_reference_says() {
    let kernel = kernel!();
    let s32 = |value: i32| -> String {
        (value.to_ne_bytes().iter())
            .map(|b| format!("\\{b:03o}"))
            .collect()
    };
    let read = "od -An -td4 -N4 /dev/cpu_dma_latency | tr -d ' '";
    let script = format!(
        "printf 12 >&$LLLQOS_FD; {read}; printf '{minus_two}' >&$LLLQOS_FD; {read}; printf '{minus_one}' >&$LLLQOS_FD; {read}",
        minus_two = s32(-2),
        minus_one = s32(-1),
    );
    let output = lllqos(["-l", "50", "--pass-fd", "--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let expected = [
        kernel.expect(0x12).to_string(),
        kernel.expect(0x12).to_string(),
        kernel.baseline.to_string(),
    ];
    assert_eq!(lines(&output), expected);
    assert_eq!(read_node(), kernel.baseline);
}

#[test]
fn without_pass_fd_the_descriptor_is_not_inherited_and_lllqos_fd_is_unset() {
    let _kernel = kernel!();
    // What the command sees of the node among its descriptors, and the variable (set to a stale
    // value by whoever started lllqos): as a direct run sees them.
    let script = "ls -l /proc/self/fd/ | grep -c cpu_dma_latency; echo \"fd=${LLLQOS_FD-unset}\"";
    let direct = Command::new("sh")
        .args(["-c", script])
        .env_remove("LLLQOS_FD")
        .output()
        .unwrap();
    let wrapped = lllqos(["-l", "0", "--", "sh", "-c", script])
        .env("LLLQOS_FD", "3")
        .output()
        .unwrap();
    assert_eq!(lines(&direct), ["0", "fd=unset"]);
    assert_eq!(lines(&wrapped), lines(&direct));
}

#[test]
fn a_process_that_keeps_the_passed_descriptor_keeps_the_request() {
    let kernel = kernel!();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("kept");
    // The command leaves a process with the descriptor open and exits.
    let script = format!("sleep 60 & echo $! > {}", pid_file.display());
    // (Its output is not captured: the process left would keep the pipe open.)
    let status = lllqos_std(["-l", "31", "--pass-fd", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let kept = pid_in(&pid_file);
    let _reaped = crate::common::KillOnDrop(kept);
    assert_eq!(
        read_node(),
        kernel.expect(31),
        "the request ended with lllqos"
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(kept), Signal::SIGKILL).unwrap();
    crate::common::wait_for_node(kernel.baseline);
}

/// A request that could not be placed (no node here) has no descriptor to pass: the command runs
/// as it would without --pass-fd and a request, with neither variable set.
#[test]
fn pass_fd_without_a_request_in_force_passes_nothing() {
    require_program!("unshare", "util-linux");
    let script = "mount -t tmpfs tmpfs /dev && \"$B\" -l 5 --pass-fd -- sh -c \
                  'echo \"latency=${LLLQOS_LATENCY_US-unset} fd=${LLLQOS_FD-unset}\"'";
    let output = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("B", crate::common::bin())
        .env("LLLQOS_FD", "3")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(lines(&output), ["latency=unset fd=unset"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("running without a latency request"),
        "{stderr}"
    );
}

#[test]
fn pass_fd_with_cpu_is_a_usage_error_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    lllqos(["--pass-fd", "--cpu", "0", "touch"])
        .arg(&ran)
        .assert()
        .code(125)
        .stderr(predicate::str::contains(
            "'--pass-fd' cannot be used with '--cpu <LIST|auto>'",
        ))
        .stderr(predicate::str::is_match("\\A[^\n]*\n\\z").unwrap());
    assert!(!ran.exists());
}

#[test]
fn pass_fd_and_descendants_need_a_command() {
    for option in ["--pass-fd", "--descendants"] {
        lllqos(["-l", "0", option])
            .timeout(std::time::Duration::from_secs(5))
            .assert()
            .code(125)
            .stderr(predicate::str::starts_with(format!(
                "lllqos: {option} needs a COMMAND"
            )))
            .stderr(predicate::str::is_match("\\A[^\n]*\n\\z").unwrap());
    }
}
