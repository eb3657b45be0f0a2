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

/// Starts `lllqos ARGS -- python3 COUNTER SIGNALS...` and waits for `ready`.
fn counter(args: &[&str], signals: &[&str]) -> (Reaped, BufReader<std::process::ChildStdout>) {
    let mut cmd = lllqos_std(args);
    cmd.args(["--", "python3", "-c", crate::common::COUNTER])
        .args(signals);
    cmd.stdout(Stdio::piped());
    let mut child = Reaped::spawn(&mut cmd);
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    (child, out)
}

fn rest(mut out: BufReader<std::process::ChildStdout>) -> String {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut out, &mut text).unwrap();
    text
}

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

#[test]
fn signals_sent_to_lllqos_reach_the_command_exactly_once() {
    let _kernel = kernel!();
    require_program!("python3", "python3");
    let (mut child, mut out) =
        counter(&[], &["SIGUSR1", "SIGHUP", "SIGINT", "SIGWINCH", "SIGQUIT"]);
    for signal in [
        Signal::SIGUSR1,
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGWINCH,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
    ] {
        child.signal(signal);
        // Delivered before the next is sent (two USR1 pending at once would be one signal).
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), format!("got {signal}"));
    }
    child.signal(Signal::SIGUSR2);
    assert!(child.wait().success());
    // No second delivery of anything came in between.
    assert_eq!(
        rest(out).trim(),
        "counts SIGHUP=1 SIGINT=1 SIGQUIT=1 SIGUSR1=2 SIGWINCH=1"
    );
}

#[test]
fn signals_the_command_sends_to_its_group_do_not_bounce_back() {
    let _kernel = kernel!();
    require_program!("python3", "python3");
    // The command signals its own group (lllqos included), then waits for a SIGUSR2 sent to
    // lllqos and relayed: lllqos handles what it receives in order, so a bounced SIGUSR1 would
    // reach the command before that SIGUSR2 does.
    let script = r#"
import os, signal
r, w = os.pipe()
os.set_blocking(w, False)
signal.set_wakeup_fd(w)
for s in (signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, lambda s, f: None)
os.kill(0, signal.SIGUSR1)
print("sent", flush=True)
seen = b""
while signal.SIGUSR2 not in seen:
    seen += os.read(r, 64)
print(seen.count(signal.SIGUSR1), flush=True)
"#;
    // Its own process group, led by lllqos, as a shell's job would be.
    let mut cmd = lllqos_std(["python3", "-c", script]);
    cmd.process_group(0).stdout(Stdio::piped());
    let mut child = Reaped::spawn(&mut cmd);
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "sent");
    child.signal(Signal::SIGUSR2);
    assert!(child.wait().success());
    assert_eq!(rest(out).trim(), "1");
}

