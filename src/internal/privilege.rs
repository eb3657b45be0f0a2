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

/// Gives up, until [`raise`] raises it again, the privilege this process was given at exec: the
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

/// The privilege of this process raised on the calling thread: the saved uid and gid, the
/// permitted capabilities, until this value is dropped, which puts back the credentials the thread
/// had, on every path out of the scope, a panic's unwinding included. A restore that fails ends
/// the process (`abort`): it must never go on privileged.
///
/// Raise it around the kernel's file operations of a request only (an open, a write, a rename in
/// the registry), never around a caller's code: a callback, a closure passed into the library,
/// runs with the credentials the caller had.
#[derive(Debug)]
#[must_use = "the privilege is lowered again when this value is dropped"]
pub struct Raised {
    /// What to put back; `None` when nothing was raised.
    before: Option<Credentials>,
}

/// Raises the privilege this process was given at exec, for the calling thread, until the
/// returned guard is dropped (see [`Raised`]). Without privilege, or when the thread's credentials
/// cannot be read (then they could not be put back), nothing is raised.
pub fn raise() -> Raised {
    if !is_privileged() {
        return Raised { before: None };
    }
    let Some(before) = Credentials::current() else {
        return Raised { before: None };
    };
    let (Ok(uids), Ok(gids), Ok(caps)) = (getresuid(), getresgid(), capabilities()) else {
        return Raised { before: None };
    };
    let raised = Credentials {
        euid: uids.saved,
        egid: gids.saved,
        effective: caps.permitted,
    };
    // A raise that fails half-way is put back by the guard all the same.
    let guard = Raised {
        before: Some(before),
    };
    let _ = raised.set();
    guard
}

impl Drop for Raised {
    fn drop(&mut self) {
        if let Some(before) = self.before.take()
            && restore(before).is_err()
        {
            // Going on privileged is never an option.
            std::process::abort();
        }
    }
}

/// Puts `before` back (a test can make it fail, to see the process end).
fn restore(before: Credentials) -> io::Result<()> {
    #[cfg(test)]
    if tests::FAIL_RESTORE.with(std::cell::Cell::get) {
        return Err(io::Error::other("a restore failing, as a test asked"));
    }
    before.set()
}

/// Runs `f`, one operation on the kernel's files of a request, with the privilege raised (see
/// [`Raised`]); without privilege, it just runs `f`. `f` must be the library's own I/O, never a
/// caller's code.
pub fn elevated<T>(f: impl FnOnce() -> T) -> T {
    let _raised = raise();
    f()
}

/// The calling thread out of its real user's reach, in a setuid-root install, until this value
/// is dropped, which puts everything back (a failure ends the process, as [`Raised`]'s does).
///
/// The kernel lets a user signal, trace, renice or move a process whose real or saved uid is
/// theirs: a setuid-root program's real uid is its user's. lllqos holds the registry's lock for a
/// few milliseconds per change, and every other lllqos on a CPU waits for it: a user who stopped
/// their own lllqos there (SIGSTOP, a debugger), or slowed it (SCHED_IDLE, nice 19), would make
/// every other user's request wait. So, for that span: real and effective uid 0 (the saved uid is
/// 0 already), and the scheduling of an ordinary process (`SCHED_OTHER`, nice 0) for one that had
/// a slower one. A signal sent before it is raised is taken before the lock is tried; one sent
/// after is refused (`EPERM`). The terminal's job-control signals are the kernel's, not the
/// user's: the `lllqos` command blocks them there.
///
/// Nothing for other installs: root is out of users' reach already, and a capability install
/// cannot change its uid (its user can stop it; the others' wait is bounded instead, see the
/// registry).
#[derive(Debug)]
#[must_use = "the thread is in its user's reach again when this value is dropped"]
pub struct Shielded {
    /// What to put back; `None` when nothing was changed.
    before: Option<Unshielded>,
}

/// What [`Shielded`] puts back.
#[derive(Debug, Clone, Copy)]
struct Unshielded {
    ruid: Uid,
    euid: Uid,
    /// The scheduling it had, when it was a slower one.
    schedule: Option<Schedule>,
}

