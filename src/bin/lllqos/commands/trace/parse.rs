//! The lines of a tracefs `trace_pipe`, as the kernel prints the `power` PM QoS events.
//!
//! A line is the task (its command, then `-TID`), its process in parentheses (the instance's
//! `record-tgid` option; dashes when the kernel did not record it), the CPU in brackets, optional
//! flags, the time stamp, the event's name and its own text:
//!
//! ```text
//!          python3-4243    (   4242) [001] .....   812.123456: pm_qos_update_request: CPU_DMA_LATENCY value=33
//!            <...>-77      (-------) [000] d..1.   812.123460: pm_qos_update_target: action=UPDATE_REQ prev_value=2000000000 curr_value=33
//!             bash-512     (    512) [000] .....   813.000001: dev_pm_qos_update_request: device=cpu1 type=DEV_PM_QOS_RESUME_LATENCY new_value=0
//! CPU:1 [LOST 312 EVENTS]
//! ```
//!
//! A command may hold spaces, dashes, brackets and parentheses, so the line is read from the
//! event's name outwards: what precedes it ends with the time stamp, and the task is everything
//! before the last `[CPU]`. Values are the kernel's raw ones (`-1` is "the default"); [`super::tracker`] gives them
//! their meaning.

/// What a request event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Add,
    Update,
    Remove,
}

impl Action {
    /// `add`, `update` or `remove`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Update => "update",
            Action::Remove => "remove",
        }
    }
}

/// Which constraint a request belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The system-wide CPU latency constraint, by the kernel's name for it lowercased:
    /// `cpu_dma_latency` (`/dev/cpu_dma_latency`), or `cpu_wakeup_latency` where the kernel has it.
    Global(String),
    /// A CPU's resume latency (`/sys/devices/system/cpu/cpuN/power/pm_qos_resume_latency_us`).
    Cpu(u32),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Global(name) => f.write_str(name),
            Target::Cpu(cpu) => write!(f, "cpu{cpu}"),
        }
    }
}

/// The task that made an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The thread (the kernel's task id): one thread's events come one after the other.
    pub tid: i32,
    /// Its process (the thread group), or the thread when the kernel did not record it.
    pub pid: i32,
    /// The command as the kernel recorded it (15 bytes at most), `None` when it printed `<...>`.
    pub command: Option<String>,
}

/// One line of the pipe.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A request was added, updated or removed; `value` is the kernel's raw value.
    Request {
        time: f64,
        task: Task,
        target: Target,
        action: Action,
        value: i64,
    },
    /// A constraint's aggregate was recomputed after a change (`pm_qos_update_target`): the limit
    /// before and after, raw.
    Aggregate {
        time: f64,
        task: Task,
        before: i64,
        after: i64,
    },
    /// The ring buffer overflowed: this many events were lost (`None`: the kernel did not count).
    Lost { cpu: u32, count: Option<u64> },
    /// A line of another event, or another kind of device request (not a CPU's resume latency).
    Other,
}

/// The events lllqos trace enables, under `events/power/`.
pub const EVENTS: &[&str] = &[
    "pm_qos_add_request",
    "pm_qos_update_request",
    "pm_qos_remove_request",
    "pm_qos_update_target",
    "dev_pm_qos_add_request",
    "dev_pm_qos_update_request",
    "dev_pm_qos_remove_request",
];

