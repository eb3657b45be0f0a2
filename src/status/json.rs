//! The JSON view of the [`Machine`]: the document docs/json.md describes, a stable interface, which
//! `lllqos status --json` prints and the Python package's `lllqos.status()` returns.
//! Its keys are the library's values in microseconds (`null` for no constraint), and a value that
//! could not be read has its reason beside it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Machine;
use crate::Latency;
use crate::idle::IdleState;
use crate::percpu::ResumeLatency;
use crate::status as machine;

/// Everything `lllqos status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The CPU latency limit in force (`null`: no constraint): `cpu_latency_us`, and
    /// `cpu_latency_error` when it cannot be read.
    #[serde(flatten)]
    pub cpu_latency: Reading<u32, CpuLatencyKeys>,
    /// Processes with the node open, lllqos status itself excluded.
    pub holders: Vec<Process>,
    /// False when some processes' descriptors could not be inspected (not root).
    pub holders_complete: bool,
    pub cpuidle: Cpuidle,
    pub cpus: Vec<Cpu>,
    /// lllqos's per-CPU registry; `None` when nothing is registered.
    pub registry: Option<RegistryStatus>,
    /// `/dev/cpu_wakeup_latency` (Linux 6.19+); `None` when the kernel has no such node.
    pub wakeup_latency: Option<WakeupLatency>,
}

/// A value read from the system (`None`: nothing is set), or why it could not be read. In JSON, two
/// keys named by `K`: the value (`null` when unreadable), and the error only when there is one.
#[derive(Debug, Clone)]
pub struct Reading<T, K> {
    pub result: Result<Option<T>, String>,
    keys: std::marker::PhantomData<K>,
}

impl<T, K> Reading<T, K> {
    pub fn new(result: Result<Option<T>, String>) -> Reading<T, K> {
        Reading {
            result,
            keys: std::marker::PhantomData,
        }
    }

    /// The value, `None` when there is none or it could not be read.
    pub fn value(&self) -> Option<&T> {
        self.result.as_ref().ok().and_then(Option::as_ref)
    }
}

/// The JSON keys of a [`Reading`].
pub trait Keys {
    const VALUE: &'static str;
    const ERROR: &'static str;
}

#[derive(Debug, Clone)]
pub struct CpuLatencyKeys;
impl Keys for CpuLatencyKeys {
    const VALUE: &'static str = "cpu_latency_us";
    const ERROR: &'static str = "cpu_latency_error";
}

#[derive(Debug, Clone)]
pub struct ResumeLatencyKeys;
impl Keys for ResumeLatencyKeys {
    const VALUE: &'static str = "resume_latency_us";
    const ERROR: &'static str = "resume_latency_error";
}

#[derive(Debug, Clone)]
pub struct WakeupLatencyKeys;
impl Keys for WakeupLatencyKeys {
    const VALUE: &'static str = "limit_us";
    const ERROR: &'static str = "error";
}

impl<T: Serialize, K: Keys> Serialize for Reading<T, K> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(K::VALUE, &self.value())?;
        if let Err(error) = &self.result {
            map.serialize_entry(K::ERROR, error)?;
        }
        map.end()
    }
}

