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

mod parse;
mod tracefs;
mod tracker;

use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode as FileMode;
use nix::time::ClockId;
use serde::Serialize;

use crate::exit::ExitStatus;
use crate::oserror::os_message;
use crate::run::{Mode, Signals};
use lllqos::cpulist::CpuList;
use lllqos::latency::Latency;
use lllqos::percpu::ResumeLatency;
use parse::{EVENTS, Target, Task};
use tracefs::{Instance, Tracefs};
use tracker::{Change, Output, Tracker};

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
pub fn trace(settings: &Settings) -> Result<ExitStatus> {
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
    let (held, limits) = in_force();
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

fn monotonic() -> Duration {
    nix::time::clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(Duration::ZERO, Duration::from)
}

/// Converts the trace's monotonic time stamps to the wall clock.
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in seconds, at the start.
    offset: f64,
}

impl Clock {
    fn now() -> Clock {
        let real = nix::time::clock_gettime(ClockId::CLOCK_REALTIME)
            .map_or(Duration::ZERO, Duration::from);
        Clock {
            offset: real.as_secs_f64() - monotonic().as_secs_f64(),
        }
    }

    /// Seconds since the Unix epoch, to the microsecond.
    fn epoch(self, monotonic: f64) -> f64 {
        ((monotonic + self.offset) * 1e6).round() / 1e6
    }
}

/// `HH:MM:SS.UUUUUU` in local time.
fn local_time(epoch: f64) -> String {
    let secs = epoch.floor();
    let micros = ((epoch - secs) * 1e6).round().min(999_999.0) as u32;
    // time_t is 64 bits on both C libraries lllqos builds with (glibc, musl 1.2).
    #[allow(deprecated)]
    let t = secs as libc::time_t;
    // SAFETY: localtime_r reads one time_t and writes one struct tm we own.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return format!("{epoch:.6}");
        }
        tm
    };
    format!(
        "{:02}:{:02}:{:02}.{micros:06}",
        tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

/// A request in force at the start: who holds it (when known), and the target's limit.
#[derive(Debug, Clone)]
struct Held {
    pid: Option<i32>,
    command: Option<String>,
    target: Target,
    /// The holder's own value, where known (lllqos's per-CPU holders, a node's only holder).
    value: Option<Latency>,
    limit: Option<Latency>,
}

/// What is in force now, as `status` finds it, and each target's limit.
fn in_force() -> (Vec<Held>, Vec<(Target, Option<Latency>)>) {
    let status = crate::status::collect();
    let global = Target::Global("cpu_dma_latency".into());
    let global_limit = (status.cpu_latency.value().copied()).and_then(Latency::from_micros);
    let mut held: Vec<Held> = (status.holders.iter())
        .map(|h| Held {
            pid: Some(h.pid),
            command: comm(h.pid),
            target: global.clone(),
            value: if status.holders.len() == 1 {
                global_limit
            } else {
                None
            },
            limit: global_limit,
        })
        .collect();
    let mut limits = vec![(global, global_limit)];
    let registry = status
        .registry
        .as_ref()
        .map(|r| r.holders.as_slice())
        .unwrap_or_default();
    for cpu in &status.cpus {
        let limit = (cpu.resume_latency.value().copied()).and_then(Latency::from_micros);
        limits.push((Target::Cpu(cpu.cpu), limit));
        let Some(limit) = limit else { continue };
        let holders: Vec<_> = (registry.iter())
            .filter(|h| h.live)
            .filter(|h| {
                h.cpus
                    .parse::<CpuList>()
                    .is_ok_and(|list| list.cpus().contains(&cpu.cpu))
            })
            .collect();
        if holders.is_empty() {
            // Written by another tool: the value stays, nobody holds it.
            held.push(Held {
                pid: None,
                command: None,
                target: Target::Cpu(cpu.cpu),
                value: Some(limit),
                limit: Some(limit),
            });
        }
        held.extend(holders.iter().map(|h| Held {
            pid: Some(h.pid),
            command: comm(h.pid),
            target: Target::Cpu(cpu.cpu),
            value: Latency::from_micros(h.latency_us),
            limit: Some(limit),
        }));
    }
    (held, limits)
}

/// A process's command as the kernel keeps it (`/proc/PID/comm`).
fn comm(pid: i32) -> Option<String> {
    let text = crate::file::read_small(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim_end_matches('\n').to_owned())
}

/// One line of `--json`: the keys docs/json.md documents as a stable interface.
#[derive(Debug, Serialize)]
struct JsonLine<'a> {
    time: f64,
    pid: Option<i32>,
    command: Option<&'a str>,
    target: String,
    /// `add`, `update`, `remove`; `held` for what was in force at the start.
    action: &'a str,
    #[serde(serialize_with = "micros")]
    value_us: Option<Latency>,
    #[serde(serialize_with = "micros")]
    limit_before_us: Option<Latency>,
    #[serde(serialize_with = "micros")]
    limit_after_us: Option<Latency>,
}

