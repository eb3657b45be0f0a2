//! How a trace starts and ends: tracefs left as found on every way out, the errors it gives, the signals and the pipe that end it, PID namespaces.

use super::*;

#[test]
fn tracefs_is_left_as_it_was_found_on_every_way_out() {
    let _kernel = given!(tracing_kernel());
    let before = tracing_state();
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGUSR1,
    ] {
        let mut trace = Trace::start(&["--json"]);
        assert_ne!(tracing_state(), before, "the instance exists while it runs");
        let (status, stderr) = trace.stop(signal);
        match signal {
            Signal::SIGUSR1 => assert_eq!(status.signal(), Some(libc::SIGUSR1), "{stderr}"),
            _ => assert_eq!(status.code(), Some(0), "{signal}: {stderr}"),
        }
        assert_eq!(tracing_state(), before, "after {signal}");
    }
    lllqos(["trace", "--duration", "0.1"]).assert().success();
    assert_eq!(tracing_state(), before, "after --duration");

    // SIGKILL leaves the instance; the next trace removes it and says so.
    let mut trace = Trace::start(&["--json"]);
    let pid = trace.child.pid();
    let (status, _) = trace.stop(Signal::SIGKILL);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let left = tracing_state();
    assert!(left.contains(&format!("lllqos-trace.{pid}.")), "{left}");
    let out = lllqos(["trace", "--duration", "0.1"]).assert().success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&format!("removed instances/lllqos-trace.{pid}.")),
        "{stderr}"
    );
    assert_eq!(tracing_state(), before, "after the next trace");
}

#[test]
fn without_root_it_says_what_is_needed_and_exits_125() {
    let _kernel = given!(tracing_kernel());
    let out = Command::new(crate::common::bin())
        .args(["trace", "--duration", "1"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("lllqos: trace needs root"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_values_exit_125_and_duration_ends_with_0() {
    for args in [
        &["trace", "--duration", "x"][..],
        &["trace", "--pid", "0"],
        &["trace", "--pid", "abc"],
        &["trace", "--bogus"],
        &["trace", "extra"],
    ] {
        let out = lllqos(args).assert().code(125);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(stderr.starts_with("lllqos: "), "{args:?}: {stderr}");
    }
    let _kernel = given!(tracing_kernel());
    let start = Instant::now();
    let out = lllqos(["trace", "--duration", "300ms"]).assert().success();
    assert!(start.elapsed() < Duration::from_secs(5));
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.starts_with("lllqos trace: "), "{text}");
    // A closed stdout ends it as any filter ends: by SIGPIPE, with nothing left behind.
    let mut child = Reaped::spawn(lllqos_std(["trace"]).stdout(Stdio::piped()));
    let mut stdout = child.0.stdout.take().unwrap();
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let mut probe = std::fs::OpenOptions::new().write(true).open(NODE).unwrap();
    probe.write_all(&5i32.to_ne_bytes()).unwrap();
    drop(probe);
    let status = child.wait();
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}");
}

#[test]
fn without_cap_sys_admin_an_unmounted_tracefs_is_a_clear_125() {
    let _kernel = given!(tracing_kernel());
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - tracefs ");
    applicable!(!mounted, "tracefs is mounted on the host: nothing to mount");
    require_program!("setpriv", "util-linux");
    let before = tracing_state();
    let out = Command::new("setpriv")
        .args(["--bounding-set=-sys_admin", "--inh-caps=-all", "--"])
        .arg(crate::common::bin())
        .args(["trace", "--duration", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.starts_with("lllqos: cannot mount tracefs where only lllqos sees it"),
        "{stderr}"
    );
    assert!(stderr.contains("CAP_SYS_ADMIN"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(tracing_state(), before);
}

/// `lllqos trace | head -n 1` on a quiet machine: head exits after the first line, and the trace
/// ends then (by SIGPIPE), not at a next line that may never come; tracefs is as it was.
#[test]
fn a_pipe_whose_reader_has_gone_ends_the_trace_at_once() {
    let _kernel = given!(tracing_kernel());
    let before = tracing_state();
    let mut child = Reaped::spawn(lllqos_std(["trace"]).stdout(Stdio::piped()));
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("lllqos trace: "), "{first}");
    drop(stdout);
    // No request is made here: only the reader's going can end it (Reaped::wait: 10 s at most).
    let status = child.wait();
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}");
    assert_eq!(tracing_state(), before);
}

/// A script's background job starts with SIGINT ignored; `kill -INT $!` still ends the trace
/// (exit 0, tracefs as it was), as it ends `perf trace`.
#[test]
fn a_trace_started_in_the_background_by_a_script_ends_on_kill_int() {
    let _kernel = given!(tracing_kernel());
    let before = tracing_state();
    let out = Command::new("sh")
        .args([
            "-c",
            r#"out=$(mktemp)
            "$B" trace > "$out" & pid=$!
            until grep -q '^TIME' "$out"; do sleep 0.01; done
            kill -INT $pid
            i=0; while kill -0 $pid 2>/dev/null && [ $i -lt 1000 ]; do sleep 0.01; i=$((i + 1)); done
            kill -0 $pid 2>/dev/null && { echo "still running"; kill -KILL $pid; }
            wait $pid; echo "status $?"; rm -f "$out""#,
        ])
        .env("B", crate::common::bin())
        .process_group(0)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "status 0\n");
    assert_eq!(tracing_state(), before);
}

/// A per-CPU holder that is pid 1 of its own PID namespace is named by its pid here (the owner of
/// the lock on its holder file), not as this namespace's pid 1.
#[test]
fn a_holder_in_a_pid_namespace_is_named_by_its_pid_here() {
    let _kernel = given!(tracing_kernel());
    let cpu = crate::common::last_cpu();
    let before = crate::common::read_cpu(cpu);
    let mut unshare = Reaped::spawn(
        Command::new("unshare")
            .args(["-pf", "--mount-proc", "--kill-child"])
            .arg(crate::common::bin())
            .args(["-q", "--cpu", &cpu.to_string(), "-l", "7"]),
    );
    crate::common::wait_for_cpu(cpu, "7");
    // The holder is unshare's child: lllqos, pid 1 inside.
    let holder = crate::common::command_of(unshare.pid()).expect("the holder");
    let out = lllqos(["trace", "--json", "--duration", "0.2"])
        .assert()
        .success();
    let held: Vec<Value> = String::from_utf8_lossy(&out.get_output().stdout)
        .lines()
        .map(json)
        .filter(|l| l["action"] == "held" && l["target"] == format!("cpu{cpu}").as_str())
        .collect();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["pid"], holder);
    assert_eq!(held[0]["command"], "lllqos");
    assert_eq!(held[0]["value_us"], 7);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(holder), Signal::SIGTERM).unwrap();
    assert!(unshare.wait().success());
    assert_eq!(crate::common::read_cpu(cpu), before);
}

