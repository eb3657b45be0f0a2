//! Idle states by name: what `/sys/devices/system/cpu/cpuN/cpuidle/stateK/` lists, and limits
//! named by state (`--max-state C1E,C1`) rather than in microseconds.
//!
//! Users think in idle states ("allow C1E, nothing deeper"), and a number copied from one machine is
//! wrong on the next: C6's exit latency differs between processor generations. So a limit may be
//! given as the name of the deepest state to allow; the request becomes that state's exit latency
//! (its `latency` file), which keeps it and every shallower state allowed and refuses the deeper
//! ones. A list of names is tried in order and the first one the machine has wins (tuned's
//! `cstate.name:C1E|C1` fallback), so one unit file serves different hardware. The list may end
//! with what to do when no name matches, as tuned's `C6|140|None` does: a latency (`C6,C1,20us`),
//! or `none` for no request at all (a VM or container host without a cpuidle driver lists no
//! states). Without it, a list that matches nothing is an error.
//!
//! Reading sysfs is [`Cpuidle`] (the kernel's tree, or one laid out elsewhere) and [`all_states`];
//! choosing is [`resolve_global`] and [`resolve_per_cpu`], pure functions of the names and the
//! states read.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

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

/// Where idle states are read from: the kernel's `/sys/devices/system/cpu`, or a directory laid
/// out the same way (`cpuN/cpuidle/stateK/{name,latency,disable,time,usage}` and
/// `cpuidle/current_{driver,governor}`), such as a test's or a copy taken from another machine.
/// The functions of this module read the kernel's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpuidle {
    root: PathBuf,
}

impl Default for Cpuidle {
    fn default() -> Cpuidle {
        Cpuidle::system()
    }
}

/// The variable that names a tree to read idle states from instead of the kernel's, for tests (so
/// that the idle-state logic runs on machines without a cpuidle driver): [`Cpuidle::configured`].
pub const CPUIDLE_ENV: &str = "LLLQOS_SYSFS_CPU";

impl Cpuidle {
    /// The tree this process reads idle states from: the one `LLLQOS_SYSFS_CPU` names, or the
    /// kernel's. Only idle states are read there; CPUs, their resume latency and the node are
    /// always the kernel's. A privileged process (setuid, file capabilities) ignores the variable:
    /// the environment is its real user's.
    pub fn configured() -> &'static Cpuidle {
        static TREE: std::sync::OnceLock<Cpuidle> = std::sync::OnceLock::new();
        TREE.get_or_init(|| match std::env::var_os(CPUIDLE_ENV) {
            Some(root) if !root.is_empty() && !crate::internal::privilege::is_privileged() => {
                Cpuidle::at(root)
            }
            _ => Cpuidle::system(),
        })
    }

    /// The kernel's: `/sys/devices/system/cpu`.
    pub fn system() -> Cpuidle {
        Cpuidle::at(SYSFS_CPU)
    }

    /// A tree laid out as `/sys/devices/system/cpu` is, at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Cpuidle {
        Cpuidle { root: root.into() }
    }

    /// The directory read.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The idle states of `cpu` in index order; empty without a cpuidle driver (or for an offline
    /// CPU whose states are not listed). States whose files cannot be read are left out:
    /// [`Cpuidle::cpu_states_checked`] says so.
    pub fn cpu_states(&self, cpu: u32) -> Vec<IdleState> {
        self.cpu_states_checked(cpu).0
    }

    /// [`Cpuidle::cpu_states`], and, when a state's files could not be read (it is left out), why:
    /// the first such file and its error.
    pub fn cpu_states_checked(&self, cpu: u32) -> (Vec<IdleState>, Option<String>) {
        self.each_state(cpu, |path| {
            Ok(IdleState {
                name: read_checked(path, "name")?,
                exit_latency_us: number(path, "latency")?,
                disabled: read_checked(path, "disable")?.trim() != "0",
            })
        })
    }

    /// The counters of `cpu`'s idle states, in index order (empty without a cpuidle driver).
    /// States whose files cannot be read are left out: [`Cpuidle::cpu_counters_checked`] says so.
    pub fn cpu_counters(&self, cpu: u32) -> Vec<StateCounters> {
        self.cpu_counters_checked(cpu).0
    }

    /// [`Cpuidle::cpu_counters`], and, when a state's files could not be read (it is left out),
    /// why.
    pub fn cpu_counters_checked(&self, cpu: u32) -> (Vec<StateCounters>, Option<String>) {
        self.each_state(cpu, |path| {
            Ok(StateCounters {
                name: read_checked(path, "name")?,
                exit_latency_us: number(path, "latency")?,
                time_us: number(path, "time")?,
                entries: number(path, "usage")?,
            })
        })
    }

    /// `read` of each of `cpu`'s state directories: what could be read, and the first failure.
    fn each_state<T>(
        &self,
        cpu: u32,
        read: impl Fn(&Path) -> Result<T, String>,
    ) -> (Vec<T>, Option<String>) {
        let (mut states, mut failed) = (Vec::new(), None);
        for path in self.state_dirs(cpu) {
            match read(&path) {
                Ok(state) => states.push(state),
                Err(why) => {
                    failed.get_or_insert(why);
                }
            }
        }
        (states, failed)
    }

    /// The cpuidle driver in use (`haltpoll`, `intel_idle`, `acpi_idle`), `None` without cpuidle.
    pub fn driver(&self) -> Option<String> {
        read(&self.root.join("cpuidle"), "current_driver")
    }

    /// The cpuidle governor in use (`menu`, `teo`, `haltpoll`), `None` without cpuidle.
    pub fn governor(&self) -> Option<String> {
        let dir = self.root.join("cpuidle");
        read(&dir, "current_governor").or_else(|| read(&dir, "current_governor_ro"))
    }

    /// Every CPU the tree lists (`cpuN` directories), with its idle states.
    pub fn all_states(&self) -> BTreeMap<u32, Vec<IdleState>> {
        crate::cpulist::listed_cpus_in(&self.root)
            .into_iter()
            .map(|cpu| (cpu, self.cpu_states(cpu)))
            .collect()
    }

    /// The `stateK` directories of `cpu`, in index order.
    fn state_dirs(&self, cpu: u32) -> Vec<PathBuf> {
        let dir = self.root.join(format!("cpu{cpu}/cpuidle"));
        let mut states: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
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
}

