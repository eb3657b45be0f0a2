//! Latency values: what `--latency` accepts and how it is shown.
//!
//! The kernel speaks whole microseconds in a signed 32-bit integer, so a [`Latency`] is a number of
//! microseconds from 0 to `i32::MAX`. Users speak units: `50us`, `0.5ms`, `20 µs`. The parser is
//! exact (decimal arithmetic on integers, no floating point), and anything it cannot read exactly is
//! an error that names the value: a latency tool must never guess.
//!
//! A value below one microsecond (`800ns`, `0.3us`) rounds *down*: asking for a tighter limit than
//! written is the safe side, a looser one would break the promise.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::internal::decimal::{Scan, scan};

/// A CPU wake-up latency limit in whole microseconds, `0..=i32::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Latency(u32);

impl Latency {
    /// Zero tolerance: the CPU may only poll, never enter a real idle state.
    pub const ZERO: Latency = Latency(0);
    /// The largest value the kernel accepts, `i32::MAX` microseconds.
    pub const MAX: Latency = Latency(i32::MAX as u32);
    /// What the global node reads when nobody constrains it (`PM_QOS_CPU_LATENCY_DEFAULT_VALUE`):
    /// a limit at or above it constrains nothing.
    #[cfg(target_os = "linux")]
    pub(crate) const UNCONSTRAINED: Latency = Latency(2_000_000_000);

    /// A latency of `us` microseconds, or `None` above [`Latency::MAX`].
    pub const fn from_micros(us: u32) -> Option<Latency> {
        if us <= Latency::MAX.0 {
            Some(Latency(us))
        } else {
            None
        }
    }

    /// A latency of `us` microseconds, for constants: above [`Latency::MAX`] it fails to compile
    /// in a `const` (and panics elsewhere).
    ///
    /// ```
    /// use lllqos::Latency;
    /// const AUDIO: Latency = Latency::micros(50);
    /// assert_eq!(AUDIO.as_micros(), 50);
    /// ```
    pub const fn micros(us: u32) -> Latency {
        match Latency::from_micros(us) {
            Some(latency) => latency,
            None => panic!("a latency is at most i32::MAX microseconds"),
        }
    }

    /// The value in microseconds.
    pub const fn as_micros(self) -> u32 {
        self.0
    }

    /// The value as a [`Duration`].
    pub const fn as_duration(self) -> Duration {
        Duration::from_micros(self.0 as u64)
    }

    /// The value as the kernel's `s32`.
    pub fn as_i32(self) -> i32 {
        // Cannot truncate: the constructor keeps the value at most i32::MAX.
        self.0 as i32
    }
}

/// A duration that is not a whole number of microseconds is rounded down (the stricter limit), as
/// the parser does; one above [`Latency::MAX`] is an error.
impl TryFrom<Duration> for Latency {
    type Error = LatencyOutOfRange;

    fn try_from(duration: Duration) -> Result<Latency, LatencyOutOfRange> {
        u32::try_from(duration.as_micros())
            .ok()
            .and_then(Latency::from_micros)
            .ok_or(LatencyOutOfRange)
    }
}

/// A duration above [`Latency::MAX`] (about 35 minutes), the largest limit the kernel takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyOutOfRange;

impl fmt::Display for LatencyOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a latency is at most {} us", Latency::MAX.0)
    }
}

impl std::error::Error for LatencyOutOfRange {}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} us", self.0)
    }
}

/// Why a latency value was refused. The message names the value as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseLatencyError {
    value: String,
    reason: &'static str,
}

impl fmt::Display for ParseLatencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid latency '{}': {}", self.value, self.reason)
    }
}

impl std::error::Error for ParseLatencyError {}

impl FromStr for Latency {
    type Err = ParseLatencyError;

