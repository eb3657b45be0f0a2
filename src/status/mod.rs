//! Not part of the library's API: what is in force on this machine, and who holds it. The one
//! model that the `lllqos` command's `status` shows (as text and as
//! [`json`](crate::status::json)), `trace` starts its log from and `metrics` exports, and that the
//! Python package's `lllqos.status()` returns (the same JSON document). Its stable interface is
//! that document (docs/json.md), not these types.
//!
//! The kernel has no interface that lists the holders of `/dev/cpu_dma_latency`, but a holder is a
//! process with a file descriptor open on the node, and `/proc/PID/fd` shows those (all of them to
//! root, a user's own otherwise: [`holders`](crate::status::holders)). Together with the per-CPU
//! values, the idle states each CPU may still enter, and lllqos's own registry, that answers "who
//! is holding what?".
//!
//! Everything is read with the library's readers into the library's types; what cannot be read is
//! kept as the reason, in place of the value, so that a diagnosis never fails when the situation is
//! unusual.

pub mod holders;
pub mod json;

use crate::idle::{Cpuidle, IdleState};
use crate::internal::oserror::os_message;
use crate::internal::procfs;
use crate::lease::{CPU_DMA_LATENCY, CPU_WAKEUP_LATENCY, read_limit};
use crate::percpu::{self, RegisteredCpu, RegisteredHolder, ResumeLatency};
use crate::{CpuList, Latency};

pub use holders::Holder;

/// In the environment of an lllqos that holds a request for a container (`oci-hook`'s and `nri`'s
/// holders): the container's id, which `status` and `metrics` name the request after.
pub const CONTAINER_ENV: &str = "LLLQOS_CONTAINER";
/// In the environment of an lllqos that holds a request for a Kubernetes container (`nri`'s
/// holders): its pod, `NAMESPACE/NAME`.
pub const POD_ENV: &str = "LLLQOS_POD";

/// What a holder of the global node asked for, told by its command line where it is an lllqos's
/// (the command knows its own options; the library does not parse them).
pub type Asked = fn(&[String]) -> Option<Latency>;

/// A value read from the system: `Ok(None)` when nothing is set (no constraint), or why it could
/// not be read.
pub type Reading<T> = Result<Option<T>, String>;

/// Everything lllqos knows of what is in force.
#[derive(Debug, Clone)]
pub struct Machine {
    /// The CPU latency limit in force (`/dev/cpu_dma_latency`).
    pub cpu_latency: Reading<Latency>,
    /// Processes with the node open, this one excluded, by pid.
    pub holders: Vec<Holder>,
    /// False when some processes' descriptors could not be inspected (not root).
    pub holders_complete: bool,
    /// The cpuidle driver and governor; `None` without cpuidle.
    pub driver: Option<String>,
    pub governor: Option<String>,
    /// Every CPU the kernel lists, ascending.
    pub cpus: Vec<Cpu>,
    /// lllqos's per-CPU registry: `None` when nothing is registered.
    pub registry: Result<Option<Registry>, String>,
    /// `/dev/cpu_wakeup_latency` (Linux 6.19+); `None` when the kernel has no such node.
    pub wakeup: Option<Wakeup>,
}

/// One CPU: its own constraint and its idle states.
#[derive(Debug, Clone)]
pub struct Cpu {
    pub cpu: u32,
    pub online: bool,
    /// Its resume latency (`pm_qos_resume_latency_us`), or why it cannot be read.
    pub resume_latency: Result<ResumeLatency, String>,
    /// Its idle states in index order (none without a cpuidle driver), those that could be read.
    pub idle_states: Vec<IdleState>,
    /// Why a state's files could not be read (it is left out of `idle_states`).
    pub idle_states_error: Option<String>,
}

impl Cpu {
    /// The limit this CPU obeys: the smaller of the global limit and its own; `None` when neither
    /// constrains it.
    pub fn effective_limit(&self, global: Option<Latency>) -> Option<Latency> {
        let own = match self.resume_latency {
            Ok(ResumeLatency::Limit(limit)) => Some(limit),
            _ => None,
        };
        [global, own].into_iter().flatten().min()
    }
}

/// Whether the governor may pick `state` under `limit` (`None`: no limit): it is not disabled and
/// its exit latency is within the limit.
pub fn allowed(state: &IdleState, limit: Option<Latency>) -> bool {
    !state.disabled && limit.is_none_or(|limit| state.exit_latency_us <= limit.as_micros())
}

/// lllqos's registry, as the library reads it, with each live holder's command line.
#[derive(Debug, Clone)]
pub struct Registry {
    pub holders: Vec<RegistryHolder>,
    pub cpus: Vec<RegisteredCpu>,
}

/// A holder of per-CPU constraints.
#[derive(Debug, Clone)]
pub struct RegistryHolder {
    pub holder: RegisteredHolder,
    /// A live holder's command line (`None` for a dead one, or one that cannot be read).
    pub command: Option<String>,
    /// The container a live holder holds it for (see [`Holder::container`]).
    pub container: Option<String>,
    /// Its pod (see [`Holder::pod`]).
    pub pod: Option<String>,
}