/// Shields the calling thread (see [`Shielded`]).
pub fn shield() -> Shielded {
    if !is_privileged() {
        return Shielded { before: None };
    }
    let Ok(ids) = getresuid() else {
        return Shielded { before: None };
    };
    if !ids.saved.is_root() || ids.real.is_root() {
        return Shielded { before: None };
    }
    let guard = Shielded {
        before: Some(Unshielded {
            ruid: ids.real,
            euid: ids.effective,
            schedule: Schedule::current().filter(|s| s.is_slow()),
        }),
    };
    // SAFETY: setresuid with plain integer ids (-1: the saved uid stays 0). Allowed unprivileged:
    // each new id is the saved one. Should it fail, the guard puts back what is there.
    if unsafe { libc::syscall(libc::SYS_setresuid, 0, 0, u32::MAX) } == 0
        && guard.before.is_some_and(|b| b.schedule.is_some())
    {
        let _ = Schedule::ORDINARY.set();
    }
    guard
}

impl Drop for Shielded {
    fn drop(&mut self) {
        let Some(before) = self.before.take() else {
            return;
        };
        let schedule = before.schedule.map_or(Ok(()), Schedule::set);
        // SAFETY: setresuid with plain integer ids, made while the effective uid is 0.
        let ids = unsafe {
            libc::syscall(
                libc::SYS_setresuid,
                before.ruid.as_raw(),
                before.euid.as_raw(),
                u32::MAX,
            )
        };
        let back =
            getresuid().is_ok_and(|now| (now.real, now.effective) == (before.ruid, before.euid));
        if schedule.is_err() || ids < 0 || !back {
            // A user's lllqos must never go on as root.
            std::process::abort();
        }
    }
}

/// A thread's scheduling policy and nice value.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// As `sched_getscheduler` gives it (with `SCHED_RESET_ON_FORK`, when set).
    policy: i32,
    /// The static priority (0 for the policies that are not real-time).
    priority: i32,
    nice: i32,
}

impl Schedule {
    /// `SCHED_OTHER` at nice 0.
    const ORDINARY: Schedule = Schedule {
        policy: libc::SCHED_OTHER,
        priority: 0,
        nice: 0,
    };

    fn current() -> Option<Schedule> {
        // SAFETY: sched_getscheduler, sched_getparam and getpriority of the calling thread (0),
        // writing into our local.
        unsafe {
            let policy = libc::sched_getscheduler(0);
            // Zeroed: musl's sched_param has more fields than the priority.
            let mut param: libc::sched_param = std::mem::zeroed();
            if policy < 0 || libc::sched_getparam(0, &mut param) < 0 {
                return None;
            }
            nix::errno::Errno::clear();
            let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
            if nice == -1 && nix::errno::Errno::last_raw() != 0 {
                return None;
            }
            Some(Schedule {
                policy,
                priority: param.sched_priority,
                nice,
            })
        }
    }

    /// Slower than an ordinary process: idle or batch policy, or a positive nice value.
    fn is_slow(&self) -> bool {
        let policy = self.policy & !libc::SCHED_RESET_ON_FORK;
        policy == libc::SCHED_IDLE || policy == libc::SCHED_BATCH || self.nice > 0
    }

