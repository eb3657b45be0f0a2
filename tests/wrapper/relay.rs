//! Signals relayed to the command exactly once, never bounced back, never doubled when the whole group got them; lllqos as PID 1.

use super::*;

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

/// `lllqos ARGS` started with `signal` already pending (blocked and raised before its exec, which
/// keeps it pending): what a Ctrl-C or a `kill` that comes while lllqos starts up looks like, made
/// certain to come before the command is made.
fn started_with_pending(signal: Signal, args: &[&str]) -> std::process::ExitStatus {
    let mut cmd = lllqos_std(args);
    // SAFETY: sigprocmask and raise on this process, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signal as i32);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::raise(signal as i32);
            Ok(())
        });
    }
    cmd.status().unwrap()
}

#[test]
fn a_ctrl_c_before_the_command_starts_ends_lllqos_and_the_command_never_runs() {
    let kernel = kernel!();
    let cpu0 = crate::common::read_cpu(0);
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let marker = marker.to_str().unwrap();
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        for args in [
            vec!["-l", "0", "--", "touch", marker],
            vec!["-l", "0", "--cpu", "0", "--", "touch", marker],
        ] {
            let status = started_with_pending(signal, &args);
            assert_eq!(status.signal(), Some(signal as i32), "{args:?}: {status:?}");
            assert!(!std::path::Path::new(marker).exists(), "{signal}, {args:?}");
            // Nothing left in force.
            assert_eq!(read_node(), kernel.baseline, "{signal}, {args:?}");
            assert_eq!(crate::common::read_cpu(0), cpu0, "{signal}, {args:?}");
        }
        // Not even tried: a command that cannot be found is not reported (it would be, with 127,
        // had lllqos started it and relayed the signal only afterwards).
        let status = started_with_pending(signal, &["-l", "0", "--", "/nonexistent/command"]);
        assert_eq!(status.signal(), Some(signal as i32), "{signal}: {status:?}");
    }
}

#[test]
fn a_signal_that_came_before_the_command_started_reaches_it() {
    let _kernel = kernel!();
    let start = Instant::now();
    let status = started_with_pending(Signal::SIGUSR1, &["-l", "0", "--", "sleep", "30"]);
    assert_eq!(status.signal(), Some(libc::SIGUSR1), "{status:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
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