/// The system wake-up latency node and its holders.
#[derive(Debug, Clone)]
pub struct Wakeup {
    pub limit: Reading<Latency>,
    pub holders: Vec<Holder>,
}

impl Machine {
    /// Reads what is in force now; each holder's own value is known only where it is the node's
    /// sole holder.
    pub fn collect() -> Machine {
        Machine::collect_with(|_| None)
    }

    /// [`Machine::collect`], with `asked` telling what a holder asked for from its command line.
    pub fn collect_with(asked: Asked) -> Machine {
        let cpu_latency = limit(CPU_DMA_LATENCY);
        let scan = holders::scan(&[CPU_DMA_LATENCY, CPU_WAKEUP_LATENCY], asked);
        let cpuidle = Cpuidle::configured();
        let listed = CpuList::listed();
        let cpus = (listed.as_ref().map_or(&[][..], |l| l.cpus()).iter())
            .map(|&cpu| {
                let (idle_states, idle_states_error) = cpuidle.cpu_states_checked(cpu);
                Cpu {
                    cpu,
                    online: crate::cpulist::is_online(cpu),
                    resume_latency: ResumeLatency::of_cpu(cpu).map_err(|e| os_message(&e)),
                    idle_states,
                    idle_states_error,
                }
            })
            .collect();
        let [holders, wakeup_holders] = scan.holders;
        let holders = with_sole_value(holders, &cpu_latency);
        let wakeup = std::path::Path::new(CPU_WAKEUP_LATENCY).exists().then(|| {
            let limit = limit(CPU_WAKEUP_LATENCY);
            Wakeup {
                holders: with_sole_value(wakeup_holders, &limit),
                limit,
            }
        });
        Machine {
            cpu_latency,
            holders,
            holders_complete: scan.complete,
            driver: cpuidle.driver(),
            governor: cpuidle.governor(),
            cpus,
            registry: registry(),
            wakeup,
        }
    }

    /// The global limit in force, `None` for no constraint or when it cannot be read.
    pub fn global_limit(&self) -> Option<Latency> {
        self.cpu_latency.clone().ok().flatten()
    }
}

/// The holders of a node, the value of the only one known when it is the only one: the limit in
/// force is its request.
fn with_sole_value(mut holders: Vec<Holder>, limit: &Reading<Latency>) -> Vec<Holder> {
    if let ([holder], Ok(Some(limit))) = (holders.as_mut_slice(), limit) {
        holder.asked = holder.asked.or(Some(*limit));
    }
    holders
}

/// A node's limit, `None` for no constraint, or why it cannot be read.
fn limit(node: &str) -> Reading<Latency> {
    match read_limit(node) {
        Ok(limit) => Ok(limit),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(format!("{}: run as root to read it", os_message(&e)))
        }
        Err(e) => Err(os_message(&e)),
    }
}

/// The registry with each live holder's command line.
fn registry() -> Result<Option<Registry>, String> {
    let Some(registered) = percpu::registered().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let holders = (registered.holders.into_iter())
        .map(|holder| RegistryHolder {
            command: (holder.live)
                .then(|| procfs::command_line(holder.pid))
                .flatten(),
            container: (holder.live)
                .then(|| procfs::environment_variable(holder.pid, CONTAINER_ENV))
                .flatten(),
            pod: (holder.live)
                .then(|| procfs::environment_variable(holder.pid, POD_ENV))
                .flatten(),
            holder,
        })
        .collect();
    Ok(Some(Registry {
        holders,
        cpus: registered.cpus,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_means_enabled_and_within_the_limit() {
        let state = |exit_latency_us, disabled, limit: Option<u32>| {
            let state = IdleState {
                name: "S".into(),
                exit_latency_us,
                disabled,
            };
            allowed(&state, limit.and_then(Latency::from_micros))
        };
        assert!(state(0, false, Some(0)));
        assert!(!state(1, false, Some(0)));
        assert!(state(100, false, Some(100)));
        assert!(!state(101, false, Some(100)));
        assert!(state(5000, false, None));
        assert!(!state(0, true, None));
    }

    #[test]
    fn a_cpu_obeys_the_stricter_of_its_own_limit_and_the_global_one() {
        let cpu = |resume_latency| Cpu {
            cpu: 0,
            online: true,
            resume_latency,
            idle_states: Vec::new(),
            idle_states_error: None,
        };
        let us = |n| Latency::from_micros(n);
        let unconstrained = cpu(Ok(ResumeLatency::Unconstrained));
        assert_eq!(unconstrained.effective_limit(None), None);
        assert_eq!(unconstrained.effective_limit(us(20)), us(20));
        let own = cpu(Ok(ResumeLatency::Limit(Latency::micros(5))));
        assert_eq!(own.effective_limit(us(20)), us(5));
        assert_eq!(own.effective_limit(us(2)), us(2));
        let unreadable = cpu(Err("Permission denied".into()));
        assert_eq!(unreadable.effective_limit(us(7)), us(7));
    }
}
