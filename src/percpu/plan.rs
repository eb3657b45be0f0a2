//! The reconcile algorithm, as pure functions: the registry and the CPUs' current values in, the
//! registry to store and the writes to make out. No I/O here; `super` reads, stores and writes.
//!
//! # The promise
//!
//! On every CPU lllqos touches, after each change:
//!
//! 1. the value in force is the strictest of the live requests and of the value to restore, so a
//!    value another tool set is never loosened while holders remain;
//! 2. the value to restore (found before the first holder, or set by another tool since) comes back
//!    exactly when the last holder leaves;
//! 3. a value another tool set after the last write of lllqos is never overwritten with a looser
//!    one, and is left as it is when the last holder leaves.
//!
//! # Crash consistency: the intent is written ahead
//!
//! A change is three steps: store the registry with each CPU's `intent` (the value about to be
//! written), write the CPUs, store the registry with `written` = `intent`. A process killed between
//! any two steps (SIGKILL, a full disk) leaves a registry from which the next lllqos tells what
//! happened: a CPU that reads its `intent` was written, one that reads `written` was not, and one
//! that reads anything else was changed by another tool. [`recover`] turns that into a registry
//! with no intent; the CPUs it names are then planned again with the live holders. Without the
//! intent, a CPU written by a process killed before it stored `written` looked changed by another
//! tool, and its original value was lost for good.

use std::collections::{BTreeMap, BTreeSet};

use super::Notice;
use super::registry::{CpuEntry, Registry};
use super::sysfs::ResumeLatency;
use crate::latency::Latency;

/// The current value of CPUs, by number.
pub(crate) type Values = BTreeMap<u32, ResumeLatency>;

/// One planned write of a CPU's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Write {
    pub(crate) cpu: u32,
    /// The value before: what to write back to undo it.
    pub(crate) from: ResumeLatency,
    pub(crate) to: ResumeLatency,
}

/// A planned change: store `staged`, make `writes` in order, store `done`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// The registry with the intent of each write; `None` when there is no write (nothing to
    /// tell apart: the change is stored done at once).
    pub(crate) staged: Option<Registry>,
    pub(crate) writes: Vec<Write>,
    pub(crate) done: Registry,
    pub(crate) notices: Vec<Notice>,
}

/// Resolves the intents an interrupted change left, given the CPUs' current values. Returns the
/// CPUs that had one: they must be planned again.
pub(crate) fn recover(registry: &mut Registry, values: &Values) -> BTreeSet<u32> {
    let mut cpus = BTreeSet::new();
    for (&cpu, entry) in &mut registry.cpus {
        // A CPU that cannot be read now keeps its intent for a later lllqos.
        let (Some(intent), Some(&current)) = (entry.intent, values.get(&cpu)) else {
            continue;
        };
        if current == intent {
            entry.written = intent;
        }
        entry.intent = None;
        cpus.insert(cpu);
    }
    cpus
}

/// The strictest request of the holders on `cpu`, `None` when no holder has it.
fn strictest_request(registry: &Registry, cpu: u32) -> Option<ResumeLatency> {
    registry
        .holders
        .iter()
        .filter(|h| h.cpus.contains(&cpu))
        .filter_map(|h| Latency::from_micros(h.latency_us).and_then(ResumeLatency::limit))
        .min()
}

