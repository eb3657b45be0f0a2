//! A hold without a command: until a release signal, a fatal one, or the --pid processes exit; in the background of a script and under nohup.

use super::*;

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
