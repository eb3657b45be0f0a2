//! Running the command, or holding, while a request is in force: spawning, relaying signals,
//! reaping. All of lllqos's process and signal logic lives here.
//!
//! # The design in one paragraph
//!
//! lllqos blocks the signals it cares about *before* it places a request and spawns the command, and
//! reads them from a `signalfd`. A signal that arrives at any moment (during spawn, while a per-CPU
//! value is being written) therefore waits, pending, until lllqos is ready for it: it is relayed once
//! the child exists, never lost, never sent to a reaped pid, and never kills lllqos half-way through
//! a change it must undo. Waiting is a blocking `read` (or `poll`, with `--pid`): no timer, no
//! polling loop, no wake-up of lllqos's own while the command runs. The same `signalfd` delivers
//! SIGCHLD, so reaping is part of the one loop.
//!
//! # Why each rule (sudo's `exec_nopty.c` is the model; REFERENCE section 4)
//!
//! - The child stays in lllqos's process group and session, so terminal-generated signals (Ctrl-C,
//!   Ctrl-\, Ctrl-Z, SIGWINCH, hang-up) reach both, and shell job control sees one job.
//! - What the kernel sent (`SI_KERNEL`: the terminal signals with `kill_pgrp`) already reached the
//!   child and is not relayed. Nor is what the child sent, or what came from a process whose group
//!   is led by the child or by lllqos: `kill(0, sig)` and `kill(-1, sig)` must not bounce back. A
//!   signal from anyone else (`kill`, systemd, a script's `kill $!`, a sender outside the PID
//!   namespace with `si_pid` 0) is relayed, once.
//! - Because the relayed signals are blocked and consumed, lllqos does not die of SIGINT, SIGQUIT or
//!   SIGHUP while the child lives: an interactive shell run under lllqos survives Ctrl-C, and lllqos
//!   ends when the child does, with the child's status.
//! - Ctrl-Z stops the child; lllqos sees it (`WUNTRACED`) and stops itself with the same signal, so
//!   the shell sees its job stopped; `fg` continues both. A SIGCONT that reached the child together
//!   with lllqos (the shell's `killpg`) is not relayed a second time. SIGTTIN and SIGTTOU are never
//!   caught or relayed.
//! - A signal ignored when lllqos starts (`nohup`, `cmd &` in a script) is left ignored: it is not
//!   blocked, so lllqos ignores it and the child inherits SIG_IGN across exec.
//! - The child starts with an empty signal mask (std would pass the blocked set on), SIGCHLD as it
//!   was, and, when lllqos is privileged, as the real user with no capability.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigHandler, SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd, siginfo};
use nix::unistd::{Pid, getpgid, getpid};

use crate::exit::ExitStatus;
use crate::lease::os_message;
use crate::privilege::ChildDrop;

/// Signals relayed to the child when sent with kill(2): every catchable signal whose default is to
/// terminate, stop or notify, except SIGTTIN/SIGTTOU (terminal I/O of the wrapper's own) and the
/// synchronous fault signals (SIGSEGV and friends), which must never be blocked.
const RELAYED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGABRT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGTERM,
    Signal::SIGSTKFLT,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGURG,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGWINCH,
    Signal::SIGIO,
    Signal::SIGPWR,
];

/// Signals that end a hold: lllqos releases the request and exits 0.
const HOLD_RELEASE: &[Signal] = &[Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// Other signals whose default action is to terminate. In a hold they still terminate lllqos, but
/// only after the request is released (per-CPU values would otherwise stay behind).
const HOLD_FATAL: &[Signal] = &[
    Signal::SIGQUIT,
    Signal::SIGABRT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGSTKFLT,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGIO,
    Signal::SIGPWR,
];

/// What the signals are blocked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Running a command: relay signals to it, reap it.
    Relay,
    /// Holding without a command: wait for a signal (or for `--pid` processes to exit).
    Hold,
}

/// The blocked signals and the `signalfd` they are read from. Create it before placing a request:
/// from then on no signal can interrupt lllqos until it is ready to act on it.
#[derive(Debug)]
pub struct Signals {
    fd: SignalFd,
    /// Signals that were SIG_IGN at start; they stay ignored and are not in the blocked set.
    ignored: SigSet,
    /// SIGCHLD was SIG_IGN at start: lllqos resets it to wait for its child, the child gets SIG_IGN.
    chld_was_ignored: bool,
}

