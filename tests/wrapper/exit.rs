//! Exit statuses as env, nice and timeout give them: the command's own, 125, 126, 127, and death by the command's signal; output errors.

use super::*;

#[test]
fn usage_errors_exit_125_not_2() {
    lllqos(["--no-such-option"]).assert().code(125).stderr(
        predicate::str::starts_with("lllqos: ").and(predicate::str::contains("--no-such-option")),
    );
    lllqos(["--pid", "1", "true"]).assert().code(125);
    lllqos(["--pid", "0"]).assert().code(125);
    lllqos(["-q", "-v", "true"]).assert().code(125);
}

#[test]
fn help_and_version_exit_0() {
    lllqos(["--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:"));
    lllqos(["--version"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("lllqos "));
}

#[test]
fn command_options_are_not_parsed_as_lllqos_options() {
    lllqos([
        "--device",
        "/nonexistent",
        "-q",
        "echo",
        "-l",
        "5",
        "--strict",
        "-v",
    ])
    .assert()
    .success()
    .stdout("-l 5 --strict -v\n");
}

#[test]
fn a_command_named_like_a_subcommand_runs_after_double_dash() {
    lllqos(["-q", "--device", "/nonexistent", "--", "status"])
        .assert()
        .code(127)
        .stderr("lllqos: status: No such file or directory\n");
}

#[test]
fn exit_code_of_the_command_passes_through() {
    for code in [0, 1, 3, 124, 255] {
        lllqos([
            "-q",
            "--device",
            "/nonexistent",
            "sh",
            "-c",
            &format!("exit {code}"),
        ])
        .assert()
        .code(code);
    }
}

#[test]
fn command_not_found_exits_127() {
    lllqos(["-q", "--device", "/nonexistent", "no-such-command-lllqos"])
        .assert()
        .code(127)
        .stderr("lllqos: no-such-command-lllqos: No such file or directory\n");
}

#[test]
fn command_not_executable_exits_126() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-executable");
    std::fs::write(&file, "data").unwrap();
    lllqos(["-q", "--device", "/nonexistent"])
        .arg(&file)
        .assert()
        .code(126)
        .stderr(predicate::str::ends_with(": Permission denied\n"));
    lllqos(["-q", "--device", "/nonexistent"])
        .arg(dir.path())
        .assert()
        .code(126);
}

#[test]
fn script_without_shebang_runs_with_sh_like_a_shell_would() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("script");
    std::fs::write(&file, "echo from-sh\n").unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    lllqos(["-q", "--device", "/nonexistent"])
        .arg(&file)
        .assert()
        .success()
        .stdout("from-sh\n");
}

#[test]
fn command_killed_by_a_signal_kills_lllqos_by_the_same_signal() {
    let _kernel = kernel!();
    for signal in ["TERM", "INT", "KILL", "SEGV", "USR1"] {
        let status = lllqos_std(["sh", "-c", &format!("kill -{signal} $$")])
            .status()
            .unwrap();
        let expected: Signal = format!("SIG{signal}").parse().unwrap();
        assert_eq!(
            status.signal(),
            Some(expected as i32),
            "{signal}: {status:?}"
        );
        assert!(!status.core_dumped(), "lllqos dumped core for {signal}");
    }
}

#[test]
fn no_core_dump_of_lllqos_when_the_command_dumps() {
    let _kernel = kernel!();
    // Allow core dumps for both; only the command may produce one.
    let mut cmd = lllqos_std(["sh", "-c", "ulimit -c 0; kill -QUIT $$"]);
    // SAFETY: setrlimit in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &limit);
            Ok(())
        });
    }
    let status = cmd.status().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGQUIT));
    assert!(!status.core_dumped());
}

/// Runs `sh -c script` with `$LLLQOS` set to the binary and returns its wait status.
fn shell(script: &str) -> std::process::Output {
    Command::new("sh")
        .args(["-c", script])
        .env("LLLQOS", crate::common::bin())
        .output()
        .unwrap()
}

#[test]
fn help_and_status_to_a_full_stdout_exit_125_with_one_line() {
    for args in [
        "--help",
        "--version",
        "status",
        "status --json",
        "measure --help",
    ] {
        let out = shell(&format!("\"$LLLQOS\" {args} >/dev/full"));
        assert_eq!(out.status.code(), Some(125), "{args}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "lllqos: write error: No space left on device\n",
            "{args}"
        );
    }
}

#[test]
fn output_to_a_closed_pipe_ends_quietly_by_sigpipe() {
    // The reader is gone before lllqos writes: `read` never runs, `true` exits at once.
    for args in ["status", "status --json", "--help"] {
        let out = shell(&format!(
            "exec 3>&1; s=$( ( (sleep 0.2; \"$LLLQOS\" {args}; echo $? >&3) | true ) 3>&1 ); echo $s"
        ));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "141", "{args}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args}");
    }
}

#[test]
fn a_full_or_closed_stderr_does_not_stop_the_command() {
    let kernel = kernel!();
    for redirect in ["2>/dev/full", "2>&-"] {
        let out = shell(&format!(
            "\"$LLLQOS\" -v -l 7 -- sh -c 'od -An -td4 -N4 /dev/cpu_dma_latency' {redirect}"
        ));
        assert!(out.status.success(), "{redirect}: {out:?}");
        let value: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert_eq!(value, kernel.expect(7), "{redirect}");
    }
    // A warning that cannot be written still lets the command run without the request.
    let out = shell("\"$LLLQOS\" --device /nonexistent -- echo ran 2>/dev/full");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
}

#[test]
fn a_command_killed_by_a_real_time_signal_kills_lllqos_by_it_as_a_direct_run() {
    let _kernel = kernel!();
    let rtmin = libc::SIGRTMIN();
    for signal in [rtmin, rtmin + 2, libc::SIGRTMAX()] {
        let script = format!("kill -s {signal} $$");
        let direct = Command::new("sh").args(["-c", &script]).status().unwrap();
        let wrapped = lllqos_std(["sh", "-c", &script]).status().unwrap();
        assert_eq!(direct.signal(), Some(signal));
        assert_eq!(
            wrapped.signal(),
            direct.signal(),
            "signal {signal}: {wrapped:?}"
        );
    }
}

/// Real-time signals still queued for lllqos when its command exits are not its business: lllqos
/// exits with the command's status, as the direct run does.
#[test]
fn signals_still_queued_when_the_command_exits_do_not_change_the_status() {
    let _kernel = kernel!();
    require_program!("python3", "python3");
    let run = |wrapped| {
        script(
            r#"out=$(mktemp); $W python3 -c 'import signal, time
signal.signal(signal.SIGRTMIN + 3, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(0.3)' > "$out" & pid=$!
            until grep -q ready "$out"; do sleep 0.01; done; rm -f "$out"
            python3 -c 'import os, signal, sys
try:
    while True: os.kill(int(sys.argv[1]), signal.SIGRTMIN + 3)
except ProcessLookupError: pass' $pid &
            wait $pid; echo "status $?""#,
            wrapped,
        )
    };
    assert_eq!(run(false), "status 0");
    assert_eq!(run(true), "status 0");
}
