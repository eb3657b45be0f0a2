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

/// A duration as lllqos's options take it (`measure --duration`): seconds, or with a unit (`ms`,
/// `s`, `m`); decimals allowed, exact to the millisecond. More than zero, at most 24 hours.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let fail = |why: &str| format!("invalid duration '{text}': {why}");
    // Milliseconds per unit.
    const UNITS: &[(&str, u128)] = &[("ms", 1), ("", 1000), ("s", 1000), ("m", 60_000)];
    let ms = scan(text, UNITS).map_err(|e| {
        fail(match e {
            Scan::UnknownUnit => "unknown unit (use ms, s or m)",
            Scan::NotANumber => "expected a number such as 5, 0.5 or 500ms",
            Scan::TooLarge => "at most 24 hours",
        })
    })?;
    if ms == 0 && text.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        return Err(fail(
            "less than a millisecond (durations are counted in milliseconds)",
        ));
    }
    if ms == 0 {
        return Err(fail("must be more than zero"));
    }
    if ms > 24 * 3_600_000 {
        return Err(fail("at most 24 hours"));
    }
    Ok(Duration::from_millis(ms as u64))
}

/// Why [`scan`] refused a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    UnknownUnit,
    NotANumber,
    TooLarge,
}

/// The one scanner of numbers with a unit, for latencies and durations: `N`, `N.F`, either followed
/// by one of `units` (name, and how many of the smallest unit it is). Returns the value in the
/// smallest unit, a fraction of it rounded down. No sign, no exponent, digits on both sides of a
/// point; at most 20 significant digits before it (far beyond any value the callers accept, and
/// within u128 after scaling).
fn scan(text: &str, units: &[(&str, u128)]) -> std::result::Result<u128, Scan> {
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_len);
    let scale = units
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|&(_, scale)| scale)
        .ok_or(Scan::UnknownUnit)?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !is_digits(whole) || (number.contains('.') && !is_digits(fraction)) {
        return Err(Scan::NotANumber);
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > 20 {
        return Err(Scan::TooLarge);
    }
    let fraction = &fraction[..fraction.len().min(20)];
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| Scan::TooLarge)?
    };
    let mut value = whole.checked_mul(scale).ok_or(Scan::TooLarge)?;
    if !fraction.is_empty() {
        let digits: u128 = fraction.parse().map_err(|_| Scan::NotANumber)?;
        value = value.saturating_add(digits * scale / 10u128.pow(fraction.len() as u32));
    }
    Ok(value)
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
            if let Err(err) = parse_duration(&text) {
                proptest::prop_assert!(err.contains(&format!("'{}'", text)), "{}", err);
            }
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

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert!(
            parse_duration("0.0001")
                .unwrap_err()
                .contains("less than a millisecond")
        );
        assert!(parse_duration("0").unwrap_err().contains("more than zero"));
        for bad in ["", "0", "-1", "x", "5h", "1e3", ".5", "5.", "0.0001"] {
            assert!(
                parse_duration(bad)
                    .unwrap_err()
                    .contains(&format!("'{bad}'")),
                "{bad}"
            );
        }
    }
}
