//! A real terminal: tmux with an interactive bash, for job control and terminal signals.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::Missing;

/// A tmux session running an interactive bash: a real terminal for job-control tests.
pub struct Tmux {
    name: String,
    socket: PathBuf,
    /// The pane's shell: the session leader of everything run on the terminal.
    shell: i32,
    _dir: tempfile::TempDir,
}

impl Tmux {
    /// Starts the session (its name carries `test`'s), or says that tmux is missing.
    pub fn start(test: &str) -> Result<Tmux, Missing> {
        super::program("tmux", "tmux")?;
        let name = format!("lllqos-test-{}-{test}", std::process::id());
        // A server of its own, its socket in a directory removed with it (a short path: sockets
        // are limited to 108 bytes), so that nothing stays behind in /tmp.
        let dir = tempfile::Builder::new()
            .prefix("lllqos-tmux")
            .tempdir()
            .unwrap();
        let socket = dir.path().join("s");
        let mut tmux = Tmux {
            name,
            socket,
            shell: 0,
            _dir: dir,
        };
        let status = tmux
            .command()
            .args([
                "new-session",
                "-d",
                "-s",
                &tmux.name,
                "-x",
                "200",
                "-y",
                "50",
            ])
            .args(["env", "PS1=sh> ", "bash", "--norc", "--noprofile"])
            .status()
            .expect("tmux");
        assert!(status.success());
        tmux.wait_for("sh>");
        let shell = tmux
            .command()
            .args(["display-message", "-p", "-t", &tmux.name, "#{pane_pid}"])
            .output()
            .expect("tmux display-message");
        tmux.shell = String::from_utf8_lossy(&shell.stdout)
            .trim()
            .parse()
            .expect("the pane's pid");
        Ok(tmux)
    }

    /// `tmux -S SOCKET`, for any tmux command on this session's server.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket);
        cmd
    }

    /// The session name, for other tmux commands.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Types `keys` (tmux key names such as `C-c`, or text when `literal`).
    pub fn keys(&self, keys: &str) {
        let status = self
            .command()
            .args(["send-keys", "-t", &self.name, keys])
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    /// Types a line and Enter.
    pub fn line(&self, text: &str) {
        let status = self
            .command()
            .args(["send-keys", "-t", &self.name, "-l", text])
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
        self.keys("Enter");
    }

    /// The visible screen.
    pub fn screen(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen contains `text`.
    pub fn wait_for(&self, text: &str) {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting for {text:?} on the terminal:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The terminal goes, and everything run on it has ended (hung up) before the test's next step,
/// or the next test, sees the machine: a request it held is gone.
impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) && !session_of(self.shell).is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The processes of session `sid`.
fn session_of(sid: i32) -> Vec<i32> {
    let in_session = |pid: i32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command: state, ppid, pgrp, session.
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
        fields.get(3).and_then(|s| s.parse().ok()) == Some(sid)
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|&pid| in_session(pid))
        .collect()
}