#[test]
fn a_signal_sent_right_after_start_is_not_lost() {
    let _kernel = kernel!();
    for _ in 0..20 {
        let start = Instant::now();
        let mut child = Reaped::spawn(&mut lllqos_std(["sleep", "30"]));
        child.signal(Signal::SIGTERM);
        let status = child.wait();
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}

#[test]
fn the_command_starts_with_an_empty_signal_mask() {
    let _kernel = kernel!();
    lllqos(["grep", "SigBlk", "/proc/self/status"])
        .assert()
        .success()
        .stdout("SigBlk:\t0000000000000000\n");
}

#[test]
fn signals_ignored_at_start_stay_ignored_for_lllqos_and_the_command() {
    let _kernel = kernel!();
    let mut cmd = lllqos_std([
        "sh",
        "-c",
        "grep SigIgn /proc/self/status; sleep 1; echo survived",
    ]);
    cmd.stdout(Stdio::piped());
    // SAFETY: signal(2) in the child before exec, like nohup.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = Reaped::spawn(&mut cmd);
    // The command is running (it printed its first line) when the signals are sent.
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut out = String::new();
    stdout.read_line(&mut out).unwrap();
    child.signal(Signal::SIGINT);
    child.signal(Signal::SIGHUP);
    let status = child.wait();
    assert!(status.success(), "{status:?}");
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    let ignored = u64::from_str_radix(
        out.lines()
            .next()
            .unwrap()
            .trim_start_matches("SigIgn:")
            .trim(),
        16,
    )
    .unwrap();
    assert_ne!(
        ignored & (1 << (libc::SIGINT - 1)),
        0,
        "SIGINT not ignored in the command"
    );
    assert_ne!(
        ignored & (1 << (libc::SIGHUP - 1)),
        0,
        "SIGHUP not ignored in the command"
    );
    assert!(out.contains("survived"));
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
fn lllqos_does_not_wake_up_while_the_command_sleeps() {
    let _kernel = kernel!();
    let mut child = Reaped::spawn(&mut lllqos_std(["sleep", "1.5"]));
    crate::common::wait_until_waiting(child.pid());
    // Then one second of the command sleeping: lllqos must not have run once.
    let before = crate::common::voluntary_switches(child.pid());
    std::thread::sleep(Duration::from_millis(1000));
    let after = crate::common::voluntary_switches(child.pid());
    assert_eq!(before, after, "lllqos woke up while waiting");
    assert!(child.wait().success());
}

#[test]
fn hold_without_command_until_a_release_signal() {
    let kernel = kernel!();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        let mut child = Reaped::spawn(lllqos_std(["-l", "41"]).stderr(Stdio::piped()));
        wait_for_node(kernel.expect(41));
        child.signal(signal);
        assert_eq!(child.wait().code(), Some(0), "{signal}");
        assert_eq!(read_node(), kernel.baseline);
        // Off a terminal, a hold says nothing.
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert_eq!(stderr, "");
    }
}

#[test]
fn hold_ended_by_another_fatal_signal_dies_of_it_after_releasing() {
    let kernel = kernel!();
    let mut child = Reaped::spawn(&mut lllqos_std(["-l", "41"]));
    wait_for_node(kernel.expect(41));
    child.signal(Signal::SIGUSR1);
    assert_eq!(child.wait().signal(), Some(libc::SIGUSR1));
    assert_eq!(read_node(), kernel.baseline);
}

#[test]
fn hold_while_pids_live() {
    let kernel = kernel!();
    let mut first = Reaped::spawn(Command::new("sleep").arg("0.5"));
    let mut second = Reaped::spawn(Command::new("sleep").arg("1"));
    let pid_args = [
        "--pid",
        &first.pid().to_string(),
        "--pid",
        &second.pid().to_string(),
    ]
    .map(String::from);
    let mut holder = Reaped::spawn(lllqos_std(["-l", "43"]).args(&pid_args));
    wait_for_node(kernel.expect(43));
    first.wait();
    // A negative check has no event to wait for: give lllqos time it would need to (wrongly) end.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        read_node(),
        kernel.expect(43),
        "released before every pid exited"
    );
    second.wait();
    assert_eq!(holder.wait().code(), Some(0));
    assert_eq!(read_node(), kernel.baseline);
}