/// Prints the log, text or JSON Lines, to a buffered stdout flushed after each batch.
struct Printer<'a> {
    settings: &'a Settings,
    clock: Clock,
    /// lllqos runs in the host's PID namespace: an event's pid can be looked up in /proc.
    host_namespace: bool,
    stdout: io::BufWriter<io::Stdout>,
    /// Events the kernel dropped, in all.
    lost: u64,
}

impl<'a> Printer<'a> {
    fn new(settings: &'a Settings, clock: Clock, host_namespace: bool) -> Printer<'a> {
        Printer {
            settings,
            clock,
            host_namespace,
            stdout: io::BufWriter::new(io::stdout()),
            lost: 0,
        }
    }

    /// The first lines: what is in force (and, in text, the columns).
    fn start(&mut self, instance: &Instance, held: &[Held]) -> io::Result<()> {
        let now = self.clock.epoch(monotonic().as_secs_f64());
        if !self.settings.json {
            let name = instance
                .dir()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            writeln!(
                self.stdout,
                "lllqos trace: CPU latency requests as they change (tracing instance {}); Ctrl-C stops",
                name.unwrap_or_default()
            )?;
            if held.is_empty() {
                writeln!(self.stdout, "in force at the start: nothing")?;
            }
        }
        for h in held
            .iter()
            .filter(|h| self.settings.shows(h.pid, h.command.as_deref()))
        {
            if self.settings.json {
                self.json(&JsonLine {
                    time: now,
                    pid: h.pid,
                    command: h.command.as_deref(),
                    target: h.target.to_string(),
                    action: "held",
                    value_us: h.value,
                    limit_before_us: h.limit,
                    limit_after_us: h.limit,
                })?;
            } else {
                let who = match (h.pid, &h.command) {
                    (Some(pid), command) => format!("{pid} {}", command.as_deref().unwrap_or("?")),
                    (None, _) => "(set by a write, no process holds it)".to_owned(),
                };
                let value = if h.pid.is_some() && h.value.is_none() {
                    "value not known".to_owned()
                } else {
                    value_text(&h.target, h.value)
                };
                writeln!(
                    self.stdout,
                    "in force at the start: {} limit {}, held by {who}: {value}",
                    h.target,
                    limit_text(h.limit)
                )?;
            }
        }
        if !self.settings.json {
            writeln!(
                self.stdout,
                "{:<15}  {:>7} {:<16} {:<16} {:<7} {:<22} LIMIT BEFORE -> AFTER",
                "TIME", "PID", "COMMAND", "TARGET", "ACTION", "VALUE"
            )?;
        }
        self.flush()
    }

    fn output(&mut self, output: Output) -> io::Result<()> {
        match output {
            Output::Change(change) => self.change(change),
            Output::Lost { cpu, count } => {
                self.flush()?;
                match count {
                    Some(n) => {
                        self.lost += n;
                        say!(
                            "lllqos: trace: {n} events lost on CPU {cpu}: the ring buffer overflowed"
                        );
                    }
                    None => say!(
                        "lllqos: trace: events lost on CPU {cpu} (the kernel did not count them): the ring buffer overflowed"
                    ),
                }
                Ok(())
            }
        }
    }

    fn flush_tracker(&mut self, tracker: &mut Tracker) -> io::Result<()> {
        for change in tracker.flush() {
            self.change(change)?;
        }
        self.flush()
    }

    fn change(&mut self, change: Change) -> io::Result<()> {
        let Change {
            time,
            task: Task { tid, pid, command },
            target,
            action,
            value,
            before,
            after,
        } = change;
        // `<...>`: the kernel had not kept the command; the thread may still be there to ask.
        let command = command.or_else(|| comm(tid).filter(|_| self.host_namespace));
        if !self.settings.shows(Some(pid), command.as_deref()) {
            return Ok(());
        }
        let time = self.clock.epoch(time);
        if self.settings.json {
            return self.json(&JsonLine {
                time,
                pid: Some(pid),
                command: command.as_deref(),
                target: target.to_string(),
                action: action.as_str(),
                value_us: value,
                limit_before_us: before,
                limit_after_us: after,
            });
        }
        let value = match action {
            parse::Action::Remove => "-".to_owned(),
            _ => value_text(&target, value),
        };
        writeln!(
            self.stdout,
            "{:<15}  {pid:>7} {:<16} {:<16} {:<7} {value:<22} {} -> {}",
            local_time(time),
            command.as_deref().unwrap_or("?"),
            target.to_string(),
            action.as_str(),
            limit_text(before),
            limit_text(after)
        )
    }

    fn json(&mut self, line: &JsonLine) -> io::Result<()> {
        serde_json::to_writer(&mut self.stdout, line)?;
        self.stdout.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stdout.flush()
    }
}

/// A limit in JSON: microseconds, `null` for no constraint (as in `status --json`).
fn micros<S: serde::Serializer>(limit: &Option<Latency>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_some(&limit.map(Latency::as_micros))
}

/// A request's value in words: per CPU, with what the sysfs file shows for it (`status` does the
/// same), since the file's `0` and `n/a` mean the opposite of what they seem.
fn value_text(target: &Target, value: Option<Latency>) -> String {
    match target {
        Target::Cpu(_) => value
            .map_or(ResumeLatency::Unconstrained, ResumeLatency::Limit)
            .describe(),
        Target::Global(_) => limit_text(value),
    }
}

fn limit_text(limit: Option<Latency>) -> String {
    limit.map_or_else(|| "none".to_owned(), |l| l.to_string())
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

    #[test]
    fn json_lines_have_exactly_the_documented_keys() {
        let line = JsonLine {
            time: 1.5,
            pid: Some(1),
            command: Some("x"),
            target: "cpu1".into(),
            action: "add",
            value_us: None,
            limit_before_us: None,
            limit_after_us: Some(Latency::micros(3)),
        };
        let value = serde_json::to_value(&line).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut documented: Vec<&str> = crate::cli::TRACE_JSON_KEYS
            .iter()
            .map(|(k, _)| *k)
            .collect();
        let mut keys = keys;
        keys.sort_unstable();
        documented.sort_unstable();
        assert_eq!(keys, documented);
    }

    #[test]
    fn per_cpu_values_say_what_sysfs_shows() {
        assert_eq!(
            value_text(&Target::Cpu(1), Some(Latency::ZERO)),
            "0 us (sysfs: n/a)"
        );
        assert_eq!(value_text(&Target::Cpu(1), None), "none (sysfs: 0)");
        assert_eq!(
            value_text(
                &Target::Global("cpu_dma_latency".into()),
                Some(Latency::micros(33))
            ),
            "33 us"
        );
    }
}
