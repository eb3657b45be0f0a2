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
//!   inheritable and ambient capability sets are emptied. [`ChildDrop::apply`] does this between
//!   fork and exec, with async-signal-safe system calls only.
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
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapPrm:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0)
}

/// What the child must become before `exec`: the real user, with no capability.
///
/// Prepared in the parent (where it may allocate), applied in the child after `fork`.
#[derive(Debug, Clone, Copy)]
pub struct ChildDrop {
    uid: libc::uid_t,
    gid: libc::gid_t,
}

impl ChildDrop {
    /// The drop this process needs, or `None` when it runs with exactly its real user's rights
    /// (then the command inherits nothing it did not have).
    pub fn needed() -> Option<ChildDrop> {
        is_privileged().then(|| ChildDrop {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        })
    }

    /// Drops to the real user and empties every capability set. Call only in a forked child before
    /// exec: it uses raw system calls, no allocation, no locks.
    pub fn apply(self) -> std::io::Result<()> {
        let check = |ret: libc::c_long| {
            if ret < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        // SAFETY: plain system calls on integers and a stack buffer; async-signal-safe.
        unsafe {
            // Group first: once the uid is dropped, changing the gid is no longer allowed.
            check(libc::setresgid(self.gid, self.gid, self.gid).into())?;
            check(libc::setresuid(self.uid, self.uid, self.uid).into())?;
            // capset(2) with version 3 and two zeroed data words: effective, permitted and
            // inheritable all empty.
            let mut header = [0x2008_0522u32, 0]; // _LINUX_CAPABILITY_VERSION_3, this process
            let data = [0u32; 6];
            check(libc::syscall(
                libc::SYS_capset,
                header.as_mut_ptr(),
                data.as_ptr(),
            ))?;
            check(
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_CLEAR_ALL,
                    0,
                    0,
                    0,
                )
                .into(),
            )?;
            // Verify: a half-dropped child must not run the command.
            let (mut r, mut e, mut s) = (0, 0, 0);
            check(libc::getresuid(&mut r, &mut e, &mut s).into())?;
            if (r, e, s) != (self.uid, self.uid, self.uid) {
                return Err(std::io::Error::from_raw_os_error(libc::EPERM));
            }
        }
        Ok(())
    }
}
