//! Signal sets as the kernel sees them: one bit for each signal from 1 to 64.
//!
//! A wrapper must handle every signal a process can be sent, and nix's `Signal` and `SigSet` stop
//! at 31: the real-time signals (SIGRTMIN to SIGRTMAX, 34-64 with glibc) cannot be named, and
//! glibc's `sigaddset` and `sigprocmask` silently drop 32 and 33, which it reserves for itself. A
//! command killed by SIGRTMIN, or a SIGRTMIN+3 sent to lllqos, must behave exactly as without
//! lllqos, so this module talks to the kernel directly: `rt_sigprocmask`, `rt_sigpending` and
//! `signalfd4` take a 64-bit mask, which is what [`SignalSet`] is. lllqos itself is single-threaded
//! wherever it blocks 32 and 33 (they are how glibc signals its other threads).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// The highest signal number on Linux: 1 to 31 are the classic signals, 32 to 64 the real-time
/// ones.
pub const MAX_SIGNAL: i32 = 64;

/// The signals by which a terminal, a service manager or a user asks a process to end, which lllqos
/// honours wherever it waits: a registry change that waits for another holder gives up on one of
/// them (the library), and so does the wrapper that was about to start its command.
pub const ENDING: [(i32, &str); 4] = [
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGTERM, "SIGTERM"),
];

/// The signals the `lllqos` command never blocks, so never relays to its command: SIGKILL and
/// SIGSTOP cannot be caught, and SIGTTIN and SIGTTOU must stop lllqos itself when it touches the
/// terminal from the background, as they stop the command. It relays every other one; the man
/// page's sentence is rendered from this list (and the reference is checked against it).
pub const NOT_RELAYED: [(i32, &str); 4] = [
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGSTOP, "SIGSTOP"),
    (libc::SIGTTIN, "SIGTTIN"),
    (libc::SIGTTOU, "SIGTTOU"),
];

/// A set of signals 1..=64.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalSet(u64);

impl SignalSet {
    /// The set of these signals (numbers outside 1..=64 are left out).
    pub fn of(signals: impl IntoIterator<Item = i32>) -> SignalSet {
        let mut set = SignalSet::default();
        for signal in signals {
            set.insert(signal);
        }
        set
    }

    /// The set whose bit N - 1 stands for signal N, as the kernel writes masks (in
    /// `/proc/PID/status`, say).
    pub fn from_mask(mask: u64) -> SignalSet {
        SignalSet(mask)
    }

    /// Every signal, 1 to 64.
    pub fn all() -> SignalSet {
        SignalSet(u64::MAX)
    }

    fn bit(signal: i32) -> u64 {
        if (1..=MAX_SIGNAL).contains(&signal) {
            1 << (signal - 1)
        } else {
            0
        }
    }

    pub fn insert(&mut self, signal: i32) {
        self.0 |= SignalSet::bit(signal);
    }

    pub fn contains(self, signal: i32) -> bool {
        self.0 & SignalSet::bit(signal) != 0
    }