#[test]
fn hold_pid_that_does_not_exist_exits_125() {
    lllqos(["--pid", "2147483647"])
        .assert()
        .code(125)
        .stderr("lllqos: --pid 2147483647: no such process\n");
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

#[test]
fn the_command_stopped_and_continued_by_someone_else_does_not_stop_lllqos() {
    let kernel = kernel!();
    let mut child = Reaped::spawn(&mut lllqos_std(["-l", "8", "sleep", "30"]));
    crate::common::wait_until_waiting(child.pid());
    let command = Pid::from_raw(crate::common::command_of(child.pid()).unwrap());
    // As cpulimit does: stop the command, then continue it.
    nix::sys::signal::kill(command, Signal::SIGSTOP).unwrap();
    crate::common::wait_until("the command to stop", || {
        crate::common::state(command.as_raw()) == 'T'
    });
    nix::sys::signal::kill(command, Signal::SIGCONT).unwrap();
    crate::common::wait_until("the command to run again", || {
        crate::common::state(command.as_raw()) != 'T'
    });
    // lllqos is still waiting, not stopped, and still holds the request...
    crate::common::wait_until_waiting(child.pid());
    assert_ne!(crate::common::state(child.pid()), 'T');
    assert_eq!(read_node(), kernel.expect(8));
    // ...and ends with the command, as usual.
    nix::sys::signal::kill(command, Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().signal(), Some(libc::SIGTERM));
    assert_eq!(read_node(), kernel.baseline);
}

/// Runs `script` under `sh -c` directly and under lllqos (`$W` is empty or lllqos), returning
/// both outputs: each item of coreutils' env/timeout tests compares the two.
fn direct_and_wrapped(script: &str) -> (std::process::Output, std::process::Output) {
    let run = |wrapper: &str| {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]).env("W", wrapper);
        // A pre_exec makes std fork and exec instead of posix_spawn, whose child glibc leaves with
        // signals 32 and 33 ignored: the shell starts as one started by a login shell would.
        // SAFETY: the closure does nothing.
        unsafe { cmd.pre_exec(|| Ok(())) };
        cmd.output().unwrap()
    };
    (
        run(""),
        run(&format!("{} -q --", crate::common::bin().display())),
    )
}

#[test]
fn an_inherited_ignored_sigpipe_stays_ignored_for_the_command() {
    let _kernel = kernel!();
    // Ignored (systemd's IgnoreSIGPIPE=yes, coreutils' env-signal-handler.sh): yes gets EPIPE,
    // says so and exits 1, instead of dying of SIGPIPE.
    let (d, w) = direct_and_wrapped(
        "trap '' PIPE; $W yes | head -1 >/dev/null; echo ${PIPESTATUS:-}; $W grep SigIgn /proc/self/status",
    );
    assert_eq!(
        String::from_utf8_lossy(&w.stdout),
        String::from_utf8_lossy(&d.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&w.stderr),
        String::from_utf8_lossy(&d.stderr)
    );
    assert!(String::from_utf8_lossy(&d.stderr).contains("Broken pipe"));
    // Default: the command dies of it, silently, as it would directly.
    let (d, w) =
        direct_and_wrapped("$W yes | head -1 >/dev/null; $W grep SigIgn /proc/self/status");
    assert_eq!(
        String::from_utf8_lossy(&w.stdout),
        String::from_utf8_lossy(&d.stdout)
    );
    assert_eq!(w.stderr, d.stderr);
}

#[test]
fn the_command_starts_with_the_signal_dispositions_of_a_direct_run() {
    let _kernel = kernel!();
    let (d, w) = direct_and_wrapped("$W grep -E 'SigIgn|SigBlk' /proc/self/status");
    assert_eq!(
        String::from_utf8_lossy(&w.stdout),
        String::from_utf8_lossy(&d.stdout)
    );
}

#[test]
fn closed_standard_descriptors_stay_closed_for_the_command() {
    let _kernel = kernel!();
    for redirect in [">&-", "<&-", "2>&-"] {
        let script = format!(
            "$W sh -c 'ls /proc/self/fd | sort -n | head -3 | tr \"\\n\" \" \" >&2' {redirect} 2>/dev/tty 2>&1; $W /bin/echo hi {redirect}; echo $?"
        );
        let (d, w) = direct_and_wrapped(&script);
        assert_eq!(
            String::from_utf8_lossy(&w.stdout),
            String::from_utf8_lossy(&d.stdout),
            "{redirect}"
        );
    }
}

#[test]
fn reset_on_fork_scheduling_and_nice_reach_the_command() {
    let _kernel = kernel!();
    require_program!("chrt", "util-linux");
    for script in [
        "chrt -R -f 3 $W chrt -p 0",
        "nice -n -7 chrt -R -o 0 $W sh -c 'chrt -p $$; nice'",
    ] {
        let (d, w) = direct_and_wrapped(script);
        let strip = |out: &[u8]| {
            String::from_utf8_lossy(out)
                .lines()
                .map(|l| l.split_once(": ").map_or(l, |(_, v)| v).to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&w.stdout), strip(&d.stdout), "{script}");
        assert!(!d.stdout.is_empty());
    }
}

