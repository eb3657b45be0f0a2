//! Where the runtime is, and waiting for it: a socket to connect to, again after the runtime has
//! gone (inotify on its directory tells when it is back: no polling), or the connection the
//! runtime passed when it started the plugin, used once.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use nix::poll::PollTimeout;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use lllqos::internal::oserror::os_message;

use super::plugin::Plugin;
use super::{DEFAULT_SOCKET, SOCKET_ENV};
use crate::exit::ExitStatus;
use crate::signals::Signals;

/// What waiting for the runtime gave.
pub enum Connected {
    Socket(UnixStream),
    /// A signal ended the wait (or the runtime's connection was used already).
    Ended(ExitStatus),
}

/// Where the runtime is: a socket to connect to (again, after the runtime has gone), or the
/// connection it passed when it started the plugin (once).
pub enum Endpoint {
    Path(PathBuf),
    Inherited(Option<UnixStream>),
}

impl Endpoint {
    /// `--socket`, else the descriptor the runtime passed, else the default socket.
    pub fn new(socket: Option<&Path>) -> Result<Endpoint> {
        if socket.is_none()
            && let Ok(value) = std::env::var(SOCKET_ENV)
        {
            let stream = inherited(&value).map_err(|e| anyhow!("{SOCKET_ENV}={value}: {e}"))?;
            return Ok(Endpoint::Inherited(Some(stream)));
        }
        Ok(Endpoint::Path(
            socket.unwrap_or(Path::new(DEFAULT_SOCKET)).to_owned(),
        ))
    }

    pub fn inherited(&self) -> bool {
        matches!(self, Endpoint::Inherited(_))
    }

    /// The runtime served, as holders name it: the socket's path (for a connection the runtime
    /// passed, the path the other end listens on, or the default socket's).
    pub fn runtime(&self) -> String {
        match self {
            Endpoint::Path(path) => path.display().to_string(),
            Endpoint::Inherited(stream) => (stream.as_ref())
                .and_then(|s| s.peer_addr().ok())
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                .unwrap_or_else(|| DEFAULT_SOCKET.to_owned()),
        }
    }

    /// The connection, once the socket can be reached (meanwhile keeping the holders in place); at
    /// first, an error when the socket's directory does not exist (NRI not set up, a wrong path),
    /// rather than a wait for a runtime that is merely down.
    pub fn connect(
        &mut self,
        signals: &Signals,
        plugin: &mut Plugin,
        waiting: bool,
    ) -> Result<Connected> {
        let path = match self {
            Endpoint::Inherited(stream) => {
                return Ok(match stream.take() {
                    Some(stream) => Connected::Socket(stream),
                    None => Connected::Ended(ExitStatus::Exited(0)),
                });
            }
            Endpoint::Path(path) => path.clone(),
        };
        if !waiting {
            match connect(&path) {
                Ok(socket) => return Ok(Connected::Socket(socket)),
                // No such directory: NRI is not set up (or the path is wrong), not merely down.
                Err(e) if !path.parent().is_some_and(Path::is_dir) => return Err(e),
                Err(e) => eprintln!("lllqos: nri: {e:#}; waiting for the runtime"),
            }
        }
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok();
        let watched = (inotify.as_ref())
            .zip(path.parent())
            .and_then(|(inotify, dir)| {
                inotify
                    .add_watch(
                        dir,
                        AddWatchFlags::IN_CREATE
                            | AddWatchFlags::IN_MOVED_TO
                            | AddWatchFlags::IN_ATTRIB,
                    )
                    .ok()
            });
        // After a change in the directory, a few more tries: the socket may be made (bound) a
        // moment before it listens.
        let mut eager_until = Instant::now();
        loop {
            if let Ok(socket) = connect(&path) {
                eprintln!("lllqos: nri: {} is back", path.display());
                return Ok(Connected::Socket(socket));
            }
            // Without a watch on the directory (it is gone too), a try a second.
            let timeout = if Instant::now() < eager_until {
                PollTimeout::from(50u16)
            } else if watched.is_some() {
                PollTimeout::NONE
            } else {
                PollTimeout::from(1000u16)
            };
            let own: Vec<BorrowedFd> = [Some(signals.as_fd()), inotify.as_ref().map(AsFd::as_fd)]
                .into_iter()
                .flatten()
                .collect();
            let ready = match plugin.wait(&own, timeout) {
                Ok(ready) => ready,
                Err(e) => bail!("waiting for the runtime: {}", e.desc()),
            };
            if ready[0]
                && let Some(status) = signals.ending()?
            {
                return Ok(Connected::Ended(status));
            }
            if let Some(inotify) = &inotify
                && inotify.read_events().is_ok_and(|events| !events.is_empty())
            {
                eager_until = Instant::now() + Duration::from_secs(2);
            }
        }
    }
}

/// Connects to the runtime's socket at `path`.
fn connect(path: &Path) -> Result<UnixStream> {
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