impl Signals {
    /// Blocks the signals `mode` handles and opens the `signalfd` for them.
    pub fn block(mode: Mode) -> io::Result<Signals> {
        let wanted: Vec<Signal> = match mode {
            Mode::Relay => RELAYED.iter().chain(&[Signal::SIGCHLD]).copied().collect(),
            Mode::Hold => HOLD_RELEASE.iter().chain(HOLD_FATAL).copied().collect(),
        };
        let mut set = SigSet::empty();
        let mut ignored = SigSet::empty();
        let mut chld_was_ignored = false;
        for signal in wanted {
            if is_ignored(signal) {
                if signal == Signal::SIGCHLD {
                    // SIG_IGN on SIGCHLD would auto-reap the child and leave nothing to wait for.
                    // SAFETY: installing SIG_DFL runs no code of ours.
                    unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) }?;
                    chld_was_ignored = true;
                } else {
                    ignored.add(signal);
                    continue;
                }
            }
            set.add(signal);
        }
        set.thread_block()?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC)?;
        Ok(Signals {
            fd,
            ignored,
            chld_was_ignored,
        })
    }

    /// Reads the next signal, blocking.
    fn next(&self) -> io::Result<siginfo> {
        loop {
            match self.fd.read_signal() {
                Ok(Some(info)) => return Ok(info),
                Ok(None) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// True when `signal`'s disposition is SIG_IGN.
pub(crate) fn is_ignored(signal: Signal) -> bool {
    // SAFETY: a query (null new action) into a zeroed sigaction we own.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal as libc::c_int, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Why the command could not be started: lllqos exits 127 or 126 with `lllqos: NAME: reason`.
#[derive(Debug)]
pub struct SpawnError {
    name: OsString,
    source: io::Error,
}

impl SpawnError {
    /// 127 when the command was not found, 126 when it could not be executed.
    pub fn status(&self) -> ExitStatus {
        match self.source.kind() {
            io::ErrorKind::NotFound => ExitStatus::NotFound,
            _ => ExitStatus::CannotExecute,
        }
    }
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.name.to_string_lossy();
        write!(f, "{name}: {}", os_message(&self.source))
    }
}

impl std::error::Error for SpawnError {}

/// A variable to set (`Some`) or remove (`None`) in the command's environment.
pub type EnvChange = (&'static str, Option<String>);

/// Starts `argv` (PATH lookup for a bare name) in lllqos's process group, with an empty signal
/// mask and `env` applied to lllqos's environment.
///
/// The usual path is `posix_spawnp(3)`, which glibc implements with `CLONE_VFORK`: no copy of
/// lllqos's page tables, so lllqos starts a command about as fast as `chrt` execs one. Three cases
/// need code in the child between fork and exec and take `fork` through std's `Command` instead:
/// a privileged lllqos (drop to the real user, see [`ChildDrop`]), SIGCHLD ignored at start (the
/// child gets SIG_IGN back), and a file without `#!` that the kernel refuses (ENOEXEC), which
/// `execvp` hands to `/bin/sh` the way a shell would.
pub fn spawn(signals: &Signals, argv: &[OsString], env: &[EnvChange]) -> Result<Pid, SpawnError> {
    let name = argv.first().cloned().unwrap_or_default();
    let drop = ChildDrop::needed();
    let result = if drop.is_none() && !signals.chld_was_ignored {
        match posix_spawn(argv, env) {
            Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => fork_exec(argv, env, None, false),
            result => result,
        }
    } else {
        fork_exec(argv, env, drop, signals.chld_was_ignored)
    };
    result.map_err(|source| SpawnError { name, source })
}

fn posix_spawn(argv: &[OsString], env: &[EnvChange]) -> io::Result<Pid> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cstring = |bytes: &[u8]| {
        CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte"))
    };
    let args = argv
        .iter()
        .map(|arg| cstring(arg.as_bytes()))
        .collect::<io::Result<Vec<_>>>()?;
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(key, _)| !env.iter().any(|(k, _)| key == k))
        .collect();
    vars.extend(
        env.iter()
            .filter_map(|(k, v)| Some((k.into(), v.as_ref()?.into()))),
    );
    let vars = vars
        .iter()
        .map(|(k, v)| cstring(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect::<io::Result<Vec<_>>>()?;
    let pointers = |strings: &[CString]| -> Vec<*mut libc::c_char> {
        let mut p: Vec<_> = strings.iter().map(|s| s.as_ptr().cast_mut()).collect();
        p.push(std::ptr::null_mut());
        p
    };
    let (arg_ptrs, var_ptrs) = (pointers(&args), pointers(&vars));
    let empty = SigSet::empty();
    // Rust's runtime ignores SIGPIPE; the command gets the default back, as std's spawn does.
    let mut defaults = SigSet::empty();
    defaults.add(Signal::SIGPIPE);
    let mut pid: libc::pid_t = 0;
    // SAFETY: attr is initialised before use and destroyed after; every pointer refers to a
    // NUL-terminated string or array that outlives the call.
    let ret = unsafe {
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        libc::posix_spawnattr_init(&mut attr);
        libc::posix_spawnattr_setsigmask(&mut attr, empty.as_ref());
        libc::posix_spawnattr_setsigdefault(&mut attr, defaults.as_ref());
        let flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
        libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short);
        let ret = libc::posix_spawnp(
            &mut pid,
            args[0].as_ptr(),
            std::ptr::null(),
            &attr,
            arg_ptrs.as_ptr(),
            var_ptrs.as_ptr(),
        );
        libc::posix_spawnattr_destroy(&mut attr);
        ret
    };
    match ret {
        0 => Ok(Pid::from_raw(pid)),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

fn fork_exec(
    argv: &[OsString],
    env: &[EnvChange],
    drop: Option<ChildDrop>,
    chld_was_ignored: bool,
) -> io::Result<Pid> {
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    for (key, value) in env {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe system calls
    // (sigaction, sigprocmask, set*id, capset, prctl); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if chld_was_ignored {
                libc::signal(libc::SIGCHLD, libc::SIG_IGN);
            }
            let empty = SigSet::empty();
            libc::pthread_sigmask(libc::SIG_SETMASK, empty.as_ref(), std::ptr::null_mut());
            match drop {
                Some(drop) => drop.apply(),
                None => Ok(()),
            }
        });
    }
    let child = command.spawn()?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// What `waitpid` reported about the child.
enum ChildEvent {
    Exited(i32),
    /// Killed by this signal number (real-time signals included, which nix cannot represent).
    Signaled(i32),
    Stopped(i32),
    Continued,
    Nothing,
}

/// One non-blocking `waitpid` on `child`, decoded from the raw status.
fn poll_child(child: Pid) -> io::Result<ChildEvent> {
    let mut status = 0;
    let flags = libc::WNOHANG | libc::WUNTRACED | libc::WCONTINUED;
    loop {
        // SAFETY: waitpid writes the status into our integer.
        let ret = unsafe { libc::waitpid(child.as_raw(), &mut status, flags) };
        if ret < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e.into()),
            }
        }
        return Ok(if ret == 0 {
            ChildEvent::Nothing
        } else if libc::WIFEXITED(status) {
            ChildEvent::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            ChildEvent::Signaled(libc::WTERMSIG(status))
        } else if libc::WIFSTOPPED(status) {
            ChildEvent::Stopped(libc::WSTOPSIG(status))
        } else if libc::WIFCONTINUED(status) {
            ChildEvent::Continued
        } else {
            ChildEvent::Nothing
        });
    }
}

