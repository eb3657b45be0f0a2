//! `lllqos oci-hook`: a request for a container's lifetime, chosen by the container's annotations.
//!
//! Wrapping each image's entry point would need the PM QoS node inside every container and a
//! change to every image. An OCI runtime hook needs neither: podman, CRI-O and runc run it on the
//! host, as root, for each container that the `hooks.d` file selects (annotations matching
//! `^lllqos\.io/`), and write the container's state on its stdin (runtime-spec `State`: id, pid of
//! the container's init in the host's PID namespace, bundle, annotations).
//!
//! # What it does
//!
//! 1. Reads the state and the `lllqos.io/` annotations: `lllqos.io/latency` (the `--latency`
//!    syntax) or `lllqos.io/max-state` (the `--max-state` syntax, fallbacks included), and
//!    `lllqos.io/cpus` (a cpulist, or `container` for the container's cpuset from the bundle's
//!    `config.json`, `linux.resources.cpu.cpus`: what a Kubernetes guaranteed pod with exclusive
//!    CPUs gets). Everything is checked before anything is placed; a bad value fails the hook
//!    with a message naming the annotation and the value, and the runtime refuses to start the
//!    container. An unknown `lllqos.io/` annotation is refused too: a typo must not silently
//!    leave a container without its request.
//! 2. Starts the holder: lllqos itself, as `lllqos --name ID --strict --quiet --pid INIT` with the
//!    request in its own options' terms (`--latency` or `--max-state`, and `--cpu`), in a session
//!    of its own (`setsid`), with /dev/null for stdin and stdout and every descriptor the runtime
//!    passed made close-on-exec (runc waits for a hook's output to close). The holder says
//!    `READY=1` on a notification socket of the hook's once the request is in force, as it does
//!    under systemd; its stderr is a pipe to the hook. The hook exits 0 on `READY=1`, or 125 with
//!    the holder's error once the holder has exited, having placed nothing.
//! 3. The holder keeps the request while the container's init lives (`--pid`: a pidfd on the pid
//!    the runtime named) and releases it the moment the init exits, or on SIGTERM, SIGINT or
//!    SIGHUP. A holder killed with SIGKILL loses nothing: the kernel drops a global request with
//!    its descriptor, and the per-CPU registry restores what the holder changed (at the next
//!    lllqos, or `lllqos recover`).
//!
//! # Naming the holder after the container
//!
//! `lllqos status` shows a holder's command line, which holds `--name ID`; `lllqos trace` shows the
//! command the kernel keeps for it (`comm`, 15 bytes), which `--name` sets to the id's first 15
//! bytes (`trace --command` matches it).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use serde::Deserialize;

use lllqos::internal::oserror::os_message;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::container::holder::{Notifier, Spec};
use super::container::{Container, Cpuset};
use crate::exit::ExitStatus;
use crate::process::PidFd;

/// The most of stdin (the state) that is read: far more than it holds.
const MAX_INPUT: u64 = 16 << 20;

/// The container state a runtime writes on a hook's stdin (runtime-spec, "State"); the fields the
/// hook uses.
#[derive(Debug, Deserialize)]
struct State {
    id: String,
    /// The container's init, in the host's PID namespace; absent once it has exited.
    pid: Option<i32>,
    bundle: Option<PathBuf>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// How long the hook waits for the container state on stdin: a runtime writes it at once.
const STATE_DEADLINE: Duration = Duration::from_secs(5);

/// Reads the container state from `input` (stdin): as soon as a whole JSON value has arrived, or
/// the input has ended, and no later than `deadline` from now, whether or not the writer closes
/// it. At most [`MAX_INPUT`] bytes.
fn read_state(input: BorrowedFd, deadline: Duration) -> Result<State> {
    let not_a_state = |e: &dyn std::fmt::Display| {
        anyhow!("stdin is not an OCI container state ({e}): run lllqos oci-hook as a runtime hook")
    };
    let end = Instant::now() + deadline;
    let mut text = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(input, PollFlags::POLLIN)];
        let ready = match poll(
            &mut fds,
            PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => bail!("cannot read the container state on stdin: {}", e.desc()),
        };
        if ready == 0 {
            bail!(
                "no container state on stdin within {} s (a runtime writes it and closes stdin): run lllqos oci-hook as a runtime hook",
                deadline.as_secs()
            );
        }
        let n = match nix::unistd::read(input, &mut chunk) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
            Err(e) => bail!("cannot read the container state on stdin: {}", e.desc()),
        };
        text.extend_from_slice(&chunk[..n]);
        if text.len() as u64 > MAX_INPUT {
            bail!("the container state on stdin is larger than {MAX_INPUT} bytes");
        }
        let mut values = serde_json::Deserializer::from_slice(&text).into_iter::<State>();
        match values.next() {
            Some(Ok(state)) => return Ok(state),
            // Not whole yet: read on, unless the input has ended.
            Some(Err(e)) if e.is_eof() && n > 0 => {}
            Some(Err(e)) => return Err(not_a_state(&e)),
            None => return Err(not_a_state(&"empty")),
        }
    }
}

/// `lllqos oci-hook`: reads the state on stdin, starts the holder, and says whether it placed the
/// request.
pub fn oci_hook() -> Result<ExitStatus> {
    let state = read_state(std::io::stdin().as_fd(), STATE_DEADLINE)?;
    let id = &state.id;
    let container = Container {
        id,
        name: None,
        pod: None,
        annotations: Some(&state.annotations),
        cpuset: Cpuset::Bundle(state.bundle.as_deref()),
    };
    let Some(placement) = container
        .placement()
        .map_err(|e| anyhow!("container {id}: {e}"))?
    else {
        return Ok(ExitStatus::Exited(0));
    };
    let init = match state.pid {
        Some(pid) if pid > 0 => pid,
        _ => bail!(
            "container {id}: the state names no running process (pid): run the hook at createRuntime or prestart"
        ),
    };
    PidFd::open(init)
        .map_err(|e| anyhow!("container {id}: its process {init}: {}", os_message(&e)))?;
    Spec::new(&container, &placement, None).start(init, &Notifier::new()?)?;
    Ok(ExitStatus::Exited(0))
}
