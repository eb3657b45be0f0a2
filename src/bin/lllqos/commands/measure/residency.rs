//! Where the CPUs slept during a phase: each idle state's share of the phase and the times it was
//! entered, per CPU, from the counters the kernel keeps (`cpuidle/stateK/{time,usage}`). It is the
//! cause of a difference between the phases, or the reason there is none.

use std::time::Instant;

use serde::Serialize;

use lllqos::CpuList;
use lllqos::idle::StateCounters;

/// One CPU's idle-state residency over a phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuResidency {
    pub cpu: u32,
    pub states: Vec<StateResidency>,
}

/// One idle state's share of a phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateResidency {
    pub name: String,
    pub exit_latency_us: u32,
    /// Percent of the phase's time spent in the state, to 0.1.
    pub time_pct: f64,
    /// Times the state was entered during the phase.
    pub entries: u64,
}

/// The idle-state counters of every CPU, and when they were read.
#[derive(Debug, Clone)]
pub struct IdleSnapshot {
    at: Instant,
    cpus: Vec<(u32, Vec<StateCounters>)>,
}

impl IdleSnapshot {
    /// The counters now, of every CPU that has idle states.
    pub fn take() -> IdleSnapshot {
        let cpus = CpuList::listed().map_or_else(Vec::new, |l| l.cpus().to_vec());
        IdleSnapshot {
            at: Instant::now(),
            cpus: cpus
                .into_iter()
                .map(|cpu| (cpu, lllqos::idle::Cpuidle::configured().cpu_counters(cpu)))
                .filter(|(_, states)| !states.is_empty())
                .collect(),
        }
    }
}

/// The residency between two snapshots: for each CPU and state of `after` that `before` has too
/// (same name, in the same place), the time and entries between them. The phase's length is the
/// time between the snapshots; a counter that went backwards (a CPU taken offline and back) counts
/// zero.
pub fn residency(before: &IdleSnapshot, after: &IdleSnapshot) -> Vec<CpuResidency> {
    let elapsed_us = (after.at.saturating_duration_since(before.at).as_micros()).max(1) as f64;
    after
        .cpus
        .iter()
        .filter_map(|(cpu, states)| {
            let earlier = &before.cpus.iter().find(|(c, _)| c == cpu)?.1;
            let states = states
                .iter()
                .zip(earlier)
                .filter(|(now, then)| now.name == then.name)
                .map(|(now, then)| {
                    let time_us = now.time_us.saturating_sub(then.time_us) as f64;
                    StateResidency {
                        name: now.name.clone(),
                        exit_latency_us: now.exit_latency_us,
                        time_pct: time_us / elapsed_us * 100.0,
                        entries: now.entries.saturating_sub(then.entries),
                    }
                })
                .collect();
            Some(CpuResidency {
                cpu: *cpu,
                states: within_the_phase(states),
            })
        })
        .collect()
}

/// Shares of a phase, rounded to 0.1, whose total is at most 100%. The kernel counts a stay in an
/// idle state when the CPU leaves it, so a CPU idle when the phase began has that whole stay
/// counted in the phase, from before it began: the shares are scaled down to what the phase can
/// hold.
fn within_the_phase(mut states: Vec<StateResidency>) -> Vec<StateResidency> {
    let total: f64 = states.iter().map(|s| s.time_pct).sum();
    let scale = if total > 100.0 { 100.0 / total } else { 1.0 };
    for state in &mut states {
        state.time_pct = ((state.time_pct * scale * 10.0).round() / 10.0).min(100.0);
    }
    states
}

/// Runs this thread on every CPU in turn, then puts its affinity back. The kernel counts a stay in
/// an idle state when the CPU leaves it: a CPU asleep since before the phase (before its request)
/// would have that whole stay counted in the phase. Once this thread has run on a CPU, its
/// current stay began after, in this phase and under its request. (Placing a request wakes idle
/// CPUs too, but by an interrupt that may come after the snapshot.)
pub fn wake_every_cpu() {
    let me = nix::unistd::Pid::from_raw(0);
    let Ok(allowed) = nix::sched::sched_getaffinity(me) else {
        return;
    };
    for &cpu in CpuList::listed().as_ref().map_or(&[][..], |l| l.cpus()) {
        let mut one = nix::sched::CpuSet::new();
        if one.set(cpu as usize).is_ok() {
            // A CPU this thread may not run on (offline, outside a cpuset) is left as it is.
            let _ = nix::sched::sched_setaffinity(me, &one);
        }
    }
    let _ = nix::sched::sched_setaffinity(me, &allowed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn snapshot(start: Instant, at_ms: u64, states: &[(&str, u32, u64, u64)]) -> IdleSnapshot {
        IdleSnapshot {
            at: start + Duration::from_millis(at_ms),
            cpus: vec![(
                1,
                states
                    .iter()
                    .map(|&(name, exit_latency_us, time_us, entries)| StateCounters {
                        name: name.into(),
                        exit_latency_us,
                        time_us,
                        entries,
                    })
                    .collect(),
            )],
        }
    }

    #[test]
    fn residency_is_the_share_of_the_time_between_snapshots() {
        let t = Instant::now();
        let before = snapshot(t, 0, &[("POLL", 0, 100, 5), ("C1", 1, 1_000, 10)]);
        let after = snapshot(
            t,
            2000,
            &[("POLL", 0, 200_100, 15), ("C1", 1, 1_801_000, 30)],
        );
        let r = residency(&before, &after);
        assert_eq!(r.len(), 1);
        let pct: Vec<(f64, u64)> = r[0]
            .states
            .iter()
            .map(|s| (s.time_pct, s.entries))
            .collect();
        assert_eq!(pct, [(10.0, 10), (90.0, 20)]);
        // A stay that began before the phase is counted in it by the kernel: never above 100%.
        let long_stay = snapshot(
            t,
            2300,
            &[("POLL", 0, 200_100, 15), ("C1", 1, 2_800_000, 31)],
        );
        let shares: Vec<f64> = residency(&after, &long_stay)[0]
            .states
            .iter()
            .map(|s| s.time_pct)
            .collect();
        assert_eq!(shares, [0.0, 100.0]);
        // A counter that went backwards counts zero; a CPU missing before is left out.
        let reset = snapshot(t, 4000, &[("POLL", 0, 0, 0), ("C1", 1, 0, 0)]);
        assert_eq!(residency(&after, &reset)[0].states[1].time_pct, 0.0);
        let mut other = after.clone();
        other.cpus[0].0 = 7;
        assert!(residency(&before, &other).is_empty());
    }
}