/// Reads one line (without its newline); `None` when it is not a line of this form.
pub fn parse_line(line: &str) -> Option<Event> {
    // `CPU:N [LOST COUNT EVENTS]`, or `CPU:N [LOST EVENTS]` when the kernel could not count.
    if let Some(rest) = line.strip_prefix("CPU:") {
        let (cpu, rest) = rest.split_once(' ')?;
        let count = rest.strip_prefix("[LOST ")?.strip_suffix(" EVENTS]");
        return Some(Event::Lost {
            cpu: cpu.parse().ok()?,
            count: count.and_then(|c| c.parse().ok()),
        });
    }
    // The event's name is the first `: NAME: ` after the time stamp; find it by the names.
    let (head, name, body) = EVENTS.iter().find_map(|name| {
        let marker = format!(": {name}: ");
        let at = line.find(&marker)?;
        Some((&line[..at], *name, &line[at + marker.len()..]))
    })?;
    let (task, time) = parse_head(head)?;
    let field = |key: &str| -> Option<&str> {
        body.split(' ')
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
    };
    let number = |key: &str| -> Option<i64> { field(key)?.parse().ok() };
    let action = |name: &str| match name.rsplit('_').nth(1)? {
        "add" => Some(Action::Add),
        "update" => Some(Action::Update),
        "remove" => Some(Action::Remove),
        _ => None,
    };
    Some(match name {
        "pm_qos_update_target" => Event::Aggregate {
            time,
            task,
            before: number("prev_value")?,
            after: number("curr_value")?,
        },
        _ if name.starts_with("pm_qos_") => Event::Request {
            time,
            task,
            target: Target::Global(body.split(' ').next()?.to_ascii_lowercase()),
            action: action(name)?,
            value: number("value")?,
        },
        _ => {
            // `device=NAME type=TYPE new_value=N`; only a CPU's resume latency is a CPU latency.
            let (device, rest) = body.strip_prefix("device=")?.rsplit_once(" type=")?;
            let cpu = device.strip_prefix("cpu").and_then(|n| n.parse().ok());
            match cpu {
                Some(cpu) if rest.starts_with("DEV_PM_QOS_RESUME_LATENCY ") => Event::Request {
                    time,
                    task,
                    target: Target::Cpu(cpu),
                    action: action(name)?,
                    value: number("new_value")?,
                },
                _ => Event::Other,
            }
        }
    })
}

/// The task that wrote `text` into the instance's `trace_marker`, from a line of the pipe
/// (`... tracing_mark_write: TEXT`); `None` for any other line.
pub fn marker_task(line: &str, text: &str) -> Option<Task> {
    let (head, body) = line.split_once(": tracing_mark_write: ")?;
    if body.trim_end() != text {
        return None;
    }
    parse_head(head).map(|(task, _)| task)
}