/// Plans the change that brings `cpus` in line with the holders of `registry` (recovered, dead
/// holders removed, this change's holders added or removed). `values` has the current value of
/// every CPU of `cpus`; a CPU without one is left out of the change.
pub(crate) fn plan(registry: Registry, cpus: &BTreeSet<u32>, values: &Values) -> Change {
    // The registry as staged is the one given, the entries of the CPUs planned replaced by
    // these (with their intents). A copy of the holders is made only when there are writes.
    let mut intents: BTreeMap<u32, CpuEntry> = registry.cpus.clone();
    let mut done = registry;
    let mut writes = Vec::new();
    let mut notices = Vec::new();
    for &cpu in cpus {
        let Some(&current) = values.get(&cpu) else {
            continue;
        };
        let request = strictest_request(&done, cpu);
        let entry = done.cpus.get(&cpu).cloned();
        // The value to restore at the end, and whether another tool changed the CPU.
        let (original, changed) = match &entry {
            None => (current, false),
            Some(e) if current == e.written => (e.original, false),
            Some(_) => (current, true),
        };
        let target = match request {
            Some(request) => request.min(original),
            None if changed => current,
            None => original,
        };
        if let (Some(e), true) = (&entry, changed) {
            notices.push(Notice::Changed {
                cpu,
                wrote: e.written,
                found: current,
                left: request.is_none(),
            });
        }
        if entry.is_none() && request.is_none() {
            continue;
        }
        if target != current {
            writes.push(Write {
                cpu,
                from: current,
                to: target,
            });
        }
        intents.insert(
            cpu,
            CpuEntry {
                original,
                written: current,
                intent: (target != current).then_some(target),
            },
        );
        if request.is_some() {
            done.cpus.insert(
                cpu,
                CpuEntry {
                    original,
                    written: target,
                    intent: None,
                },
            );
        } else {
            done.cpus.remove(&cpu);
        }
    }
    let staged = (!writes.is_empty()).then(|| Registry {
        cpus: intents,
        ..done.clone()
    });
    Change {
        staged,
        writes,
        done,
        notices,
    }
}

#[cfg(test)]
mod tests {
    //! The planner against a model of the machine: holders arrive and leave in random orders, are
    //! killed (SIGKILL) at any step of a change, and other tools write values in between.

    use super::super::registry::Holder;
    use super::*;
    use proptest::prelude::*;

    const CPUS: u32 = 3;

    fn value(code: u8) -> ResumeLatency {
        // Values other tools write and CPUs start with: no constraint, zero tolerance, 7, 15.
        match code % 4 {
            0 => ResumeLatency::Unconstrained,
            1 => ResumeLatency::Limit(Latency::ZERO),
            2 => ResumeLatency::Limit(Latency::micros(7)),
            _ => ResumeLatency::Limit(Latency::micros(15)),
        }
    }

    /// Requests are never values other tools write, so that the model can tell them apart (a tool
    /// that writes exactly what lllqos wrote is not distinguishable, and needs not be).
    fn request(code: u8) -> u32 {
        [1, 5, 10, 20][code as usize % 4]
    }

