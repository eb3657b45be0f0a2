//! `lllqos nri`: a Node Resource Interface plugin, which holds a request for each Kubernetes
//! container that asks, on containerd (1.7 with NRI enabled, 2.x) or any runtime that speaks NRI.
//!
//! containerd reads no `hooks.d`, so `oci-hook` does not reach it; NRI is its plugin interface.
//! The plugin connects to the runtime's socket (or uses the descriptor the runtime passes a plugin
//! it starts itself), registers, subscribes to the creation, stop and removal of containers, and
//! answers each call before the runtime goes on:
//!
//! - **CreateContainer** (before the container's process exists): reads what the pod's annotations
//!   ask for this container (see [`crate::request::annotations::wanted_by_pod`]), starts its
//!   holder ([`super::holder`]) and answers once the request is in force. A bad annotation, or a
//!   request that cannot be placed, is the answer instead: the runtime fails the creation with the
//!   message, which names the annotation.
//! - **StopContainer**, **RemoveContainer**: stops the container's holder and reaps it; the
//!   request is gone when the answer leaves.
//! - **Synchronize** (at registration): places what the running containers ask, each once.
//!
//! The holders' requests last with the plugin (`--pid` on it): when it stops (SIGTERM, SIGINT,
//! SIGHUP, or the runtime closing the connection) it stops them; when it dies, each holder
//! releases on its own, and after a restart synchronization places them again.
//!
//! One thread, one `poll` on the socket, the signalfd and the holders' pidfds, without a timeout:
//! no CPU between events. The wire is in [`wire`], the messages in [`api`].

mod api;
mod plugin;
mod wire;

use std::io::{Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use prost::Message as _;

use lllqos::cli::{NriArgs, parse_plugin_index, parse_plugin_name};
use lllqos::internal::oserror::os_message;

use crate::exit::ExitStatus;
use crate::signals::{Mode, Signals};
use plugin::Plugin;
use wire::{Demux, Message};

/// Where containerd listens for plugins it does not start itself.
const DEFAULT_SOCKET: &str = "/var/run/nri/nri.sock";
/// The descriptor of the connection, for a plugin the runtime starts (`NRI_PLUGIN_SOCKET`).
const SOCKET_ENV: &str = "NRI_PLUGIN_SOCKET";
const NAME_ENV: &str = "NRI_PLUGIN_NAME";
const INDEX_ENV: &str = "NRI_PLUGIN_IDX";

/// The ttrpc stream of the plugin's one call, RegisterPlugin (a client's streams are odd).
const REGISTER_STREAM: u32 = 1;

/// `lllqos nri`: runs the plugin until the runtime closes the connection or a signal ends it.
pub fn run(args: &NriArgs) -> Result<ExitStatus> {
    let name = identity(
        args.plugin_name.as_deref(),
        NAME_ENV,
        "lllqos",
        parse_plugin_name,
    )?;
    let index = identity(
        args.plugin_index.as_deref(),
        INDEX_ENV,
        "50",
        parse_plugin_index,
    )?;
    let mut plugin = Plugin::new()?;
    let mut socket = connect(args.socket.as_deref())?;
    let signals = Signals::block(Mode::Hold)?;
    let register = api::RegisterPluginRequest {
        plugin_name: name.clone(),
        plugin_idx: index.clone(),
    };
    send(
        &mut socket,
        wire::RUNTIME_CONN,
        &Message {
            stream: REGISTER_STREAM,
            kind: wire::REQUEST,
            flags: 0,
            payload: api::Request {
                service: api::RUNTIME_SERVICE.to_owned(),
                method: "RegisterPlugin".to_owned(),
                payload: register.encode_to_vec(),
                timeout_nano: 0,
            }
            .encode_to_vec(),
        },
    )?;
    let ended = serve(
        &mut socket,
        &signals,
        &mut plugin,
        &format!("{index}-{name}"),
    );
    plugin.release_all();
    ended
}

/// The plugin's name or index: the option, else the runtime's variable, else the default.
fn identity(
    option: Option<&str>,
    variable: &str,
    default: &str,
    parse: fn(&str) -> Result<String, String>,
) -> Result<String> {
    match (option, std::env::var(variable)) {
        (Some(given), _) => Ok(given.to_owned()),
        (None, Ok(value)) => parse(&value).map_err(|e| anyhow!("{variable}={value}: {e}")),
        (None, Err(_)) => Ok(default.to_owned()),
    }
}

/// The connection: `--socket`, else the descriptor the runtime passed, else the default socket.
fn connect(socket: Option<&Path>) -> Result<UnixStream> {
    if socket.is_none()
        && let Ok(value) = std::env::var(SOCKET_ENV)
    {
        return inherited(&value).map_err(|e| anyhow!("{SOCKET_ENV}={value}: {e}"));
    }
    let path = socket.unwrap_or(Path::new(DEFAULT_SOCKET));
    UnixStream::connect(path).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                " (is NRI enabled in containerd? docs/containers.md says how)"
            }
            _ => "",
        };
        anyhow!(
            "cannot connect to the NRI socket {}: {}{hint}",
            path.display(),
            os_message(&e)
        )
    })
}

