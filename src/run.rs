//! Running the command, or holding, while a request is in force: relaying signals, reaping,
//! holding. (Starting the command is [`crate::spawn`].)
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
//! # Why each rule (sudo's `exec_nopty.c`, in its source tree at `src/exec_nopty.c`, is the model)
//!
//! - The child stays in lllqos's process group and session, so terminal-generated signals (Ctrl-C,
//!   Ctrl-\, Ctrl-Z, SIGWINCH, hang-up) reach both, and shell job control sees one job.
//! - What the kernel sent (`SI_KERNEL`: the terminal signals with `kill_pgrp`) already reached the
//!   child and is not relayed. Nor is what the child sent, or what came from a process whose group
//!   is led by the child or by lllqos: `kill(0, sig)` and `kill(-1, sig)` must not bounce back. A
//!   signal from anyone else (`kill`, systemd, a script's `kill $!`, a sender outside the PID
//!   namespace with `si_pid` 0) is relayed, once. A signal sent to the whole group (`kill 0` in a
//!   script, `timeout`, `kill -TERM -PGID`) already reached the child and is not relayed, whoever
//!   sent it: [`crate::sentinel`] tells the two apart. That is every signal from 1 to 64, real-time
//!   ones included (see [`crate::sigset`]), but SIGKILL and SIGSTOP (which cannot be caught) and
//!   SIGTTIN and SIGTTOU. The fault signals (SIGSEGV, SIGBUS, ...) are blocked too: one sent with
//!   kill(2) is relayed, and a real fault of lllqos's own stays fatal, since the kernel kills a
//!   process whose fault signal is blocked.
//! - Because the relayed signals are blocked and consumed, lllqos does not die of SIGINT, SIGQUIT or
//!   SIGHUP while the child lives: an interactive shell run under lllqos survives Ctrl-C, and lllqos
//!   ends when the child does, with the child's status.
//! - Ctrl-Z stops the child; lllqos sees it (`WUNTRACED`) and, since it was asked to stop too (the
//!   terminal's SIGTSTP reaches the whole group), stops itself, so the shell sees its job stopped;
//!   `fg` continues both. A child stopped by someone else alone (`kill -STOP`, cpulimit) does not
//!   stop lllqos, which then sees it continue. A SIGCONT that reached the child together
//!   with lllqos (the shell's `killpg`) is not relayed a second time. SIGTTIN and SIGTTOU are never
//!   caught or relayed.
//! - A signal ignored when lllqos starts (`nohup`, `cmd &` in a script) is left ignored: it is not
//!   blocked, so lllqos ignores it and the child inherits SIG_IGN across exec.
//! - As PID 1 of a PID namespace, lllqos also reaps the orphans that are reparented to it, as an
//!   init must (tini does the same).
//!
//! # `--descendants`
//!
//! A daemon that forks and whose first process exits (`Type=forking`), or a script that leaves
//! work in the background, would end lllqos while the work goes on. With `--descendants`, lllqos
//! is a child subreaper (`PR_SET_CHILD_SUBREAPER`, as systemd and tini `-s` are): every process the
//! command leaves behind is reparented to lllqos when its parent exits, and lllqos reaps it. The
//! request is held until `waitpid` says no child is left, then lllqos exits with the command's
//! own status (what a caller waits for). Signals follow the same rules: while the command runs,
//! they are relayed to it alone, as without the option (passing them on to its workers is its
//! business, as it is a shell script's or a daemon's main process's). Once the command has exited,
//! lllqos stands for the work it left: a relayed signal goes to every process below lllqos, as
//! systemd's default `KillMode=control-group` sends a stop to every process of a service (each
//! through a pidfd, checked against the start time found, so that a reused pid is never hit). A
//! signal one of them sent is not relayed back. Job control is unchanged: Ctrl-Z stops lllqos once
//! one of its children has stopped.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::{Pid, getpgid, getpid};

use crate::exit::ExitStatus;
use crate::sentinel::Sentinel;
use crate::sigset::{MAX_SIGNAL, SignalSet};
use crate::spawn::ignored_at_start;

