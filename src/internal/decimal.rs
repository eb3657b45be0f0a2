//! Decimal numbers with a unit, read exactly: `50`, `0.5ms`, `2147.483647s`.
//!
//! The one scanner behind the library's latencies (`50us`) and the `lllqos` command's durations
//! (`--duration 0.5`): both crates declare this module from this one file. Integer arithmetic
//! only: what cannot be read exactly is refused, never guessed.

/// Why [`scan`] refused a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// The text after the number is none of the units.
    UnknownUnit,
    /// The number is not digits, or digits on both sides of one point.
    NotANumber,
    /// More digits than any value a caller takes.
    TooLarge,
}

/// The one scanner of numbers with a unit, for latencies and durations: `N`, `N.F`, either followed
/// by one of `units` (name, and how many of the smallest unit it is). Returns the value in the
/// smallest unit, a fraction of it rounded down. No sign, no exponent, digits on both sides of a
/// point; at most 20 significant digits before it (far beyond any value the callers accept, and
/// within u128 after scaling).
pub fn scan(text: &str, units: &[(&str, u128)]) -> Result<u128, Scan> {
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
