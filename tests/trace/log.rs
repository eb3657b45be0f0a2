//! What the log shows: every change in order, with its process, value and limits, from what was in force at the start; filters; lost events counted.

use super::*;

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
