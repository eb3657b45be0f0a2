//! Supervising the command while a request is in force: relaying signals, reaping, following job
//! control. (Starting it is [`super::spawn`]; a hold without a command is [`super::hold`].)
//!
//! # The design in one paragraph
//!
//! lllqos blocks the signals it cares about *before* it places a request and spawns the command,
//! and reads them from a `signalfd` ([`crate::signals`]). A signal that arrives at any moment
//! (during spawn, while a per-CPU value is being written) therefore waits, pending, until lllqos is
//! ready for it: it is relayed once the child exists, never lost, never sent to a reaped pid, and
//! never kills lllqos half-way through a change it must undo. One that came before the child was
//! made is relayed whoever sent it, the terminal included (its Ctrl-Z reached lllqos alone), and
//! one of those that ask a process to end (Ctrl-C, SIGTERM, ...) means the command is not started
//! at all: it would have died of it first. Waiting is a blocking `read` (or `poll`, with `--pid`):
//! no timer, no polling loop, no wake-up of lllqos's own while the command runs. The same
//! `signalfd` delivers SIGCHLD, so reaping is part of the one loop.
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
//!   sent it: [`super::sentinel`] tells the two apart. That is every signal from 1 to 64, real-time
//!   ones included (see [`lllqos::internal::sigset`]), but SIGKILL and SIGSTOP (which cannot be caught) and
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
//! business, as it is a shell script's or a daemon's main process's), and a relayed signal that
//! ends a process is kept in mind: when the command has exited, it goes to every process the
//! command left (`systemctl stop` of a unit whose main process is lllqos reaches the whole work,
//! and a process that ignores it keeps the request held). Once the command has exited,
//! lllqos stands for the work it left: a relayed signal goes to every process below lllqos, as
//! systemd's default `KillMode=control-group` sends a stop to every process of a service (each
//! through a pidfd, checked against the start time found, so that a reused pid is never hit). A
//! signal one of them sent is not relayed back. Job control is unchanged: Ctrl-Z stops lllqos once
//! one of its children has stopped.

use std::io;

use lllqos::internal::procfs;
use lllqos::internal::sigset::{MAX_SIGNAL, SignalSet};
use nix::errno::Errno;
use nix::unistd::{Pid, getpgid, getpid};

use super::sentinel::Sentinel;
use super::tree;
use crate::exit::ExitStatus;
use crate::signals::{Signals, ends_a_process};

/// Relays signals to `child` until it has exited, and returns its status with the witness of
/// group-wide signals, if one was made (drop it before the request is released: it may hold a
/// copy of the request's descriptor until its first instructions have run). Returns the moment
/// the child is reaped, so the caller can release the request at once; with `descendants`, the
/// moment the last process lllqos is the subreaper of has been reaped (see the module
/// documentation).
pub fn supervise(
    signals: &Signals,
    child: Pid,
    early: SignalSet,
    descendants: bool,
) -> io::Result<(ExitStatus, Option<Sentinel>)> {
    let mut supervisor = Supervisor::new(signals, child, early, descendants);
    loop {
        let info = signals.next()?;
        if let Some(status) = supervisor.step(&info)? {
            return Ok((status, supervisor.sentinel));
        }
    }
}

/// What lllqos knows of the command and its job between two signals.
struct Supervisor<'a> {
    signals: &'a Signals,
    child: Pid,
    me: Pid,
    descendants: bool,
    /// The witness of signals sent to the whole group (see [`super::sentinel`]).
    sentinel: Option<Sentinel>,
    /// Signals that were pending before the command was made, not read yet: it never got them,
    /// so each is relayed when read, whoever sent it (see [`super::spawn::Spawned`]).
    early: SignalSet,
    /// The command's status, once reaped, while descendants still run (`--descendants`).
    ended: Option<ExitStatus>,
    /// The command or (once it has exited) a descendant is stopped.
    child_stopped: bool,
    /// lllqos stopped itself because the child stopped; the SIGCONT that resumes it may have
    /// reached the child too (a shell's `fg` signals the whole group).
    suspended: bool,
    /// lllqos itself was asked to stop (SIGTSTP from the terminal or sent to it): when the child
    /// stops, lllqos stops too, so the shell sees its job stopped. A child stopped by someone else
    /// alone (`kill -STOP $child`, cpulimit) leaves lllqos waiting, ready to see it continue.
    stop_asked: bool,
    /// With `--descendants`: the signals that end a process which lllqos relayed to the command.
    /// They reach what the command leaves, once it has exited (a `systemctl stop` must stop it).
    ending_relayed: SignalSet,
}