/// A trace in a PID namespace of its own leaves its own reads of the node out of the log (the
/// events carry host pids, its filter too), and is not taken for dead by a trace on the host.
#[test]
fn a_trace_in_a_pid_namespace_logs_only_others_changes_and_keeps_its_instance() {
    let kernel = given!(tracing_kernel());
    let mut inner = Reaped::spawn(
        Command::new("unshare")
            .args(["-pf", "--mount-proc", "--kill-child=SIGTERM"])
            .arg(crate::common::bin())
            .args(["trace", "--json"])
            .stdout(Stdio::piped()),
    );
    let stdout = inner.0.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Changes made here until the inner trace shows one: it is reading.
    let me = std::process::id() as i64;
    let mut lines = Vec::new();
    let start = Instant::now();
    'reading: loop {
        drop(std::fs::OpenOptions::new().write(true).open(NODE).unwrap());
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let value = json(&line);
            let probe = value["pid"].as_i64() == Some(me);
            lines.push(value);
            if probe {
                break 'reading;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{lines:?}");
    }
    // A trace on the host meanwhile (its own reads are changes the inner trace logs): it must
    // not remove the inner trace's instance.
    let host = lllqos_std(["trace", "--duration", "0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let host_pid = host.id() as i64;
    let out = host.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("removed instances/"), "{stderr}");
    let mut run = Reaped::spawn(&mut lllqos_std(["-l", "47", "--", "true"]));
    let pid = run.pid() as i64;
    assert!(run.wait().success());
    let mut from_lllqos = 0;
    while from_lllqos < 3 {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the inner trace goes on");
        let value = json(&line);
        if value["pid"].as_i64() == Some(pid) {
            from_lllqos += 1;
        }
        lines.push(value);
    }
    // Every change logged was made by this test, the host's trace or the lllqos the test ran:
    // nothing of the inner trace's own.
    for line in lines.iter().filter(|l| l["action"] != "held") {
        let who = line["pid"].as_i64();
        assert!(
            [Some(me), Some(pid), Some(host_pid)].contains(&who),
            "{line}"
        );
    }
    assert_eq!(kernel.baseline, crate::common::read_node());
    let trace = crate::common::command_of(inner.pid()).expect("the inner trace");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(trace), Signal::SIGTERM).unwrap();
    assert!(inner.wait().success());
}
