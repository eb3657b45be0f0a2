//! The wrapper on a real terminal, driven through tmux: Ctrl-C, Ctrl-Z and `fg`, an interactive
//! shell under lllqos, terminal-generated signals not doubled.

use crate::common::bin;
use crate::common::tmux::Tmux;

macro_rules! setup {
    () => {{
        // The second only once the first is had: it needs root, and the kernel lock. Bound as
        // `let (kernel, tmux)`, the terminal is dropped first and waits for what ran on it to end,
        // before the kernel lock is released.
        let kernel = kernel!();
        (kernel, given!(Tmux::start(test_name!())))
    }};
}

/// The pid of the process whose command line starts with `program` and contains `needle` (a
/// unique marker argument), once it exists.
fn find_pid(program: &str, needle: &str) -> i32 {
    let mut found = None;
    crate::common::wait_until(&format!("a process running {needle:?}"), || {
        found = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(Result::ok)
            .find_map(|entry| {
                let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                (cmdline.starts_with(program) && cmdline.contains(needle)).then_some(pid)
            });
        found.is_some()
    });
    found.unwrap()
}

/// The pid of the lllqos whose command line contains `needle`.
fn find_lllqos(needle: &str) -> i32 {
    find_pid(bin().to_str().unwrap(), needle)
}

#[test]
fn ctrl_c_ends_the_command_and_the_shell_abandons_the_list() {
    let (_kernel, tmux) = setup!();
    let lllqos = bin().display().to_string();
    tmux.line(&format!("{lllqos} -- sleep 30.1; echo after-$?"));
    find_lllqos("sleep 30.1");
    tmux.keys("C-c");
    tmux.line("echo prompt-back");
    tmux.wait_for("\nprompt-back");
    // bash saw its foreground job die of SIGINT and dropped the rest of the list.
    let screen = tmux.screen();
    assert!(!screen.lines().any(|l| l.starts_with("after-")), "{screen}");
}

#[test]
fn an_interactive_shell_under_lllqos_survives_ctrl_c() {
    let (_kernel, tmux) = setup!();
    let lllqos = bin().display().to_string();
    tmux.line(&format!(
        "{lllqos} -l 0 -- env PS1='inner> ' bash --norc --noprofile"
    ));
    tmux.wait_for("inner>");
    tmux.line("sleep 30.3");
    find_pid("sleep", "30.3");
    tmux.keys("C-c");
    tmux.keys("C-c");
    tmux.line("echo inner-alive-$((40+2))");
    tmux.wait_for("inner-alive-42");
    tmux.line("exit 3");
    tmux.line("echo outer-rc=$?");
    tmux.wait_for("outer-rc=3");
}

#[test]
fn ctrl_z_stops_the_job_and_fg_resumes_it() {
    let (_kernel, tmux) = setup!();
    let lllqos = bin().display().to_string();
    tmux.line(&format!("{lllqos} -l 0 -- cat - /dev/null marker-z"));
    let wrapper = find_lllqos("marker-z");
    // As a user does: once the command runs.
    crate::common::wait_until_waiting(wrapper);
    tmux.keys("C-z");
    tmux.wait_for("Stopped");
    crate::common::wait_until("lllqos to stop", || crate::common::state(wrapper) == 'T');
    tmux.line("fg");
    crate::common::wait_until("lllqos to run again", || {
        crate::common::state(wrapper) == 'S'
    });
    tmux.line("hello-after-fg");
    tmux.wait_for("hello-after-fg\nhello-after-fg");
    tmux.keys("C-d");
    tmux.line("echo rc=$?");
    // cat exits 1 because marker-z does not exist: the status is the command's.
    tmux.wait_for("rc=1");
}

#[test]
fn tstp_sent_to_lllqos_stops_the_whole_job() {
    let (_kernel, tmux) = setup!();
    let lllqos = bin().display().to_string();
    tmux.line(&format!("{lllqos} -l 0 -- sleep 30.2"));
    let wrapper = find_lllqos("sleep 30.2");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(wrapper),
        nix::sys::signal::Signal::SIGTSTP,
    )
    .unwrap();
    tmux.wait_for("Stopped");
    assert_eq!(crate::common::state(wrapper), 'T');
    tmux.line("fg; echo rc=$?");
    crate::common::wait_until("lllqos to run again", || {
        crate::common::state(wrapper) == 'S'
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(wrapper),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    tmux.wait_for("rc=143");
}

#[test]
fn terminal_signals_reach_the_command_once() {
    let (_kernel, tmux) = setup!();
    require_program!("python3", "python3");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), crate::common::COUNTER).unwrap();
    let lllqos = bin().display().to_string();
    tmux.line(&format!(
        "{lllqos} -l 0 -- python3 {} SIGINT SIGQUIT SIGWINCH marker-t",
        file.path().display()
    ));
    tmux.wait_for("ready");
    let wrapper = find_lllqos("marker-t");
    // Each terminal signal is delivered (its `got` line shows) before the next is generated.
    tmux.keys("C-c");
    tmux.wait_for("got SIGINT");
    tmux.keys("C-\\");
    tmux.wait_for("got SIGQUIT");
    let resized = tmux
        .command()
        .args(["resize-window", "-t", tmux.name(), "-x", "150", "-y", "40"])
        .status()
        .is_ok_and(|s| s.success());
    if resized {
        tmux.wait_for("got SIGWINCH");
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(wrapper),
        nix::sys::signal::Signal::SIGUSR2,
    )
    .unwrap();
    let winch = u8::from(resized);
    tmux.wait_for(&format!("counts SIGINT=1 SIGQUIT=1 SIGWINCH={winch}"));
}

#[test]
fn a_hold_on_a_terminal_says_what_it_holds_and_ctrl_c_releases_it() {
    let (kernel, tmux) = setup!();
    let lllqos = bin().display().to_string();
    tmux.line(&format!("{lllqos} -l 45; echo rc=$?"));
    tmux.wait_for(
        "lllqos: holding 45 us on /dev/cpu_dma_latency; press Ctrl-C or send SIGTERM to release",
    );
    crate::common::wait_for_node(kernel.expect(45));
    tmux.keys("C-c");
    // SIGINT ends a hold normally: status 0, so the shell goes on with the list.
    tmux.wait_for("rc=0");
    assert_eq!(crate::common::read_node(), kernel.baseline);
}

#[test]
fn measure_shows_its_progress_on_a_terminal() {
    let (_kernel, tmux) = setup!();
    let lllqos = bin().display().to_string();
    tmux.line(&format!("{lllqos} measure --duration 1; echo rc=$?"));
    tmux.wait_for("phase 1/2, without the request");
    tmux.wait_for("phase 2/2, with the request");
    tmux.wait_for("rc=0");
    let screen = tmux.screen();
    assert!(screen.contains("max (us)"), "{screen}");
    // The progress line is cleared once the table is printed.
    assert!(!screen.contains("phase 2/2"), "{screen}");
}
