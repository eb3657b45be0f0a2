//! `lllqos trace` against the real kernel: changes made by other processes and by lllqos appear
//! with the right pid, command, value and limits, in order; tracefs is left as it was found (its
//! instances, event enables and the mount table), even after the trace is killed; bad runs exit 125.
//!
//! Each test holds the kernel lock: its own changes are the only ones on the machine. A trace is
//! known to be reading once a probe (this test process opening and closing the node) shows up in
//! its output.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use crate::common::{Kernel, Missing, NODE, Reaped, lllqos, lllqos_std};
use nix::sys::signal::Signal;
use serde_json::Value;

/// The kernel lock, with a kernel that has tracefs and unshare(1) to hide a mount of it; or what
/// is missing.
fn tracing_kernel() -> Result<Kernel, Missing> {
    let kernel = Kernel::take()?;
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems.lines().any(|l| l.ends_with("\ttracefs")) {
        return Err(Missing::Setup(
            "the kernel has no tracefs (CONFIG_TRACING)".into(),
        ));
    }
    crate::common::program("unshare", "util-linux")?;
    Ok(kernel)
}

/// A running `lllqos trace`, its stdout lines arriving on a channel.
struct Trace {
    child: Reaped,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Trace {
    /// Starts `lllqos trace ARGS` and waits until it reads the kernel's events.
    fn start(args: &[&str]) -> Trace {
        let mut trace = Trace::spawn(args);
        trace.wait_until_reading();
        trace
    }

    fn spawn(args: &[&str]) -> Trace {
        let mut cmd = lllqos_std(["trace"]);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = Reaped::spawn(&mut cmd);
        let stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Trace {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Opens and closes the node from this test process until its events show: the trace is
    /// then reading. (Only in a trace that would show them: --json without filters.)
    fn wait_until_reading(&mut self) {
        let me = std::process::id() as i64;
        let start = Instant::now();
        loop {
            drop(std::fs::OpenOptions::new().write(true).open(NODE).unwrap());
            let deadline = Instant::now() + Duration::from_millis(200);
            while let Some(line) = self.next_until(deadline) {
                if json(&line)["pid"].as_i64() == Some(me) {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "trace never showed the probe: {:?}",
                self.seen
            );
        }
    }

    fn next_until(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The JSON lines of `pid`, until `count` of them have come (10 s at most).
    fn lines_of(&mut self, pid: i32, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut found: Vec<Value> = (self.seen.iter())
            .map(|l| json(l))
            .filter(|v| v["pid"] == pid)
            .collect();
        while found.len() < count {
            let Some(line) = self.next_until(deadline) else {
                panic!("{count} lines of pid {pid} expected, got {found:?}");
            };
            let value = json(&line);
            if value["pid"] == pid {
                found.push(value);
            }
        }
        found
    }

    /// Ends the trace with `signal` and returns its status and stderr; `seen` then holds every
    /// line it printed.
    fn stop(&mut self, signal: Signal) -> (std::process::ExitStatus, String) {
        self.child.signal(signal);
        let status = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.next_until(deadline).is_some() {}
        let mut stderr = String::new();
        if let Some(mut err) = self.child.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
        }
        (status, stderr)
    }
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// The parts of one line that a test checks: action, value, limit before, limit after.
fn summary(line: &Value) -> (String, Value, Value, Value) {
    (
        line["action"].as_str().unwrap_or_default().to_owned(),
        line["value_us"].clone(),
        line["limit_before_us"].clone(),
        line["limit_after_us"].clone(),
    )
}

/// The limit of the global target as JSON: `null` for no constraint.
fn limit(us: i32) -> Value {
    if us == crate::common::UNCONSTRAINED {
        Value::Null
    } else {
        Value::from(us)
    }
}

/// A python3 process that holds the node at `us` until its stdin closes (or it is killed).
fn python_holder(us: i32) -> std::process::Child {
    let script = format!(
        "import os, struct, sys\n\
         fd = os.open('{NODE}', os.O_WRONLY)\n\
         os.write(fd, struct.pack('i', {us}))\n\
         print('holding', flush=True)\n\
         sys.stdin.read()\n\
         os.close(fd)\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "holding");
    child
}

/// What other tracing users would see: the mounts of tracefs on the host, and (through a mount of
/// tracefs in a throw-away mount namespace) the instances, the top-level event enables, the
/// top-level clock and whether tracing is on.
fn tracing_state() -> String {
    let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(" - tracefs "))
        .map(str::to_owned)
        .collect();
    let inside = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tracefs nodev /sys/kernel/tracing && cd /sys/kernel/tracing && \
             ls instances && cat tracing_on trace_clock current_tracer && \
             grep -H . events/power/*/enable events/power/*/filter",
        )
        .output()
        .expect("unshare");
    assert!(inside.status.success(), "{inside:?}");
    format!(
        "{}\n{}",
        mounts.join("\n"),
        String::from_utf8_lossy(&inside.stdout)
    )
}

#[test]
fn a_foreign_holder_appears_with_its_pid_command_value_and_limits_in_order() {
    let kernel = given!(tracing_kernel());
    require_program!("python3", "python3");
    let mut trace = Trace::start(&["--json"]);
    let mut holder = python_holder(33);
    let pid = holder.id() as i32;
    drop(holder.stdin.take()); // the holder closes the node and exits
    holder.wait().unwrap();
    let lines = trace.lines_of(pid, 3);
    let base = limit(kernel.baseline);
    let held = limit(kernel.expect(33));
    assert_eq!(
        lines.iter().map(summary).collect::<Vec<_>>(),
        [
            ("add".into(), Value::Null, base.clone(), base.clone()),
            ("update".into(), Value::from(33), base.clone(), held.clone()),
            ("remove".into(), Value::Null, held, base),
        ]
    );
    for line in &lines {
        assert_eq!(line["command"], "python3");
        assert_eq!(line["target"], "cpu_dma_latency");
        assert!(line["time"].as_f64().unwrap() > 1.6e9, "{line}");
    }
    let times: Vec<f64> = lines.iter().map(|l| l["time"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let (status, _) = trace.stop(Signal::SIGINT);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_holder_killed_by_sigkill_is_removed_in_the_log() {
    let kernel = given!(tracing_kernel());
    require_program!("python3", "python3");
    let mut trace = Trace::start(&["--json"]);
    let mut holder = python_holder(21);
    let pid = holder.id() as i32;
    holder.kill().unwrap();
    holder.wait().unwrap();
    let lines = trace.lines_of(pid, 3);
    assert_eq!(
        summary(&lines[2]),
        (
            "remove".into(),
            Value::Null,
            limit(kernel.expect(21)),
            limit(kernel.baseline)
        )
    );
    trace.stop(Signal::SIGTERM);
}

#[test]
fn lllqos_own_global_and_per_cpu_requests_appear() {
    let kernel = given!(tracing_kernel());
    let mut trace = Trace::start(&["--json"]);
    let mut run = Reaped::spawn(&mut lllqos_std(["-l", "44", "--", "true"]));
    let pid = run.pid();
    assert!(run.wait().success());
    let lines = trace.lines_of(pid, 3);
    let base = limit(kernel.baseline);
    assert_eq!(
        summary(&lines[1]),
        (
            "update".into(),
            Value::from(44),
            base.clone(),
            limit(kernel.expect(44))
        )
    );
    assert_eq!(lines[2]["action"], "remove");
    assert!(lines.iter().all(|l| l["command"] == "lllqos"));

    let cpu = crate::common::last_cpu();
    let mut run = Reaped::spawn(&mut lllqos_std([
        "--cpu",
        &cpu.to_string(),
        "-l",
        "12",
        "--",
        "true",
    ]));
    let pid = run.pid();
    assert!(run.wait().success());
    let lines = trace.lines_of(pid, 2);
    let target = format!("cpu{cpu}");
    assert!(
        lines.iter().all(|l| l["target"] == target.as_str()),
        "{lines:?}"
    );
    assert_eq!(lines[0]["action"], "update");
    assert_eq!(lines[0]["value_us"], 12);
    assert_eq!(lines[0]["limit_after_us"], 12);
    assert_eq!(lines[1]["limit_before_us"], 12);
    // Restored: the original value (no constraint on an untouched CPU is null).
    assert_eq!(lines[1]["value_us"], lines[0]["limit_before_us"]);
    trace.stop(Signal::SIGINT);
}

#[test]
fn a_request_in_force_at_the_start_is_the_first_line() {
    let kernel = given!(tracing_kernel());
    require_program!("python3", "python3");
    let mut holder = python_holder(31);
    let pid = holder.id() as i32;
    let mut trace = Trace::start(&["--json"]);
    let first = json(&trace.seen[0]);
    let expected = limit(kernel.expect(31));
    assert_eq!(first["action"], "held", "{first}");
    assert_eq!(first["pid"], pid);
    assert_eq!(first["command"], "python3");
    assert_eq!(first["limit_after_us"], expected);
    drop(holder.stdin.take());
    holder.wait().unwrap();
    trace.lines_of(pid, 2);
    trace.stop(Signal::SIGINT);
}

#[test]
fn text_output_explains_the_per_cpu_values() {
    let _kernel = given!(tracing_kernel());
    let mut trace = Trace::spawn(&[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !trace.seen.iter().any(|l| l.starts_with("TIME")) {
        trace.next_until(deadline).expect("the column header");
    }
    let cpu = crate::common::last_cpu().to_string();
    lllqos(["--cpu", &cpu, "-l", "0", "--", "true"])
        .assert()
        .success();
    let target = format!(" cpu{cpu} ");
    let mut found = 0;
    while found < 2 {
        let line = trace.next_until(deadline).expect("two lines for the CPU");
        if line.contains(&target) && line.contains(" lllqos ") {
            found += 1;
            let expected = if found == 1 {
                "0 us (sysfs: n/a)"
            } else {
                " 0 us -> "
            };
            assert!(line.contains(expected), "{line}");
        }
    }
    trace.stop(Signal::SIGINT);
}

/// Runs `lllqos -l US -- true` and returns its pid.
fn lllqos_request(us: &str) -> i32 {
    let mut run = Reaped::spawn(&mut lllqos_std(["-l", us, "--", "true"]));
    assert!(run.wait().success());
    run.pid()
}

#[test]
fn command_filter_shows_only_that_command() {
    let _kernel = given!(tracing_kernel());
    require_program!("python3", "python3");
    let mut trace = Trace::spawn(&["--json", "--command", "lllqos"]);
    // Reading once an lllqos request shows.
    let start = Instant::now();
    loop {
        let pid = lllqos_request("45");
        let deadline = Instant::now() + Duration::from_millis(300);
        if std::iter::from_fn(|| trace.next_until(deadline)).any(|l| json(&l)["pid"] == pid) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            trace.seen
        );
    }
    let mut holder = python_holder(40);
    drop(holder.stdin.take());
    holder.wait().unwrap();
    // Lines come in time order: once the fence shows, python3's would have shown before it.
    let fence = lllqos_request("47");
    let lines = trace.lines_of(fence, 3);
    assert_eq!(lines[1]["value_us"], 47);
    trace.stop(Signal::SIGINT);
    let commands: Vec<Value> = trace
        .seen
        .iter()
        .map(|l| json(l)["command"].clone())
        .collect();
    assert!(commands.iter().all(|c| c == "lllqos"), "{commands:?}");
}

/// How `lllqos oci-hook` names its holders after their container: `--name`.
#[test]
fn a_named_holder_shows_under_its_name() {
    let _kernel = given!(tracing_kernel());
    let mut trace = Trace::start(&["--json"]);
    let mut run = Reaped::spawn(&mut lllqos_std([
        "--name",
        "container-0123456789abcdef",
        "-l",
        "33",
        "--",
        "true",
    ]));
    assert!(run.wait().success());
    let lines = trace.lines_of(run.pid(), 3);
    trace.stop(Signal::SIGINT);
    // The kernel keeps 15 bytes.
    for line in &lines {
        assert_eq!(line["command"], "container-01234", "{line}");
    }
    assert_eq!(lines[1]["value_us"], 33);
}

#[test]
fn pid_filter_shows_only_that_process() {
    let _kernel = given!(tracing_kernel());
    require_program!("python3", "python3");
    let mut holder = python_holder(41);
    let python = holder.id() as i32;
    let mut trace = Trace::spawn(&["--json", "--pid", &python.to_string()]);
    // Its first line, what is in force, comes once the events are enabled.
    let held = trace.lines_of(python, 1);
    assert_eq!(held[0]["action"], "held");
    lllqos_request("45");
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let lines = trace.lines_of(python, 2);
    assert_eq!(lines[1]["action"], "remove");
    trace.stop(Signal::SIGINT);
    let pids: Vec<Value> = trace.seen.iter().map(|l| json(l)["pid"].clone()).collect();
    assert!(pids.iter().all(|p| p == python), "{pids:?}");
}

#[test]
fn two_traces_at_once_both_see_every_change() {
    let kernel = given!(tracing_kernel());
    let mut first = Trace::start(&["--json"]);
    let mut second = Trace::start(&["--json"]);
    let mut run = Reaped::spawn(&mut lllqos_std(["-l", "46", "--", "true"]));
    let pid = run.pid();
    assert!(run.wait().success());
    for trace in [&mut first, &mut second] {
        let lines = trace.lines_of(pid, 3);
        assert_eq!(lines[1]["limit_after_us"], limit(kernel.expect(46)));
    }
    first.stop(Signal::SIGINT);
    second.stop(Signal::SIGINT);
}

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
fn lost_events_are_counted_never_silent() {
    let _kernel = given!(tracing_kernel());
    require_program!("python3", "python3");
    let mut trace = Trace::start(&["--json"]);
    // Stopped, the trace reads nothing while far more events than its buffer holds are made.
    trace.child.signal(Signal::SIGSTOP);
    let burst = format!(
        "import os, struct\n\
         fd = os.open('{NODE}', os.O_WRONLY)\n\
         for i in range(300000): os.write(fd, struct.pack('i', 10 + i % 2))\n"
    );
    let status = Command::new("python3")
        .args(["-c", &burst])
        .status()
        .unwrap();
    assert!(status.success());
    trace.child.signal(Signal::SIGCONT);
    // Ended now, it still reads what the pipe holds (and the kernel's lost counts) first.
    let (status, stderr) = trace.stop(Signal::SIGINT);
    assert_eq!(status.code(), Some(0));
    let lost: Vec<u64> = (stderr.lines())
        .filter_map(|l| l.strip_prefix("lllqos: trace: "))
        .filter_map(|l| l.split_once(" events lost in all")?.0.parse().ok())
        .collect();
    assert!(matches!(lost[..], [n] if n > 0), "{stderr}");
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
