//! Where the command reads idle states: the kernel's `/sys/devices/system/cpu`, or, for tests, a
//! tree laid out the same way that `LLLQOS_SYSFS_CPU` names (so that the idle-state logic of
//! `--max-state`, `status`, `measure` and `metrics` is tested on machines without a cpuidle
//! driver). Only idle states are read there; CPUs, their resume latency and the node are always
//! the kernel's. A privileged run ignores the variable (docs/reference.md, "Privilege").

use std::sync::OnceLock;

use lllqos::idle::Cpuidle;
use lllqos::internal::privilege::is_privileged;

/// The variable that names a tree to read idle states from instead of the kernel's.
pub const CPUIDLE_ENV: &str = "LLLQOS_SYSFS_CPU";

/// The idle states' tree this run reads.
pub fn cpuidle() -> &'static Cpuidle {
    static TREE: OnceLock<Cpuidle> = OnceLock::new();
    TREE.get_or_init(|| match std::env::var_os(CPUIDLE_ENV) {
        Some(root) if !root.is_empty() && !is_privileged() => Cpuidle::at(root),
        _ => Cpuidle::system(),
    })
}