/// Whether SIGTSTP is pending for lllqos: the terminal's Ctrl-Z reaches the whole foreground group,
/// and the child's SIGCHLD (a lower number) may be read from the signalfd before it.
fn tstp_pending() -> bool {
    // SAFETY: sigpending fills our zeroed set; sigismember reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut set) == 0 && libc::sigismember(&set, libc::SIGTSTP) == 1
    }
}

/// Relays signals to `child` until it has exited, and returns its status. Returns the moment the
/// child is reaped, so the caller can release the request at once.
pub fn supervise(signals: &Signals, child: Pid) -> io::Result<ExitStatus> {
    let me = getpid();
    let mut child_stopped = false;
    // lllqos stopped itself because the child stopped; the SIGCONT that resumes it may have reached
    // the child too (a shell's `fg` signals the whole group).
    let mut suspended = false;
    // lllqos itself was asked to stop (SIGTSTP from the terminal or sent to it): when the child
    // stops, lllqos stops too, so the shell sees its job stopped. A child stopped by someone else
    // alone (`kill -STOP $child`, cpulimit) leaves lllqos waiting, ready to see it continue.
    let mut stop_asked = false;
    loop {
        let info = signals.next()?;
        let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
            continue;
        };
        if signal == Signal::SIGTSTP {
            stop_asked = true;
        }
        // Fresh news of the child first: on SIGCHLD of course, and on SIGCONT, to know whether the
        // continue already reached it.
        if matches!(signal, Signal::SIGCHLD | Signal::SIGCONT) {
            loop {
                match poll_child(child)? {
                    ChildEvent::Exited(code) => return Ok(ExitStatus::Exited(code)),
                    ChildEvent::Signaled(signal) => return Ok(ExitStatus::Signaled(signal)),
                    ChildEvent::Stopped(stop) => {
                        child_stopped = true;
                        if stop_asked || tstp_pending() {
                            stop_asked = false;
                            suspend_self(stop, &signals.ignored);
                            suspended = true;
                        }
                    }
                    ChildEvent::Continued => child_stopped = false,
                    ChildEvent::Nothing => break,
                }
            }
        }
        match signal {
            Signal::SIGCHLD => continue,
            Signal::SIGCONT if suspended => {
                suspended = false;
                if !child_stopped {
                    continue;
                }
            }
            _ => {}
        }
        if should_relay(&info, child, me) {
            // ESRCH: the child is exiting; its SIGCHLD is on the way.
            let _ = kill(child, signal);
        }
    }
}

