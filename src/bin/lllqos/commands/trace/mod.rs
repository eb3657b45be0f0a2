//! `lllqos trace`: a live log of who asks the kernel for what CPU latency, and when.
//!
//! `status` sees the requests held now; a request that came and went is invisible to it. The
//! kernel's `power` trace events see every change, with the task that made it:
//! `pm_qos_{add,update,remove}_request` for the global constraint (`/dev/cpu_dma_latency`),
//! `dev_pm_qos_{add,update,remove}_request` for a CPU's resume latency, and `pm_qos_update_target`
//! with the constraint's limit before and after. lllqos trace enables them in a tracing instance
//! of its own ([`tracefs`]), reads its `trace_pipe` ([`parse`]), pairs each request with its
//! limit ([`tracker`]) and prints one line per change, as it happens.
//!
//! It costs nothing while nothing happens: it sleeps in `poll` on the pipe and the signalfd (the
//! instance's `buffer_percent` is 0, so the pipe wakes it at the first event, and only then), and
//! its memory is a fixed buffer and one waiting request per task. The log starts with what is
//! already in force, as `status` finds it, so that its first lines make sense.

mod in_force;
mod parse;
mod printer;
mod tracefs;
mod tracker;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lllqos::cli::TraceArgs;
use lllqos::internal::oserror::os_message;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode as FileMode;
use nix::time::ClockId;

use crate::exit::ExitStatus;
use crate::signals::{Mode, Signals};
use parse::{EVENTS, Task};
use printer::{Clock, Printer};
use tracefs::{Instance, Tracefs};
use tracker::Tracker;

/// `lllqos trace`: the log, until a signal or `--duration`.
pub fn run(args: &TraceArgs) -> Result<ExitStatus> {
    trace(&Settings {
        duration: args.duration,
        pids: args.pid.clone(),
        commands: args.command.clone(),
        json: args.json,
    })
}

/// What to trace, and how to print it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Stop after this long; `None`: until a signal.
    pub duration: Option<Duration>,
    /// Only changes made by these processes (none: all).
    pub pids: Vec<i32>,
    /// Only changes made by tasks with these commands (none: all).
    pub commands: Vec<String>,
    /// JSON Lines instead of text.
    pub json: bool,
}

impl Settings {
    /// Whether a task's changes are shown.
    fn shows(&self, pid: Option<i32>, command: Option<&str>) -> bool {
        let pid_ok = self.pids.is_empty() || pid.is_some_and(|p| self.pids.contains(&p));
        let command_ok = self.commands.is_empty()
            || command.is_some_and(|c| self.commands.iter().any(|name| same_command(name, c)));
        pid_ok && command_ok
    }
}

/// The kernel keeps 15 bytes of a command (`TASK_COMM_LEN` - 1): `--command` compares that much.
fn same_command(name: &str, comm: &str) -> bool {
    let cut = |s: &str| -> Vec<u8> { s.bytes().take(15).collect() };
    cut(name) == cut(comm)
}

/// How long events gather after a read before the next (see [`follow`]).
const GATHER: Duration = Duration::from_millis(2);

/// How long a request waits for its limit before it is printed as one that changed nothing.
const PAIRING_WAIT: Duration = Duration::from_millis(10);

/// Runs `lllqos trace` until a signal or the end of `--duration`.
fn trace(settings: &Settings) -> Result<ExitStatus> {
    if !nix::unistd::geteuid().is_root() {
        bail!("trace needs root: the kernel's trace events (tracefs) are root's; run it with sudo");
    }
    // From here on a signal waits in the signalfd: nothing can end lllqos between creating its
    // instance and removing it, but SIGKILL.
    let signals = Signals::block(Mode::Hold).context("cannot block signals")?;
    let tracefs = Tracefs::open()?;
    for name in tracefs::remove_stale(&tracefs) {
        say!("lllqos: trace: removed instances/{name}, left by an lllqos trace that was killed");
    }
    if !tracefs
        .root
        .join("events/power/pm_qos_update_target")
        .exists()
    {
        bail!(
            "this kernel has no power:pm_qos_* trace events (it needs CONFIG_PM and tracepoints)"
        );
    }
    let instance = Instance::create(&tracefs)?;
    configure(&instance)?;
    let pipe = open_pipe(&instance)?;
    let me = own_task(&instance, &pipe)?;
    enable(&instance, me.tid)?;
    let clock = Clock::now();
    // Inside a PID namespace of its own, the events' pids (the host's) are not this /proc's.
    let host_namespace = me.pid == std::process::id() as i32;
    let mut out = Printer::new(settings, clock, host_namespace);
    let (held, limits) = in_force::in_force();
    let mut tracker = Tracker::new(limits);
    let status = out
        .start(&instance, &held)
        .and_then(|()| follow(settings, &signals, &pipe, &mut tracker, &mut out));
    drop(pipe);
    drop(instance);
    if out.lost > 0 {
        say!(
            "lllqos: trace: {} events lost in all: the ring buffer overflowed",
            out.lost
        );
    }
    match status {
        Ok(status) => Ok(status),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitStatus::Signaled(libc::SIGPIPE)),
        Err(e) => bail!("write error: {}", os_message(&e)),
    }
}

