//! What a lease asks for, placed, changed and released with the library's guards: the global
//! request (`lllqos::Lease`, on `dev_path` or `/dev/cpu_dma_latency`), or per-CPU constraints
//! (`lllqos::CpuConstraint`, in the registry the `lllqos` command keeps, guarded by a watchdog), by
//! latency or by idle state (`max_state`, with the command's fallbacks). Off Linux there is no PM
//! QoS: the global request is not acquired, and nothing else is either.

use std::path::{Path, PathBuf};

use lllqos::lease::CPU_DMA_LATENCY;
use lllqos::{Latency, Lease};

use crate::errors::Failure;

/// What a lease asks for, as given (checked by [`check`] when the lease is made).
#[derive(Debug, Clone)]
pub struct Request {
    /// The limit (`target_value`), unless `max_state` names it.
    pub latency: Latency,
    /// Idle-state names with an optional fallback (`"C1E,C1,20us"`), the `--max-state` syntax.
    pub max_state: Option<String>,
    /// Another global node (`dev_path`).
    pub dev_path: Option<PathBuf>,
    /// CPUs for a per-CPU constraint instead of the global request (the `--cpu` syntax, or
    /// `auto`).
    pub cpus: Option<String>,
}

/// A request in force.
#[derive(Debug)]
pub enum Held {
    Global(Lease),
    #[cfg(target_os = "linux")]
    PerCpu(lllqos::CpuConstraint),
}

/// What placing did: the request in force (`None`: nothing to place, a `none` fallback), and what
/// to warn about.
#[derive(Debug)]
pub struct Placed {
    pub held: Option<Held>,
    pub warnings: Vec<String>,
}

/// The global node a request is placed on.
fn node(request: &Request) -> &Path {
    request
        .dev_path
        .as_deref()
        .unwrap_or(Path::new(CPU_DMA_LATENCY))
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::BTreeMap;

    use lllqos::idle::{self, Cpuidle, StateNames};
    use lllqos::percpu::Notice;
    use lllqos::{CpuConstraint, CpuLimits, CpuList, Latency, Lease};

    use super::{Failure, Held, Placed, Request, node};

    /// Checks what needs no machine: the syntax of `max_state` and `cpus`, and that `dev_path`
    /// and `cpus` are not both given.
    pub fn check(request: &Request) -> Result<(), Failure> {
        if request.dev_path.is_some() && request.cpus.is_some() {
            return Err(Failure::Value(
                "dev_path names a global node and cpus asks for per-CPU constraints instead: give one of them".into(),
            ));
        }
        if let Some(names) = &request.max_state {
            names.parse::<StateNames>().map_err(Failure::Value)?;
        }
        if let Some(cpus) = &request.cpus {
            cpu_list(cpus)?;
        }
        Ok(())
    }

    /// The CPUs of `cpus`: a list, or `auto`, those this process may run on now.
    fn cpu_list(cpus: &str) -> Result<CpuList, Failure> {
        if cpus == "auto" {
            return CpuList::affinity().map_err(|e| Failure::Os {
                errno: e.raw_os_error(),
                message: format!("cpus=\"auto\": cannot read this process's affinity: {e}"),
                path: None,
            });
        }
        cpus.parse::<CpuList>()
            .map_err(|e| Failure::Value(format!("cpus: {e}")))
    }

    /// The limit for each CPU of `cpus` (`None`: a `none` fallback everywhere), and what to warn.
    fn per_cpu_limits(
        request: &Request,
        cpus: &CpuList,
    ) -> Result<(Option<CpuLimits>, Vec<String>), Failure> {
        let Some(names) = &request.max_state else {
            return Ok((Some(CpuLimits::uniform(cpus, request.latency)), Vec::new()));
        };
        let names: StateNames = names.parse().map_err(Failure::Value)?;
        CpuConstraint::check_cpus(cpus)?;
        let tree = Cpuidle::configured();
        let states: BTreeMap<u32, _> = (cpus.cpus().iter())
            .map(|&cpu| (cpu, tree.cpu_states(cpu)))
            .collect();
        let resolved = idle::resolve_per_cpu(&names, cpus, &states)
            .map_err(|e| Failure::Value(format!("max_state={names}: {e}")))?;
        let warnings = (resolved.iter())
            .filter_map(|(cpu, resolution)| match resolution {
                idle::Resolution::Fallback { missing, .. } if resolution.latency().is_none() => {
                    Some(format!(
                        "max_state={names}: {missing}: no request on cpu{cpu}"
                    ))
                }
                _ => None,
            })
            .collect();
        let limits = (resolved.iter()).filter_map(|(&cpu, r)| Some((cpu, r.latency()?)));
        Ok((CpuLimits::new(limits), warnings))
    }

    /// The global limit (`None`: a `none` fallback), and what to warn.
    fn global_limit(request: &Request) -> Result<(Option<Latency>, Vec<String>), Failure> {
        let Some(names) = &request.max_state else {
            return Ok((Some(request.latency), Vec::new()));
        };
        let names: StateNames = names.parse().map_err(Failure::Value)?;
        let resolution = idle::resolve_global(&names, &Cpuidle::configured().all_states())
            .map_err(|e| Failure::Value(format!("max_state={names}: {e}")))?;
        Ok(match (resolution.latency(), &resolution) {
            (None, idle::Resolution::Fallback { missing, .. }) => (
                None,
                vec![format!("max_state={names}: {missing}: no request")],
            ),
            (latency, _) => (latency, Vec::new()),
        })
    }

    pub fn place(request: &Request) -> Result<Placed, Failure> {
        let Some(cpus) = &request.cpus else {
            let (latency, warnings) = global_limit(request)?;
            let held = match latency {
                Some(latency) => Some(Held::Global(Lease::acquire_on(node(request), latency)?)),
                None => None,
            };
            return Ok(Placed { held, warnings });
        };
        let cpus = cpu_list(cpus)?;
        let (limits, mut warnings) = per_cpu_limits(request, &cpus)?;
        let Some(limits) = limits else {
            return Ok(Placed {
                held: None,
                warnings,
            });
        };
        CpuConstraint::validate_each(&limits)?;
        // Without the rights, no watchdog is started for nothing: the seed's silent False.
        CpuConstraint::check_access(limits.cpus())?;
        let constraint = CpuConstraint::acquire_each_watched(&limits)?;
        warnings.extend(said(constraint.notices()));
        Ok(Placed {
            held: Some(Held::PerCpu(constraint)),
            warnings,
        })
    }

    /// What the user should see of what the library noticed (another tool's value, left alone).
    pub fn said(notices: &[Notice]) -> Vec<String> {
        (notices.iter())
            .filter(|n| n.is_warning())
            .map(ToString::to_string)
            .collect()
    }

    pub fn status_json() -> Result<String, Failure> {
        Ok(lllqos::status::json::Status::collect().to_json())
    }
}

