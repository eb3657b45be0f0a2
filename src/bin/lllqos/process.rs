//! This process, and others by pidfd: what lllqos inherited and must hand on unchanged, its name,
//! its word to a service manager, and processes it waits for without being their parent.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

use lllqos::internal::procfs;
use lllqos::internal::sigset::SignalSet;

/// The signals that were ignored when lllqos started, recorded by [`init_process`].
static IGNORED_AT_START: OnceLock<SignalSet> = OnceLock::new();

/// Records what lllqos inherited and must hand on unchanged; call first thing in `main`.
///
/// Then lllqos ignores SIGPIPE for itself (a write to a closed pipe returns EPIPE instead of
/// killing it half-way through a change), and parks close-on-exec /dev/null descriptors on any
/// closed standard fd, so that nothing lllqos opens lands there and the command still finds it
/// closed (see [`crate::wrap::spawn`]).
pub fn init_process() {
    let _ = IGNORED_AT_START.set(SignalSet::ignored());
    // SAFETY: installing SIG_IGN runs no code of ours.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    for fd in 0..=2 {
        // SAFETY: fcntl, open, dup3 and close on integers and a static NUL-terminated path.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) >= 0 {
                continue;
            }
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if null >= 0 && null != fd {
                libc::dup3(null, fd, libc::O_CLOEXEC);
                libc::close(null);
            }
        }
    }
}

/// The signals ignored when lllqos started (now, if [`init_process`] was not called).
pub fn ignored_at_start() -> SignalSet {
    IGNORED_AT_START
        .get()
        .copied()
        .unwrap_or_else(SignalSet::ignored)
}

/// Names this process `name` as the kernel keeps it (`comm`: its first 15 bytes), which `ps`,
/// `top` and trace events show.
pub fn set_name(name: &str) {
    let comm: Vec<u8> = (name.bytes().take(15)).chain(std::iter::once(0)).collect();
    // SAFETY: prctl reads the NUL-terminated name from our buffer.
    unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr(), 0, 0, 0) };
}

/// Tells the service manager that the request is in force (`READY=1` on `$NOTIFY_SOCKET`, the
/// sd_notify protocol): a `Type=notify` hold unit becomes active only then, and `lllqos oci-hook`
/// waits for it. Without the variable, or when the socket cannot be reached, nothing happens.
pub fn notify_ready() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    // `@name`: an abstract socket (systemd's own notation).
    let address = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(&path),
    };
    if let (Ok(socket), Ok(address)) = (UnixDatagram::unbound(), address) {
        // Never blocks: a receiver that does not read must not hold up a request's holder.
        let _ = socket.set_nonblocking(true);
        let _ = socket.send_to_addr(b"READY=1", &address);
    }
}

/// A process to wait for or signal without being its parent: a pidfd pins it (a reused pid is
/// never hit) and becomes readable when it exits.
#[derive(Debug)]
pub struct PidFd {
    pid: i32,
    fd: OwnedFd,
}

impl PidFd {
    /// Opens a pidfd for process `pid`. A thread id is refused with the process it belongs to.
    pub fn open(pid: i32) -> io::Result<PidFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            let error = io::Error::last_os_error();
            return Err(match procfs::status(pid).and_then(|s| s.tgid) {
                Some(tgid) if tgid != pid => io::Error::other(format!(
                    "{pid} is a thread of process {tgid}, not a process (give --pid {tgid})"
                )),
                _ => error,
            });
        }
        // SAFETY: the kernel just returned this descriptor (close-on-exec, as pidfds always are);
        // nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(PidFd { pid, fd })
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `signal` to the process, if it has not been reaped.
    pub fn signal(&self, signal: i32) {
        // SAFETY: pidfd_send_signal on our descriptor, a signal number and no siginfo.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                std::os::fd::AsRawFd::as_raw_fd(&self.fd),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }
}

/// The pidfd, to poll for the process's exit.
impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
