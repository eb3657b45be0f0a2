//! [`Watchdog`]: a process that restores this process's per-CPU constraints if it dies holding
//! them.
//!
//! A per-CPU value outlives its writer. The `lllqos` command has its registry for that: whatever
//! killed a holder, the next lllqos on those CPUs (or `lllqos recover`, or a unit's
//! `ExecStopPost=`) restores what it left. A program that uses the library, or a Python
//! interpreter, is often killed with nothing else running to notice: the OOM killer, a supervisor's
//! SIGKILL, a `timeout -s KILL`. Its CPUs would stay constrained until some lllqos came by.
//!
//! So a constraint can have a watchdog: a small process that waits for this process to end and
//! then does what `lllqos recover` does, through the same registry (which drops the dead holder,
//! and restores each CPU that no live holder needs any more). It costs no wake-up: it sleeps in
//! `poll` on two descriptors, a pidfd of this process (readable once it has exited, however it
//! died) and one end of a socket pair whose other end this process keeps (a byte on it, written
//! when the watchdog is dropped, tells it to go). It is:
//!
//! - **made by `fork`, twice**: its parent is init (or a subreaper), not this process, so that
//!   nothing this process waits for (`os.wait()`, a SIGCHLD handler) ever sees it, and it is never
//!   left a zombie; the intermediate child is reaped at once. After a `fork` of a process with
//!   threads, only what the C library makes safe may run: glibc and musl both take their allocator's
//!   locks around `fork` and reset them in the child, and the watchdog runs nothing else that
//!   another thread could have held locked (no stdio, no environment, no interpreter);
//! - **detached**: in a session of its own (Ctrl-C and a terminal's hang-up do not reach it),
//!   ignoring SIGINT, SIGTERM, SIGHUP and SIGQUIT (a supervisor that sends SIGTERM to everything
//!   and then SIGKILL to the program leaves the watchdog to restore), with every descriptor it
//!   inherited closed (it keeps neither a request open, nor a holder file locked, nor a pipe a
//!   parent waits on) and /dev/null for its standard ones, in `/`, named `lllqos-watchdog`.
//!
//! Only SIGKILL of the watchdog itself (a whole cgroup killed at once, as systemd's
//! `KillMode=control-group` does after its timeout) leaves the work to the next lllqos.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use super::{CpuError, CpuErrorKind};

/// A process that restores, through the registry, the per-CPU constraints this process holds if
/// it ends without releasing them (see the module documentation). Dropping it tells it to go.
///
/// Start it before placing the constraints it guards (so that no moment is unguarded), and keep it
/// until they are released; [`CpuConstraint::acquire_each_watched`](super::CpuConstraint::acquire_each_watched)
/// does both.
///
/// ```no_run
/// use lllqos::percpu::Watchdog;
/// use lllqos::{CpuConstraint, CpuList, Latency};
///
/// let watchdog = Watchdog::start()?;
/// let constraint = CpuConstraint::acquire(&"1".parse::<CpuList>()?, Latency::ZERO)?;
/// // ... even a SIGKILL of this process now leaves cpu1 restored within a moment ...
/// constraint.release()?;
/// drop(watchdog);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "the watchdog goes when this value is dropped"]
pub struct Watchdog {
    /// Our end of the socket pair: a byte on it tells the watchdog to go.
    stop: UnixStream,
}

impl Watchdog {
    /// Starts the watchdog; it is watching when this returns.
    pub fn start() -> Result<Watchdog, CpuError> {
        let failed = |e: io::Error| {
            CpuError::new(
                CpuErrorKind::Io,
                format!(
                    "cannot start the watchdog that restores the CPUs if this process is killed: {}",
                    crate::internal::oserror::os_message(&e)
                ),
            )
        };
        // SAFETY: pidfd_open of this process, with no flags: a new descriptor or -1.
        let me = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
        let me = RawFd::try_from(me)
            .ok()
            .filter(|&fd| fd >= 0)
            .ok_or_else(io::Error::last_os_error)
            .map_err(failed)?;
        // SAFETY: a descriptor pidfd_open just made, owned here (close-on-exec by default).
        let me = unsafe { OwnedFd::from_raw_fd(me) };
        let (stop, theirs) = UnixStream::pair().map_err(failed)?;
        // What the watchdog's recovery reads once: settled here, where no other fork can interfere.
        let _ = crate::internal::privilege::is_privileged();
        let mut ready = [0u8; 1];
        let (mut told, tell) = UnixStream::pair().map_err(failed)?;
        // SAFETY: fork; the child runs only `intermediate`, which ends in _exit.
        match unsafe { libc::fork() } {
            -1 => return Err(failed(io::Error::last_os_error())),
            0 => intermediate(&me, &theirs, &tell),
            child => {
                // The intermediate child exits at once; its exit status says nothing we need.
                // SAFETY: waitpid on our own child.
                unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
            }
        }
        drop((theirs, tell));
        // The watchdog says it is set up (its descriptors sorted out, its signals ignored); an end
        // of file instead means it could not start.
        match told.read_exact(&mut ready) {
            Ok(()) => Ok(Watchdog { stop }),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(failed(io::Error::other("it exited while starting")))
            }
            Err(e) => Err(failed(e)),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // The watchdog reads the byte and exits; were it gone already, there is nothing to tell.
        let _ = self.stop.write_all(b"x");
    }
}

