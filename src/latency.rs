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

/// A CPU wake-up latency limit in whole microseconds, `0..=i32::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Latency(u32);

impl Latency {
    /// Zero tolerance: the CPU may only poll, never enter a real idle state.
    pub const ZERO: Latency = Latency(0);
    /// The largest value the kernel accepts, `i32::MAX` microseconds.
    pub const MAX: Latency = Latency(i32::MAX as u32);
    /// What the global node reads when nobody constrains it (`PM_QOS_CPU_LATENCY_DEFAULT_VALUE`).
    pub const UNCONSTRAINED: Latency = Latency(2_000_000_000);

    /// A latency of `us` microseconds, or `None` above [`Latency::MAX`].
    pub fn from_us(us: u32) -> Option<Latency> {
        (us <= Latency::MAX.0).then_some(Latency(us))
    }

    /// The value in microseconds.
    pub fn as_us(self) -> u32 {
        self.0
    }

    /// The value as a limit in force, for people: `no constraint` for [`Latency::UNCONSTRAINED`]
    /// and above (a request looser than the kernel's default constrains nothing).
    pub fn describe_limit(self) -> String {
        if self >= Latency::UNCONSTRAINED {
            "no constraint".to_owned()
        } else {
            self.to_string()
        }
    }

    /// The value as the kernel's `s32`.
    pub fn as_i32(self) -> i32 {
        // Cannot truncate: the constructor keeps the value at most i32::MAX.
        self.0 as i32
    }
}

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
        let number_len = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(number_len);
        // Nanoseconds per unit; the number is converted to nanoseconds, then rounded down to us.
        let scale: u128 = match unit {
            "ns" => 1,
            "" | "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            _ => return Err(fail("unknown unit (use ns, us, µs, ms or s)")),
        };
        let (whole, fraction) = match number.split_once('.') {
            Some((w, f)) => (w, f),
            None => (number, ""),
        };
        let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !is_digits(whole) || (number.contains('.') && !is_digits(fraction)) {
            return Err(fail("expected a number such as 50, 50us or 0.5ms"));
        }
        // Anything with more than 40 significant digits is far beyond i32::MAX microseconds; the
        // limit keeps the arithmetic below in range of u128.
        let whole = whole.trim_start_matches('0');
        if whole.len() > 20 {
            return Err(fail("too large (the maximum is 2147483647 us)"));
        }
        let fraction = &fraction[..fraction.len().min(20)];
        let whole_value: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().unwrap_or(u128::MAX)
        };
        let mut ns = whole_value.saturating_mul(scale);
        if !fraction.is_empty() {
            let digits: u128 = fraction.parse().unwrap_or(0);
            ns = ns.saturating_add(digits * scale / 10u128.pow(fraction.len() as u32));
        }
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
        text.parse::<Latency>().unwrap().as_us()
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
        fn number_like_text_never_panics(text in "[-+0-9.]{0,30}(ns|us|µs|ms|s|x)?") {
            let _ = text.parse::<Latency>();
        }

        #[test]
        fn every_unit_scales_exactly(us in 0u32..=i32::MAX as u32) {
            proptest::prop_assert_eq!(us.to_string().parse::<Latency>().unwrap().as_us(), us);
            proptest::prop_assert_eq!(format!("{us}us").parse::<Latency>().unwrap().as_us(), us);
            proptest::prop_assert_eq!(format!("{}ns", u64::from(us) * 1000 + 999).parse::<Latency>().unwrap().as_us(), us);
            let ms = format!("{}.{:03}ms", us / 1000, us % 1000);
            proptest::prop_assert_eq!(ms.parse::<Latency>().unwrap().as_us(), us);
        }
    }
}
