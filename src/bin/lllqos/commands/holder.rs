//! The holder that `oci-hook` and `nri` start for a container: lllqos itself, as
//! `lllqos --name ID --strict --quiet --pid PID` with the request in its own options' terms
//! (`--latency` or `--max-state`, and `--cpu`).
//!
//! A process of its own per container, rather than a descriptor kept by the hook or the plugin:
//! `status`, `trace` and `metrics` name each request after its container (`--name ID`, and
//! `LLLQOS_CONTAINER`/`LLLQOS_POD` in its environment), the holder's own machinery releases it
//! (the moment `PID` exits, or on SIGTERM), and a holder killed with SIGKILL loses nothing (the
//! kernel drops a global request with its descriptor; the per-CPU registry restores what it
//! changed).
//!
//! It runs in a session of its own (`setsid`), with /dev/null for stdin and stdout and every
//! descriptor its starter had made close-on-exec (runc waits for a hook's output to close). It says
//! `READY=1` on a notification socket once the request is in force, as it does under systemd; its
//! stderr is a pipe to the starter until then. [`start`] returns once it has said so, or fails
//! with what it said once it has exited, having placed nothing.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{Result, anyhow, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use lllqos::CpuList;
use lllqos::internal::oserror::os_message;
use lllqos::status::{CONTAINER_ENV, POD_ENV};

use crate::request::annotations::Wanted;

/// A holder to start.
pub struct Holder<'a> {
    /// The container's id: the holder's `--name`, and `LLLQOS_CONTAINER`.
    pub id: &'a str,
    /// The container's pod, `NAMESPACE/NAME` (`LLLQOS_POD`), when there is one.
    pub pod: Option<&'a str>,
    /// The process whose life the request lasts (`--pid`).
    pub pid: i32,
    /// What the annotations ask for.
    pub wanted: &'a Wanted,
    /// The CPUs, for a per-CPU request (resolved: a list, or the container's cpuset).
    pub cpus: Option<&'a CpuList>,
}

/// Where holders say `READY=1`: a datagram socket in a private directory (mode 0700), both
/// removed when dropped. One serves every holder its starter starts, one at a time.
pub struct Notifier {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: TempDir,
}

impl Notifier {
    pub fn new() -> Result<Notifier> {
        let dir = TempDir::new().map_err(|e| {
            anyhow!(
                "cannot make a directory for the holders' socket: {}",
                os_message(&e)
            )
        })?;
        let path = dir.path.join("notify");
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
}

/// Starts the holder and waits until it has placed the request; returns it, running.
pub fn start(holder: &Holder, notifier: &Notifier) -> Result<Child> {
    let Holder {
        id,
        pod,
        pid,
        wanted,
        cpus,
    } = holder;
    let given = &wanted.given;
    let (socket, socket_path) = (&notifier.socket, &notifier.path);
    notifier.drain();
    let mut command = Command::new("/proc/self/exe");
    command.arg0("lllqos").args([
        "--name",
        id,
        "--strict",
        "--quiet",
        "--pid",
        &pid.to_string(),
    ]);
    match &wanted.max_state {
        Some(names) => command.args(["--max-state", &names.to_string()]),
        None => command.args(["--latency", &wanted.latency.as_micros().to_string()]),
    };
    if let Some(cpus) = cpus {
        command.args(["--cpu", &cpus.to_string()]);
    }
    command
        .env("NOTIFY_SOCKET", socket_path)
        .env(CONTAINER_ENV, id)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match pod {
        Some(pod) => command.env(POD_ENV, pod),
        None => command.env_remove(POD_ENV),
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
    let mut child = command.spawn().map_err(|e| {
        anyhow!(
            "container {id}: cannot start the holder: {}",
            os_message(&e)
        )
    })?;
    let mut stderr = child.stderr.take();
    let mut said = Vec::new();
    loop {
        let mut fds = vec![PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
        if let Some(stderr) = &stderr {
            fds.push(PollFd::new(stderr.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => bail!("container {id}: waiting for the holder: {}", e.desc()),
        }
        let ready: Vec<bool> = fds.iter().map(|fd| fd.any().unwrap_or(false)).collect();
        drop(fds);
        if ready[0] {
            let mut message = [0u8; 4096];
            let n = socket.recv(&mut message).unwrap_or(0);
            if message[..n]
                .split(|&b| b == b'\n')
                .any(|line| line == b"READY=1")
            {
                // The holder lives on; its stderr pipe breaks harmlessly (it ignores SIGPIPE).
                return Ok(child);
            }
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
            let said = String::from_utf8_lossy(&said);
            let reasons: Vec<&str> = (said.lines())
                .map(|line| line.strip_prefix("lllqos: ").unwrap_or(line))
                .collect();
            if reasons.is_empty() {
                bail!("container {id}: {given}: the holder ended before placing the request");
            }
            bail!("container {id}: {given}: {}", reasons.join("; "));
        }
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
