//! The registry lock's doorbell: how a holder that lets the lock go wakes one waiter at once.
//!
//! Waiters never block in `flock`: the kernel queues blocked `flock` waiters behind one another,
//! and one that its user stopped (SIGSTOP in a setuid or capability install) would hold up every
//! waiter queued behind it. They try the lock without waiting, and pause between tries. Pauses
//! alone are a poor queue: short, a thousand waiters take the CPUs from the holder that would let
//! them in; long, the lock stands free while they sleep. So each pause is a wait on a futex in the
//! lock file's first four bytes, mapped shared, and the holder that lets the lock go adds one to
//! them and wakes one waiter, the one that has waited longest. A stopped waiter that takes that
//! wake-up costs the others one pause at most: every pause ends on its own too.
//!
//! The word's value means nothing but "changed": a waiter that read it before its try sleeps only
//! while it is unchanged, so a wake-up between the try and the sleep is not lost. Where the file
//! cannot be mapped, waiters just sleep.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The lock file's first page, mapped shared; unmapped when dropped.
#[derive(Debug)]
pub(super) struct Doorbell {
    word: NonNull<AtomicU32>,
}

/// What is mapped: one page (the word is its first four bytes).
const LENGTH: usize = 4096;

impl Doorbell {
    /// Maps the lock file open (for reading and writing) on `file`. The lock file is empty when
    /// made: its first four bytes are written first, so that its page is on the file system
    /// before it is mapped (a page a full file system cannot give would end the process with
    /// SIGBUS when touched). `None` where it cannot be.
    pub(super) fn map(file: &File) -> Option<Doorbell> {
        if file.metadata().ok()?.len() < 4 {
            file.write_all_at(&[0; 4], 0).ok()?;
        }
        // SAFETY: a new shared mapping of a file we hold open for reading and writing; checked
        // for failure. The file is root's, in root's directory, and lllqos never shortens it.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LENGTH,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if at == libc::MAP_FAILED {
            return None;
        }
        Some(Doorbell {
            word: NonNull::new(at.cast::<AtomicU32>())?,
        })
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: the mapping lives as long as self, is page-aligned, and other processes touch
        // the word only atomically (or with the futex calls, which the kernel makes atomic).
        unsafe { self.word.as_ref() }
    }

    /// The word now: read before a try of the lock, given to [`Doorbell::wait`] after it.
    pub(super) fn seen(&self) -> u32 {
        self.word().load(Ordering::Acquire)
    }

    /// Sleeps for `pause` at most, or until the word is no longer `seen`, or a holder rings.
    pub(super) fn wait(&self, seen: u32, pause: Duration) {
        let timeout = nix::sys::time::TimeSpec::from_duration(pause);
        // SAFETY: FUTEX_WAIT (shared: the word is in a file mapping other processes share) on
        // our mapped word, with a relative timeout on the stack. Any result means "try again".
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word.as_ptr(),
                libc::FUTEX_WAIT,
                seen,
                timeout.as_ref() as *const libc::timespec,
            );
        }
    }

    /// Changes the word and wakes the waiter that has waited longest: for a holder that has let
    /// the lock go.
    pub(super) fn ring(&self) {
        self.word().fetch_add(1, Ordering::Release);
        // SAFETY: FUTEX_WAKE of one waiter on our mapped word.
        unsafe {
            libc::syscall(libc::SYS_futex, self.word.as_ptr(), libc::FUTEX_WAKE, 1);
        }
    }
}

impl Drop for Doorbell {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, no longer used.
        unsafe { libc::munmap(self.word.as_ptr().cast(), LENGTH) };
    }
}

/// Rings the doorbell when dropped: a field of the locked registry, after its lock, so that it
/// rings once the lock is let go.
#[derive(Debug)]
pub(super) struct RingOnDrop(pub(super) Option<Doorbell>);

impl Drop for RingOnDrop {
    fn drop(&mut self) {
        if let Some(doorbell) = &self.0 {
            doorbell.ring();
        }
    }
}
