//! The holder that `oci-hook` and `nri` start for a container: lllqos itself, as
//! `lllqos --name ID --strict --quiet --pid PID` with the request in its own options' terms
//! (`--latency` or `--max-state`, and `--cpu`).
//!
//! A process of its own per container, rather than a descriptor kept by the hook or the plugin:
//! the request lasts exactly as long as the process `PID` it watches (the container's init; for a
//! container `nri` has created but not yet started, the plugin itself) whatever happens to the hook,
//! the plugin or the runtime; `status`, `trace` and `metrics` name each request after its container
//! (`--name ID`, and `LLLQOS_CONTAINER`/`LLLQOS_POD` in its environment); the holder's own
//! machinery releases it (the moment `PID` exits, or on SIGTERM); and a holder killed with SIGKILL
//! loses nothing for good (the kernel drops a global request with its descriptor; the per-CPU
//! registry restores what it changed).
//!
//! It runs in a session of its own (`setsid`), with /dev/null for stdin and stdout and every
//! descriptor its starter had made close-on-exec (runc waits for a hook's output to close, and a
//! plugin's socket must not outlive the plugin). [`Spec::start`] waits until it says `READY=1` on a
//! notification socket (as it does under systemd), its stderr a pipe to the starter until then, for
//! at most a deadline: a holder not in force by then is stopped, and what it said is the error.
//! [`Spec::spawn`] starts one without waiting (its stderr the starter's), for a container that
//! runs already and that nothing waits for. [`find`] lists the holders a plugin started, by the
//! runtime they serve, from `/proc`: a restarted plugin adopts them.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use lllqos::internal::oserror::os_message;
use lllqos::internal::procfs;
use lllqos::status::{CONTAINER_ENV, POD_ENV};

use super::{Container, Placement};
use crate::request::Request;

/// In the environment of a holder `nri` started: the runtime it serves (the NRI socket's path),
/// by which a restarted plugin finds its holders.
pub const RUNTIME_ENV: &str = "LLLQOS_NRI";

/// How long a holder may take to place its request before its container is refused.
pub const DEADLINE: Duration = Duration::from_secs(1);

/// What a container's holder is started with: everything but the process it watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The container's id: the holder's `--name`, and `LLLQOS_CONTAINER`.
    pub id: String,
    /// The container's pod, `NAMESPACE/NAME` (`LLLQOS_POD`).
    pub pod: Option<String>,
    /// The request's options: `--latency N` or `--max-state LIST`, and `--cpu LIST`.
    pub request: Vec<String>,
    /// The runtime an `nri` holder serves (`LLLQOS_NRI`).
    pub runtime: Option<String>,
    /// What asked for the request, as given (`lllqos.io/latency=0`), for messages.
    pub given: String,
}

impl Spec {
    /// The holder of what `placement` asks for `container`.
    pub fn new(container: &Container, placement: &Placement, runtime: Option<&str>) -> Spec {
        let mut request = match &placement.wanted.max_state {
            Some(names) => vec!["--max-state".to_owned(), names.to_string()],
            None => vec![
                "--latency".to_owned(),
                placement.wanted.latency.as_micros().to_string(),
            ],
        };
        if let Request::PerCpu(limits) = &placement.request {
            request.extend(["--cpu".to_owned(), limits.cpus().to_string()]);
        }
        Spec {
            id: container.id.to_owned(),
            pod: container.pod_name(),
            request,
            runtime: runtime.map(str::to_owned),
            given: placement.wanted.given.clone(),
        }
    }

    /// The holder's command line, watching `pid`.
    pub fn argv(&self, pid: i32) -> Vec<String> {
        let fixed = [
            "lllqos",
            "--name",
            &self.id,
            "--strict",
            "--quiet",
            "--pid",
            &pid.to_string(),
        ];
        (fixed.iter().map(|s| (*s).to_owned()))
            .chain(self.request.iter().cloned())
            .collect()
    }

