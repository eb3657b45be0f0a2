//! From the kernel's events to request changes: which request changed, and the limit before and
//! after.
//!
//! The kernel traces a change in two events from the same task, one right after the other: the
//! request (`pm_qos_update_request: value=33`, `dev_pm_qos_update_request: device=cpu1
//! new_value=0`), then, when the constraint's aggregate was recomputed, `pm_qos_update_target` with
//! the aggregate before and after. The second is missing when an update leaves a request's value as
//! it was (the kernel returns early), and `pm_qos_update_target` also follows changes this tool
//! does not report (frequency constraints). So a request waits, per task, for the next event of
//! that task: its aggregate completes it; anything else, or [`Tracker::flush`] when the pipe has
//! been quiet for a moment, completes it with the limit unchanged.
//!
//! Raw values become limits here. The global constraint's "no constraint" is its default,
//! 2000000000 us, and `-1` in a request means "the default" (the value of a just-opened node). A
//! CPU's resume latency says "no constraint" with `i32::MAX` (the sysfs file shows `0`) and "no
//! idle state at all" with 0 (the file shows `n/a`). Both "no constraint"s are `None`.

use std::collections::HashMap;

use lllqos::Latency;

use super::parse::{Action, Event, Target, Task};

/// The global constraint's default: no constraint (`PM_QOS_CPU_LATENCY_DEFAULT_VALUE`).
const GLOBAL_DEFAULT: i64 = 2_000_000_000;

/// A CPU's resume latency "no constraint" (`PM_QOS_RESUME_LATENCY_NO_CONSTRAINT`).
const CPU_NO_CONSTRAINT: i64 = i32::MAX as i64;

/// The limit a raw value stands for, on this target; `None` is "no constraint".
pub fn limit(target: &Target, raw: i64) -> Option<Latency> {
    let unconstrained = match target {
        Target::Global(_) => raw < 0 || raw == GLOBAL_DEFAULT,
        Target::Cpu(_) => raw < 0 || raw == CPU_NO_CONSTRAINT,
    };
    if unconstrained {
        None
    } else {
        u32::try_from(raw).ok().and_then(Latency::from_micros)
    }
}

/// One change of one request: a line of `lllqos trace`.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The kernel's time stamp, in seconds (CLOCK_MONOTONIC with the instance's `mono` clock).
    pub time: f64,
    pub task: Task,
    pub target: Target,
    pub action: Action,
    /// The request's value; `None` for "no constraint" or the default (a removal's value).
    pub value: Option<Latency>,
    /// The target's limit in force before and after the change.
    pub before: Option<Latency>,
    pub after: Option<Latency>,
}

/// What [`Tracker::push`] reports besides changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Change(Change),
    /// Events the ring buffer dropped on a CPU (`None`: the kernel could not count them).
    Lost {
        cpu: u32,
        count: Option<u64>,
    },
}

/// Pairs requests with their aggregates, and remembers each target's limit.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Per thread: a request waiting for its aggregate.
    pending: HashMap<i32, Change>,
    /// Each target's limit as last seen (from the start state, then from the events).
    limits: HashMap<Target, Option<Latency>>,
}

impl Tracker {
    /// A tracker that knows these limits in force (what `status` read at the start).
    pub fn new(limits: impl IntoIterator<Item = (Target, Option<Latency>)>) -> Tracker {
        Tracker {
            pending: HashMap::new(),
            limits: limits.into_iter().collect(),
        }
    }

    /// Takes one event; returns the changes it completes, in order.
    pub fn push(&mut self, event: Event) -> Vec<Output> {
        let mut out = Vec::new();
        match event {
            Event::Request {
                time,
                task,
                target,
                action,
                value,
            } => {
                if let Some(earlier) = self.pending.remove(&task.tid) {
                    out.push(Output::Change(self.unchanged(earlier)));
                }
                let known = self.limits.get(&target).copied().flatten();
                let change = Change {
                    time,
                    value: match action {
                        Action::Remove => None,
                        _ => limit(&target, value),
                    },
                    task: task.clone(),
                    target,
                    action,
                    before: known,
                    after: known,
                };
                self.pending.insert(task.tid, change);
            }
            Event::Aggregate {
                task,
                before,
                after,
                ..
            } => {
                if let Some(mut change) = self.pending.remove(&task.tid) {
                    change.before = limit(&change.target, before);
                    change.after = limit(&change.target, after);
                    self.limits.insert(change.target.clone(), change.after);
                    out.push(Output::Change(change));
                }
            }
            Event::Lost { cpu, count } => {
                // What was waiting may have lost its aggregate: report it now, as far as known.
                out.extend(self.flush().into_iter().map(Output::Change));
                out.push(Output::Lost { cpu, count });
            }
            Event::Other => {}
        }
        out
    }

    /// Completes every request still waiting, as changes that left the limit as it was (the
    /// pipe has been quiet: no aggregate is coming). In time order.
    pub fn flush(&mut self) -> Vec<Change> {
        let mut waiting: Vec<Change> = self.pending.drain().map(|(_, c)| c).collect();
        waiting.sort_by(|a, b| a.time.total_cmp(&b.time));
        waiting.into_iter().map(|c| self.unchanged(c)).collect()
    }