    fn set(self) -> io::Result<()> {
        // SAFETY: sched_param is plain integers, for which all zeroes is a value (musl's has more
        // fields than the priority).
        let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
        param.sched_priority = self.priority;
        // SAFETY: sched_setscheduler and setpriority of the calling thread, with our local.
        unsafe {
            if libc::sched_setscheduler(0, self.policy, &param) < 0
                || libc::setpriority(libc::PRIO_PROCESS, 0, self.nice) < 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Becomes the real user for good, with no capability, before executing another program: real,
/// effective and saved uid and gid set to `uid` and `gid`, and the effective, permitted,
/// inheritable and ambient capability sets emptied; then checked. For a forked child before
/// exec: system calls on the stack only (async-signal-safe), no allocation, no lock.
pub fn drop_for_exec(uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: setresgid and setresuid with plain integer ids; group first, which is no longer
    // allowed once the uid is dropped.
    unsafe {
        if libc::syscall(libc::SYS_setresgid, gid, gid, gid) < 0
            || libc::syscall(libc::SYS_setresuid, uid, uid, uid) < 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    set_capabilities(Capabilities::default())?;
    // SAFETY: prctl with integer arguments.
    let clear = libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong;
    if unsafe { libc::prctl(libc::PR_CAP_AMBIENT, clear, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // Verify: a half-dropped process must not run another program.
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: getresuid writes three ids into our locals.
    if unsafe { libc::getresuid(&mut r, &mut e, &mut s) } < 0 || (r, e, s) != (uid, uid, uid) {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    Ok(())
}

/// The effective ids and capabilities, which [`lower`] and [`raise`] change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Sets this thread's capability sets (nix has no capset): the one place that does. System calls
/// on the stack only, so that a forked child may call it.
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
pub(crate) mod tests {
    use super::*;

    thread_local! {
        /// Makes the next restores of this thread fail (a test of what a failing restore does).
        pub(crate) static FAIL_RESTORE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

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

    /// The credentials of this thread: effective ids, and effective and permitted capabilities.
    fn now() -> (Uid, Gid, u64, u64) {
        let caps = capabilities().unwrap();
        (geteuid(), getegid(), caps.effective, caps.permitted)
    }

    /// Runs the ignored test `name` of this binary in a process started as a setuid-root program
    /// of user 65534 would be (real uid and gid 65534, effective and saved 0); its exit status.
    /// `None` when this process is not root (the test cannot be made).
    pub(crate) fn as_setuid_program(name: &str) -> Option<std::process::ExitStatus> {
        use std::os::unix::process::CommandExt;
        if !geteuid().is_root() {
            assert!(
                std::env::var_os("LLLQOS_TEST_REQUIRE").is_none_or(|v| v != "1"),
                "{name} needs root (LLLQOS_TEST_REQUIRE=1: a test that would skip fails)"
            );
            eprintln!("SKIPPED: {name}: needs root");
            return None;
        }
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args([
                name,
                "--exact",
                "--ignored",
                "--test-threads=1",
                "--nocapture",
            ])
            .stdout(std::process::Stdio::null());
        // SAFETY: setresgid and setresuid with integers, between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::setresgid(65534, 0, 0) < 0 || libc::setresuid(65534, 0, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Some(command.status().unwrap())
    }

    #[test]
    fn a_panic_while_raised_leaves_the_credentials_as_they_were() {
        if let Some(status) =
            as_setuid_program("internal::privilege::tests::child_panics_while_raised")
        {
            assert!(status.success(), "{status:?}");
        }
    }

    #[test]
    #[ignore = "run by a_panic_while_raised_leaves_the_credentials_as_they_were, as a setuid program"]
    fn child_panics_while_raised() {
        assert!(is_privileged());
        lower().unwrap();
        let lowered = now();
        assert_ne!(lowered.0, Uid::from_raw(0));
        assert_eq!(lowered.2, 0, "no effective capability once lowered");
        let panicked = std::panic::catch_unwind(|| {
            elevated(|| {
                assert!(geteuid().is_root(), "raised");
                panic!("inside the raised scope");
            })
        });
        assert!(panicked.is_err());
        assert_eq!(now(), lowered);
    }

    #[test]
    fn a_failing_restore_ends_the_process() {
        if let Some(status) =
            as_setuid_program("internal::privilege::tests::child_fails_to_restore")
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}");
        }
    }

    #[test]
    #[ignore = "run by a_failing_restore_ends_the_process, as a setuid program"]
    fn child_fails_to_restore() {
        assert!(is_privileged());
        lower().unwrap();
        FAIL_RESTORE.with(|fail| fail.set(true));
        elevated(|| ());
        // Not reached: the restore failed and the process aborted.
        std::process::exit(0);
    }

    #[test]
    fn a_shield_makes_the_thread_roots_and_ordinary_until_dropped() {
        if let Some(status) = as_setuid_program("internal::privilege::tests::child_is_shielded") {
            assert!(status.success(), "{status:?}");
        }
    }

    #[test]
    #[ignore = "run by a_shield_makes_the_thread_roots_and_ordinary_until_dropped, as a setuid program"]
    fn child_is_shielded() {
        assert!(is_privileged());
        lower().unwrap();
        let nice = || {
            nix::errno::Errno::clear();
            // SAFETY: getpriority of the calling thread.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
        };
        // SAFETY: setpriority of the calling thread (a user may lower its own priority).
        assert_eq!(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 5) }, 0);
        let before = getresuid().unwrap();
        assert_eq!(before.real.as_raw(), 65534);
        let shielded = shield();
        let during = getresuid().unwrap();
        // Real and effective root: no signal, trace or renice of its user reaches the thread.
        assert!(during.real.is_root() && during.effective.is_root());
        assert_eq!(nice(), 0);
        drop(shielded);
        let after = getresuid().unwrap();
        assert_eq!(
            (after.real, after.effective, after.saved),
            (before.real, before.effective, before.saved)
        );
        assert_eq!(nice(), 5);
    }

    #[test]
    fn nothing_is_raised_without_credentials_to_put_back() {
        // A process without privilege raises nothing whatever happens; the guard then holds
        // nothing to restore.
        let raised = raise();
        assert!(raised.before.is_none());
    }
}