/// The instance's clock and buffer wake-up.
fn configure(instance: &Instance) -> Result<()> {
    // CLOCK_MONOTONIC time stamps, so that they convert to the wall clock.
    set(instance, "trace_clock", "mono")?;
    // Each event's process as well as its thread: a multi-threaded holder is one pid.
    set(instance, "options/record-tgid", "1")?;
    // Wake the reader at the first event, not when the buffer is half full.
    if instance.has("buffer_percent") {
        set(instance, "buffer_percent", "0")?;
    }
    Ok(())
}

/// The events, each filtered so that this process's own (its reads of the node at the start) are
/// not part of the log. `tid` is this thread as the kernel's events name it: the host's, whatever
/// PID namespace lllqos runs in.
fn enable(instance: &Instance, tid: i32) -> Result<()> {
    for event in EVENTS {
        let dir = format!("events/power/{event}");
        if !instance.has(&dir) {
            bail!("this kernel has no power:{event} trace event");
        }
        set(
            instance,
            &format!("{dir}/filter"),
            &format!("common_pid != {tid}"),
        )?;
        set(instance, &format!("{dir}/enable"), "1")?;
    }
    Ok(())
}

fn set(instance: &Instance, file: &str, value: &str) -> Result<()> {
    instance.set(file, value).map_err(|e| {
        anyhow::anyhow!(
            "cannot set {file} of the tracing instance: {}",
            os_message(&e)
        )
    })
}

/// This thread and process as the kernel's events name them. In a PID namespace of its own,
/// lllqos's pid is not the one the events carry (those are the host's), and nothing in its /proc
/// tells the host's; so it writes a marker of its own into the instance and reads who wrote it.
fn own_task(instance: &Instance, pipe: &OwnedFd) -> Result<Task> {
    let text = format!(
        "lllqos-trace {} {}",
        std::process::id(),
        monotonic().as_nanos()
    );
    set(instance, "trace_marker", &text)?;
    let mut lines = LineBuffer::default();
    let mut buf = [0u8; 4096];
    loop {
        // The marker is in the buffer once the write has returned: the wait is for the kernel
        // to hand it out, and is bounded only against a kernel that would not.
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(5000u16)) {
            Ok(0) => bail!("the tracing instance did not show the marker lllqos wrote into it"),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => bail!(
                "cannot read the tracing instance: {}",
                os_message(&e.into())
            ),
        }
        let n = match nix::unistd::read(pipe, &mut buf) {
            Ok(n) => n,
            Err(Errno::EAGAIN | Errno::EINTR) => continue,
            Err(e) => bail!(
                "cannot read the tracing instance: {}",
                os_message(&e.into())
            ),
        };
        if let Some(task) =
            (lines.feed(&buf[..n]).iter()).find_map(|l| parse::marker_task(l, &text))
        {
            return Ok(task);
        }
    }
}

fn open_pipe(instance: &Instance) -> Result<OwnedFd> {
    let path = instance.dir().join("trace_pipe");
    nix::fcntl::open(
        &path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        FileMode::empty(),
    )
    .map_err(|e| anyhow::anyhow!("cannot open {}: {}", path.display(), os_message(&e.into())))
}

