//! Periodic activations on absolute deadlines: [`Periodic`].
//!
//! A loop that sleeps for its period after doing its work drifts: each wake-up comes late by the
//! work and by the wake-up latency, and the lateness adds up. A loop that sleeps *until* a
//! deadline, and advances the deadline by exactly one period, does not drift: a late wake-up is
//! late once. On Linux the sleep is `clock_nanosleep` on `CLOCK_MONOTONIC` with `TIMER_ABSTIME`
//! (what the Python package `abs-sleep` and cyclictest do), which also makes the lateness one
//! number to measure: the time of waking minus the deadline. Elsewhere it is the platform's sleep
//! for the time left.

use std::io;
use std::time::{Duration, Instant};

/// An iterator of deadlines `period` apart on the monotonic clock: each `next()` sleeps until the
/// next deadline and returns it. The time it woke is then `Instant::now()`; `now - deadline` is
/// the wake-up's lateness.
///
/// The deadlines do not drift. A deadline already past when `next()` is called (the work took
/// longer than a period) is returned at once; one more than a period past is skipped, keeping the
/// phase: a long stall costs the activations it missed, not a burst of them afterwards.
///
/// ```no_run
/// use std::time::{Duration, Instant};
/// use lllqos::{Latency, Lease, Periodic};
///
/// let lease = Lease::best_effort(Latency::ZERO);
/// println!("lease acquired: {}", lease.acquired());
/// for deadline in Periodic::new(Duration::from_millis(500)).aligned(Duration::from_secs(1)) {
///     let late = Instant::now().saturating_duration_since(deadline);
///     println!("periodic activation, {:.2} us late", late.as_secs_f64() * 1e6);
/// }
/// ```
#[derive(Debug, Clone)]
#[must_use = "an iterator sleeps only when it is advanced"]
pub struct Periodic {
    period: Duration,
    /// The next deadline.
    next: Instant,
    /// One moment read on both clocks: every deadline converts to the clock's own time (to sleep
    /// to it, to align it, to tell it) by its distance from here, exactly, so that deadlines a
    /// period apart as `Instant`s are a period apart on the clock too.
    anchor: clock::Anchor,
}

impl Periodic {
    /// Deadlines every `period`, the first one `period` from now. A zero period is taken as one
    /// nanosecond.
    pub fn new(period: Duration) -> Periodic {
        let period = period.max(Duration::from_nanos(1));
        let anchor = clock::Anchor::now();
        Periodic {
            period,
            next: anchor.instant + period,
            anchor,
        }
    }

    /// The same deadlines moved to a grid of `align`: the first is the first multiple of `align`
    /// on the clock ([`Periodic::on_clock`]) at or after the first deadline, as abs-sleep's
    /// `align_secs` does, so that loops started apart, or in two programs, activate together. A
    /// zero `align` changes nothing.
    pub fn aligned(self, align: Duration) -> Periodic {
        let align_ns = align.as_nanos();
        if align_ns == 0 {
            return self;
        }
        let first = self.on_clock(self.next).as_nanos();
        let Ok(ahead) = u64::try_from(first.div_ceil(align_ns) * align_ns - first) else {
            return self;
        };
        Periodic {
            next: self.next + Duration::from_nanos(ahead),
            ..self
        }
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The deadline the next `next()` sleeps until (skipped ahead past a stall).
    pub fn deadline(&self) -> Instant {
        self.next
    }

    /// `deadline` (one of these deadlines) as a time on the clock they are slept to and aligned
    /// on, from its start: `CLOCK_MONOTONIC` on Linux (what Python's `time.monotonic()` and
    /// abs-sleep's deadlines read), the system clock since the Unix epoch elsewhere. Deadlines a
    /// period apart are exactly a period apart here too.
    pub fn on_clock(&self, deadline: Instant) -> Duration {
        self.anchor.clock_at(deadline)
    }

    /// Sleeps until the next deadline and returns it, then advances. Signals do not cut the sleep
    /// short: it is resumed to the same deadline.
    pub fn wait(&mut self) -> Instant {
        loop {
            if let Ok(deadline) = self.try_wait() {
                return deadline;
            }
        }
    }

    /// [`Periodic::wait`], for a caller that handles signals itself (an interpreter that runs its
    /// handlers between calls): a signal handler that interrupts the sleep makes it return an
    /// error of kind [`io::ErrorKind::Interrupted`] without advancing, and the next call sleeps to
    /// the same deadline.
    pub fn try_wait(&mut self) -> io::Result<Instant> {
        let deadline = catch_up(self.next, self.period, Instant::now());
        self.anchor.sleep_until(deadline)?;
        self.next = deadline + self.period;
        Ok(deadline)
    }
}

/// The deadline to sleep to at `now`, for a loop whose next deadline is `next`: `next` itself, or,
/// when a whole period or more has passed since it (a stall), the last deadline in phase that is
/// not after `now`, so that the loop goes on at once, in phase, without a burst of the missed ones.
fn catch_up(next: Instant, period: Duration, now: Instant) -> Instant {
    let late = now.saturating_duration_since(next);
    if late < period {
        return next;
    }
    let missed = late.as_nanos() / period.as_nanos();
    // At most `late`, so within `now` and a u64 of nanoseconds (584 years).
    let skip = u64::try_from(missed * period.as_nanos()).unwrap_or(u64::MAX);
    next + Duration::from_nanos(skip)
}

impl Iterator for Periodic {
    type Item = Instant;

