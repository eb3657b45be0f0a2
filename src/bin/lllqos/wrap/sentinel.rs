//! Telling a signal sent to lllqos alone from one sent to its whole process group.
//!
//! lllqos relays what is sent to it, and must not relay what the command received anyway. The
//! command is in lllqos's process group (job control needs it there), so a signal sent to the
//! group (`kill 0` in a script, `kill -TERM -PGID`, coreutils `timeout`, which signals its child and
//! then the group) reaches both, and relaying it would deliver it twice. But a script's
//! `lllqos cmd & kill -TERM $!` reaches lllqos alone, from the same sender in the same group, and
//! must be relayed. The signal's `siginfo` is identical in both cases.
//!
//! So lllqos keeps a witness in the group: a process that blocks every signal and sleeps.
//! Whatever is sent to the group (or to every process, `kill -1`) is left pending in the
//! sentinel; what is sent to lllqos alone is not. When lllqos reads a signal, it first waits for
//! any group delivery under way to finish (a no-op `setpgid`, which takes the same lock as a group
//! kill), then looks at the sentinel's pending signals in `/proc/PID/status`. A sentinel that has
//! seen anything is replaced by a fresh one, so that every decision looks at new deliveries only.
//!
//! # A process that costs nothing
//!
//! The sentinel is made the way `posix_spawn` makes its child before exec: `clone(CLONE_VM)` on a
//! small stack of its own, sharing lllqos's memory. Nothing is copied (a `fork` copies lllqos's
//! page tables and makes every page it writes afterwards a copy: a tenth of a wrapper's start-up,
//! measured), it takes no memory of its own, and it runs a few system calls and sleeps: it blocks
//! every signal, asks to be killed when lllqos dies (`PR_SET_PDEATHSIG`), closes its copies of
//! lllqos's descriptors (the request's among them), names itself `qos-sentinel`, and pauses. It
//! touches no memory but its stack (raw system calls only: no allocation, no lock, no `errno`,
//! none of which it could share safely), and its stack is unmapped once it has been reaped.
//!
//! Sharing lllqos's memory, it shares its command line: `pkill -f` with a pattern that matches
//! lllqos's command line signals the sentinel too, which then looks like a signal to the group. Its
//! name is its own, so `pkill lllqos` does not reach it. With a pattern that also matches the
//! command (`pkill -f myapp` for `lllqos -- myapp`), the command gets the signal once, directly, as
//! without lllqos; a pattern that matches lllqos's options alone (`pkill -f 'lllqos -l 0'`) is not
//! relayed: signal lllqos by pid, or by name.

use std::io;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use lllqos::internal::procfs;
use lllqos::internal::sigset::SignalSet;

/// The name the sentinel shows in `ps`.
const NAME: &[u8] = b"qos-sentinel";

/// The witness process; killed and reaped when dropped.
#[derive(Debug)]
pub struct Sentinel {
    witness: Witness,
    /// Signals a replaced sentinel had seen that lllqos has not read yet.
    carried: SignalSet,
}

impl Sentinel {
    /// Starts the sentinel.
    pub fn spawn() -> io::Result<Sentinel> {
        Ok(Sentinel {
            witness: Witness::start()?,
            carried: SignalSet::default(),
        })
    }

    /// Whether `signal`, which lllqos has just read, was also delivered to the whole group.
    pub fn saw(&mut self, signal: i32) -> bool {
        // Any kill(2) to a group or to -1 that delivered `signal` to lllqos holds the tasklist
        // lock until it has delivered it to every member; setpgid takes that lock for writing, so
        // once it returns the sentinel has it too. Joining one's own group changes nothing (and a
        // session leader's EPERM comes after the lock).
        // SAFETY: getpgrp and setpgid on this process, with its own group.
        unsafe { libc::setpgid(0, libc::getpgrp()) };
        let pending = self.pending();
        let seen = pending.contains(signal) || self.carried.contains(signal);
        // Keep in mind what the sentinel saw only while lllqos still has it to read (a second
        // delivery of `signal` included); what lllqos has read is accounted for.
        self.carried = (self.carried | pending) & SignalSet::pending();
        if pending != SignalSet::default() {
            // Start afresh: a new sentinel first (nothing may pass unwitnessed), then the old one
            // goes (dropped: killed and reaped).
            if let Ok(fresh) = Witness::start() {
                drop(std::mem::replace(&mut self.witness, fresh));
            }
        }
        seen
    }