/// A process holding a PM QoS node open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    pub pid: i32,
    pub user: String,
    pub command: String,
    /// The container lllqos holds it for (`null` for any other holder).
    pub container: Option<String>,
    /// That container's pod, `NAMESPACE/NAME` (`null` but for `nri`'s holders).
    pub pod: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cpuidle {
    /// `None` when the kernel has no cpuidle (no `/sys/devices/system/cpu/cpuidle`).
    pub driver: Option<String>,
    pub governor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cpu {
    pub cpu: u32,
    pub online: bool,
    /// `resume_latency_us`: `None` = no constraint (`0` in sysfs), `Some(0)` = zero tolerance
    /// (`n/a`); and `resume_latency_error` when it cannot be read.
    #[serde(flatten)]
    pub resume_latency: Reading<u32, ResumeLatencyKeys>,
    /// The limit this CPU obeys: the smaller of the global limit and its own; `None` = none.
    pub effective_limit_us: Option<u32>,
    pub idle_states: Vec<CpuState>,
    /// Why a state's files could not be read (it is left out of `idle_states`); absent when all
    /// were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_states_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
/// An idle state of one CPU, judged against the CPU's effective limit.
pub struct CpuState {
    pub name: String,
    pub exit_latency_us: u32,
    pub disabled: bool,
    /// Not disabled, and its exit latency is within the CPU's effective limit.
    pub allowed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegistryStatus {
    pub path: String,
    /// Why the registry could not be read (not root, corrupt); then the lists are empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub holders: Vec<RegistryHolder>,
    /// Per CPU: the value found before the first holder, and the value lllqos last wrote.
    pub cpus: BTreeMap<u32, RegistryCpu>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegistryHolder {
    pub pid: i32,
    pub cpus: String,
    pub latency_us: u32,
    /// False for a holder that died without releasing (the next lllqos run drops it).
    pub live: bool,
    /// A live holder's command line (`null` for a dead one, or one that cannot be read).
    pub command: Option<String>,
    /// The container a live holder holds it for (`null` for any other holder).
    pub container: Option<String>,
    /// That container's pod (`null` but for `nri`'s holders).
    pub pod: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegistryCpu {
    pub original: String,
    pub written: String,
    /// The value lllqos is about to write, while a change is under way (or was, when its holder
    /// was killed during it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WakeupLatency {
    /// `limit_us`, and `error` when it cannot be read.
    #[serde(flatten)]
    pub limit: Reading<u32, WakeupLatencyKeys>,
    pub holders: Vec<Process>,
}

impl Status {
    /// What is in force now, as the document.
    pub fn collect() -> Status {
        Status::from(&Machine::collect())
    }

    /// The document as `lllqos status --json` prints it (indented, without the final newline).
    pub fn to_json(&self) -> String {
        // Maps with string and number keys, strings, numbers and booleans: nothing can fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl From<&Machine> for Status {
    fn from(machine: &Machine) -> Status {
        let global = machine.global_limit();
        Status {
            cpu_latency: Reading::new(micros(&machine.cpu_latency)),
            holders: processes(&machine.holders),
            holders_complete: machine.holders_complete,
            cpuidle: Cpuidle {
                driver: machine.driver.clone(),
                governor: machine.governor.clone(),
            },
            cpus: (machine.cpus.iter())
                .map(|cpu| Cpu::new(cpu, global))
                .collect(),
            registry: registry(&machine.registry),
            wakeup_latency: machine.wakeup.as_ref().map(|w| WakeupLatency {
                limit: Reading::new(micros(&w.limit)),
                holders: processes(&w.holders),
            }),
        }
    }
}

/// A limit in microseconds (`None`: no constraint), or why it cannot be read.
fn micros(reading: &machine::Reading<Latency>) -> Result<Option<u32>, String> {
    reading.clone().map(|limit| limit.map(Latency::as_micros))
}

fn processes(holders: &[machine::Holder]) -> Vec<Process> {
    (holders.iter())
        .map(|h| Process {
            pid: h.pid,
            user: h.user.clone(),
            command: h.command.clone(),
            container: h.container.clone(),
            pod: h.pod.clone(),
        })
        .collect()
}

impl Cpu {
    fn new(cpu: &machine::Cpu, global: Option<Latency>) -> Cpu {
        let limit = cpu.effective_limit(global);
        Cpu {
            cpu: cpu.cpu,
            online: cpu.online,
            resume_latency: Reading::new((cpu.resume_latency.clone()).map(ResumeLatency::limit_us)),
            effective_limit_us: limit.map(Latency::as_micros),
            idle_states: (cpu.idle_states.iter())
                .map(|state| CpuState::new(state, limit))
                .collect(),
            idle_states_error: cpu.idle_states_error.clone(),
        }
    }
}

impl CpuState {
    /// A state as the governor sees it under `limit` (`None`: no limit).
    fn new(state: &IdleState, limit: Option<Latency>) -> CpuState {
        CpuState {
            name: state.name.clone(),
            exit_latency_us: state.exit_latency_us,
            disabled: state.disabled,
            allowed: machine::allowed(state, limit),
        }
    }
}

fn registry(registry: &Result<Option<machine::Registry>, String>) -> Option<RegistryStatus> {
    let path = crate::percpu::Registered::location().display().to_string();
    match registry {
        Ok(None) => None,
        Ok(Some(registry)) => Some(RegistryStatus {
            path,
            error: None,
            holders: (registry.holders.iter())
                .map(|h| RegistryHolder {
                    pid: h.holder.pid,
                    cpus: h.holder.cpus.to_string(),
                    latency_us: h.holder.latency.as_micros(),
                    live: h.holder.live,
                    command: h.command.clone(),
                    container: h.container.clone(),
                    pod: h.pod.clone(),
                })
                .collect(),
            cpus: (registry.cpus.iter())
                .map(|c| {
                    let entry = RegistryCpu {
                        original: c.original.to_string(),
                        written: c.written.to_string(),
                        intent: c.intent.map(|i| i.to_string()),
                    };
                    (c.cpu, entry)
                })
                .collect(),
        }),
        Err(error) => Some(RegistryStatus {
            path,
            error: Some(error.clone()),
            holders: Vec::new(),
            cpus: BTreeMap::new(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_is_two_keys_the_error_only_when_there_is_one() {
        let json = |r: Reading<u32, ResumeLatencyKeys>| serde_json::to_string(&r).unwrap();
        assert_eq!(
            json(Reading::new(Ok(Some(5)))),
            r#"{"resume_latency_us":5}"#
        );
        assert_eq!(
            json(Reading::new(Ok(None))),
            r#"{"resume_latency_us":null}"#
        );
        assert_eq!(
            json(Reading::new(Err("Permission denied".into()))),
            r#"{"resume_latency_us":null,"resume_latency_error":"Permission denied"}"#
        );
    }
}
