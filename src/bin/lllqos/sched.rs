//! The calling thread's scheduling policy and priority, through the kernel's own system calls.
//!
//! Linux schedules threads, and its `sched_*scheduler` calls act on one; POSIX says they act on a
//! process. glibc passes them through, musl refuses them (ENOSYS) rather than give them the
//! thread's meaning. lllqos means the thread (the measuring loop's, or the one about to exec the
//! command), so it calls the kernel directly: the same on both C libraries, and async-signal-safe
//! (no allocation, no lock), for use between fork and exec.

use std::io;

/// The calling thread's policy (with `SCHED_RESET_ON_FORK` when set) and its static priority.
pub(crate) fn get() -> io::Result<(libc::c_int, libc::c_int)> {
    // SAFETY: sched_getscheduler and sched_getparam on this thread, into values we own.
    unsafe {
        let policy = libc::syscall(libc::SYS_sched_getscheduler, 0) as libc::c_int;
        if policy < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut param = param(0);
        if libc::syscall(libc::SYS_sched_getparam, 0, &mut param) < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((policy, param.sched_priority))
    }
}

/// Sets the calling thread's policy and static priority.
pub(crate) fn set(policy: libc::c_int, priority: libc::c_int) -> io::Result<()> {
    let param = param(priority);
    // SAFETY: sched_setscheduler on this thread with a parameter struct on our stack.
    if unsafe { libc::syscall(libc::SYS_sched_setscheduler, 0, policy, &param) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A `sched_param` with this priority, the other fields (musl has some for SCHED_SPORADIC) zero.
fn param(priority: libc::c_int) -> libc::sched_param {
    // SAFETY: sched_param is plain integers; all zeroes is a valid value.
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = priority;
    param
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_threads_own_scheduling_reads_back() {
        let (policy, priority) = super::get().unwrap();
        assert_eq!(policy & !libc::SCHED_RESET_ON_FORK, libc::SCHED_OTHER);
        assert_eq!(priority, 0);
        super::set(policy, priority).unwrap();
    }
}