    #[derive(Debug, Clone)]
    enum Event {
        /// Holder `id` places `request(latency)` on the CPUs of bit mask `cpus`, killed after
        /// `crash` steps of its change (never, when larger than the number of steps).
        Arrive { cpus: u8, latency: u8, crash: u8 },
        /// The `nth` live holder releases, killed after `crash` steps.
        Leave { nth: u8, crash: u8 },
        /// The `nth` live holder is killed while it holds.
        Kill { nth: u8 },
        /// Another tool writes `value(value)` on `cpu`.
        Foreign { cpu: u8, value: u8 },
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (1u8..8, any::<u8>(), 0u8..12).prop_map(|(cpus, latency, crash)| Event::Arrive {
                cpus,
                latency,
                crash
            }),
            (any::<u8>(), 0u8..12).prop_map(|(nth, crash)| Event::Leave { nth, crash }),
            any::<u8>().prop_map(|nth| Event::Kill { nth }),
            (0u8..CPUS as u8, any::<u8>()).prop_map(|(cpu, value)| Event::Foreign { cpu, value }),
        ]
    }

    /// The machine: CPU files, the registry on disk, which holders run.
    struct World {
        cpu: Values,
        disk: Registry,
        alive: BTreeSet<String>,
        /// The model's answer: the value to restore on each CPU (the first, or another tool's).
        base: Values,
        next: u32,
    }

    impl World {
        fn new(start: &[u8]) -> World {
            let cpu: Values = (0..CPUS).map(|c| (c, value(start[c as usize]))).collect();
            World {
                base: cpu.clone(),
                cpu,
                disk: Registry::empty(),
                alive: BTreeSet::new(),
                next: 0,
            }
        }

        /// What the I/O around the planner does: load, recover, prune, apply `edit`, plan, and
        /// run the change's steps, stopping after `crash` of them. False when it stopped.
        fn change(&mut self, edit: impl FnOnce(&mut Registry) -> BTreeSet<u32>, crash: u8) -> bool {
            let mut registry = self.disk.clone();
            let mut affected = recover(&mut registry, &self.cpu);
            let alive = &self.alive;
            registry.holders.retain(|h| {
                let live = alive.contains(h.lock.as_deref().unwrap_or(""));
                if !live {
                    affected.extend(&h.cpus);
                }
                live
            });
            affected.extend(edit(&mut registry));
            let change = plan(registry, &affected, &self.cpu);
            let mut steps = 0u8;
            let mut step = |world: &mut World, action: &dyn Fn(&mut World)| {
                if steps >= crash {
                    return false;
                }
                action(world);
                steps += 1;
                true
            };
            // As `change::store_intent`: no intent to store when nothing is written.
            if let Some(staged) = &change.staged
                && !step(self, &|w| w.disk = staged.clone())
            {
                return false;
            }
            for write in &change.writes {
                if !step(self, &|w| {
                    w.cpu.insert(write.cpu, write.to);
                }) {
                    return false;
                }
            }
            step(self, &|w| w.disk = change.done.clone())
        }

        fn live(&self) -> Vec<Holder> {
            let mut seen = BTreeSet::new();
            self.disk
                .holders
                .iter()
                .filter(|h| self.alive.contains(h.lock.as_deref().unwrap_or("")))
                .filter(|h| seen.insert(h.lock.clone()))
                .cloned()
                .collect()
        }

        /// Applies `event`; returns the CPUs a change touched, and false if it was cut short.
        fn apply(&mut self, event: &Event) -> (BTreeSet<u32>, bool) {
            match *event {
                Event::Arrive {
                    cpus,
                    latency,
                    crash,
                } => {
                    let name = format!("holder.{}", self.next);
                    self.next += 1;
                    let cpus: Vec<u32> = (0..CPUS).filter(|c| cpus & (1 << c) != 0).collect();
                    let touched: BTreeSet<u32> = cpus.iter().copied().collect();
                    let me = Holder {
                        pid: 1,
                        start_time: 0,
                        lock: Some(name.clone()),
                        cpus: cpus.clone(),
                        latency_us: request(latency),
                    };
                    self.alive.insert(name.clone());
                    let completed = self.change(
                        |r| {
                            r.holders.push(me);
                            touched.clone()
                        },
                        crash,
                    );
                    if !completed {
                        self.alive.remove(&name);
                    }
                    (touched, completed)
                }
                Event::Leave { nth, crash } => {
                    let live = self.live();
                    if live.is_empty() {
                        return (BTreeSet::new(), true);
                    }
                    let me = live[nth as usize % live.len()].clone();
                    let touched: BTreeSet<u32> = me.cpus.iter().copied().collect();
                    let name = me.lock.clone().unwrap_or_default();
                    let completed = self.change(
                        |r| {
                            r.holders.retain(|h| h.lock != me.lock);
                            touched.clone()
                        },
                        crash,
                    );
                    self.alive.remove(&name);
                    (touched, completed)
                }
                Event::Kill { nth } => {
                    let live = self.live();
                    if !live.is_empty() {
                        let name = live[nth as usize % live.len()].lock.clone();
                        self.alive.remove(&name.unwrap_or_default());
                    }
                    (BTreeSet::new(), true)
                }
                Event::Foreign { cpu, value: v } => {
                    let cpu = cpu as u32;
                    self.cpu.insert(cpu, value(v));
                    self.base.insert(cpu, value(v));
                    (BTreeSet::new(), true)
                }
            }
        }

        /// The value each CPU must carry: the strictest of the live requests and the base.
        fn expected(&self, cpu: u32) -> ResumeLatency {
            let live = self.live();
            live.iter()
                .filter(|h| h.cpus.contains(&cpu))
                .map(|h| ResumeLatency::Limit(Latency::micros(h.latency_us)))
                .fold(self.base[&cpu], ResumeLatency::min)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// After every change that completes, each CPU it touched carries the strictest of the live
        /// requests and of the value to restore; once everyone has left and one more lllqos has
        /// come and gone on every CPU, each CPU has its value to restore and the registry is empty.
        #[test]
        fn every_cpu_carries_the_strictest_live_request_and_the_original_returns(
            start in proptest::collection::vec(any::<u8>(), CPUS as usize),
            events in proptest::collection::vec(event(), 0..40),
        ) {
            let mut world = World::new(&start);
            for event in &events {
                let (touched, completed) = world.apply(event);
                if !completed {
                    continue;
                }
                for cpu in touched {
                    prop_assert_eq!(world.cpu[&cpu], world.expected(cpu), "cpu{} after {:?}", cpu, event);
                }
            }
            // Everyone leaves (cleanly, or killed), then one more lllqos on every CPU.
            for name in world.alive.clone() {
                world.alive.remove(&name);
            }
            world.apply(&Event::Arrive { cpus: 0b111, latency: 0, crash: u8::MAX });
            world.apply(&Event::Leave { nth: 0, crash: u8::MAX });
            for cpu in 0..CPUS {
                prop_assert_eq!(world.cpu[&cpu], world.base[&cpu], "cpu{}", cpu);
            }
            prop_assert!(world.disk.is_empty(), "{:?}", world.disk);
        }
    }

    /// The case of the bug report: A=10 and B=5 on a CPU whose value was "0"; B restores 10 and is
    /// killed before it stores the registry; when A leaves, "0" must come back.
    #[test]
    fn a_holder_killed_between_its_write_and_its_store_loses_no_original() {
        let mut world = World::new(&[0, 0, 0]);
        let (a, b) = (
            Event::Arrive {
                cpus: 0b010,
                latency: 2,
                crash: u8::MAX,
            },
            Event::Arrive {
                cpus: 0b010,
                latency: 1,
                crash: u8::MAX,
            },
        );
        world.apply(&a);
        world.apply(&b);
        assert_eq!(world.cpu[&1], ResumeLatency::Limit(Latency::micros(5)));
        // B is the second live holder: staged store, the write, then killed.
        let (_, completed) = world.apply(&Event::Leave { nth: 1, crash: 2 });
        assert!(!completed);
        assert_eq!(world.cpu[&1], ResumeLatency::Limit(Latency::micros(10)));
        world.apply(&Event::Leave {
            nth: 0,
            crash: u8::MAX,
        });
        assert_eq!(world.cpu[&1], ResumeLatency::Unconstrained);
        assert!(world.disk.is_empty(), "{:?}", world.disk);
    }

    fn entry(original: ResumeLatency, written: ResumeLatency) -> CpuEntry {
        CpuEntry {
            original,
            written,
            intent: None,
        }
    }

    #[test]
    fn a_crash_after_the_write_is_recovered_as_written_not_as_another_tools_value() {
        let ten = ResumeLatency::Limit(Latency::micros(10));
        let mut registry = Registry::empty();
        registry.cpus.insert(
            1,
            CpuEntry {
                intent: Some(ResumeLatency::Unconstrained),
                ..entry(ResumeLatency::Unconstrained, ten)
            },
        );
        // The holder restored cpu1 and was killed before it stored the registry.
        let values = Values::from([(1, ResumeLatency::Unconstrained)]);
        let cpus = recover(&mut registry, &values);
        assert_eq!(cpus, BTreeSet::from([1]));
        let change = plan(registry, &cpus, &values);
        assert_eq!(change.writes, []);
        assert_eq!(change.notices, []);
        assert!(change.done.is_empty());
    }

    #[test]
    fn another_tools_stricter_value_is_kept_while_holders_remain() {
        let (ten, na) = (
            ResumeLatency::Limit(Latency::micros(10)),
            ResumeLatency::Limit(Latency::ZERO),
        );
        let mut registry = Registry::empty();
        registry
            .cpus
            .insert(1, entry(ResumeLatency::Unconstrained, ten));
        registry.holders.push(Holder {
            pid: 2,
            start_time: 0,
            lock: Some("holder.a".into()),
            cpus: vec![1],
            latency_us: 10,
        });
        let values = Values::from([(1, na)]);
        let change = plan(registry, &BTreeSet::from([1]), &values);
        assert_eq!(change.writes, []);
        assert_eq!(change.done.cpus[&1], entry(na, na));
        assert_eq!(
            change.notices,
            [Notice::Changed {
                cpu: 1,
                wrote: ten,
                found: na,
                left: false
            }]
        );
    }
}
