//! `lllqos nri`: a Node Resource Interface plugin, which holds a request for each Kubernetes
//! container that asks, on containerd (1.7 with NRI enabled, 2.x) or any runtime that speaks NRI.
//!
//! containerd reads no `hooks.d`, so `oci-hook` does not reach it; NRI is its plugin interface.
//! The plugin connects to the runtime's socket (or uses the descriptor the runtime passes a plugin
//! it starts itself), registers, subscribes to the creation, start, update, stop and removal of
//! containers, and answers each call before the runtime goes on ([`plugin`] says what each does).
//!
//! # A request lasts the container's life
//!
//! Each container that asks has a holder of its own ([`crate::commands::container::holder`]):
//! from the answer to its creation (watching the plugin until the container runs) until its stop,
//! or, when no plugin is there to hear the stop, until the container's init exits. The plugin owns
//! no request: a SIGTERM, SIGKILL, restart or upgrade of the plugin, and a stop, crash or restart
//! of containerd, leave every running container's request in force. On SIGTERM, SIGINT or SIGHUP
//! the plugin exits 0 and leaves them; another ending signal ends it the same way, by that signal.
//! When the runtime closes the connection, a plugin that connected by path waits for the socket
//! to come back (inotify on its directory: no polling) and registers again; one the runtime
//! started exits, and the runtime starts it again. Every registration is followed by a
//! synchronization, where the plugin adopts the holders in place (found in `/proc` by the runtime
//! they serve), stops those whose containers are gone, and places what is missing.
//!
//! One plugin serves a runtime: a second one on the same socket refuses to start, naming the
//! first (a lock in `/run/lllqos-nri`). Each held container costs the plugin one descriptor (its
//! holder's pidfd): the plugin raises its soft limit of descriptors to the hard one.
//!
//! One thread, one `poll` on the socket, the signalfd and the holders' pidfds, without a timeout
//! (but while holders a synchronization found missing are being started): no CPU between events.
//! The wire is in [`wire`], the messages in [`api`], the errors on the wire in [`refusal`].

mod api;
mod endpoint;
mod lock;
mod plugin;
mod refusal;
mod wire;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use nix::poll::PollTimeout;
use prost::Message as _;

use lllqos::cli::{NriArgs, parse_plugin_index, parse_plugin_name};
use lllqos::internal::oserror::os_message;

use crate::exit::ExitStatus;
use crate::signals::{Mode, Signals};
use endpoint::{Connected, Endpoint};
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

/// `lllqos nri`: serves the runtime until a signal ends the plugin (or, started by the runtime,
/// until the runtime closes the connection).
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
    let mut endpoint = Endpoint::new(args.socket.as_deref())?;
    let runtime = endpoint.runtime();
    let lock = lock::lock(&runtime)?;
    raise_descriptor_limit();
    let mut plugin = Plugin::new(&runtime, lock.notify.clone())?;
    let signals = Signals::block(Mode::Hold)?;
    let me = format!("{index}-{name}");
    // After the runtime has gone: wait for it to come back (the first time, fail at once).
    let mut waiting = false;
    loop {
        let mut socket = match endpoint.connect(&signals, &mut plugin, waiting)? {
            Connected::Socket(socket) => socket,
            Connected::Ended(status) => return Ok(status),
        };
        // A runtime that closes the connection at once (not ready yet) is waited for again, a
        // moment later.
        let connected = Instant::now();
        let served = match register(&mut socket, &name, &index) {
            Ok(()) => serve(&mut socket, &signals, &mut plugin, &me)?,
            Err(_) => Served::Closed,
        };
        match served {
            Served::Ended(status) => return Ok(status),
            Served::Closed if endpoint.inherited() => {
                eprintln!(
                    "lllqos: nri: the runtime closed the connection; the holders keep the containers' requests, and the runtime starts the plugin again"
                );
                return Ok(ExitStatus::Exited(0));
            }
            Served::Closed => {
                if connected.elapsed() < Duration::from_secs(1) {
                    std::thread::sleep(Duration::from_millis(200));
                }
                eprintln!(
                    "lllqos: nri: the runtime closed the connection; the holders keep the containers' requests; waiting for {}",
                    runtime
                );
                waiting = true;
            }
        }
    }
}

/// Sends RegisterPlugin.
fn register(socket: &mut UnixStream, name: &str, index: &str) -> Result<()> {
    let register = api::RegisterPluginRequest {
        plugin_name: name.to_owned(),
        plugin_idx: index.to_owned(),
    };
    send(
        socket,
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
    )
}

/// Raises the soft limit of descriptors to the hard one: each held container costs one.
fn raise_descriptor_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
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

fn send(socket: &mut UnixStream, conn: u32, message: &Message) -> Result<()> {
    let bytes = wire::encode(conn, message).map_err(|e| anyhow!("cannot answer: {e}"))?;
    socket
        .write_all(&bytes)
        .map_err(|e| anyhow!("the NRI connection: {}", os_message(&e)))
}

/// How serving a connection ended.
enum Served {
    /// The runtime closed it (or it broke).
    Closed,
    /// A signal ended the plugin: exit with this status.
    Ended(ExitStatus),
}

/// Serves the runtime's calls until the connection ends or a signal ends the plugin.
fn serve(
    socket: &mut UnixStream,
    signals: &Signals,
    plugin: &mut Plugin,
    me: &str,
) -> Result<Served> {
    let mut demux = Demux::default();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        if plugin.has_pending() {
            plugin.place_pending();
        }
        // Holders to start: look at the connection and go on at once.
        let timeout = if plugin.has_pending() {
            PollTimeout::ZERO
        } else {
            PollTimeout::NONE
        };
        let ready = match plugin.wait(&[socket.as_fd(), signals.as_fd()], timeout) {
            Ok(ready) => ready,
            Err(e) => bail!("waiting for the runtime: {}", e.desc()),
        };
        if ready[1]
            && let Some(status) = signals.ending()?
        {
            return Ok(Served::Ended(status));
        }
        if !ready[0] {
            continue;
        }
        let n = match socket.read(&mut buffer) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(Served::Closed),
        };
        if n == 0 {
            return Ok(Served::Closed);
        }
        let messages = demux
            .feed(&buffer[..n])
            .map_err(|e| anyhow!("the NRI connection: {e}"))?;
        for (conn, message) in messages {
            match (conn, message.kind) {
                (wire::PLUGIN_CONN, wire::REQUEST) => {
                    let reply = answer(plugin, &message.payload);
                    if send(
                        socket,
                        wire::PLUGIN_CONN,
                        &Message {
                            stream: message.stream,
                            kind: wire::RESPONSE,
                            flags: 0,
                            payload: reply.encode_to_vec(),
                        },
                    )
                    .is_err()
                    {
                        return Ok(Served::Closed);
                    }
                    plugin.after_answer();
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
        Ok(request) => Err(refusal::Refusal::Unknown(format!(
            "no service {}",
            request.service
        ))),
        Err(e) => Err(refusal::Refusal::Unreadable(format!(
            "a request it cannot read: {e}"
        ))),
    };
    match result {
        Ok(payload) => api::Response {
            status: Some(api::Status {
                code: 0,
                message: String::new(),
            }),
            payload,
        },
        Err(refusal) => api::Response {
            status: Some(refusal.status()),
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