/// The first child: makes the watchdog, and exits (its parent reaps it; the watchdog's parent
/// becomes init or a subreaper).
fn intermediate(me: &OwnedFd, stop: &UnixStream, tell: &UnixStream) -> ! {
    // SAFETY: fork in the child; the grandchild runs `watch`, which ends in _exit.
    if unsafe { libc::fork() } == 0 {
        watch(me.as_raw_fd(), stop.as_raw_fd(), tell.as_raw_fd());
    }
    // SAFETY: _exit ends this process without running anything of its parent's.
    unsafe { libc::_exit(0) }
}

/// The watchdog: detaches, says it is ready, and waits for this process to end (then recovers)
/// or to say it no longer needs it (then goes).
fn watch(me: RawFd, stop: RawFd, tell: RawFd) -> ! {
    let [me, stop, tell] = detach([me, stop, tell]);
    // SAFETY: a write of one byte from a local buffer, then close, on the descriptor we keep.
    unsafe {
        libc::write(tell, b"r".as_ptr().cast(), 1);
        libc::close(tell);
    }
    let mut fds = [
        libc::pollfd {
            fd: me,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: poll on two pollfds we own, without a timeout.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            continue; // EINTR: nothing we handle arrives, but poll again whatever it was
        }
        if fds[0].revents != 0 {
            // The process ended without saying so: restore what it left.
            let _ = super::recover();
            // SAFETY: _exit ends the watchdog.
            unsafe { libc::_exit(0) };
        }
        if fds[1].revents != 0 {
            let mut byte = 0u8;
            // SAFETY: a read of one byte into a local.
            let got = unsafe { libc::read(stop, (&raw mut byte).cast(), 1) };
            if got == 1 {
                // Told to go: the constraints were released.
                // SAFETY: _exit ends the watchdog.
                unsafe { libc::_exit(0) };
            }
            // End of file without a word: the process closed its end, or is dying with it closed
            // already. Watch the process alone from now on.
            fds[1].fd = -1;
        }
    }
}

/// Makes this process the detached watchdog, keeping only `keep` (returned at their new numbers):
/// a session of its own, the ending signals ignored, every other descriptor closed, /dev/null for
/// the standard ones, `/` for its directory, and its name.
fn detach(keep: [RawFd; 3]) -> [RawFd; 3] {
    // Above the standard descriptors, in a row: 10, 11, 12 (whatever numbers they had, 0 to 2
    // included when this process had them closed).
    const FIRST: RawFd = 10;
    let mut kept = [0; 3];
    // SAFETY: raw system calls on integers and static NUL-terminated strings, no allocation.
    unsafe {
        libc::setsid();
        for signal in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGPIPE,
        ] {
            libc::signal(signal, libc::SIG_IGN);
        }
        for (i, fd) in keep.into_iter().enumerate() {
            kept[i] = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, FIRST + 3 + i as RawFd);
        }
        libc::syscall(libc::SYS_close_range, 0u32, (FIRST + 2) as u32, 0u32);
        for (i, fd) in kept.into_iter().enumerate() {
            libc::dup3(fd, FIRST + i as RawFd, libc::O_CLOEXEC);
        }
        libc::syscall(libc::SYS_close_range, (FIRST + 3) as u32, u32::MAX, 0u32);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..=2 {
            if fd != null {
                libc::dup2(null, fd);
            }
        }
        if null > 2 {
            libc::close(null);
        }
        libc::chdir(c"/".as_ptr());
        libc::prctl(libc::PR_SET_NAME, c"lllqos-watchdog".as_ptr());
        // SIG_IGN survives, and a mask inherited from a thread that blocked signals would keep
        // nothing from us that matters; the signal mask is left as it is.
    }
    [FIRST, FIRST + 1, FIRST + 2]
}