    /// Whether a request is waiting for its aggregate.
    pub fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// A change no aggregate followed: the limit stayed what it was.
    fn unchanged(&self, mut change: Change) -> Change {
        let known = self.limits.get(&change.target).copied().flatten();
        change.before = known;
        change.after = known;
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn task(pid: i32) -> Task {
        Task {
            tid: pid,
            pid,
            command: Some(format!("task{pid}")),
        }
    }

    fn global() -> Target {
        Target::Global("cpu_dma_latency".into())
    }

    fn request(pid: i32, target: Target, action: Action, value: i64) -> Event {
        Event::Request {
            time: 1.0,
            task: task(pid),
            target,
            action,
            value,
        }
    }

    fn aggregate(pid: i32, before: i64, after: i64) -> Event {
        Event::Aggregate {
            time: 1.0,
            task: task(pid),
            before,
            after,
        }
    }

    fn us(micros: u32) -> Option<Latency> {
        Some(Latency::micros(micros))
    }

    /// A change as (action, value, limit before, limit after).
    type Seen = (Action, Option<Latency>, Option<Latency>, Option<Latency>);

    fn changes(out: Vec<Output>) -> Vec<Seen> {
        out.into_iter()
            .filter_map(|o| match o {
                Output::Change(c) => Some((c.action, c.value, c.before, c.after)),
                Output::Lost { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_node_opened_written_and_closed() {
        let mut t = Tracker::new([(global(), None)]);
        let mut out = t.push(request(7, global(), Action::Add, -1));
        assert!(out.is_empty(), "waits for its aggregate");
        out.extend(t.push(aggregate(7, GLOBAL_DEFAULT, GLOBAL_DEFAULT)));
        out.extend(t.push(request(7, global(), Action::Update, 33)));
        out.extend(t.push(aggregate(7, GLOBAL_DEFAULT, 33)));
        out.extend(t.push(request(7, global(), Action::Remove, -1)));
        out.extend(t.push(aggregate(7, 33, GLOBAL_DEFAULT)));
        assert_eq!(
            changes(out),
            [
                (Action::Add, None, None, None),
                (Action::Update, us(33), None, us(33)),
                (Action::Remove, None, us(33), None),
            ]
        );
        assert!(!t.waiting());
    }

    #[test]
    fn cpu_values_are_inverted_as_in_sysfs() {
        let cpu = Target::Cpu(1);
        assert_eq!(limit(&cpu, CPU_NO_CONSTRAINT), None, "sysfs 0");
        assert_eq!(limit(&cpu, 0), us(0), "sysfs n/a");
        assert_eq!(limit(&cpu, 10), us(10));
        assert_eq!(limit(&global(), 0), us(0));
        assert_eq!(limit(&global(), GLOBAL_DEFAULT), None);
    }

    #[test]
    fn an_update_to_the_same_value_has_no_aggregate_and_keeps_the_limit() {
        let mut t = Tracker::new([(global(), us(20))]);
        assert!(t.push(request(7, global(), Action::Update, 20)).is_empty());
        // The same task's next request completes it, as does a quiet pipe.
        let out = t.push(request(7, global(), Action::Update, 20));
        assert_eq!(changes(out), [(Action::Update, us(20), us(20), us(20))]);
        let flushed = t.flush();
        assert_eq!(flushed.len(), 1);
        assert_eq!((flushed[0].before, flushed[0].after), (us(20), us(20)));
    }

    #[test]
    fn an_aggregate_without_a_request_is_not_a_change() {
        let mut t = Tracker::default();
        assert!(t.push(aggregate(9, 100, 200)).is_empty());
        assert!(t.push(Event::Other).is_empty());
    }

    #[test]
    fn lost_events_report_what_was_waiting_first() {
        let mut t = Tracker::default();
        t.push(request(3, Target::Cpu(0), Action::Update, 5));
        let out = t.push(Event::Lost {
            cpu: 0,
            count: Some(12),
        });
        assert!(matches!(out[0], Output::Change(_)));
        assert_eq!(
            out[1],
            Output::Lost {
                cpu: 0,
                count: Some(12)
            }
        );
    }

    proptest! {
        /// Tasks interleave their changes on several targets (each task's request directly followed
        /// by its aggregate, as the kernel emits them, but tasks mixed): every change comes out
        /// once, attributed to its task, with the before and after of its own aggregate, and
        /// nothing is left waiting.
        #[test]
        fn interleaved_tasks_each_get_their_own_aggregate(
            steps in proptest::collection::vec((1i32..5, 0u32..3, 0i64..100, any::<bool>()), 1..60),
        ) {
            let mut t = Tracker::default();
            let mut expected = Vec::new();
            let mut got = Vec::new();
            // Each task's request is pushed; its aggregate comes after other tasks' events.
            let mut delayed: Vec<Event> = Vec::new();
            for (pid, cpu, value, interleave) in steps {
                // A task's aggregate always comes before its own next request.
                let (mine, others): (Vec<Event>, Vec<Event>) = delayed
                    .into_iter()
                    .partition(|e| matches!(e, Event::Aggregate { task, .. } if task.pid == pid));
                delayed = others;
                for event in mine {
                    got.extend(changes(t.push(event)));
                }
                let target = Target::Cpu(cpu);
                got.extend(changes(t.push(request(pid, target, Action::Update, value))));
                let before = value + 1000;
                expected.push((value, before));
                let event = aggregate(pid, before, value);
                if interleave {
                    delayed.push(event);
                } else {
                    got.extend(changes(t.push(event)));
                }
            }
            for event in delayed {
                got.extend(changes(t.push(event)));
            }
            prop_assert!(!t.waiting());
            prop_assert_eq!(got.len(), expected.len());
            let mut got: Vec<(i64, i64)> = got.iter().map(|&(_, v, b, _)| (i64::from(v.unwrap().as_micros()), i64::from(b.unwrap().as_micros()))).collect();
            let mut want = expected;
            got.sort();
            want.sort();
            prop_assert_eq!(got, want);
        }
    }
}
