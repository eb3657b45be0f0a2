//! Requests that follow the work, against the real kernel: `--pass-fd` (the command changes its own
//! request), `--max-state` fallbacks (`C6,C1,20us`, `...,none`), and `--descendants` (a command
//! that leaves processes running). Each compares with what a direct run of the command does.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{Reaped, lllqos, lllqos_std, read_node, wait_until};
use nix::sys::signal::Signal;
use predicates::prelude::*;

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

// --descendants

/// The script of the descendants tests: leaves `sleep 60` running (its pid in `left`), writes its
/// own pid to `command`, and exits 3.
fn leaves_a_process(dir: &Path) -> String {
    format!(
        "sleep 60 & echo $! > {left}; echo $$ > {command}; exit 3",
        left = dir.join("left").display(),
        command = dir.join("command").display()
    )
}

#[test]
fn descendants_holds_until_the_last_process_left_has_exited() {
    let kernel = kernel!();
    let dir = tempfile::tempdir().unwrap();
    let mut lllqos = Reaped::spawn(&mut lllqos_std([
        "-l",
        "7",
        "--descendants",
        "--",
        "sh",
        "-c",
        &leaves_a_process(dir.path()),
    ]));
    let (command, left) = (
        pid_in(&dir.path().join("command")),
        pid_in(&dir.path().join("left")),
    );
    let _left = crate::common::KillOnDrop(left);
    wait_until("the command to exit", || !alive(command));
    assert!(
        lllqos.0.try_wait().unwrap().is_none(),
        "lllqos ended with the command"
    );
    assert_eq!(read_node(), kernel.expect(7));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(left), Signal::SIGKILL).unwrap();
    assert_eq!(lllqos.wait().code(), Some(3), "the command's own status");
    assert_eq!(read_node(), kernel.baseline);
}

#[test]
fn without_descendants_lllqos_ends_with_the_command_as_a_direct_run_does() {
    let kernel = kernel!();
    let dir = tempfile::tempdir().unwrap();
    let status = lllqos_std(["-l", "7", "--", "sh", "-c", &leaves_a_process(dir.path())])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let left = pid_in(&dir.path().join("left"));
    let _left = crate::common::KillOnDrop(left);
    assert_eq!(status.code(), Some(3));
    assert!(alive(left));
    assert_eq!(read_node(), kernel.baseline);
}

#[test]
fn descendants_relays_to_the_command_alone_while_it_runs() {
    let kernel = kernel!();
    let dir = tempfile::tempdir().unwrap();
    // The command outlives the signal (it notes it and waits on), so that what it left is seen
    // untouched while it runs.
    let got = dir.path().join("got");
    let script = format!(
        "trap 'echo term > {got}' TERM; sleep 60 & echo $! > {left}; echo $$ > {command}; wait; wait",
        got = got.display(),
        left = dir.path().join("left").display(),
        command = dir.path().join("command").display()
    );
    let mut lllqos = Reaped::spawn(&mut lllqos_std([
        "-l",
        "8",
        "--descendants",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    let left = pid_in(&dir.path().join("left"));
    let _left = crate::common::KillOnDrop(left);
    crate::common::wait_until_waiting(lllqos.pid());
    lllqos.signal(Signal::SIGTERM);
    wait_until("the command to note SIGTERM", || got.exists());
    assert!(alive(left), "the signal reached what the command left");
    assert_eq!(read_node(), kernel.expect(8));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(left), Signal::SIGKILL).unwrap();
    assert_eq!(
        lllqos.wait().code(),
        Some(0),
        "wait without a pid returns 0"
    );
    assert_eq!(read_node(), kernel.baseline);
}

/// The reproducer: `lllqos --descendants -- sh -c 'sleep 30 & sleep 30' &` then
/// `kill -TERM $!` from the script. SIGTERM ends the command; what it left gets it too once it is
/// gone, and lllqos ends (dying of the command's SIGTERM) with the request released, at once. A
/// process that ignores SIGTERM keeps the request, as documented, until it exits.
#[test]
fn under_descendants_a_signal_that_ends_the_command_ends_what_it_left() {
    let kernel = kernel!();
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "\"$B\" -l 60 --descendants -- sh -c 'sleep 30 & echo $! > {left}; (trap \"\" TERM; exec sleep 30) & echo $! > {stubborn}; sleep 30' &
         p=$!; while [ ! -s {stubborn} ]; do sleep 0.01; done; sleep 0.2; kill -TERM $p; wait $p; echo status=$?",
        left = dir.path().join("left").display(),
        stubborn = dir.path().join("stubborn").display()
    );
    let mut run = Reaped::spawn(
        Command::new("sh")
            .args(["-c", &script])
            .env("B", crate::common::bin())
            .stdout(Stdio::piped()),
    );
    let (left, stubborn) = (
        pid_in(&dir.path().join("left")),
        pid_in(&dir.path().join("stubborn")),
    );
    let _guards = (
        crate::common::KillOnDrop(left),
        crate::common::KillOnDrop(stubborn),
    );
    wait_until("SIGTERM to reach what the command left", || !alive(left));
    assert!(alive(stubborn), "a process that ignores SIGTERM lives on");
    assert_eq!(read_node(), kernel.expect(60), "and holds the request");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(stubborn), Signal::SIGKILL).unwrap();
    assert!(run.wait().success());
    let mut out = String::new();
    std::io::Read::read_to_string(run.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert_eq!(
        out,
        format!("status={}\n", 128 + libc::SIGTERM),
        "died of the command's SIGTERM"
    );
    assert_eq!(read_node(), kernel.baseline);
}

#[test]
fn descendants_relays_to_every_process_left_once_the_command_has_exited() {
    let kernel = kernel!();
    let dir = tempfile::tempdir().unwrap();
    // Two levels: a subshell that leaves its own sleep behind too.
    let script = format!(
        "(sleep 60 & echo $! > {deep}; wait) & {}",
        leaves_a_process(dir.path()),
        deep = dir.path().join("deep").display()
    );
    let mut lllqos = Reaped::spawn(&mut lllqos_std([
        "-l",
        "9",
        "--descendants",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    let command = pid_in(&dir.path().join("command"));
    let (left, deep) = (
        pid_in(&dir.path().join("left")),
        pid_in(&dir.path().join("deep")),
    );
    let _guards = (
        crate::common::KillOnDrop(left),
        crate::common::KillOnDrop(deep),
    );
    wait_until("the command to exit", || !alive(command));
    assert_eq!(read_node(), kernel.expect(9));
    lllqos.signal(Signal::SIGTERM);
    let status = lllqos.wait();
    assert_eq!(
        status.code(),
        Some(3),
        "the command's status, not the signal's: {status:?}"
    );
    assert!(!alive(left) && !alive(deep));
    assert_eq!(read_node(), kernel.baseline);
}

#[test]
fn descendants_reports_a_command_killed_by_a_signal_as_a_direct_run_does() {
    let kernel = kernel!();
    let status = lllqos_std([
        "-l",
        "3",
        "--descendants",
        "--",
        "sh",
        "-c",
        "kill -USR1 $$",
    ])
    .status()
    .unwrap();
    assert_eq!(status.signal(), Some(libc::SIGUSR1));
    assert_eq!(read_node(), kernel.baseline);
}
