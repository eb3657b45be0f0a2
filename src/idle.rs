//! Idle states by name: what `/sys/devices/system/cpu/cpuN/cpuidle/stateK/` lists, and limits
//! named by state (`--max-state C1E,C1`) rather than in microseconds.
//!
//! Users think in idle states ("allow C1E, nothing deeper"), and a number copied from one machine is
//! wrong on the next: C6's exit latency differs between processor generations. So a limit may be
//! given as the name of the deepest state to allow; the request becomes that state's exit latency
//! (its `latency` file), which keeps it and every shallower state allowed and refuses the deeper
//! ones. A list of names is tried in order and the first one the machine has wins (tuned's
//! `cstate.name:C1E|C1` fallback), so one unit file serves different hardware.
//!
//! Reading sysfs is [`all_states`]; choosing is [`resolve_global`] and [`resolve_per_cpu`], pure
//! functions of the names and the states read.

use std::collections::BTreeMap;
use std::fmt;

use crate::cpulist::{CpuList, SYSFS_CPU};
use crate::latency::Latency;

/// One idle state of one CPU, as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleState {
    /// The state's name (`POLL`, `C1E`, `haltpoll idle`).
    pub name: String,
    /// Its exit latency in microseconds (the `latency` file): the limit that still allows it.
    pub exit_latency_us: u32,
    /// Disabled by an administrator (`disable` is not `0`).
    pub disabled: bool,
}

/// The idle states of `cpu` in index order; empty without a cpuidle driver (or for an offline CPU
/// whose states are not listed). States whose files cannot be read are left out.
pub fn cpu_states(cpu: u32) -> Vec<IdleState> {
    state_dirs(cpu)
        .into_iter()
        .filter_map(|path| {
            Some(IdleState {
                name: read(&path, "name")?,
                exit_latency_us: read(&path, "latency")?.trim().parse().ok()?,
                disabled: read(&path, "disable").is_some_and(|d| d.trim() != "0"),
            })
        })
        .collect()
}

/// What one idle state of a CPU had counted at one moment: the time spent in it and the number of
/// entries since boot (its `time` and `usage` files). Two snapshots give the residency between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCounters {
    /// The state's name.
    pub name: String,
    /// Its exit latency in microseconds.
    pub exit_latency_us: u32,
    /// Microseconds spent in it since boot.
    pub time_us: u64,
    /// Times it was entered since boot.
    pub entries: u64,
}

/// The counters of `cpu`'s idle states, in index order (empty without a cpuidle driver).
pub fn cpu_counters(cpu: u32) -> Vec<StateCounters> {
    state_dirs(cpu)
        .into_iter()
        .filter_map(|path| {
            Some(StateCounters {
                name: read(&path, "name")?,
                exit_latency_us: read(&path, "latency")?.trim().parse().ok()?,
                time_us: read(&path, "time")?.trim().parse().ok()?,
                entries: read(&path, "usage")?.trim().parse().ok()?,
            })
        })
        .collect()
}

/// The `stateK` directories of `cpu`, in index order.
fn state_dirs(cpu: u32) -> Vec<std::path::PathBuf> {
    let dir = format!("{SYSFS_CPU}/cpu{cpu}/cpuidle");
    let mut states: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let index: u32 = entry
                .file_name()
                .to_str()?
                .strip_prefix("state")?
                .parse()
                .ok()?;
            Some((index, entry.path()))
        })
        .collect();
    states.sort_by_key(|(index, _)| *index);
    states.into_iter().map(|(_, path)| path).collect()
}

/// A state's file, without its newline.
fn read(state: &std::path::Path, file: &str) -> Option<String> {
    crate::file::read_small(state.join(file))
        .ok()
        .map(|text| text.trim_end_matches('\n').to_owned())
}

/// The cpuidle driver in use (`haltpoll`, `intel_idle`, `acpi_idle`), `None` without cpuidle.
pub fn driver() -> Option<String> {
    read(
        std::path::Path::new(&format!("{SYSFS_CPU}/cpuidle")),
        "current_driver",
    )
}

/// The cpuidle governor in use (`menu`, `teo`, `haltpoll`), `None` without cpuidle.
pub fn governor() -> Option<String> {
    let dir = format!("{SYSFS_CPU}/cpuidle");
    let dir = std::path::Path::new(&dir);
    read(dir, "current_governor").or_else(|| read(dir, "current_governor_ro"))
}

/// Every CPU the kernel lists under `/sys/devices/system/cpu`, with its idle states.
pub fn all_states() -> BTreeMap<u32, Vec<IdleState>> {
    crate::cpulist::listed_cpus()
        .into_iter()
        .map(|cpu| (cpu, cpu_states(cpu)))
        .collect()
}

/// The names given to `--max-state`, in the order they are tried: a comma-separated list
/// (`C1E,C1`), each name matched case-insensitively and trimmed of surrounding blanks (so that
/// `"haltpoll idle"` keeps its inner space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateNames(Vec<String>);