/// Signals lllqos never blocks (see [`crate::relayed::NOT_RELAYED`] for why).
const NEVER_BLOCKED: [i32; 4] = {
    let n = crate::relayed::NOT_RELAYED;
    [n[0].0, n[1].0, n[2].0, n[3].0]
};

/// Signals whose default action is not to end the process: continue, stop, or nothing.
const NOT_ENDING: [i32; 7] = [
    libc::SIGCHLD,
    libc::SIGCONT,
    libc::SIGURG,
    libc::SIGWINCH,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Signals that end a hold normally: lllqos releases the request and exits 0.
const HOLD_RELEASE: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Signals that end a hold (or a trace) even when they were ignored at start. There is no command
/// to hand the disposition on to, and a background job of a script starts with SIGINT ignored:
/// `lllqos -l 0 &` then `kill -INT $!` must end it, as it ends `perf trace`. SIGHUP ignored at
/// start (nohup) stays ignored: surviving the terminal's hang-up is what nohup asks for.
pub const ALWAYS_END: [i32; 2] = [libc::SIGINT, libc::SIGTERM];

/// What the signals are blocked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Running a command: relay signals to it, reap it.
    Relay,
    /// Holding without a command: wait for a signal (or for `--pid` processes to exit).
    Hold,
}

impl Mode {
    /// The signals this mode reads from the signalfd (before leaving out the ignored ones).
    fn wanted(self) -> SignalSet {
        let mut set = SignalSet::all() - SignalSet::of(NEVER_BLOCKED);
        if self == Mode::Hold {
            // A hold reads what ends a process (it releases first); the rest keeps its default.
            set = set - SignalSet::of(NOT_ENDING);
        }
        set
    }
}

/// The blocked signals and the `signalfd` they are read from. Create it before placing a request:
/// from then on no signal can interrupt lllqos until it is ready to act on it.
#[derive(Debug)]
pub struct Signals {
    fd: OwnedFd,
    /// Signals that were SIG_IGN at start; they stay ignored and are not in the blocked set.
    ignored: SignalSet,
    /// SIGCHLD was SIG_IGN at start: lllqos resets it to wait for its child, the child gets SIG_IGN.
    chld_was_ignored: bool,
    /// In relay mode, once the command runs: the witness of signals sent to the whole group (see
    /// [`crate::sentinel`]).
    sentinel: Option<Sentinel>,
}

impl Signals {
    /// Blocks the signals `mode` handles and opens the `signalfd` for them.
    pub fn block(mode: Mode) -> io::Result<Signals> {
        let mut ignored = ignored_at_start();
        if mode == Mode::Hold {
            for signal in ALWAYS_END {
                if ignored.contains(signal) {
                    // SAFETY: installing SIG_DFL runs no code of ours; no command inherits it.
                    unsafe { libc::signal(signal, libc::SIG_DFL) };
                }
            }
            ignored = ignored - SignalSet::of(ALWAYS_END);
        }
        let mut set = mode.wanted() - ignored;
        let chld_was_ignored = mode == Mode::Relay && ignored.contains(libc::SIGCHLD);
        if chld_was_ignored {
            // SIG_IGN on SIGCHLD would auto-reap the child and leave nothing to wait for.
            // SAFETY: installing SIG_DFL runs no code of ours.
            unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
            set.insert(libc::SIGCHLD);
        }
        set.block()?;
        let fd = set.signalfd()?;
        Ok(Signals {
            fd,
            ignored,
            chld_was_ignored,
            sentinel: None,
        })
    }

    /// The command has ended with `status`: the witness has nothing more to see, and is told to
    /// go now (it is reaped when dropped, by then dead), while lllqos releases the request.
    fn ended(&mut self, status: ExitStatus) -> ExitStatus {
        if let Some(sentinel) = &self.sentinel {
            sentinel.kill();
        }
        status
    }

    /// Whether SIGCHLD was ignored when lllqos started (the command must get SIG_IGN back).
    pub fn chld_was_ignored(&self) -> bool {
        self.chld_was_ignored
    }