/// The idle states of `cpu` in index order, from the kernel ([`Cpuidle::cpu_states`]).
pub fn cpu_states(cpu: u32) -> Vec<IdleState> {
    Cpuidle::system().cpu_states(cpu)
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

/// The counters of `cpu`'s idle states, from the kernel ([`Cpuidle::cpu_counters`]).
pub fn cpu_counters(cpu: u32) -> Vec<StateCounters> {
    Cpuidle::system().cpu_counters(cpu)
}

/// A state's file, without its newline.
fn read(state: &Path, file: &str) -> Option<String> {
    read_checked(state, file).ok()
}

/// A state's file, without its newline, or `PATH: why` it cannot be read.
fn read_checked(state: &Path, file: &str) -> Result<String, String> {
    let path = state.join(file);
    crate::internal::file::read_small(&path)
        .map(|text| text.trim_end_matches('\n').to_owned())
        .map_err(|e| {
            format!(
                "{}: {}",
                path.display(),
                crate::internal::oserror::os_message(&e)
            )
        })
}

/// A state's file that holds a number, or `PATH: why` it cannot be read as one.
fn number<T: std::str::FromStr>(state: &Path, file: &str) -> Result<T, String> {
    let text = read_checked(state, file)?;
    text.trim().parse().map_err(|_| {
        format!(
            "{}: '{}' is not a number",
            state.join(file).display(),
            text.trim()
        )
    })
}

/// The cpuidle driver in use, from the kernel ([`Cpuidle::driver`]).
pub fn driver() -> Option<String> {
    Cpuidle::system().driver()
}

/// The cpuidle governor in use, from the kernel ([`Cpuidle::governor`]).
pub fn governor() -> Option<String> {
    Cpuidle::system().governor()
}

/// Every CPU the kernel lists under `/sys/devices/system/cpu`, with its idle states.
pub fn all_states() -> BTreeMap<u32, Vec<IdleState>> {
    Cpuidle::system().all_states()
}

/// The names given to `--max-state`, in the order they are tried: a comma-separated list
/// (`C1E,C1`), each name matched case-insensitively and trimmed of surrounding blanks (so that
/// `"haltpoll idle"` keeps its inner space), and optionally, last, a [`Fallback`]: a latency
/// (`C6,C1,20us`: an entry that starts with a digit) or `none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateNames {
    names: Vec<String>,
    fallback: Option<Fallback>,
}

/// What a list of state names falls back to when none of its names matches: its last entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fallback {
    /// A limit in microseconds (`C6,C1,20us`).
    Latency(Latency),
    /// `none`: no request at all.
    Nothing,
}

impl StateNames {
    /// The names, in order (without the fallback).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// What applies when no name matches; `None`: the list must match.
    pub fn fallback(&self) -> Option<Fallback> {
        self.fallback
    }

    fn quoted(&self) -> String {
        let quoted: Vec<String> = self.names.iter().map(|n| format!("'{n}'")).collect();
        quoted.join(" or ")
    }

    /// The first of these names that `states` has, with the state that matched it.
    fn first_in<'a>(&self, states: &'a [IdleState]) -> Option<&'a IdleState> {
        self.names.iter().find_map(|name| {
            states
                .iter()
                .find(|state| state.name.trim().eq_ignore_ascii_case(name))
        })
    }

    /// These names alone, without a fallback.
    fn only(name: &str) -> StateNames {
        StateNames {
            names: vec![name.to_owned()],
            fallback: None,
        }
    }
}