impl StateNames {
    /// The names, in order.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    fn quoted(&self) -> String {
        let quoted: Vec<String> = self.0.iter().map(|n| format!("'{n}'")).collect();
        quoted.join(" or ")
    }

    /// The first of these names that `states` has, with the state that matched it.
    fn first_in<'a>(&self, states: &'a [IdleState]) -> Option<&'a IdleState> {
        self.0.iter().find_map(|name| {
            states
                .iter()
                .find(|state| state.name.trim().eq_ignore_ascii_case(name))
        })
    }
}

impl std::str::FromStr for StateNames {
    type Err = String;

    fn from_str(text: &str) -> Result<StateNames, String> {
        let names: Vec<String> = text.split(',').map(|n| n.trim().to_owned()).collect();
        if names.iter().any(String::is_empty) {
            return Err(format!(
                "invalid state list '{text}': an empty name (give names separated by commas, e.g. C1E,C1)"
            ));
        }
        Ok(StateNames(names))
    }
}

impl fmt::Display for StateNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// The state a list of names resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The state's name as the kernel spells it.
    pub name: String,
    /// The limit: the state's exit latency.
    pub latency: Latency,
    /// The CPUs whose state has this exit latency (for a global request: the CPUs that set it).
    pub cpus: CpuList,
}

/// None of the names is a state this machine (or this CPU) has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSuchState {
    names: StateNames,
    /// The CPU that lacks them, for a per-CPU resolution.
    cpu: Option<u32>,
    /// What there is instead: `POLL (0 us), haltpoll idle (1 us)`, or empty.
    available: String,
}

impl fmt::Display for NoSuchState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cpu {
            Some(cpu) => write!(f, "cpu{cpu} has no idle state {}", self.names.quoted())?,
            None => write!(f, "no idle state {} here", self.names.quoted())?,
        }
        if self.available.is_empty() {
            write!(
                f,
                "; this kernel lists no idle states (no cpuidle driver), so no state can be named"
            )
        } else {
            write!(f, "; states: {}", self.available)
        }
    }
}

impl std::error::Error for NoSuchState {}

/// `POLL (0 us), haltpoll idle (1 us)`: the distinct states of these CPUs, shallowest first.
fn describe_available<'a>(lists: impl Iterator<Item = &'a Vec<IdleState>>) -> String {
    let mut seen: Vec<(u32, &str)> = Vec::new();
    for state in lists.flatten() {
        let key = (state.exit_latency_us, state.name.as_str());
        if !seen.contains(&key) {
            seen.push(key);
        }
    }
    seen.sort();
    let listed: Vec<String> = seen
        .iter()
        .map(|(us, name)| format!("{name} ({us} us)"))
        .collect();
    listed.join(", ")
}

/// One limit for every CPU (the global request): the first name some CPU has; if CPUs differ in
/// that state's exit latency, the smallest, so that no CPU enters a state deeper than the one
/// named.
pub fn resolve_global(
    names: &StateNames,
    states: &BTreeMap<u32, Vec<IdleState>>,
) -> Result<Choice, NoSuchState> {
    for name in names.names() {
        let single = StateNames(vec![name.clone()]);
        let found: Vec<(u32, &IdleState)> = states
            .iter()
            .filter_map(|(&cpu, list)| Some((cpu, single.first_in(list)?)))
            .collect();
        if let Some(&(_, strictest)) = found.iter().min_by_key(|(_, s)| s.exit_latency_us) {
            let us = strictest.exit_latency_us;
            let cpus = found
                .iter()
                .filter(|(_, s)| s.exit_latency_us == us)
                .map(|(cpu, _)| *cpu);
            if let (Some(latency), Some(cpus)) = (Latency::from_micros(us), CpuList::new(cpus)) {
                return Ok(Choice {
                    name: strictest.name.clone(),
                    latency,
                    cpus,
                });
            }
        }
    }
    Err(NoSuchState {
        names: names.clone(),
        cpu: None,
        available: describe_available(states.values()),
    })
}

