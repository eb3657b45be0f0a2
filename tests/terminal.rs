//! The wrapper on a real terminal, driven through tmux: Ctrl-C, Ctrl-Z and `fg`, an interactive
//! shell under lllqos, terminal-generated signals not doubled.

mod common;

use common::{Kernel, Tmux, bin};

macro_rules! setup {
    ($name:expr) => {{
        // The second only once the first is had: it needs root, and the kernel lock.
        let Some(kernel) = Kernel::take($name) else {
            return;
        };
        match Tmux::start($name) {
            Some(other) => (kernel, other),
            None => return,
        }
    }};
}

/// The pid of the process whose command line contains `needle` (a unique marker argument).
fn find_pid(needle: &str) -> i32 {
    let mut found = None;
    common::wait_until(&format!("a process running {needle:?}"), || {
        found = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(Result::ok)
            .find_map(|entry| {
                let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                (cmdline.starts_with(bin().to_str().unwrap()) && cmdline.contains(needle))
                    .then_some(pid)
            });
        found.is_some()
    });
    found.unwrap()
}

fn state(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .unwrap_or('?')
}

#[test]
fn ctrl_c_ends_the_command_and_the_shell_abandons_the_list() {
    let (_kernel, tmux) = setup!("ctrl_c_ends_the_command_and_the_shell_abandons_the_list");
    let lllqos = bin().display().to_string();
    tmux.line(&format!("{lllqos} -- sleep 30.1; echo after-$?"));
    find_pid("sleep 30.1");
    tmux.keys("C-c");
    tmux.line("echo prompt-back");
    tmux.wait_for("\nprompt-back");
    // bash saw its foreground job die of SIGINT and dropped the rest of the list.
    let screen = tmux.screen();
    assert!(!screen.lines().any(|l| l.starts_with("after-")), "{screen}");
}

#[test]
fn an_interactive_shell_under_lllqos_survives_ctrl_c() {
    let (_kernel, tmux) = setup!("an_interactive_shell_under_lllqos_survives_ctrl_c");
    let lllqos = bin().display().to_string();
    tmux.line(&format!(
        "{lllqos} -l 0 -- env PS1='inner> ' bash --norc --noprofile"
    ));
    tmux.wait_for("inner>");
    tmux.line("sleep 30");
    std::thread::sleep(std::time::Duration::from_millis(300));
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
    let (_kernel, tmux) = setup!("ctrl_z_stops_the_job_and_fg_resumes_it");
    let lllqos = bin().display().to_string();
    tmux.line(&format!("{lllqos} -l 0 -- cat - /dev/null marker-z"));
    let wrapper = find_pid("marker-z");
    tmux.keys("C-z");
    tmux.wait_for("Stopped");
    common::wait_until("lllqos to stop", || state(wrapper) == 'T');
    tmux.line("fg");
    common::wait_until("lllqos to run again", || state(wrapper) == 'S');
    tmux.line("hello-after-fg");
    tmux.wait_for("hello-after-fg\nhello-after-fg");
    tmux.keys("C-d");
    tmux.line("echo rc=$?");
    // cat exits 1 because marker-z does not exist: the status is the command's.
    tmux.wait_for("rc=1");
}

#[test]
fn tstp_sent_to_lllqos_stops_the_whole_job() {
    let (_kernel, tmux) = setup!("tstp_sent_to_lllqos_stops_the_whole_job");
    let lllqos = bin().display().to_string();
    tmux.line(&format!("{lllqos} -l 0 -- sleep 30.2"));
    let wrapper = find_pid("sleep 30.2");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(wrapper),
        nix::sys::signal::Signal::SIGTSTP,
    )
    .unwrap();
    tmux.wait_for("Stopped");
    assert_eq!(state(wrapper), 'T');
    tmux.line("fg; echo rc=$?");
    common::wait_until("lllqos to run again", || state(wrapper) == 'S');
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(wrapper),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    tmux.wait_for("rc=143");
}

#[test]
fn terminal_signals_reach_the_command_once() {
    let (_kernel, tmux) = setup!("terminal_signals_reach_the_command_once");
    if !common::python_or_skip("terminal_signals_reach_the_command_once") {
        return;
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), common::COUNTER).unwrap();
    let lllqos = bin().display().to_string();
    tmux.line(&format!(
        "{lllqos} -l 0 -- python3 {} SIGINT SIGQUIT SIGWINCH marker-t",
        file.path().display()
    ));
    tmux.wait_for("ready");
    let wrapper = find_pid("marker-t");
    tmux.keys("C-c");
    std::thread::sleep(std::time::Duration::from_millis(200));
    tmux.keys("C-\\");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let resize = tmux
        .command()
        .args(["resize-window", "-t", tmux.name(), "-x", "150", "-y", "40"])
        .status();
    std::thread::sleep(std::time::Duration::from_millis(200));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(wrapper),
        nix::sys::signal::Signal::SIGUSR2,
    )
    .unwrap();
    let winch = if resize.map(|s| s.success()).unwrap_or(false) {
        1
    } else {
        0
    };
    tmux.wait_for(&format!("counts SIGINT=1 SIGQUIT=1 SIGWINCH={winch}"));
}