impl std::str::FromStr for StateNames {
    type Err = String;

    fn from_str(text: &str) -> Result<StateNames, String> {
        let fail = |why: String| format!("invalid state list '{text}': {why}");
        let entries: Vec<&str> = text.split(',').map(str::trim).collect();
        let mut names = Vec::new();
        let mut fallback = None;
        for (i, &entry) in entries.iter().enumerate() {
            let last = i + 1 == entries.len();
            if entry.is_empty() {
                return Err(fail(
                    "an empty name (give names separated by commas, e.g. C1E,C1)".to_owned(),
                ));
            }
            let this = if entry.eq_ignore_ascii_case("none") {
                Fallback::Nothing
            } else if entry.starts_with(|c: char| c.is_ascii_digit()) {
                let latency = entry
                    .parse::<Latency>()
                    .map_err(|e| fail(format!("'{entry}' is not a latency: {e}")))?;
                Fallback::Latency(latency)
            } else {
                names.push(entry.to_owned());
                continue;
            };
            if !last {
                return Err(fail(format!(
                    "'{entry}' must come last: it is what applies when no name matches"
                )));
            }
            fallback = Some(this);
        }
        if names.is_empty() {
            return Err(fail(
                "no state name before the fallback (for a latency alone, use --latency)".to_owned(),
            ));
        }
        Ok(StateNames { names, fallback })
    }
}

impl fmt::Display for StateNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names.join(","))?;
        match self.fallback {
            Some(Fallback::Latency(latency)) => write!(f, ",{}us", latency.as_micros()),
            Some(Fallback::Nothing) => f.write_str(",none"),
            None => Ok(()),
        }
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

/// What a list of names gives the machine (or one CPU): the state a name matched, or, when none
/// did, the list's fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// A state this machine has: the limit is its exit latency.
    State(Choice),
    /// No name matched (`missing` says which, and what there is instead); the list's
    /// [`Fallback`] applies.
    Fallback {
        /// The list's last entry.
        fallback: Fallback,
        /// Why it applies.
        missing: NoSuchState,
    },
}

impl Resolution {
    /// The limit to place; `None` for a `none` fallback (no request).
    pub fn latency(&self) -> Option<Latency> {
        match self {
            Resolution::State(choice) => Some(choice.latency),
            Resolution::Fallback {
                fallback: Fallback::Latency(latency),
                ..
            } => Some(*latency),
            Resolution::Fallback {
                fallback: Fallback::Nothing,
                ..
            } => None,
        }
    }

    /// `missing` resolved by the fallback of `names`, or the error when the list has none.
    fn fallback(names: &StateNames, missing: NoSuchState) -> Result<Resolution, NoSuchState> {
        match names.fallback {
            Some(fallback) => Ok(Resolution::Fallback { fallback, missing }),
            None => Err(missing),
        }
    }
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

impl NoSuchState {
    /// The CPU that lacks the states named, for a per-CPU resolution.
    pub fn cpu(&self) -> Option<u32> {
        self.cpu
    }