/// Runs `argv` with exactly this environment block (duplicates, entries without '=' and all), as
/// execve(2) takes it, and returns its standard output.
fn with_raw_environment(argv: &[&str], envp: &[&str]) -> Vec<u8> {
    use std::ffi::CString;
    let strings = |list: &[&str]| -> Vec<CString> {
        list.iter().map(|s| CString::new(*s).unwrap()).collect()
    };
    let (argv, envp) = (strings(argv), strings(envp));
    let pointers = |list: &[CString]| -> Vec<*const libc::c_char> {
        list.iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let (arg_ptrs, env_ptrs) = (pointers(&argv), pointers(&envp));
    let (arg_ptrs, env_ptrs) = (arg_ptrs.as_ptr() as usize, env_ptrs.as_ptr() as usize);
    let program = argv[0].as_ptr() as usize;
    let mut cmd = Command::new("/bin/true");
    // SAFETY: execve in the forked child, on arrays that the parent keeps alive until the child has
    // exec'd (output() waits for it).
    unsafe {
        cmd.pre_exec(move || {
            libc::execve(
                program as *const libc::c_char,
                arg_ptrs as *const *const libc::c_char,
                env_ptrs as *const *const libc::c_char,
            );
            Err(std::io::Error::last_os_error())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    out.stdout
}

#[test]
fn the_environment_passes_through_as_a_direct_exec_passes_it() {
    let _kernel = kernel!();
    let envp = [
        "B=2",
        "A=1",
        "NOEQUALS",
        "A=3",
        "LLLQOS_LATENCY_US=stale",
        "Z=",
    ];
    let direct = with_raw_environment(&["/bin/cat", "/proc/self/environ"], &envp);
    let bin = crate::common::bin().display().to_string();
    let wrapped = with_raw_environment(
        &[
            &bin,
            "--device",
            "/nonexistent",
            "-q",
            "--",
            "/bin/cat",
            "/proc/self/environ",
        ],
        &envp,
    );
    // The same entries in the same order, LLLQOS_LATENCY_US removed (no request was placed).
    let expected: Vec<&[u8]> = direct
        .split(|&b| b == 0)
        .filter(|e| !e.starts_with(b"LLLQOS_LATENCY_US="))
        .collect();
    assert_eq!(wrapped.split(|&b| b == 0).collect::<Vec<_>>(), expected);
    assert!(direct.starts_with(b"B=2\0A=1\0NOEQUALS\0A=3\0"));
}

#[test]
fn without_proc_the_message_says_so_instead_of_blaming_the_kernel() {
    let _kernel = kernel!();
    require_program!("unshare", "util-linux");
    let out = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "umount -l /proc && exec \"$0\" --strict -l 5 -- echo ran",
        ])
        .arg(crate::common::bin())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/proc is not mounted"), "{stderr}");
    assert!(!stderr.contains("CONFIG_CPU_IDLE"), "{stderr}");
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
fn pid_of_a_thread_names_its_process() {
    // A thread of this test process, alive until the check is done.
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // SAFETY: gettid takes no argument.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        let _ = done_rx.recv();
    });
    let tid = tid_rx.recv().unwrap();
    let pid = std::process::id() as i32;
    assert_ne!(tid, pid);
    lllqos(["--pid", &tid.to_string()])
        .assert()
        .code(125)
        .stderr(predicate::str::contains(format!("thread of process {pid}")));
    drop(done_tx);
    thread.join().unwrap();
}

/// A python3 command that counts TERM, CONT, USR1 and USR2 for `$1` seconds, then prints
/// `TERM=n CONT=n USR1=n USR2=n` and exits 0. With `kill0` as `$2` it first makes a grandchild
/// that sends USR1 to the group.
const TIMED_COUNTER: &str = r#"
import os, signal, sys, time
names = ["SIGTERM", "SIGCONT", "SIGUSR1", "SIGUSR2"]
counts = {n: 0 for n in names}
def handler(s, f):
    counts[signal.Signals(s).name] += 1
for n in names:
    signal.signal(getattr(signal, n), handler)
if sys.argv[2:] == ["kill0"]:
    if os.fork() == 0:
        time.sleep(0.3)
        os.kill(0, signal.SIGUSR1)
        os._exit(0)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    time.sleep(0.02)
print(" ".join(f"{n[3:]}={counts[n]}" for n in names), flush=True)
"#;

/// `script` run by sh, `$C` being the counter command line, directly and under lllqos.
fn counted(script: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("counter.py");
    std::fs::write(&counter, TIMED_COUNTER).unwrap();
    let run = |wrapper: String| {
        // A group of its own, as a script run from an interactive shell has: `kill 0` must not
        // reach the test harness.
        let out = Command::new("sh")
            .args(["-c", script])
            .env("C", format!("{wrapper}python3 {}", counter.display()))
            .process_group(0)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    (
        run(String::new()),
        run(format!("{} -q -- ", crate::common::bin().display())),
    )
}

#[test]
fn timeout_signals_reach_the_command_as_often_as_directly() {
    let _kernel = kernel!();
    require_program!("python3", "python3");
    // timeout signals its child, then the whole group, then SIGCONT both ways.
    for _ in 0..5 {
        let (direct, wrapped) = counted("timeout -s TERM 0.3 $C 1.0");
        assert_eq!(direct, "TERM=1 CONT=1 USR1=0 USR2=0");
        assert_eq!(wrapped, direct);
    }
}

#[test]
fn a_scripts_kill_of_the_pid_is_relayed_and_its_kill_0_is_not_doubled() {
    let _kernel = kernel!();
    require_program!("python3", "python3");
    let (direct, wrapped) = counted("$C 1.0 & sleep 0.4; kill -USR1 $!; wait");
    assert_eq!(direct, "TERM=0 CONT=0 USR1=1 USR2=0");
    assert_eq!(wrapped, direct);
    let (direct, wrapped) = counted("trap '' USR2; $C 1.0 & sleep 0.4; kill -USR2 0; wait");
    assert_eq!(direct, "TERM=0 CONT=0 USR1=0 USR2=1");
    assert_eq!(wrapped, direct);
}

#[test]
fn a_grandchilds_kill_0_reaches_the_command_once() {
    let _kernel = kernel!();
    require_program!("python3", "python3");
    let (direct, wrapped) = counted("trap '' USR1; $C 1.0 kill0");
    assert_eq!(direct, "TERM=0 CONT=0 USR1=1 USR2=0");
    assert_eq!(wrapped, direct);
}

#[test]
fn real_time_and_fault_signals_sent_to_lllqos_reach_the_command_once() {
    let _kernel = kernel!();
    require_program!("python3", "python3");
    let names = [
        "SIGRTMIN", "SIGRTMAX", "SIGSYS", "SIGTRAP", "SIGSEGV", "SIGBUS",
    ];
    let (mut child, mut out) = counter(&[], &names);
    let rtmin = libc::SIGRTMIN();
    for (name, number) in [
        ("SIGRTMIN", rtmin),
        ("SIGRTMAX", libc::SIGRTMAX()),
        ("SIGSYS", libc::SIGSYS),
        ("SIGTRAP", libc::SIGTRAP),
        ("SIGSEGV", libc::SIGSEGV),
        ("SIGBUS", libc::SIGBUS),
    ] {
        // SAFETY: kill on integers.
        assert_eq!(unsafe { libc::kill(child.pid(), number) }, 0);
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), format!("got {name}"));
    }
    child.signal(Signal::SIGUSR2);
    assert!(child.wait().success());
    assert_eq!(
        rest(out).trim(),
        "counts SIGBUS=1 SIGRTMAX=1 SIGRTMIN=1 SIGSEGV=1 SIGSYS=1 SIGTRAP=1"
    );
}