/// The connection the runtime passed as descriptor `value`.
fn inherited(value: &str) -> Result<UnixStream, String> {
    let fd: i32 = value
        .parse()
        .ok()
        .filter(|fd| *fd > 2)
        .ok_or("not a descriptor number above 2")?;
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a stat into our buffer, or fails (EBADF) on a descriptor not open.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return Err(match std::io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::EBADF) => format!("descriptor {fd} is not open"),
            e => os_message(&e),
        });
    }
    // SAFETY: fstat succeeded and filled it.
    let stat = unsafe { stat.assume_init() };
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(format!("descriptor {fd} is not a socket"));
    }
    // SAFETY: the descriptor is open (fstat saw it), a socket, and nothing else in this process
    // owns it: the runtime passed it for the plugin's connection.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::fcntl::fcntl(
        &owned,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| e.desc().to_owned())?;
    Ok(UnixStream::from(owned))
}

fn send(socket: &mut UnixStream, conn: u32, message: &Message) -> Result<()> {
    let bytes = wire::encode(conn, message).map_err(|e| anyhow!("cannot answer: {e}"))?;
    socket
        .write_all(&bytes)
        .map_err(|e| anyhow!("the NRI connection: {}", os_message(&e)))
}

/// Serves the runtime's calls until the connection ends or a signal ends the plugin.
fn serve(
    socket: &mut UnixStream,
    signals: &Signals,
    plugin: &mut Plugin,
    me: &str,
) -> Result<ExitStatus> {
    let mut demux = Demux::default();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let holders = plugin.holders();
        let mut fds: Vec<PollFd> = [socket.as_fd(), signals.as_fd()]
            .into_iter()
            .chain(holders.iter().map(|(_, fd)| *fd))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => bail!("waiting for the runtime: {}", e.desc()),
        }
        let ready: Vec<bool> = fds.iter().map(|fd| fd.any().unwrap_or(false)).collect();
        drop(fds);
        let exited: Vec<String> = (holders.into_iter().zip(&ready[2..]))
            .filter(|(_, ready)| **ready)
            .map(|((id, _), _)| id)
            .collect();
        for id in exited {
            plugin.reap(&id);
        }
        if ready[1]
            && let Some(status) = signals.ending()?
        {
            return Ok(status);
        }
        if !ready[0] {
            continue;
        }
        let n = match socket.read(&mut buffer) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => bail!("the NRI connection: {}", os_message(&e)),
        };
        if n == 0 {
            eprintln!("lllqos: nri: the runtime closed the connection; the requests are released");
            return Ok(ExitStatus::Exited(0));
        }
        let messages = demux
            .feed(&buffer[..n])
            .map_err(|e| anyhow!("the NRI connection: {e}"))?;
        for (conn, message) in messages {
            match (conn, message.kind) {
                (wire::PLUGIN_CONN, wire::REQUEST) => {
                    let reply = answer(plugin, &message.payload);
                    send(
                        socket,
                        wire::PLUGIN_CONN,
                        &Message {
                            stream: message.stream,
                            kind: wire::RESPONSE,
                            flags: 0,
                            payload: reply.encode_to_vec(),
                        },
                    )?;
                }
                (wire::RUNTIME_CONN, wire::RESPONSE) if message.stream == REGISTER_STREAM => {
                    registered(&message.payload, me)?;
                }
                _ => {}
            }
        }
    }
}

/// The response to a call on the plugin's service.
fn answer(plugin: &mut Plugin, request: &[u8]) -> api::Response {
    let result = match api::Request::decode(request) {
        Ok(request) if request.service == api::PLUGIN_SERVICE => {
            plugin.call(&request.method, &request.payload)
        }
        Ok(request) => Err((
            api::UNIMPLEMENTED,
            format!("lllqos: no service {}", request.service),
        )),
        Err(e) => Err((
            api::FAILED_PRECONDITION,
            format!("lllqos: a request it cannot read: {e}"),
        )),
    };
    match result {
        Ok(payload) => api::Response {
            status: Some(api::Status {
                code: 0,
                message: String::new(),
            }),
            payload,
        },
        Err((code, message)) => api::Response {
            status: Some(api::Status { code, message }),
            payload: Vec::new(),
        },
    }
}

/// The runtime's answer to RegisterPlugin: an error ends the plugin.
fn registered(response: &[u8], me: &str) -> Result<()> {
    let response = api::Response::decode(response)
        .map_err(|e| anyhow!("the runtime's answer to the registration: {e}"))?;
    match response.status {
        Some(status) if status.code != 0 => {
            bail!(
                "the runtime refused to register plugin {me}: {}",
                status.message
            )
        }
        _ => {
            eprintln!("lllqos: nri: registered as {me}");
            Ok(())
        }
    }
}
