//! Privilege: what a setuid, setgid or file-capability install may use its privilege for, and what
//! everything else, the command it runs above all, must never get.
//!
//! `/dev/cpu_dma_latency` and the per-CPU sysfs files are root's. Sites let ordinary users request
//! low latency by running lllqos with `sudo`, by a udev rule that gives a group the node, or by
//! installing lllqos setuid root or with `cap_dac_override`. In the last two cases lllqos is a
//! privileged program, and the rule is the one every such program follows (passwd, mount, sudo):
//! the privilege is used for one purpose and is not there for anything else.
//!
//! - **Lowered from the start.** The `lllqos` command calls [`lower`] first thing: the effective
//!   uid and gid become the real ones and the effective capabilities are emptied, the saved uid and
//!   the permitted capabilities are kept. From then on lllqos opens, reads, writes, schedules and
//!   signals with the real user's rights: a path the user names (`measure --plot`) is opened as the
//!   user, `measure --priority` gets only the scheduling the user could get, `status` sees what the
//!   user may see.
//! - **Raised for the request, and only for it.** [`elevated`] raises the privilege for the span of
//!   one operation on the kernel's files and puts back what was there: opening the node to place a
//!   request (after the path was checked with the real user's rights), writing the per-CPU files
//!   of the request placed, and keeping the registry that restores them. The library's `Lease` and
//!   `CpuConstraint` call it around exactly those operations.
//! - **Refused where there is no request.** `trace` (tracefs, every process's requests),
//!   `oci-hook` (paths and processes a runtime names) and `recover` (other holders' CPUs) are
//!   root's: the command refuses them under privilege, before anything is changed.
//! - **The command is a user's command.** Before it is executed, the child drops everything: real,
//!   effective and saved uid and gid become the real ones (supplementary groups stay as the user
//!   had them, which a setuid or capability exec never changed), and the effective, permitted,
//!   inheritable and ambient capability sets are emptied. The `lllqos` binary does this between
//!   fork and exec (its `spawn` module), with async-signal-safe system calls only.
//! - **No environment steers it.** The C library runs a privileged program in secure mode (no
//!   `LD_*`), and lllqos reads no variable of its own under privilege: every path it uses is fixed
//!   (the registry's, sysfs's, the node's unless `--device`, which must be a genuine PM QoS node).

use std::io;
use std::sync::OnceLock;

use nix::unistd::{Gid, Uid, getegid, geteuid, getresgid, getresuid};

/// True when this process has more privilege than its real user: the kernel ran it in secure mode
/// (`AT_SECURE`: a set-user-ID or set-group-ID program, or capabilities gained at exec), or its
/// ids differ from the real ones, or it has permitted capabilities while the real user is not root.
pub fn is_privileged() -> bool {
    static PRIVILEGED: OnceLock<bool> = OnceLock::new();
    *PRIVILEGED.get_or_init(|| {
        // SAFETY: getauxval reads the process's auxiliary vector; 0 when the entry is absent.
        let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
        let (ruid, rgid) = (nix::unistd::getuid(), nix::unistd::getgid());
        let ids_differ = getresuid().is_ok_and(|ids| ids.effective != ruid || ids.saved != ruid)
            || getresgid().is_ok_and(|ids| ids.effective != rgid || ids.saved != rgid);
        secure || ids_differ || (!ruid.is_root() && capabilities().is_ok_and(|c| c.permitted != 0))
    })
}

/// Gives up, until [`elevated`] raises it again, the privilege this process was given at exec: the
/// effective uid and gid become the real ones, the effective capabilities none. Nothing changes
/// for a process that is not privileged. Call it before any thread is made: credentials are each
/// thread's own, and a thread made later starts with its maker's.
pub fn lower() -> io::Result<()> {
    if !is_privileged() {
        return Ok(());
    }
    Credentials {
        euid: nix::unistd::getuid(),
        egid: nix::unistd::getgid(),
        effective: 0,
    }
    .set()
}

