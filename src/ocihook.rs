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
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;

use crate::cli::CpuSpec;
use crate::exit::ExitStatus;
use crate::oserror::os_message;
use crate::request::{self, Chatter, Naming, Request};
use crate::run::PidFd;
use lllqos::idle::StateNames;
use lllqos::{CpuList, Latency};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// The annotation that asks for a latency (`--latency` syntax).
pub const LATENCY: &str = "lllqos.io/latency";
/// The annotation that names the limit by idle state (`--max-state` syntax).
pub const MAX_STATE: &str = "lllqos.io/max-state";
/// The annotation that makes the request per CPU: a cpulist, or `container`.
pub const CPUS: &str = "lllqos.io/cpus";
/// The prefix the `hooks.d` file selects containers by.
const PREFIX: &str = "lllqos.io/";
/// The most of stdin (the state) and of `config.json` that is read: far more than either holds.
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

/// What the annotations ask for.
#[derive(Debug, PartialEq, Eq)]
struct Wanted {
    latency: Latency,
    max_state: Option<StateNames>,
    cpus: Option<Cpus>,
    /// The annotations as given (`lllqos.io/latency=0 lllqos.io/cpus=container`), for messages.
    given: String,
}

/// `lllqos.io/cpus`.
#[derive(Debug, PartialEq, Eq)]
enum Cpus {
    List(CpuList),
    /// The container's own cpuset, from the bundle's `config.json`.
    Container,
}

/// Reads the `lllqos.io/` annotations: `None` when there is none (a hook configured for every
/// container leaves the others alone); an error names the annotation and its value.
fn wanted(annotations: &BTreeMap<String, String>) -> Result<Option<Wanted>, String> {
    let ours: Vec<(&str, &str)> = (annotations.iter())
        .filter(|(key, _)| key.starts_with(PREFIX))
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    if ours.is_empty() {
        return Ok(None);
    }
    let mut wanted = Wanted {
        latency: Latency::ZERO,
        max_state: None,
        cpus: None,
        given: (ours.iter())
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(" "),
    };
    for (key, value) in ours {
        let bad = |why: &dyn std::fmt::Display| format!("{key}={value}: {why}");
        match key {
            LATENCY => wanted.latency = value.parse().map_err(|e| bad(&e))?,
            MAX_STATE => wanted.max_state = Some(value.parse().map_err(|e| bad(&e))?),
            CPUS if value == "container" => wanted.cpus = Some(Cpus::Container),
            CPUS => wanted.cpus = Some(Cpus::List(value.parse().map_err(|e| bad(&e))?)),
            _ => {
                return Err(bad(&format_args!(
                    "unknown annotation (lllqos reads {LATENCY}, {MAX_STATE} and {CPUS})"
                )));
            }
        }
    }
    if annotations.contains_key(LATENCY) && wanted.max_state.is_some() {
        return Err(format!(
            "{LATENCY} and {MAX_STATE} both name the limit: give one"
        ));
    }
    Ok(Some(wanted))
}

/// The cpuset the container's `config.json` gives it (`linux.resources.cpu.cpus`).
fn container_cpus(bundle: &Path) -> Result<CpuList> {
    let path = bundle.join("config.json");
    let mut text = Vec::new();
    std::fs::File::open(&path)
        .and_then(|file| file.take(MAX_INPUT).read_to_end(&mut text))
        .map_err(|e| anyhow!("{}: {}", path.display(), os_message(&e)))?;
    let config: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| anyhow!("{}: not a container configuration: {e}", path.display()))?;
    let cpus = config
        .pointer("/linux/resources/cpu/cpus")
        .and_then(serde_json::Value::as_str)
        .filter(|cpus| !cpus.trim().is_empty())
        .ok_or_else(|| {
            anyhow!(
                "{} gives the container no cpuset (linux.resources.cpu.cpus): name the CPUs instead",
                path.display()
            )
        })?;
    cpus.trim()
        .parse()
        .map_err(|e| anyhow!("{}: linux.resources.cpu.cpus '{cpus}': {e}", path.display()))
}

/// `lllqos oci-hook`: reads the state on stdin, starts the holder, and says whether it placed the
/// request.
pub fn oci_hook() -> Result<ExitStatus> {
    let mut input = Vec::new();
    std::io::stdin()
        .take(MAX_INPUT)
        .read_to_end(&mut input)
        .map_err(|e| {
            anyhow!(
                "cannot read the container state on stdin: {}",
                os_message(&e)
            )
        })?;
    let state: State = serde_json::from_slice(&input).map_err(|e| {
        anyhow!("stdin is not an OCI container state ({e}): run lllqos oci-hook as a runtime hook")
    })?;
    let id = &state.id;
    let Some(wanted) = wanted(&state.annotations).map_err(|e| anyhow!("container {id}: {e}"))?
    else {
        return Ok(ExitStatus::Exited(0));
    };
    let given = &wanted.given;
    let cpus = match &wanted.cpus {
        None => None,
        Some(Cpus::List(list)) => Some(list.clone()),
        Some(Cpus::Container) => {
            let bundle = (state.bundle.as_deref()).ok_or_else(|| {
                anyhow!("container {id}: {CPUS}=container: the state names no bundle")
            })?;
            Some(
                container_cpus(bundle)
                    .with_context(|| format!("container {id}: {CPUS}=container"))?,
            )
        }
    };
    let init = match state.pid {
        Some(pid) if pid > 0 => pid,
        _ => bail!(
            "container {id}: the state names no running process (pid): run the hook at createRuntime or prestart"
        ),
    };
    let spec = cpus.map(CpuSpec::List);
    let request = request::resolve(
        wanted.latency,
        wanted.max_state.as_ref(),
        spec.as_ref(),
        Chatter::Warnings,
        Naming::Annotations,
    )
    .with_context(|| format!("container {id}"))?;
    if let Request::Nothing(_) = request {
        // A `none` fallback, said already: the container starts without a request.
        return Ok(ExitStatus::Exited(0));
    }
    PidFd::open(init)
        .map_err(|e| anyhow!("container {id}: its process {init}: {}", os_message(&e)))?;
    start_holder(id, given, init, &wanted, request.cpus())
}