    /// Reads the next signal (blocking) in [`Mode::Hold`]: how a hold ends because of it,
    /// `Exited(0)` for SIGTERM, SIGINT and SIGHUP, `Signaled` for another signal that would end a
    /// process (the caller undoes what it changed, then dies of it).
    pub fn ending(&self) -> io::Result<Option<ExitStatus>> {
        Ok(self.ending_signal()?.map(|signal| {
            if HOLD_RELEASE.contains(&signal) {
                ExitStatus::Exited(0)
            } else {
                ExitStatus::Signaled(signal)
            }
        }))
    }

    /// Reads the next signal (blocking) in [`Mode::Hold`], whose signals all end a process: its
    /// number.
    pub fn ending_signal(&self) -> io::Result<Option<i32>> {
        let signal = self.next()?.ssi_signo as i32;
        Ok((1..=MAX_SIGNAL).contains(&signal).then_some(signal))
    }

    /// Reads the next signal, blocking.
    fn next(&self) -> io::Result<libc::signalfd_siginfo> {
        let mut buf = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        loop {
            match nix::unistd::read(&self.fd, &mut buf) {
                // SAFETY: the kernel wrote one whole signalfd_siginfo, plain data.
                Ok(n) if n == buf.len() => {
                    return Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) });
                }
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The signalfd, for a caller that polls it with other descriptors (`lllqos trace`).
impl AsFd for Signals {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Reads signals until one of `wanted` comes (and returns it); the others are dropped.
pub fn wait_for_signal(signals: &Signals, wanted: &[i32]) -> io::Result<i32> {
    loop {
        let signal = signals.next()?.ssi_signo as i32;
        if wanted.contains(&signal) {
            return Ok(signal);
        }
    }
}

/// What `waitpid` reported about a child.
enum ChildEvent {
    Exited(i32),
    /// Killed by this signal number (real-time signals included, which nix cannot represent).
    Signaled(i32),
    Stopped,
    Continued,
    Nothing,
}

/// One non-blocking `waitpid` on `pid` (-1: any child), decoded from the raw status.
fn poll_child(pid: i32) -> io::Result<(i32, ChildEvent)> {
    let mut status = 0;
    let flags = libc::WNOHANG | libc::WUNTRACED | libc::WCONTINUED;
    loop {
        // SAFETY: waitpid writes the status into our integer.
        let ret = unsafe { libc::waitpid(pid, &mut status, flags) };
        if ret < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e.into()),
            }
        }
        let event = if ret == 0 {
            ChildEvent::Nothing
        } else if libc::WIFEXITED(status) {
            ChildEvent::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            ChildEvent::Signaled(libc::WTERMSIG(status))
        } else if libc::WIFSTOPPED(status) {
            ChildEvent::Stopped
        } else if libc::WIFCONTINUED(status) {
            ChildEvent::Continued
        } else {
            ChildEvent::Nothing
        };
        return Ok((ret, event));
    }
}

/// Makes lllqos the child subreaper of what it starts next (`--descendants`).
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One process found in /proc: its pid and start time (which, together, no other process has).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Process {
    pid: Pid,
    start_time: u64,
}

impl Process {
    /// Its parent and itself, from `/proc/PID/stat` (fields 4 and 22).
    fn read(pid: i32) -> Option<(i32, Process)> {
        let stat = crate::file::read_small(format!("/proc/{pid}/stat")).ok()?;
        let fields = crate::file::stat_fields(&stat)?;
        let parent = fields.get(4 - 3)?.parse().ok()?;
        let start_time = fields.get(22 - 3)?.parse().ok()?;
        let pid = Pid::from_raw(pid);
        Some((parent, Process { pid, start_time }))
    }

    /// Sends `signal` to this process, if it is still the one found (a pidfd pins it, and its
    /// start time says it was not replaced between the scan and the pidfd).
    fn signal(self, signal: i32) {
        let Ok(pidfd) = PidFd::open(self.pid.as_raw()) else {
            return; // gone
        };
        if Process::read(self.pid.as_raw()).map(|(_, p)| p) != Some(self) {
            return;
        }
        // SAFETY: pidfd_send_signal on our descriptor, a signal number from the kernel and no
        // siginfo.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }
}

/// Every process below lllqos (children, their children, ...), but `not` (the sentinel): where a
/// signal is relayed once the command has exited under `--descendants`.
fn below(me: Pid, not: Option<Pid>) -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let all: Vec<(i32, Process)> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(Process::read)
        .filter(|(_, p)| Some(p.pid) != not)
        .collect();
    let mut found: Vec<Process> = Vec::new();
    let mut parents = vec![me.as_raw()];
    while let Some(parent) = parents.pop() {
        for &(of, process) in &all {
            if of == parent && !found.contains(&process) {
                found.push(process);
                parents.push(process.pid.as_raw());
            }
        }
    }
    found
}