/// `  COMMAND-TID  (PID) [CPU] FLAGS  SECONDS.MICROS` → the task and the time.
fn parse_head(head: &str) -> Option<(Task, f64)> {
    let (rest, time) = head.trim_end().rsplit_once(' ')?;
    let time: f64 = time.parse().ok()?;
    // The CPU field is the last `[digits]` word before the time.
    let words: Vec<&str> = rest.split(' ').collect();
    let cpu_at = words.iter().rposition(|w| {
        w.strip_prefix('[')
            .and_then(|w| w.strip_suffix(']'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })?;
    let task = words[..cpu_at].join(" ");
    let task = task.trim();
    // `(   4242)`, or `(-------)` when the kernel has no record of the process.
    let (task, pid) = match task.strip_suffix(')').and_then(|t| t.rsplit_once('(')) {
        Some((task, pid)) => (task.trim_end(), pid.trim().parse().ok()),
        None => (task, None),
    };
    let (command, tid) = task.rsplit_once('-')?;
    let tid: i32 = tid.parse().ok()?;
    let command = (command != "<...>").then(|| command.to_owned());
    Some((
        Task {
            tid,
            pid: pid.unwrap_or(tid),
            command,
        },
        time,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn task(pid: i32, command: &str) -> Task {
        Task {
            tid: pid,
            pid,
            command: Some(command.into()),
        }
    }

    #[test]
    fn a_marker_names_the_task_that_wrote_it() {
        let line = "           <...>-13175   (  13175) [001] ...1.   564.603762: tracing_mark_write: lllqos-self 123";
        assert_eq!(
            marker_task(line, "lllqos-self 123").map(|t| (t.tid, t.pid)),
            Some((13175, 13175))
        );
        assert_eq!(marker_task(line, "lllqos-self 124"), None);
        assert_eq!(marker_task("garbage", "x"), None);
    }

    #[test]
    fn global_request_and_its_aggregate() {
        let line = "         python3-4243    (   4242) [001] .....   812.123456: pm_qos_update_request: CPU_DMA_LATENCY value=33";
        assert_eq!(
            parse_line(line),
            Some(Event::Request {
                time: 812.123456,
                task: Task {
                    tid: 4243,
                    ..task(4242, "python3")
                },
                target: Target::Global("cpu_dma_latency".into()),
                action: Action::Update,
                value: 33,
            })
        );
        let line = "           <...>-77      (-------) [000] d..1.   812.123460: pm_qos_update_target: action=UPDATE_REQ prev_value=2000000000 curr_value=33";
        assert_eq!(
            parse_line(line),
            Some(Event::Aggregate {
                time: 812.12346,
                task: Task {
                    tid: 77,
                    pid: 77,
                    command: None
                },
                before: 2_000_000_000,
                after: 33,
            })
        );
    }

    #[test]
    fn cpu_resume_latency_and_other_device_requests() {
        let line = "            bash-512     [000] .....   813.000001: dev_pm_qos_add_request: device=cpu1 type=DEV_PM_QOS_RESUME_LATENCY new_value=-1";
        assert_eq!(
            parse_line(line),
            Some(Event::Request {
                time: 813.000001,
                task: task(512, "bash"),
                target: Target::Cpu(1),
                action: Action::Add,
                value: -1,
            })
        );
        for other in [
            "  kworker/0:1-9 [000] ..... 1.000000: dev_pm_qos_update_request: device=cpu1 type=DEV_PM_QOS_FLAGS new_value=1",
            "  kworker/0:1-9 [000] ..... 1.000000: dev_pm_qos_update_request: device=0000:00:1f.0 type=DEV_PM_QOS_RESUME_LATENCY new_value=1",
        ] {
            assert_eq!(parse_line(other), Some(Event::Other), "{other}");
        }
    }

    #[test]
    fn lost_events() {
        assert_eq!(
            parse_line("CPU:1 [LOST 312 EVENTS]"),
            Some(Event::Lost {
                cpu: 1,
                count: Some(312)
            })
        );
        assert_eq!(
            parse_line("CPU:0 [LOST EVENTS]"),
            Some(Event::Lost {
                cpu: 0,
                count: None
            })
        );
    }

    #[test]
    fn not_a_line_of_these_events() {
        for line in [
            "",
            "garbage",
            "x-1 [000] 1.0: sched_switch: a=b",
            "CPU:x [LOST 1 EVENTS]",
        ] {
            assert_eq!(parse_line(line), None, "{line}");
        }
    }

    proptest! {
        /// Whatever the command is called (spaces, dashes, brackets, parentheses, colons), and
        /// whether or not the process and flags columns are there, the thread, the process, the
        /// command and the value come back.
        #[test]
        fn any_command_name_reads_back(
            command in "[ -~]{1,15}",
            pid in 1i32..4_194_304,
            tid in 1i32..4_194_304,
            tgid_column in any::<bool>(),
            cpu in 0u32..4096,
            flags in proptest::option::of("[.dNnhsHzb]{4,5}"),
            seconds in 0u64..10_000_000,
            micros in 0u32..1_000_000,
            value in -1i64..=i64::from(i32::MAX),
        ) {
            prop_assume!(command.trim() == command && command != "<...>");
            let flags = flags.map(|f| format!("{f} ")).unwrap_or_default();
            let tgid = if tgid_column { format!("({pid:>7}) ") } else { String::new() };
            let line = format!(
                "{command:>16}-{tid:<7} {tgid}[{cpu:03}] {flags}{seconds:5}.{micros:06}: pm_qos_update_request: CPU_DMA_LATENCY value={value}"
            );
            let task = Task {
                tid,
                pid: if tgid_column { pid } else { tid },
                command: Some(command.clone()),
            };
            let time = format!("{seconds}.{micros:06}").parse::<f64>().unwrap();
            prop_assert_eq!(
                parse_line(&line),
                Some(Event::Request {
                    time,
                    task,
                    target: Target::Global("cpu_dma_latency".into()),
                    action: Action::Update,
                    value,
                })
            );
        }
    }
}
