//! The log's lines, as text for people or as JSON Lines (the keys docs/json.md documents), on a
//! buffered stdout flushed after each batch of events.

use std::io::{self, Write};
use std::time::Duration;

use lllqos::Latency;
use lllqos::internal::procfs;
use lllqos::percpu::ResumeLatency;
use nix::time::ClockId;
use serde::Serialize;

use super::in_force::Held;
use super::parse::{self, Target, Task};
use super::tracefs::Instance;
use super::tracker::{Change, Output, Tracker};
use super::{Settings, monotonic};

/// Converts the trace's monotonic time stamps to the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in seconds, at the start.
    offset: f64,
}

impl Clock {
    pub fn now() -> Clock {
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
pub struct Printer<'a> {
    settings: &'a Settings,
    clock: Clock,
    /// lllqos runs in the host's PID namespace: an event's pid can be looked up in /proc.
    host_namespace: bool,
    stdout: io::BufWriter<io::Stdout>,
    /// Events the kernel dropped, in all.
    pub lost: u64,
}

impl<'a> Printer<'a> {
    pub fn new(settings: &'a Settings, clock: Clock, host_namespace: bool) -> Printer<'a> {
        Printer {
            settings,
            clock,
            host_namespace,
            stdout: io::BufWriter::new(io::stdout()),
            lost: 0,
        }
    }

    /// The first lines: what is in force (and, in text, the columns).
    pub fn start(&mut self, instance: &Instance, held: &[Held]) -> io::Result<()> {
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

    pub fn output(&mut self, output: Output) -> io::Result<()> {
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

    pub fn flush_tracker(&mut self, tracker: &mut Tracker) -> io::Result<()> {
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
        let command = command.or_else(|| procfs::comm(tid).filter(|_| self.host_namespace));
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

    pub fn flush(&mut self) -> io::Result<()> {
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
        let mut documented: Vec<&str> = lllqos::cli::TRACE_JSON_KEYS
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