/// Runs `f`, on the calling thread, with the privilege this process was given at exec (the saved
/// uid and gid, the permitted capabilities), and puts back the credentials the thread had before,
/// whatever `f` returns. For one
/// operation on the kernel's files of a request: see the module documentation. Without privilege,
/// it just runs `f`.
pub fn elevated<T>(f: impl FnOnce() -> T) -> T {
    if !is_privileged() {
        return f();
    }
    let before = Credentials::current();
    if let (Ok(uids), Ok(gids), Ok(caps)) = (getresuid(), getresgid(), capabilities()) {
        let _ = Credentials {
            euid: uids.saved,
            egid: gids.saved,
            effective: caps.permitted,
        }
        .set();
    }
    let result = f();
    if let Some(before) = before {
        let _ = before.set();
    }
    result
}

/// The effective ids and capabilities, which [`lower`] and [`elevated`] change.
#[derive(Debug, Clone, Copy)]
struct Credentials {
    euid: Uid,
    egid: Gid,
    effective: u64,
}

impl Credentials {
    fn current() -> Option<Credentials> {
        Some(Credentials {
            euid: geteuid(),
            egid: getegid(),
            effective: capabilities().ok()?.effective,
        })
    }

    /// Sets them, for the calling thread: the group first (allowed whatever the uid), then the
    /// uid (going from 0 to another uid empties the effective capabilities, and back to 0 fills
    /// them from the permitted ones), then the effective capabilities themselves (what a
    /// file-capability install has).
    ///
    /// The kernel's own calls, not the C library's: `seteuid(3)` changes every thread, by a signal
    /// to each, which a thread that blocks every signal (`measure`'s signal watcher) never takes,
    /// and the call never returns. Only the thread that places a request needs the privilege.
    fn set(self) -> io::Result<()> {
        let keep = u32::MAX; // -1: leave that id as it is
        // SAFETY: setresgid and setresuid with plain integer ids.
        unsafe {
            if getegid() != self.egid
                && libc::syscall(libc::SYS_setresgid, keep, self.egid.as_raw(), keep) < 0
            {
                return Err(io::Error::last_os_error());
            }
            if geteuid() != self.euid
                && libc::syscall(libc::SYS_setresuid, keep, self.euid.as_raw(), keep) < 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        let mut caps = capabilities()?;
        if caps.effective != self.effective {
            caps.effective = self.effective & caps.permitted;
            set_capabilities(caps)?;
        }
        Ok(())
    }
}

/// A thread's capability sets, 64 bits each (capget version 3).
#[derive(Debug, Clone, Copy, Default)]
struct Capabilities {
    effective: u64,
    permitted: u64,
    inheritable: u64,
}

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// This thread's capability sets (nix has no capget).
fn capabilities() -> io::Result<Capabilities> {
    let mut header = [CAPABILITY_VERSION_3, 0];
    let mut data = [0u32; 6];
    // SAFETY: capget writes two data structs (three words each) into our buffer.
    if unsafe { libc::syscall(libc::SYS_capget, header.as_mut_ptr(), data.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |low: u32, high: u32| u64::from(low) | (u64::from(high) << 32);
    Ok(Capabilities {
        effective: join(data[0], data[3]),
        permitted: join(data[1], data[4]),
        inheritable: join(data[2], data[5]),
    })
}

/// Sets this thread's capability sets (nix has no capset).
fn set_capabilities(caps: Capabilities) -> io::Result<()> {
    let mut header = [CAPABILITY_VERSION_3, 0];
    let low = |set: u64| set as u32;
    let high = |set: u64| (set >> 32) as u32;
    let data = [
        low(caps.effective),
        low(caps.permitted),
        low(caps.inheritable),
        high(caps.effective),
        high(caps.permitted),
        high(caps.inheritable),
    ];
    // SAFETY: capset reads the header and two data structs from our buffers.
    if unsafe { libc::syscall(libc::SYS_capset, header.as_mut_ptr(), data.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_without_privilege_is_left_as_it_is() {
        // The unit tests run as they were started: root or a user, but not setuid.
        assert!(!is_privileged());
        let before = (geteuid(), getegid(), capabilities().unwrap().effective);
        lower().unwrap();
        assert_eq!(elevated(|| 7), 7);
        let after = (geteuid(), getegid(), capabilities().unwrap().effective);
        assert_eq!(before, after);
    }

    #[test]
    fn capability_sets_round_trip() {
        let caps = capabilities().unwrap();
        set_capabilities(caps).unwrap();
        let again = capabilities().unwrap();
        assert_eq!(
            (caps.effective, caps.permitted, caps.inheritable),
            (again.effective, again.permitted, again.inheritable)
        );
    }
}