/// Relays signals to `child` until it has exited, and returns its status. Returns the moment the
/// child is reaped, so the caller can release the request at once; with `descendants`, the moment
/// the last process lllqos is the subreaper of has been reaped (see the module documentation).
pub fn supervise(signals: &mut Signals, child: Pid, descendants: bool) -> io::Result<ExitStatus> {
    // The witness of group-wide signals is made now that the command runs, off its start: the
    // command spends the clone's cost starting on another CPU (or it is saved, when the command
    // has exited already). A signal that came before the witness was there is
    // relayed: it was not seen by the group. (With --descendants the wait may go on after the
    // command, and the witness is always made.)
    if descendants || !SignalSet::pending().contains(libc::SIGCHLD) {
        match Sentinel::spawn() {
            Ok(sentinel) => signals.sentinel = Some(sentinel),
            Err(e) => say!(
                "lllqos: warning: cannot start the witness of group signals ({}): a signal sent to the whole process group may reach the command twice",
                crate::oserror::os_message(&e)
            ),
        }
    }
    let me = getpid();
    // As PID 1, or as a subreaper, lllqos reaps orphans too: it waits for any child. (The sentinel
    // is a clone child, which a wait without __WALL does not see.)
    let any_child = descendants || me.as_raw() == 1;
    // The command's status, once reaped, while descendants still run.
    let mut ended: Option<ExitStatus> = None;
    // The command or (once it has exited) a descendant is stopped.
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
        let signal = info.ssi_signo as i32;
        if signal == libc::SIGTSTP {
            stop_asked = true;
        }
        // Fresh news of the child first: on SIGCHLD of course, and on SIGCONT, to know whether the
        // continue already reached it.
        if signal == libc::SIGCHLD || signal == libc::SIGCONT {
            loop {
                let polled = poll_child(if any_child { -1 } else { child.as_raw() });
                // No child left: the command has exited (it is a child until reaped), and so has
                // everything it left.
                if let (Err(e), Some(status)) = (&polled, ended)
                    && e.raw_os_error() == Some(libc::ECHILD)
                {
                    return Ok(signals.ended(status));
                }
                let (pid, event) = polled?;
                let status = match event {
                    ChildEvent::Exited(code) => Some(ExitStatus::Exited(code)),
                    ChildEvent::Signaled(signal) => Some(ExitStatus::Signaled(signal)),
                    _ => None,
                };
                match event {
                    // The command; with --descendants, the wait goes on for what it left.
                    ChildEvent::Exited(_) | ChildEvent::Signaled(_) if pid == child.as_raw() => {
                        if !descendants {
                            return Ok(signals.ended(status.unwrap_or(ExitStatus::Failure)));
                        }
                        ended = status;
                        child_stopped = false;
                    }
                    // An orphan, reaped.
                    ChildEvent::Exited(_) | ChildEvent::Signaled(_) => {}
                    ChildEvent::Stopped if pid != child.as_raw() && ended.is_none() => {}
                    ChildEvent::Stopped => {
                        child_stopped = true;
                        if stop_asked || SignalSet::pending().contains(libc::SIGTSTP) {
                            stop_asked = false;
                            suspend_self(&signals.ignored);
                            suspended = true;
                        }
                    }
                    ChildEvent::Continued if pid != child.as_raw() && ended.is_none() => {}
                    ChildEvent::Continued => child_stopped = false,
                    ChildEvent::Nothing => break,
                }
            }
        }
        match signal {
            libc::SIGCHLD => continue,
            libc::SIGCONT if suspended => {
                suspended = false;
                if !child_stopped {
                    continue;
                }
            }
            _ => {}
        }
        if ended.is_none() {
            if should_relay(&info, &[child], me) && !group_wide(signals, &info) {
                // ESRCH: the child is exiting; its SIGCHLD is on the way.
                // SAFETY: kill on integers; the signal number came from the kernel.
                unsafe { libc::kill(child.as_raw(), signal) };
            }
            continue;
        }
        // --descendants, the command gone: to every process it left.
        let left = below(me, signals.sentinel.as_ref().map(Sentinel::pid));
        let pids: Vec<Pid> = left.iter().map(|p| p.pid).collect();
        if should_relay(&info, &pids, me) && !group_wide(signals, &info) {
            for process in left {
                process.signal(signal);
            }
        }
    }
}