/// Whether a signal lllqos received should be passed on to the child.
fn should_relay(info: &siginfo, child: Pid, me: Pid) -> bool {
    // Only signals a process sent with kill(2), tgkill(2) or sigqueue(3). SI_KERNEL (the terminal's
    // signals to the foreground group) and kernel subsystems' codes already did what they do.
    if !matches!(
        info.ssi_code,
        libc::SI_USER | libc::SI_TKILL | libc::SI_QUEUE
    ) {
        return false;
    }
    let sender = Pid::from_raw(info.ssi_pid as i32);
    if sender.as_raw() == 0 {
        return true; // sent from outside our PID namespace: it cannot be the child
    }
    if sender == child || sender == me {
        return false;
    }
    match getpgid(Some(sender)) {
        Ok(group) => group != child && group != me,
        Err(_) => true,
    }
}

/// Stops lllqos with the signal that stopped the child, so the shell sees its job stopped. Returns
/// once lllqos is continued.
fn suspend_self(stop: i32, ignored: &SigSet) {
    let blocked_tstp = stop == libc::SIGTSTP && !ignored.contains(Signal::SIGTSTP);
    if !blocked_tstp {
        // SIGSTOP, or a stop signal lllqos does not block (SIGTTIN/SIGTTOU) or ignores: stop with
        // SIGSTOP, which nothing can block or ignore.
        let _ = kill(getpid(), Signal::SIGSTOP);
        return;
    }
    // SIGTSTP is blocked (it is read from the signalfd): raise it, let its default action (stop)
    // happen by unblocking it, and block it again once continued.
    let mut one = SigSet::empty();
    one.add(Signal::SIGTSTP);
    let _ = kill(getpid(), Signal::SIGTSTP);
    let _ = one.thread_unblock();
    let _ = one.thread_block();
}

/// Holds until a release signal arrives, or until every process in `pids` has exited. Returns
/// `Exited(0)` for SIGTERM/SIGINT/SIGHUP and the processes' end, `Signaled` for another
/// terminating signal (the caller releases the request, then dies of it).
pub fn hold(signals: &Signals, pids: &[PidFd]) -> io::Result<ExitStatus> {
    let mut alive: Vec<&PidFd> = pids.iter().collect();
    loop {
        if !pids.is_empty() && alive.is_empty() {
            return Ok(ExitStatus::Exited(0));
        }
        let mut fds: Vec<PollFd> = std::iter::once(signals.fd.as_fd())
            .chain(alive.iter().map(|p| p.fd.as_fd()))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds.iter().map(|fd| fd.any().unwrap_or(false)).collect();
        drop(fds);
        if ready[0] {
            let info = signals.next()?;
            if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                return Ok(if HOLD_RELEASE.contains(&signal) {
                    ExitStatus::Exited(0)
                } else {
                    ExitStatus::Signaled(signal as i32)
                });
            }
        }
        // ready[0] is the signalfd; ready[1..] follow `alive`.
        alive = alive
            .into_iter()
            .zip(&ready[1..])
            .filter(|(_, exited)| !**exited)
            .map(|(p, _)| p)
            .collect();
    }
}

/// A process to wait for without being its parent: a pidfd becomes readable when it exits.
#[derive(Debug)]
pub struct PidFd {
    pid: i32,
    fd: OwnedFd,
}

impl PidFd {
    /// Opens a pidfd for `pid`; ESRCH when there is no such process.
    pub fn open(pid: i32) -> io::Result<PidFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
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
}