#[test]
fn as_pid_1_of_a_namespace_lllqos_reaps_orphans() {
    let _kernel = kernel!();
    require_program!("unshare", "util-linux");
    require_program!("ps", "procps");
    // The subshell exits at once; its `sleep 0.1` is reparented to PID 1 (lllqos) and exits.
    let out = Command::new("unshare")
        .args(["-pf", "--mount-proc"])
        .arg(crate::common::bin())
        .args([
            "-q",
            "--",
            "sh",
            "-c",
            "(sleep 0.1 &); sleep 0.6; ps -eo stat= | grep -c '^Z'",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "{out:?}");
}

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

#[test]
fn a_hold_started_in_the_background_by_a_script_ends_on_kill_int() {
    let kernel = kernel!();
    // A script's `&` job starts with SIGINT ignored; without a command to hand it on to, the
    // hold still ends on it (and on SIGTERM), releasing the request.
    let expect = kernel.expect(37);
    let out = script(
        &format!(
            r#"{WAIT_FOR_NODE}
            sleep 10 & grep -q '^SigIgn:.*[2367abef]$' /proc/$!/status && echo "INT ignored"; kill $!
            "$B" -q -l 37 & pid=$!
            wait_for_node {expect}
            kill -INT $pid; wait_bounded $pid"#
        ),
        false,
    );
    assert_eq!(out, "INT ignored\nstatus 0");
    assert_eq!(read_node(), kernel.baseline);
}

#[test]
fn a_hold_under_nohup_survives_sighup_and_ends_on_sigterm() {
    let kernel = kernel!();
    let expect = kernel.expect(38);
    let out = script(
        &format!(
            r#"{WAIT_FOR_NODE}
            nohup "$B" -q -l 38 >/dev/null 2>&1 & pid=$!
            wait_for_node {expect}
            kill -HUP $pid
            kill -0 $pid && echo "alive after SIGHUP"
            kill -TERM $pid; wait_bounded $pid"#
        ),
        false,
    );
    assert_eq!(out, "alive after SIGHUP\nstatus 0", "{out}");
    assert_eq!(read_node(), kernel.baseline);
}

/// A python3 command that counts deliveries of SIGRTMIN+3 (one byte each on its wakeup fd: real-time
/// signals queue, none is coalesced) until it has `$1`, or 20 s have passed; prints `ready` once
/// it counts, then the count.
const RT_COUNTER: &str = r#"
import os, signal, sys, time
r, w = os.pipe()
os.set_blocking(r, False)
os.set_blocking(w, False)
signal.set_wakeup_fd(w)
sig = signal.SIGRTMIN + 3
signal.signal(sig, lambda s, f: None)
print("ready", flush=True)
want, n, end = int(sys.argv[1]), 0, time.time() + 20
while n < want and time.time() < end:
    try:
        n += os.read(r, 65536).count(sig)
    except BlockingIOError:
        time.sleep(0.01)
print(n, flush=True)
"#;

/// 5,000 real-time signals sent to lllqos by a process of its own group, which stays alive, reach
/// the command, each once, as quickly as they reach it directly: none waits for a repeat to the
/// group that does not come.
#[test]
fn a_burst_of_signals_from_the_same_group_is_relayed_each_once_at_once() {
    let _kernel = kernel!();
    require_program!("python3", "python3");
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("counter.py");
    std::fs::write(&counter, RT_COUNTER).unwrap();
    let run = |wrapped| {
        script(
            &format!(
                r#"out=$(mktemp); $W python3 {} 5000 > "$out" & pid=$!
                until grep -q ready "$out"; do sleep 0.01; done
                python3 -c 'import os, signal, sys, time
for _ in range(5000): os.kill(int(sys.argv[1]), signal.SIGRTMIN + 3)
time.sleep(1)' $pid &
                wait $pid; echo "status $?"; tail -n 1 "$out"; rm -f "$out""#,
                counter.display()
            ),
            wrapped,
        )
    };
    let direct = run(false);
    assert_eq!(direct, "status 0\n5000");
    let started = Instant::now();
    assert_eq!(run(true), direct);
    // Far from 100 a second: the whole burst comes through well within the counter's 20 s.
    assert!(started.elapsed() < Duration::from_secs(15));
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