    fn next(&mut self) -> Option<Instant> {
        Some(self.wait())
    }
}

#[cfg(target_os = "linux")]
mod clock {
    //! `Instant` is `CLOCK_MONOTONIC` on Linux, but opaque: a deadline converts to the clock's own
    //! time by its distance from one reading of both.

    use std::io;
    use std::time::{Duration, Instant};

    use nix::sys::time::TimeSpec;
    use nix::time::{ClockId, ClockNanosleepFlags, clock_gettime, clock_nanosleep};

    /// One moment on both clocks.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Anchor {
        clock: Duration,
        pub(super) instant: Instant,
    }

    impl Anchor {
        pub(super) fn now() -> Anchor {
            // The clock cannot fail to be read; were it to, the instant alone still paces the loop.
            let clock =
                clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(Duration::ZERO, Duration::from);
            Anchor {
                clock,
                instant: Instant::now(),
            }
        }

        /// `instant` on the clock (an instant before the anchor counts as the anchor).
        pub(super) fn clock_at(&self, instant: Instant) -> Duration {
            self.clock + instant.saturating_duration_since(self.instant)
        }

        /// An absolute sleep to `deadline`; `Interrupted` when a signal handler cut it short.
        pub(super) fn sleep_until(&self, deadline: Instant) -> io::Result<()> {
            if self.clock.is_zero() {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                return Ok(());
            }
            let target = TimeSpec::from_duration(self.clock_at(deadline));
            clock_nanosleep(
                ClockId::CLOCK_MONOTONIC,
                ClockNanosleepFlags::TIMER_ABSTIME,
                &target,
            )
            .map(drop)
            .map_err(io::Error::from)
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod clock {
    //! Without an absolute sleep: the time left, slept again when cut short; deadlines told and
    //! aligned on the system clock (the grid another program sees too, where there is no shared
    //! monotonic clock to align on).

    use std::io;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    /// One moment on both clocks.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Anchor {
        clock: Duration,
        pub(super) instant: Instant,
    }

    impl Anchor {
        pub(super) fn now() -> Anchor {
            let clock = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO);
            Anchor {
                clock,
                instant: Instant::now(),
            }
        }

        pub(super) fn clock_at(&self, instant: Instant) -> Duration {
            self.clock + instant.saturating_duration_since(self.instant)
        }

        pub(super) fn sleep_until(&self, deadline: Instant) -> io::Result<()> {
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_a_period_apart_and_never_early() {
        let period = Duration::from_millis(2);
        let mut periodic = Periodic::new(period);
        let first = periodic.wait();
        assert!(Instant::now() >= first);
        let second = periodic.wait();
        assert_eq!(second - first, period);
        assert!(Instant::now() >= second);
    }

    #[test]
    fn a_stall_skips_the_missed_deadlines_in_phase() {
        let period = Duration::from_millis(2);
        let mut periodic = Periodic::new(period);
        let first = periodic.wait();
        std::thread::sleep(Duration::from_millis(9));
        let after = periodic.wait();
        let gap = after - first;
        assert_eq!(gap.as_nanos() % period.as_nanos(), 0, "{gap:?} in phase");
        assert!(gap >= Duration::from_millis(8), "{gap:?}: missed skipped");
    }

    proptest::proptest! {
        /// Whatever the stall: the deadline keeps the phase, is never before the one due, and is
        /// less than a period behind `now` (no burst of missed deadlines follows); without a
        /// whole period missed, it is the one due.
        #[test]
        fn catching_up_keeps_the_phase_without_a_burst(
            period_ns in 1u64..10_000_000_000,
            late_ns in 0u64..1_000_000_000_000_000,
            early in proptest::bool::ANY,
        ) {
            let next = Instant::now() + Duration::from_secs(1);
            let period = Duration::from_nanos(period_ns);
            let now = if early {
                next - Duration::from_nanos(late_ns % 1_000_000_000)
            } else {
                next + Duration::from_nanos(late_ns)
            };
            let deadline = catch_up(next, period, now);
            proptest::prop_assert!(deadline >= next);
            proptest::prop_assert_eq!((deadline - next).as_nanos() % period.as_nanos(), 0);
            proptest::prop_assert!(deadline <= now.max(next));
            proptest::prop_assert!(deadline + period > now);
            if now < next + period {
                proptest::prop_assert_eq!(deadline, next);
            }
        }
    }

    #[test]
    fn aligned_deadlines_fall_on_the_grid_at_or_after_the_first_one() {
        let align = Duration::from_millis(5);
        let plain = Periodic::new(Duration::from_millis(1));
        let first = plain.on_clock(plain.deadline());
        let mut periodic = plain.aligned(align);
        let aligned = periodic.on_clock(periodic.deadline());
        assert_eq!(aligned.as_nanos() % align.as_nanos(), 0, "{aligned:?}");
        assert!(
            aligned >= first && aligned - first < align,
            "{first:?} {aligned:?}"
        );
        // Each deadline a period on, exactly, on the clock too.
        let one = periodic.wait();
        let two = periodic.wait();
        assert_eq!(
            periodic.on_clock(two) - periodic.on_clock(one),
            Duration::from_millis(1)
        );
        let same = Periodic::new(Duration::from_millis(1)).aligned(Duration::ZERO);
        assert!(same.deadline() > Instant::now());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn deadlines_are_told_on_the_monotonic_clock() {
        let periodic = Periodic::new(Duration::from_millis(3));
        let now =
            Duration::from(nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap());
        let told = periodic.on_clock(periodic.deadline());
        let ahead = told.saturating_sub(now);
        assert!(
            told > now && ahead <= Duration::from_millis(3),
            "{now:?} {told:?}"
        );
    }
}