/// Starts the holder, `lllqos --name ID --strict --quiet --pid INIT ...` in a session of its own
/// with /dev/null for stdin and stdout, and waits until it has placed the request (it says
/// `READY=1` on the notification socket, as it does under systemd) or has failed (its stderr, a
/// pipe to the hook, ends). `lllqos` options are given in the hook's own (resolved) terms.
fn start_holder(
    id: &str,
    given: &str,
    init: i32,
    wanted: &Wanted,
    cpus: Option<&CpuList>,
) -> Result<ExitStatus> {
    let dir = TempDir::new().map_err(|e| {
        anyhow!(
            "cannot make a directory for the holder's socket: {}",
            os_message(&e)
        )
    })?;
    let socket_path = dir.path.join("notify");
    let socket = UnixDatagram::bind(&socket_path).map_err(|e| {
        anyhow!(
            "cannot make the holder's notification socket: {}",
            os_message(&e)
        )
    })?;
    let mut holder = Command::new("/proc/self/exe");
    holder.arg0("lllqos").args([
        "--name",
        id,
        "--strict",
        "--quiet",
        "--pid",
        &init.to_string(),
    ]);
    match &wanted.max_state {
        Some(names) => holder.args(["--max-state", &names.to_string()]),
        None => holder.args(["--latency", &wanted.latency.as_micros().to_string()]),
    };
    if let Some(cpus) = cpus {
        holder.args(["--cpu", &cpus.to_string()]);
    }
    holder
        .env("NOTIFY_SOCKET", &socket_path)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setsid and close_range, async-signal-safe system calls on integers. Every other
    // descriptor the runtime may have passed becomes close-on-exec: the holder keeps none that
    // the runtime waits on.
    unsafe {
        holder.pre_exec(|| {
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
    let mut child = holder.spawn().map_err(|e| {
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
                // The holder lives on; its stderr pipe breaks harmlessly when the hook exits.
                return Ok(ExitStatus::Exited(0));
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
        let template = std::env::temp_dir().join("lllqos-oci-hook.XXXXXX");
        let path = nix::unistd::mkdtemp(&template)?;
        Ok(TempDir { path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        (pairs.iter())
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn no_annotation_of_ours_asks_for_nothing() {
        let others = annotations(&[("io.kubernetes.pod.name", "x"), ("lllqos.iox", "1")]);
        assert_eq!(wanted(&others), Ok(None));
    }

    #[test]
    fn each_annotation_is_read_with_the_options_syntax() {
        let got = wanted(&annotations(&[(LATENCY, "50us"), (CPUS, "2-3")]))
            .unwrap()
            .unwrap();
        assert_eq!(got.latency, Latency::from_micros(50).unwrap());
        assert_eq!(got.cpus, Some(Cpus::List("2-3".parse().unwrap())));
        assert_eq!(got.given, "lllqos.io/cpus=2-3 lllqos.io/latency=50us");
        let got = wanted(&annotations(&[
            (MAX_STATE, "C6,C1,none"),
            (CPUS, "container"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(got.max_state, Some("C6,C1,none".parse().unwrap()));
        assert_eq!(got.cpus, Some(Cpus::Container));
        // Only the CPUs: 0 us, as lllqos's own default.
        let got = wanted(&annotations(&[(CPUS, "1")])).unwrap().unwrap();
        assert_eq!(got.latency, Latency::ZERO);
    }

    #[test]
    fn a_bad_value_is_named_with_its_annotation() {
        for (key, value) in [
            (LATENCY, "fast"),
            (LATENCY, "-1"),
            (MAX_STATE, "none,C1"),
            (CPUS, "2-"),
            (CPUS, "auto"),
            ("lllqos.io/latncy", "0"),
        ] {
            let error = wanted(&annotations(&[(key, value)])).unwrap_err();
            assert!(error.starts_with(&format!("{key}={value}: ")), "{error}");
        }
        let error = wanted(&annotations(&[(LATENCY, "0"), (MAX_STATE, "C1")])).unwrap_err();
        assert!(error.contains("give one"), "{error}");
    }

    #[test]
    fn the_container_cpuset_comes_from_config_json() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| std::fs::write(dir.path().join("config.json"), text).unwrap();
        write(r#"{"linux":{"resources":{"cpu":{"cpus":"0-1"}}}}"#);
        assert_eq!(container_cpus(dir.path()).unwrap(), "0-1".parse().unwrap());
        write(r#"{"linux":{"resources":{}}}"#);
        let error = container_cpus(dir.path()).unwrap_err().to_string();
        assert!(error.contains("no cpuset"), "{error}");
        write("{");
        assert!(container_cpus(dir.path()).is_err());
    }
}