#[cfg(not(target_os = "linux"))]
mod elsewhere {
    use lllqos::Lease;

    use super::{Failure, Held, Placed, Request, node};

    /// Off Linux only `dev_path` and `cpus` together are refused; nothing else is read.
    pub fn check(request: &Request) -> Result<(), Failure> {
        if request.dev_path.is_some() && request.cpus.is_some() {
            return Err(Failure::Value(
                "dev_path names a global node and cpus asks for per-CPU constraints instead: give one of them".into(),
            ));
        }
        Ok(())
    }

    /// No PM QoS here: the global request fails as the library says (not acquired), and nothing
    /// else exists.
    pub fn place(request: &Request) -> Result<Placed, Failure> {
        if request.cpus.is_some() || request.max_state.is_some() {
            return Err(Failure::Unavailable);
        }
        let lease = Lease::acquire_on(node(request), request.latency)?;
        Ok(Placed {
            held: Some(Held::Global(lease)),
            warnings: Vec::new(),
        })
    }

    pub fn status_json() -> Result<String, Failure> {
        Err(Failure::Os {
            errno: None,
            message: "this platform has no PM QoS interface (CPU latency requests are Linux's)"
                .into(),
            path: None,
        })
    }
}

#[cfg(target_os = "linux")]
pub use linux::{check, place, status_json};

#[cfg(not(target_os = "linux"))]
pub use elsewhere::{check, place, status_json};

/// Changes the request in force to `latency`, in place (never absent between); what to warn.
pub fn set(held: &mut Held, latency: Latency) -> Result<Vec<String>, Failure> {
    match held {
        Held::Global(lease) => lease.set(latency).map(|()| Vec::new()).map_err(Into::into),
        #[cfg(target_os = "linux")]
        Held::PerCpu(constraint) => Ok(linux::said(&constraint.set(latency)?)),
    }
}

/// Removes the request; what to warn.
pub fn release(held: Held) -> Result<Vec<String>, Failure> {
    match held {
        Held::Global(lease) => {
            lease.release();
            Ok(Vec::new())
        }
        #[cfg(target_os = "linux")]
        Held::PerCpu(constraint) => Ok(linux::said(&constraint.release()?)),
    }
}
