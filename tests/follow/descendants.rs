//! `--descendants`: a command that leaves processes running.

use super::*;

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