    /// The same set as a `sigset_t`, for the libc calls that take one (posix_spawn attributes).
    /// glibc's sigset_t is an array of words whose first 64 bits are the kernel's mask.
    pub fn to_sigset(self) -> libc::sigset_t {
        // SAFETY: sigset_t is plain data; a zeroed one is the empty set; its first eight bytes
        // are the mask of signals 1-64 on every Linux ABI Rust supports.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            std::ptr::write_unaligned((&raw mut set).cast::<u64>(), self.0);
            set
        }
    }

    fn procmask(how: libc::c_int, set: Option<SignalSet>) -> io::Result<SignalSet> {
        let new = set.map(|s| s.0);
        let mut old = 0u64;
        let new_ptr = new.as_ref().map_or(std::ptr::null(), |n| n as *const u64);
        // SAFETY: rt_sigprocmask reads 8 bytes at new_ptr (or nothing) and writes 8 at &old.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                how,
                new_ptr,
                &mut old as *mut u64,
                8usize,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(SignalSet(old))
    }

    /// Adds these signals to the calling thread's blocked set.
    pub fn block(self) -> io::Result<()> {
        SignalSet::procmask(libc::SIG_BLOCK, Some(self)).map(drop)
    }

    /// Removes these signals from the calling thread's blocked set.
    pub fn unblock(self) -> io::Result<()> {
        SignalSet::procmask(libc::SIG_UNBLOCK, Some(self)).map(drop)
    }

    /// The calling thread's blocked set.
    pub fn blocked() -> io::Result<SignalSet> {
        SignalSet::procmask(libc::SIG_BLOCK, None)
    }

    /// Makes this the calling thread's blocked set.
    pub fn set_mask(self) -> io::Result<()> {
        SignalSet::procmask(libc::SIG_SETMASK, Some(self)).map(drop)
    }

    /// The signals pending for the calling thread or its process.
    pub fn pending() -> SignalSet {
        let mut set = 0u64;
        // SAFETY: rt_sigpending writes 8 bytes into our integer.
        let ret = unsafe { libc::syscall(libc::SYS_rt_sigpending, &mut set as *mut u64, 8usize) };
        if ret < 0 {
            SignalSet(0)
        } else {
            SignalSet(set)
        }
    }

    /// The signals whose disposition is SIG_IGN now.
    pub fn ignored() -> SignalSet {
        SignalSet::of((1..=MAX_SIGNAL).filter(|&signal| is_ignored(signal)))
    }

    /// A `signalfd` (close-on-exec) that reads these signals, which must be blocked.
    pub fn signalfd(self) -> io::Result<OwnedFd> {
        let mask = self.0;
        // SAFETY: signalfd4 reads 8 bytes of mask and returns a new descriptor or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_signalfd4,
                -1,
                &mask as *const u64,
                8usize,
                libc::SFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

impl std::ops::BitOr for SignalSet {
    type Output = SignalSet;
    fn bitor(self, other: SignalSet) -> SignalSet {
        SignalSet(self.0 | other.0)
    }
}

impl std::ops::BitAnd for SignalSet {
    type Output = SignalSet;
    fn bitand(self, other: SignalSet) -> SignalSet {
        SignalSet(self.0 & other.0)
    }
}

impl std::ops::Sub for SignalSet {
    type Output = SignalSet;
    fn sub(self, other: SignalSet) -> SignalSet {
        SignalSet(self.0 & !other.0)
    }
}

/// True when `signal`'s disposition is SIG_IGN. Asks the kernel directly: glibc's sigaction
/// refuses to answer for 32 and 33.
pub fn is_ignored(signal: i32) -> bool {
    // The kernel's struct sigaction begins with the handler; four words cover it on 64-bit Linux.
    let mut old = [0usize; 4];
    // SAFETY: a query (null new action) writing at most sizeof(struct sigaction) into our buffer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            std::ptr::null::<u8>(),
            old.as_mut_ptr(),
            8usize,
        )
    };
    ret == 0 && old[0] == libc::SIG_IGN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_hold_every_signal_including_real_time_ones() {
        let set = SignalSet::of([1, 32, 33, 34, 64, 0, 65, -3]);
        let members: Vec<i32> = (1..=MAX_SIGNAL).filter(|&s| set.contains(s)).collect();
        assert_eq!(members, [1, 32, 33, 34, 64]);
        assert!(set.contains(64) && !set.contains(2) && !set.contains(65));
        assert!(!(set - SignalSet::of([1])).contains(1));
        assert!((1..=MAX_SIGNAL).all(|s| SignalSet::all().contains(s)));
    }

    #[test]
    fn the_sigset_t_form_has_the_same_members() {
        let set = SignalSet::of([2, 15, 34, 64]).to_sigset();
        for signal in 1..=64 {
            // SAFETY: sigismember reads the set we own.
            let member = unsafe { libc::sigismember(&set, signal) } == 1;
            // glibc answers for its reserved 32 and 33 as not members whatever the bits say.
            if signal != 32 && signal != 33 {
                assert_eq!(member, [2, 15, 34, 64].contains(&signal), "{signal}");
            }
        }
    }
}