    /// The command that starts the holder watching `pid`.
    fn command(&self, pid: i32) -> Command {
        let argv = self.argv(pid);
        let mut command = Command::new("/proc/self/exe");
        command
            .arg0(&argv[0])
            .args(&argv[1..])
            .env(CONTAINER_ENV, &self.id)
            .env_remove("NOTIFY_SOCKET")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        match &self.pod {
            Some(pod) => command.env(POD_ENV, pod),
            None => command.env_remove(POD_ENV),
        };
        match &self.runtime {
            Some(runtime) => command.env(RUNTIME_ENV, runtime),
            None => command.env_remove(RUNTIME_ENV),
        };
        // SAFETY: setsid and close_range, async-signal-safe system calls on integers. Every other
        // descriptor the starter has (a runtime's, the plugin's socket) becomes close-on-exec: the
        // holder keeps none that others wait on.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                libc::syscall(
                    libc::SYS_close_range,
                    3u32,
                    u32::MAX,
                    libc::CLOSE_RANGE_CLOEXEC,
                );
                Ok(())
            });
        }
        command
    }

    /// Starts the holder watching `pid` and waits, at most [`DEADLINE`], until it has placed the
    /// request; returns it, running. A holder that ends first, or is not in force in time (it is
    /// stopped then, having placed nothing), is an error that says why.
    pub fn start(&self, pid: i32, notifier: &Notifier) -> Result<Child> {
        let id = &self.id;
        notifier.drain();
        let mut command = self.command(pid);
        command
            .env("NOTIFY_SOCKET", &notifier.path)
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| {
            anyhow!(
                "container {id}: cannot start the holder: {}",
                os_message(&e)
            )
        })?;
        match wait_ready(&mut child, notifier) {
            Ok(()) => Ok(child),
            Err(why) => {
                // Not in force: it goes, having placed nothing (an ending signal makes it give up
                // the registry's lock it waits for, or release what it placed).
                // SAFETY: kill on our own child, not yet reaped.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                let _ = child.wait();
                Err(anyhow!("container {id}: {}: {why}", self.given))
            }
        }
    }

    /// Starts the holder watching `pid`, without waiting for it (its stderr the starter's).
    pub fn spawn(&self, pid: i32) -> Result<Child> {
        self.command(pid)
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                anyhow!(
                    "container {}: cannot start the holder: {}",
                    self.id,
                    os_message(&e)
                )
            })
    }
}

/// Waits until `child` says `READY=1` on `notifier`, at most [`DEADLINE`]; what it said on stderr
/// when it ends first, or that it was not in force in time.
fn wait_ready(child: &mut Child, notifier: &Notifier) -> Result<(), String> {
    let end = Instant::now() + DEADLINE;
    let mut stderr = child.stderr.take();
    let mut said = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "the holder did not place the request within {} s: stopped{}",
                DEADLINE.as_secs(),
                reasons(&said).map_or_else(String::new, |r| format!(" ({r})"))
            ));
        }
        let mut fds = vec![PollFd::new(notifier.socket.as_fd(), PollFlags::POLLIN)];
        if let Some(stderr) = &stderr {
            fds.push(PollFd::new(stderr.as_fd(), PollFlags::POLLIN));
        }
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("waiting for the holder: {}", e.desc())),
        }
        let ready: Vec<bool> = fds.iter().map(|fd| fd.any().unwrap_or(false)).collect();
        drop(fds);
        if ready[0] && notifier.ready() {
            // The holder lives on; its stderr pipe breaks harmlessly (it ignores SIGPIPE).
            return Ok(());
        }
        if ready.get(1) == Some(&true)
            && let Some(pipe) = stderr.as_mut()
        {
            let mut chunk = [0u8; 4096];
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => stderr = None,
                Ok(n) => said.extend_from_slice(&chunk[..n]),
            }
        }
        if stderr.is_none() {
            // The holder ended without placing the request.
            let _ = child.wait();
            return Err(reasons(&said)
                .unwrap_or_else(|| "the holder ended before placing the request".to_owned()));
        }
    }
}