/// A limit per CPU of `cpus`, each its own state's exit latency: for each CPU, the first name in
/// the list that this CPU has.
pub fn resolve_per_cpu(
    names: &StateNames,
    cpus: &CpuList,
    states: &BTreeMap<u32, Vec<IdleState>>,
) -> Result<BTreeMap<u32, Choice>, NoSuchState> {
    let no_states = Vec::new();
    cpus.cpus()
        .iter()
        .map(|&cpu| {
            let list = states.get(&cpu).unwrap_or(&no_states);
            let missing = || NoSuchState {
                names: names.clone(),
                cpu: Some(cpu),
                available: describe_available(std::iter::once(list)),
            };
            let state = names.first_in(list).ok_or_else(missing)?;
            let latency = Latency::from_micros(state.exit_latency_us).ok_or_else(missing)?;
            let only = CpuList::new([cpu]).ok_or_else(missing)?;
            Ok((
                cpu,
                Choice {
                    name: state.name.clone(),
                    latency,
                    cpus: only,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn state(name: &str, us: u32) -> IdleState {
        IdleState {
            name: name.into(),
            exit_latency_us: us,
            disabled: false,
        }
    }

    fn haltpoll(cpus: &[u32]) -> BTreeMap<u32, Vec<IdleState>> {
        cpus.iter()
            .map(|&cpu| (cpu, vec![state("POLL", 0), state("haltpoll idle", 1)]))
            .collect()
    }

    fn names(text: &str) -> StateNames {
        text.parse().unwrap()
    }

    #[test]
    fn names_are_trimmed_and_empty_ones_refused() {
        assert_eq!(
            names(" haltpoll idle , POLL").names(),
            ["haltpoll idle", "POLL"]
        );
        assert!("C1,,C2".parse::<StateNames>().is_err());
        assert!("".parse::<StateNames>().is_err());
    }

    #[test]
    fn a_name_matches_case_insensitively() {
        let choice = resolve_global(&names("HALTPOLL IDLE"), &haltpoll(&[0, 1])).unwrap();
        assert_eq!(choice.name, "haltpoll idle");
        assert_eq!(choice.latency.as_micros(), 1);
        assert_eq!(choice.cpus.to_string(), "0-1");
    }

    #[test]
    fn the_first_name_the_machine_has_wins() {
        let choice = resolve_global(&names("C6,C1E,poll"), &haltpoll(&[0, 1])).unwrap();
        assert_eq!(choice.name, "POLL");
        assert_eq!(choice.latency.as_micros(), 0);
    }

    #[test]
    fn an_unknown_name_lists_the_states() {
        let error = resolve_global(&names("C6"), &haltpoll(&[0, 1])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no idle state 'C6' here; states: POLL (0 us), haltpoll idle (1 us)"
        );
        let none = BTreeMap::from([(0, Vec::new())]);
        let error = resolve_global(&names("C1,C6"), &none).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("no idle state 'C1' or 'C6' here; this kernel lists no idle states")
        );
    }

    #[test]
    fn global_takes_the_smallest_exit_latency_and_names_its_cpus() {
        let mut states = BTreeMap::new();
        states.insert(0, vec![state("POLL", 0), state("C6", 170)]);
        states.insert(1, vec![state("POLL", 0), state("C6", 85)]);
        states.insert(2, vec![state("POLL", 0)]);
        let choice = resolve_global(&names("C6"), &states).unwrap();
        assert_eq!(choice.latency.as_micros(), 85);
        assert_eq!(choice.cpus.to_string(), "1");
    }

    #[test]
    fn per_cpu_resolves_each_cpu_on_its_own() {
        let mut states = BTreeMap::new();
        states.insert(0, vec![state("POLL", 0), state("C6", 170)]);
        states.insert(1, vec![state("POLL", 0), state("C1", 2)]);
        let cpus = CpuList::new([0, 1]).unwrap();
        let chosen = resolve_per_cpu(&names("C6,C1"), &cpus, &states).unwrap();
        assert_eq!(chosen[&0].latency.as_micros(), 170);
        assert_eq!(chosen[&1].name, "C1");
        let error = resolve_per_cpu(&names("C6"), &cpus, &states).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cpu1 has no idle state 'C6'; states: POLL (0 us), C1 (2 us)"
        );
    }

    proptest! {
        #[test]
        fn a_resolved_limit_is_the_smallest_exit_latency_of_the_named_state(
            lists in proptest::collection::vec(
                proptest::collection::vec(("[A-Za-z0-9 ]{1,8}", 0u32..5000), 0..6), 1..5),
            pick in 0usize..30,
        ) {
            let states: BTreeMap<u32, Vec<IdleState>> = lists
                .iter()
                .enumerate()
                .map(|(cpu, list)| {
                    // The kernel names each state of a CPU once.
                    let mut states: Vec<IdleState> = Vec::new();
                    for (name, us) in list {
                        if !states.iter().any(|s| s.name.trim().eq_ignore_ascii_case(name.trim())) {
                            states.push(state(name, *us));
                        }
                    }
                    (cpu as u32, states)
                })
                .collect();
            let all: Vec<&IdleState> = states.values().flatten().collect();
            prop_assume!(!all.is_empty());
            let wanted = all[pick % all.len()].name.trim().to_owned();
            prop_assume!(!wanted.is_empty());
            let choice = resolve_global(&names(&wanted), &states).unwrap();
            // Every CPU's state of that name stays allowed under the limit, or is the one that set it.
            for list in states.values() {
                for s in list.iter().filter(|s| s.name.trim().eq_ignore_ascii_case(&wanted)) {
                    prop_assert!(choice.latency.as_micros() <= s.exit_latency_us);
                }
            }
            prop_assert!(all.iter().any(|s| s.exit_latency_us == choice.latency.as_micros()
                && s.name.trim().eq_ignore_ascii_case(&wanted)));
        }
    }
}
