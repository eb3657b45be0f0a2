//! Privilege: what a setuid or file-capability install may use its privilege for, and what the
//! command it runs must never get.
//!
//! `/dev/cpu_dma_latency` and the per-CPU sysfs files are root's. Sites let ordinary users request
//! low latency by running lllqos with `sudo`, by a udev rule that gives a group the node, or by
//! installing lllqos setuid root or with `cap_dac_override`. In the last two cases lllqos is a
//! privileged program and the rule is the one every such program follows: the privilege opens the
//! kernel's files and nothing else.
//!
//! - The command is a user's command. Before it is executed, the child drops everything: real,
//!   effective and saved uid and gid become the real ones (supplementary groups stay as the user had
//!   them, which a setuid or capability exec never changed), and the effective, permitted,
//!   inheritable and ambient capability sets are emptied. The `lllqos` binary does this between
//!   fork and exec (its `spawn` module), with async-signal-safe system calls only.
//! - No path the user names may be turned against root: `--device` accepts only a genuine PM QoS
//!   device node when privileged (checked by device number in [`crate::lease`]), and the per-CPU
//!   registry lives at a fixed path, created without following symlinks (see [`crate::percpu`]).

use std::sync::OnceLock;

/// True when this process has more privilege than its real user: a set-user-ID or set-group-ID
/// program, or any permitted capability while the real user is not root.
pub fn is_privileged() -> bool {
    static PRIVILEGED: OnceLock<bool> = OnceLock::new();
    *PRIVILEGED.get_or_init(|| {
        let (ruid, euid) = (nix::unistd::getuid(), nix::unistd::geteuid());
        let (rgid, egid) = (nix::unistd::getgid(), nix::unistd::getegid());
        ruid != euid || rgid != egid || (!ruid.is_root() && permitted_capabilities() != 0)
    })
}

/// The permitted capability set, from `/proc/self/status` (0 when it cannot be read).
fn permitted_capabilities() -> u64 {
    super::procfs::status("self")
        .and_then(|status| status.permitted)
        .unwrap_or(0)
}