/// Whether a signal lllqos has read was sent to its whole group (or to every process): then the
/// child has it already. The sentinel tells (see [`crate::sentinel`]).
///
/// One case needs care: a sender that signals lllqos and then the group (coreutils `timeout`
/// does, back to back). The group's delivery normally comes long before lllqos has woken up to
/// look, but lllqos, woken by the first kill, may have taken the sender's CPU and left it
/// runnable between its two kills. Then lllqos gives the CPU back (`sched_yield`) before it
/// looks again: the sender finishes its sequence, and the group's delivery is seen.
fn group_wide(signals: &mut Signals, info: &libc::signalfd_siginfo) -> bool {
    let signal = info.ssi_signo as i32;
    let Some(sentinel) = signals.sentinel.as_mut() else {
        return false;
    };
    if sentinel.saw(signal) {
        return true;
    }
    if !runnable_on_this_cpu(info.ssi_pid as i32) {
        return false;
    }
    // SAFETY: sched_yield takes no argument.
    unsafe { libc::sched_yield() };
    sentinel.saw(signal)
}

/// Whether process `pid` is runnable (not sleeping) and was last on the CPU lllqos runs on.
fn runnable_on_this_cpu(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(stat) = crate::file::read_small(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // SAFETY: sched_getcpu takes no argument.
    let here = unsafe { libc::sched_getcpu() };
    crate::file::stat_fields(&stat).is_some_and(|fields| {
        fields.first() == Some(&"R")
            && fields.get(39 - 3).and_then(|c| c.parse().ok()) == Some(here)
    })
}

/// Whether a signal lllqos received should be passed on to `targets` (the child, or the
/// descendants left): not when one of them, or lllqos, sent it, or a process in a group one of
/// them leads.
fn should_relay(info: &libc::signalfd_siginfo, targets: &[Pid], me: Pid) -> bool {
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
    let ours = |pid: Pid| pid == me || targets.contains(&pid);
    if ours(sender) {
        return false;
    }
    match getpgid(Some(sender)) {
        Ok(group) => !ours(group),
        Err(_) => true,
    }
}

/// Stops lllqos, so the shell sees its job stopped. Returns once lllqos is continued.
fn suspend_self(ignored: &SignalSet) {
    if ignored.contains(libc::SIGTSTP) {
        let _ = nix::sys::signal::kill(getpid(), nix::sys::signal::Signal::SIGSTOP);
        return;
    }
    // SIGTSTP is blocked (it is read from the signalfd): raise it, let its default action (stop)
    // happen by unblocking it, and block it again once continued.
    let tstp = SignalSet::of([libc::SIGTSTP]);
    let _ = nix::sys::signal::kill(getpid(), nix::sys::signal::Signal::SIGTSTP);
    let _ = tstp.unblock();
    let _ = tstp.block();
}

/// Holds until a signal that ends a process arrives, or until every process in `pids` has exited.
/// Returns `Exited(0)` for SIGTERM/SIGINT/SIGHUP and the processes' end, `Signaled` for another
/// ending signal (the caller releases the request, then dies of it).
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
        if ready[0]
            && let Some(status) = signals.ending()?
        {
            return Ok(status);
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
        let _ = socket.send_to_addr(b"READY=1", &address);
    }
}

/// A process to wait for without being its parent: a pidfd becomes readable when it exits.
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
            return Err(match thread_group(pid) {
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
}

/// The process a thread id belongs to (`Tgid:` of /proc/PID/status).
fn thread_group(tid: i32) -> Option<i32> {
    let status = crate::file::read_small(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}