/// Reads the pipe until a signal or the deadline; returns how lllqos ends.
fn follow(
    settings: &Settings,
    signals: &Signals,
    pipe: &OwnedFd,
    tracker: &mut Tracker,
    out: &mut Printer,
) -> io::Result<ExitStatus> {
    let deadline = settings.duration.map(|d| monotonic() + d);
    let mut lines = LineBuffer::default();
    loop {
        let left = deadline.map(|d| d.saturating_sub(monotonic()));
        if left == Some(Duration::ZERO) {
            drain(pipe, &mut lines, tracker, out)?;
            out.flush_tracker(tracker)?;
            return Ok(ExitStatus::Exited(0));
        }
        // Sleep until something happens: no timeout at all unless a request waits for its limit
        // or --duration runs.
        let wait = [tracker.waiting().then_some(PAIRING_WAIT), left]
            .into_iter()
            .flatten()
            .min();
        let timeout = match wait {
            None => PollTimeout::NONE,
            Some(d) => {
                let ms = d.as_millis().clamp(1, i32::MAX as u128) as i32;
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        // stdout too, for no event: a pipe whose reader has gone (`lllqos trace | head -n 1`)
        // reports POLLERR at once, so the trace ends then, as `tail -f` does, not at its next
        // line, which may never come on a quiet machine.
        let stdout = io::stdout();
        let mut fds = [
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(pipe.as_fd(), PollFlags::POLLIN),
            PollFd::new(stdout.as_fd(), PollFlags::empty()),
        ];
        match poll(&mut fds, timeout) {
            Ok(0) => out.flush_tracker(tracker)?,
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let reader_gone = fds[2]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLERR));
        if reader_gone {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let [signal, data, _] = fds.map(|fd| fd.any().unwrap_or(false));
        if data {
            drain(pipe, &mut lines, tracker, out)?;
            // While events flow, let them gather a moment: a burst costs a few reads, not a
            // wake-up for each event. Nothing flows, nothing waits.
            std::thread::sleep(GATHER);
        }
        if signal && let Some(status) = signals.ending()? {
            drain(pipe, &mut lines, tracker, out)?;
            out.flush_tracker(tracker)?;
            return Ok(status);
        }
    }
}

/// Reads everything the pipe has now, and prints what it completes.
fn drain(
    pipe: &OwnedFd,
    lines: &mut LineBuffer,
    tracker: &mut Tracker,
    out: &mut Printer,
) -> io::Result<()> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match nix::unistd::read(pipe, &mut buf) {
            Ok(0) | Err(Errno::EAGAIN) => break,
            Ok(n) => {
                for line in lines.feed(&buf[..n]) {
                    if let Some(event) = parse::parse_line(&line) {
                        for output in tracker.push(event) {
                            out.output(output)?;
                        }
                    }
                }
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    out.flush()
}

/// Whole lines out of a byte stream; at most one partial line is kept (a line of these events is
/// short: a longer one is dropped rather than let grow).
#[derive(Debug, Default)]
struct LineBuffer(Vec<u8>);

impl LineBuffer {
    const MAX_LINE: usize = 4096;

    fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &byte in bytes {
            if byte == b'\n' {
                lines.push(String::from_utf8_lossy(&self.0).into_owned());
                self.0.clear();
            } else if self.0.len() < Self::MAX_LINE {
                self.0.push(byte);
            }
        }
        lines
    }
}

pub fn monotonic() -> Duration {
    nix::time::clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(Duration::ZERO, Duration::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_reads_and_bounded() {
        let mut buffer = LineBuffer::default();
        assert_eq!(buffer.feed(b"ab"), Vec::<String>::new());
        assert_eq!(buffer.feed(b"c\nd\n"), ["abc", "d"]);
        let long = vec![b'x'; 10_000];
        let lines = buffer.feed(&[long.as_slice(), b"\n"].concat());
        assert_eq!(lines[0].len(), LineBuffer::MAX_LINE);
    }

    #[test]
    fn filters_by_pid_and_command() {
        let mut settings = Settings {
            duration: None,
            pids: vec![],
            commands: vec![],
            json: true,
        };
        assert!(settings.shows(None, None));
        settings.pids = vec![7];
        assert!(settings.shows(Some(7), Some("a")));
        assert!(!settings.shows(Some(8), Some("a")));
        assert!(!settings.shows(None, None));
        settings.pids.clear();
        settings.commands = vec!["a-very-long-command-name".into()];
        assert!(
            settings.shows(Some(1), Some("a-very-long-com")),
            "15 bytes, as the kernel keeps"
        );
        assert!(!settings.shows(Some(1), Some("python3")));
    }
}