    /// The sentinel's pending signals (per-thread and shared), from /proc.
    fn pending(&self) -> SignalSet {
        let status = procfs::status(self.witness.pid.as_raw()).unwrap_or_default();
        SignalSet::from_mask(status.pending)
    }
}

impl Sentinel {
    /// Its process id.
    pub fn pid(&self) -> Pid {
        self.witness.pid
    }

    /// Kills the sentinel without waiting for it: it dies while lllqos goes on, and is reaped when
    /// dropped.
    pub fn kill(&self) {
        let _ = nix::sys::signal::kill(self.witness.pid, Signal::SIGKILL);
    }
}

/// One sentinel process and the stack it runs on; killed, reaped and its stack unmapped when
/// dropped.
#[derive(Debug)]
struct Witness {
    pid: Pid,
    stack: std::ptr::NonNull<libc::c_void>,
}

// SAFETY: the stack is a mapping of this process's, reached only through this value (the sentinel
// runs on it, but is reaped before it is unmapped): any thread may hold it and unmap it.
unsafe impl Send for Witness {}

/// Its stack: a few system calls' worth, and a guard page below it.
const STACK: usize = 64 * 1024;

impl Witness {
    fn start() -> io::Result<Witness> {
        // SAFETY: a fresh private anonymous mapping; checked for failure.
        let stack = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        let stack = match std::ptr::NonNull::new(stack).filter(|_| stack != libc::MAP_FAILED) {
            Some(stack) => stack,
            None => return Err(io::Error::last_os_error()),
        };
        // The lowest page is left inaccessible: an overflow faults instead of writing lllqos's
        // memory. (The sentinel needs a few hundred bytes.)
        // SAFETY: the first page of the mapping made above.
        unsafe { libc::mprotect(stack.as_ptr(), 4096, libc::PROT_NONE) };
        let parent = nix::unistd::getpid().as_raw();
        // SAFETY: the child runs `witness` on the top of its own stack, which stays mapped until
        // it has been reaped; it shares lllqos's memory and touches none of it (see `witness`).
        // The stack top is page-aligned, as the ABI wants it.
        let pid = unsafe {
            libc::clone(
                witness,
                stack.as_ptr().cast::<u8>().add(STACK).cast(),
                // No exit signal: a clone child, which lllqos's waits for any child (as PID 1,
                // or as a subreaper) do not see; only the wait for its own pid reaps it.
                libc::CLONE_VM,
                parent as usize as *mut libc::c_void,
            )
        };
        if pid < 0 {
            let error = io::Error::last_os_error();
            // SAFETY: the mapping made above; no child uses it.
            unsafe { libc::munmap(stack.as_ptr(), STACK) };
            return Err(error);
        }
        Ok(Witness {
            pid: Pid::from_raw(pid),
            stack,
        })
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
        if nix::sys::wait::waitpid(self.pid, Some(nix::sys::wait::WaitPidFlag::__WALL)).is_ok() {
            // SAFETY: the child that ran on this stack has been reaped.
            unsafe { libc::munmap(self.stack.as_ptr(), STACK) };
        }
    }
}

/// The sentinel's life, on its own stack in lllqos's memory. Raw system calls only: it shares
/// lllqos's memory without its own thread area, so it must not allocate, take a lock, or set
/// `errno` (none of these calls fails here: a `pause` whose signals are all blocked never returns).
/// `arg` is lllqos's pid.
extern "C" fn witness(arg: *mut libc::c_void) -> libc::c_int {
    let parent = arg as usize as libc::pid_t;
    let all = u64::MAX;
    let mut comm = [0u8; 16];
    comm[..NAME.len()].copy_from_slice(NAME);
    // SAFETY: system calls on integers and on this stack's own values.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            &all as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        );
        libc::syscall(
            libc::SYS_prctl,
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL,
            0,
            0,
            0,
        );
        if libc::syscall(libc::SYS_getppid) as libc::pid_t != parent {
            libc::syscall(libc::SYS_exit, 0); // lllqos is already gone
        }
        libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
        libc::syscall(libc::SYS_prctl, libc::PR_SET_NAME, comm.as_ptr(), 0, 0, 0);
        loop {
            libc::syscall(libc::SYS_pause);
        }
    }
}