    /// Parses `N`, `N.F` (microseconds) or either followed by a unit: `ns`, `us`, `µs`, `ms`, `s`.
    fn from_str(text: &str) -> Result<Latency, ParseLatencyError> {
        let fail = |reason| ParseLatencyError {
            value: text.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(fail("empty value"));
        }
        if text.starts_with('-') {
            return Err(fail("negative values are not latencies"));
        }
        // Nanoseconds per unit; the value is rounded down to whole microseconds.
        const UNITS: &[(&str, u128)] = &[
            ("ns", 1),
            ("", 1_000),
            ("us", 1_000),
            ("µs", 1_000),
            ("μs", 1_000),
            ("ms", 1_000_000),
            ("s", 1_000_000_000),
        ];
        let ns = scan(text, UNITS).map_err(|e| {
            fail(match e {
                Scan::UnknownUnit => "unknown unit (use ns, us, µs, ms or s)",
                Scan::NotANumber => "expected a number such as 50, 50us or 0.5ms",
                Scan::TooLarge => "too large (the maximum is 2147483647 us)",
            })
        })?;
        let us = ns / 1_000;
        if us > u128::from(Latency::MAX.0) {
            return Err(fail("too large (the maximum is 2147483647 us)"));
        }
        Ok(Latency(us as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(text: &str) -> u32 {
        text.parse::<Latency>().unwrap().as_micros()
    }

    #[test]
    fn plain_integers_are_microseconds() {
        assert_eq!(us("0"), 0);
        assert_eq!(us("50"), 50);
        assert_eq!(us("007"), 7);
        assert_eq!(us("2147483647"), 2_147_483_647);
    }

    #[test]
    fn units_scale_exactly() {
        assert_eq!(us("50us"), 50);
        assert_eq!(us("50µs"), 50);
        assert_eq!(us("2000ns"), 2);
        assert_eq!(us("0.5ms"), 500);
        assert_eq!(us("1.25ms"), 1250);
        assert_eq!(us("2s"), 2_000_000);
        assert_eq!(us("2147.483647s"), 2_147_483_647);
    }

    #[test]
    fn sub_microsecond_rounds_down() {
        assert_eq!(us("999ns"), 0);
        assert_eq!(us("1.9"), 1);
        assert_eq!(us("0.0000001s"), 0);
        assert_eq!(us("1999ns"), 1);
    }

    #[test]
    fn bad_values_are_refused_with_the_value_named() {
        for bad in [
            "",
            "-1",
            "-0",
            "abc",
            "1e3",
            "5 us",
            " 5",
            "5us ",
            ".5",
            "5.",
            "1.2.3",
            "5xs",
            "us",
            "+5",
            "2147483648",
            "2147.483648s",
            "99999999999999999999999999999999999",
        ] {
            let err = bad.parse::<Latency>().unwrap_err();
            assert!(err.to_string().contains(&format!("'{bad}'")), "{err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_is_refused_naming_it(text in ".*") {
            match text.parse::<Latency>() {
                Ok(latency) => proptest::prop_assert!(latency <= Latency::MAX),
                Err(err) => {
                    let named = err.to_string().contains(&format!("'{}'", text));
                    proptest::prop_assert!(named, "{}", err);
                }
            }
        }

        #[test]
        fn number_like_text_never_panics(text in "[-+0-9.]{0,30}(ns|us|µs|ms|s|m|x)?") {
            let _ = text.parse::<Latency>();
        }

        #[test]
        fn every_unit_scales_exactly(us in 0u32..=i32::MAX as u32) {
            proptest::prop_assert_eq!(us.to_string().parse::<Latency>().unwrap().as_micros(), us);
            proptest::prop_assert_eq!(format!("{us}us").parse::<Latency>().unwrap().as_micros(), us);
            proptest::prop_assert_eq!(format!("{}ns", u64::from(us) * 1000 + 999).parse::<Latency>().unwrap().as_micros(), us);
            let ms = format!("{}.{:03}ms", us / 1000, us % 1000);
            proptest::prop_assert_eq!(ms.parse::<Latency>().unwrap().as_micros(), us);
        }
    }

    #[test]
    fn durations_convert_rounding_down_and_refusing_too_large() {
        assert_eq!(
            Latency::try_from(Duration::from_nanos(1_999)),
            Ok(Latency::micros(1))
        );
        assert_eq!(Latency::micros(7).as_duration(), Duration::from_micros(7));
        assert!(Latency::try_from(Duration::from_secs(3600)).is_err());
        assert_eq!(
            Latency::try_from(Latency::MAX.as_duration()),
            Ok(Latency::MAX)
        );
    }
}
