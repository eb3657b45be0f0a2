//! Where the log starts: the requests in force when the trace begins, as `status` finds them (the
//! [`Machine`](crate::machine::Machine)), so that the first lines of the log make sense.

use lllqos::Latency;
use lllqos::internal::procfs;
use lllqos::percpu::ResumeLatency;

use super::parse::Target;
use crate::machine;

/// A request in force at the start: who holds it (when known), and the target's limit.
#[derive(Debug, Clone)]
pub struct Held {
    pub pid: Option<i32>,
    pub command: Option<String>,
    pub target: Target,
    /// The holder's own value, where known (lllqos's per-CPU holders, a node's only holder).
    pub value: Option<Latency>,
    pub limit: Option<Latency>,
}

/// What is in force now, as `status` finds it, and each target's limit.
pub fn in_force() -> (Vec<Held>, Vec<(Target, Option<Latency>)>) {
    let machine = machine::collect();
    let global = Target::Global("cpu_dma_latency".into());
    let global_limit = machine.global_limit();
    let mut held: Vec<Held> = (machine.holders.iter())
        .map(|h| Held {
            pid: Some(h.pid),
            command: procfs::comm(h.pid),
            target: global.clone(),
            value: if machine.holders.len() == 1 {
                global_limit
            } else {
                None
            },
            limit: global_limit,
        })
        .collect();
    let mut limits = vec![(global, global_limit)];
    let registry = match &machine.registry {
        Ok(Some(registry)) => registry.holders.as_slice(),
        _ => &[],
    };
    for cpu in &machine.cpus {
        let limit = match cpu.resume_latency {
            Ok(ResumeLatency::Limit(limit)) => Some(limit),
            _ => None,
        };
        limits.push((Target::Cpu(cpu.cpu), limit));
        let Some(limit) = limit else { continue };
        let holders: Vec<_> = (registry.iter())
            .map(|h| &h.holder)
            .filter(|h| h.live && h.cpus.cpus().contains(&cpu.cpu))
            .collect();
        if holders.is_empty() {
            // Written by another tool: the value stays, nobody holds it.
            held.push(Held {
                pid: None,
                command: None,
                target: Target::Cpu(cpu.cpu),
                value: Some(limit),
                limit: Some(limit),
            });
        }
        held.extend(holders.iter().map(|h| Held {
            pid: Some(h.pid),
            command: procfs::comm(h.pid),
            target: Target::Cpu(cpu.cpu),
            value: Some(h.latency),
            limit: Some(limit),
        }));
    }
    (held, limits)
}