/// What a holder said on stderr, its lines joined without their `lllqos: ` prefix.
fn reasons(said: &[u8]) -> Option<String> {
    let said = String::from_utf8_lossy(said);
    let reasons: Vec<&str> = (said.lines())
        .map(|line| line.strip_prefix("lllqos: ").unwrap_or(line))
        .collect();
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// Where holders say `READY=1`: a datagram socket, in a private directory of its own (mode 0700,
/// removed when dropped) or at a path in one of the plugin's (replaced when made: one a killed
/// plugin left is not left for good). One serves every holder its starter starts, one at a time.
pub struct Notifier {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: Option<TempDir>,
}

impl Notifier {
    /// A notification socket in a new private directory.
    pub fn new() -> Result<Notifier> {
        let dir = TempDir::new().map_err(|e| {
            anyhow!(
                "cannot make a directory for the holders' socket: {}",
                os_message(&e)
            )
        })?;
        let path = dir.path.join("notify");
        Notifier::bind(path, Some(dir))
    }

    /// A notification socket at `path`, in a directory only root may write.
    pub fn at(path: PathBuf) -> Result<Notifier> {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(anyhow!(
                    "cannot replace {}: {}",
                    path.display(),
                    os_message(&e)
                ));
            }
        }
        Notifier::bind(path, None)
    }

    fn bind(path: PathBuf, dir: Option<TempDir>) -> Result<Notifier> {
        let socket = UnixDatagram::bind(&path)
            .and_then(|socket| socket.set_nonblocking(true).map(|()| socket))
            .map_err(|e| {
                anyhow!(
                    "cannot make the holders' notification socket: {}",
                    os_message(&e)
                )
            })?;
        Ok(Notifier {
            socket,
            path,
            _dir: dir,
        })
    }

    /// Drops what earlier holders may have left unread.
    fn drain(&self) {
        let mut message = [0u8; 4096];
        while self.socket.recv(&mut message).is_ok() {}
    }

    /// Whether a message waiting says `READY=1`.
    fn ready(&self) -> bool {
        let mut message = [0u8; 4096];
        let n = self.socket.recv(&mut message).unwrap_or(0);
        message[..n]
            .split(|&b| b == b'\n')
            .any(|line| line == b"READY=1")
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A private directory (mode 0700, in the temporary directory), removed when dropped.
struct TempDir {
    path: PathBuf,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let template = std::env::temp_dir().join("lllqos-holder.XXXXXX");
        let path = nix::unistd::mkdtemp(&template)?;
        Ok(TempDir { path })
    }
}

/// A holder found running (by [`find`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The holder's process id.
    pub pid: i32,
    /// The container it holds for.
    pub id: String,
    /// The process it watches (`--pid`).
    pub watches: i32,
    /// Its request's options, as [`Spec::request`].
    pub request: Vec<String>,
}

/// The holders that serve `runtime` (their `LLLQOS_NRI`), from `/proc`: root's processes whose
/// command line is a holder's. Others (a process that only claims the variable) are left out.
pub fn find(runtime: &str) -> Vec<Found> {
    procfs::pids()
        .filter_map(|pid| {
            // Root's: only root starts holders, and only root can be trusted to be one.
            if procfs::status(pid)?.uid? != 0 {
                return None;
            }
            if procfs::environment_variable(pid, RUNTIME_ENV)? != runtime {
                return None;
            }
            parse(pid, &procfs::arguments(pid)?)
        })
        .collect()
}

/// A holder's command line, as [`Spec::argv`] makes it.
fn parse(pid: i32, argv: &[String]) -> Option<Found> {
    match argv {
        [
            lllqos,
            name,
            id,
            strict,
            quiet,
            watch,
            watches,
            request @ ..,
        ] if lllqos == "lllqos"
            && name == "--name"
            && strict == "--strict"
            && quiet == "--quiet"
            && watch == "--pid" =>
        {
            Some(Found {
                pid,
                id: id.clone(),
                watches: watches.parse().ok()?,
                request: request.to_vec(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holders_command_line_reads_back_as_what_it_was_started_with() {
        let spec = Spec {
            id: "abc".into(),
            pod: Some("default/rt".into()),
            request: vec!["--latency".into(), "7".into(), "--cpu".into(), "1".into()],
            runtime: Some("/run/nri.sock".into()),
            given: "lllqos.io/latency=7 lllqos.io/cpus=1".into(),
        };
        let argv = spec.argv(42);
        assert_eq!(
            argv[..7],
            [
                "lllqos", "--name", "abc", "--strict", "--quiet", "--pid", "42"
            ]
        );
        assert_eq!(
            parse(9, &argv),
            Some(Found {
                pid: 9,
                id: "abc".into(),
                watches: 42,
                request: spec.request.clone(),
            })
        );
        let mut other = argv.clone();
        other[0] = "sleep".into();
        assert_eq!(parse(9, &other), None);
        assert_eq!(parse(9, &argv[..5]), None);
    }
}