/// What one `waitpid` told the supervisor to do next.
enum Next {
    /// Ask again: there may be more to reap.
    More,
    /// Nothing more to reap now.
    Wait,
    /// Everything lllqos waited for has exited, with this status.
    Done(ExitStatus),
}

impl<'a> Supervisor<'a> {
    fn new(
        signals: &'a Signals,
        child: Pid,
        early: SignalSet,
        descendants: bool,
    ) -> Supervisor<'a> {
        // The witness of group-wide signals is made now that the command runs, off its start: the
        // command spends the clone's cost starting on another CPU (or it is saved, when the
        // command has exited already). A signal that came before the witness was there is
        // relayed: it was not seen by the group. (With --descendants the wait may go on after the
        // command, and the witness is always made.)
        let sentinel = if descendants || !SignalSet::pending().contains(libc::SIGCHLD) {
            Sentinel::spawn()
                .map_err(|e| say!(
                    "lllqos: warning: cannot start the witness of group signals ({}): a signal sent to the whole process group may reach the command twice",
                    lllqos::internal::oserror::os_message(&e)
                ))
                .ok()
        } else {
            None
        };
        Supervisor {
            signals,
            child,
            me: getpid(),
            descendants,
            sentinel,
            early,
            ended: None,
            child_stopped: false,
            suspended: false,
            stop_asked: false,
            ending_relayed: SignalSet::default(),
        }
    }

    /// Acts on one signal read from the signalfd; the status once everything has exited.
    fn step(&mut self, info: &libc::signalfd_siginfo) -> io::Result<Option<ExitStatus>> {
        let signal = info.ssi_signo as i32;
        if signal == libc::SIGTSTP {
            self.stop_asked = true;
        }
        // Fresh news of the child first: on SIGCHLD of course, and on SIGCONT, to know whether the
        // continue already reached it.
        if (signal == libc::SIGCHLD || signal == libc::SIGCONT)
            && let Some(status) = self.reap()?
        {
            return Ok(Some(status));
        }
        match signal {
            libc::SIGCHLD => return Ok(None),
            libc::SIGCONT if self.suspended => {
                self.suspended = false;
                if !self.child_stopped {
                    return Ok(None);
                }
            }
            _ => {}
        }
        self.relay(info);
        Ok(None)
    }

    /// Reaps what has changed; the status once everything lllqos waits for has exited.
    fn reap(&mut self) -> io::Result<Option<ExitStatus>> {
        // As PID 1, or as a subreaper, lllqos reaps orphans too: it waits for any child. (The
        // sentinel is a clone child, which a wait without __WALL does not see.)
        let any_child = self.descendants || self.me.as_raw() == 1;
        loop {
            let polled = poll_child(if any_child { -1 } else { self.child.as_raw() });
            // No child left: the command has exited (it is a child until reaped), and so has
            // everything it left.
            if let (Err(e), Some(status)) = (&polled, self.ended)
                && e.raw_os_error() == Some(libc::ECHILD)
            {
                return Ok(Some(self.finish(status)));
            }
            let (pid, event) = polled?;
            match self.on_child_event(pid, event) {
                Next::More => continue,
                Next::Wait => return Ok(None),
                Next::Done(status) => return Ok(Some(status)),
            }
        }
    }

    /// What a `waitpid` reported of `pid`.
    fn on_child_event(&mut self, pid: i32, event: ChildEvent) -> Next {
        let command = pid == self.child.as_raw();
        // Before the command has exited, only its own stops and continues are job control; after,
        // a descendant's are.
        let watched = command || self.ended.is_some();
        match event {
            ChildEvent::Exited(code) if command => self.command_ended(ExitStatus::Exited(code)),
            ChildEvent::Signaled(signal) if command => {
                self.command_ended(ExitStatus::Signaled(signal))
            }
            // An orphan, reaped.
            ChildEvent::Exited(_) | ChildEvent::Signaled(_) => Next::More,
            ChildEvent::Stopped if watched => {
                self.child_stopped = true;
                if self.stop_asked || SignalSet::pending().contains(libc::SIGTSTP) {
                    self.stop_asked = false;
                    suspend_self(self.signals.ignored());
                    self.suspended = true;
                }
                Next::More
            }
            ChildEvent::Continued if watched => {
                self.child_stopped = false;
                Next::More
            }
            ChildEvent::Stopped | ChildEvent::Continued => Next::More,
            ChildEvent::Nothing => Next::Wait,
        }
    }

    /// The command has exited with `status`: lllqos is done, or, with `--descendants`, waits on for
    /// what it left.
    fn command_ended(&mut self, status: ExitStatus) -> Next {
        if !self.descendants {
            return Next::Done(self.finish(status));
        }
        self.ended = Some(status);
        self.child_stopped = false;
        // What asked the command to end asks what it left to end too.
        if self.ending_relayed != SignalSet::default() {
            let left = tree::below(self.me, self.sentinel.as_ref().map(Sentinel::pid));
            for signal in (1..=MAX_SIGNAL).filter(|&s| self.ending_relayed.contains(s)) {
                for process in &left {
                    process.signal(signal);
                }
            }
        }
        Next::More
    }

    /// The end: the witness has nothing more to see, and is told to go now (it is reaped when
    /// dropped, by then dead), while lllqos releases the request.
    fn finish(&self, status: ExitStatus) -> ExitStatus {
        if let Some(sentinel) = &self.sentinel {
            sentinel.kill();
        }
        status
    }

    /// Passes `info`'s signal on, unless it must not be: to the command while it runs; with
    /// `--descendants`, once it has exited, to every process it left.
    fn relay(&mut self, info: &libc::signalfd_siginfo) {
        let signal = info.ssi_signo as i32;
        if self.ended.is_none() {
            let early = self.early.contains(signal);
            self.early = self.early - SignalSet::of([signal]);
            if early || (should_relay(info, &[self.child], self.me) && !self.group_wide(info)) {
                // ESRCH: the child is exiting; its SIGCHLD is on the way.
                // SAFETY: kill on integers; the signal number came from the kernel.
                unsafe { libc::kill(self.child.as_raw(), signal) };
                if self.descendants && ends_a_process(signal) {
                    self.ending_relayed.insert(signal);
                }
            }
            return;
        }
        let left = tree::below(self.me, self.sentinel.as_ref().map(Sentinel::pid));
        let pids: Vec<Pid> = left.iter().map(|p| p.pid).collect();
        if should_relay(info, &pids, self.me) && !self.group_wide(info) {
            for process in left {
                process.signal(signal);
            }
        }
    }

    /// Whether a signal lllqos has read was sent to its whole group (or to every process): then
    /// the child has it already. The sentinel tells (see [`super::sentinel`]).
    ///
    /// One case needs care: a sender that signals lllqos and then the group (coreutils `timeout`
    /// does, back to back). The group's delivery normally comes long before lllqos has woken up to
    /// look, but lllqos, woken by the first kill, may have taken the sender's CPU and left it
    /// runnable between its two kills. Then lllqos gives the CPU back (`sched_yield`) before it
    /// looks again: the sender finishes its sequence, and the group's delivery is seen.
    fn group_wide(&mut self, info: &libc::signalfd_siginfo) -> bool {
        let signal = info.ssi_signo as i32;
        let Some(sentinel) = self.sentinel.as_mut() else {
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

/// Whether process `pid` is runnable (not sleeping) and was last on the CPU lllqos runs on.
fn runnable_on_this_cpu(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: sched_getcpu takes no argument.
    let here = unsafe { libc::sched_getcpu() };
    procfs::stat(pid).is_some_and(|stat| stat.state == 'R' && stat.cpu == Some(here))
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
fn suspend_self(ignored: SignalSet) {
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