    /// The states there are instead, for people (`POLL (0 us), haltpoll idle (1 us)`); empty
    /// when the kernel lists none (no cpuidle driver).
    pub fn available(&self) -> &str {
        &self.available
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
/// named. When no CPU has any of the names, the list's fallback; an error without one.
pub fn resolve_global(
    names: &StateNames,
    states: &BTreeMap<u32, Vec<IdleState>>,
) -> Result<Resolution, NoSuchState> {
    for name in names.names() {
        let single = StateNames::only(name);
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
                return Ok(Resolution::State(Choice {
                    name: strictest.name.clone(),
                    latency,
                    cpus,
                }));
            }
        }
    }
    let missing = NoSuchState {
        names: names.clone(),
        cpu: None,
        available: describe_available(states.values()),
    };
    Resolution::fallback(names, missing)
}

/// A limit per CPU of `cpus`, each its own state's exit latency: for each CPU, the first name in
/// the list that this CPU has, or the list's fallback when it has none of them (an error for the
/// first such CPU without a fallback).
pub fn resolve_per_cpu(
    names: &StateNames,
    cpus: &CpuList,
    states: &BTreeMap<u32, Vec<IdleState>>,
) -> Result<BTreeMap<u32, Resolution>, NoSuchState> {
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
            let found = names.first_in(list).and_then(|state| {
                Some(Choice {
                    name: state.name.clone(),
                    latency: Latency::from_micros(state.exit_latency_us)?,
                    cpus: CpuList::new([cpu])?,
                })
            });
            let resolution = match found {
                Some(choice) => Resolution::State(choice),
                None => Resolution::fallback(names, missing())?,
            };
            Ok((cpu, resolution))
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

    /// The state a resolution chose (the test fails on a fallback).
    fn chosen(resolution: Resolution) -> Choice {
        match resolution {
            Resolution::State(choice) => choice,
            other => panic!("a fallback: {other:?}"),
        }
    }

    #[test]
    fn a_list_may_end_with_a_latency_or_none() {
        let list = names("C6, C1 ,20us");
        assert_eq!(list.names(), ["C6", "C1"]);
        assert_eq!(
            list.fallback(),
            Some(Fallback::Latency(Latency::micros(20)))
        );
        assert_eq!(list.to_string(), "C6,C1,20us");
        assert_eq!(names("C6,0.5ms").to_string(), "C6,500us");
        assert_eq!(names("C6,NONE").fallback(), Some(Fallback::Nothing));
        assert_eq!(names("C6,none").to_string(), "C6,none");
        assert_eq!(names("C6").fallback(), None);
        let error = |text: &str| text.parse::<StateNames>().unwrap_err();
        assert_eq!(
            error("C6,20us,C1"),
            "invalid state list 'C6,20us,C1': '20us' must come last: it is what applies when no name matches"
        );
        assert!(error("C6,none,20").contains("'none' must come last"));
        assert!(error("C6,20x").starts_with("invalid state list 'C6,20x': '20x' is not a latency"));
        assert!(error("20us").contains("no state name before the fallback"));
        assert!(error("none").contains("no state name before the fallback"));
    }

    #[test]
    fn the_fallback_applies_only_when_no_name_matches() {
        let machine = haltpoll(&[0, 1]);
        assert_eq!(
            chosen(resolve_global(&names("POLL,20us"), &machine).unwrap()).name,
            "POLL"
        );
        let fallback = resolve_global(&names("C6,20us"), &machine).unwrap();
        assert_eq!(fallback.latency(), Some(Latency::micros(20)));
        let Resolution::Fallback { missing, .. } = &fallback else {
            panic!("{fallback:?}")
        };
        assert_eq!(
            missing.to_string(),
            "no idle state 'C6' here; states: POLL (0 us), haltpoll idle (1 us)"
        );
        // No cpuidle driver: nothing to match, `none` means no request.
        let bare = BTreeMap::from([(0, Vec::new()), (1, Vec::new())]);
        assert_eq!(
            resolve_global(&names("C1,none"), &bare).unwrap().latency(),
            None
        );
        let cpus = CpuList::new([0, 1]).unwrap();
        let mut mixed = haltpoll(&[0]);
        mixed.insert(1, Vec::new());
        let per_cpu = resolve_per_cpu(&names("POLL,none"), &cpus, &mixed).unwrap();
        assert_eq!(per_cpu[&0].latency(), Some(Latency::ZERO));
        assert_eq!(per_cpu[&1].latency(), None);
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
        let choice = chosen(resolve_global(&names("HALTPOLL IDLE"), &haltpoll(&[0, 1])).unwrap());
        assert_eq!(choice.name, "haltpoll idle");
        assert_eq!(choice.latency.as_micros(), 1);
        assert_eq!(choice.cpus.to_string(), "0-1");
    }

    #[test]
    fn the_first_name_the_machine_has_wins() {
        let choice = chosen(resolve_global(&names("C6,C1E,poll"), &haltpoll(&[0, 1])).unwrap());
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
        let choice = chosen(resolve_global(&names("C6"), &states).unwrap());
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
        assert_eq!(chosen[&0].latency(), Some(Latency::micros(170)));
        assert!(matches!(&chosen[&1], Resolution::State(c) if c.name == "C1"));
        let error = resolve_per_cpu(&names("C6"), &cpus, &states).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cpu1 has no idle state 'C6'; states: POLL (0 us), C1 (2 us)"
        );
    }

    proptest! {
        /// Whatever the text, a list is refused naming it, or says itself back the same.
        #[test]
        fn a_list_is_refused_naming_it_or_round_trips(text in "[A-Za-z0-9 ,.]{0,24}") {
            match text.parse::<StateNames>() {
                Ok(list) => prop_assert_eq!(list.to_string().parse::<StateNames>(), Ok(list)),
                Err(e) => prop_assert!(e.starts_with(&format!("invalid state list '{text}': ")), "{}", e),
            }
        }

        #[test]
        fn a_resolved_limit_is_the_smallest_exit_latency_of_the_named_state(
            lists in proptest::collection::vec(
                proptest::collection::vec(("[A-Za-z][A-Za-z0-9 ]{0,7}", 0u32..5000), 0..6), 1..5),
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
            prop_assume!(!wanted.is_empty() && !wanted.eq_ignore_ascii_case("none"));
            let choice = chosen(resolve_global(&names(&wanted), &states).unwrap());
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
