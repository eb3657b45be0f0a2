//! A CPU's `power/pm_qos_resume_latency_us` file: where it is, what its inverted text means, and
//! reading and writing it.

use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cpulist::SYSFS_CPU;
use crate::internal::file::{self, Kind};
use crate::internal::privilege::elevated;
use crate::latency::Latency;

/// A CPU's `power/pm_qos_resume_latency_us` file.
pub(crate) fn resume_latency_path(cpu: u32) -> PathBuf {
    PathBuf::from(format!(
        "{SYSFS_CPU}/cpu{cpu}/power/pm_qos_resume_latency_us"
    ))
}

/// What a CPU's `pm_qos_resume_latency_us` file says, decoded.
///
/// The order is strictness: a smaller limit is stricter, and no constraint is the loosest, so
/// `a.min(b)` is the value that satisfies both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResumeLatency {
    /// A limit in microseconds; `n/a` in the file when it is 0 (zero tolerance).
    Limit(Latency),
    /// `0` in the file: the CPU may enter any idle state.
    Unconstrained,
}

impl ResumeLatency {
    /// The largest limit the file accepts (2147483647 is the kernel's "no constraint", EINVAL).
    pub const MAX_LIMIT_US: u32 = i32::MAX as u32 - 1;

    /// Decodes the file's text (`0`, `n/a` or a decimal number, with or without a newline).
    pub fn parse(text: &str) -> Option<ResumeLatency> {
        match text.trim_end_matches('\n') {
            "0" => Some(ResumeLatency::Unconstrained),
            "n/a" => Some(ResumeLatency::Limit(Latency::ZERO)),
            digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                let us: u32 = digits.parse().ok().filter(|&us| us <= Self::MAX_LIMIT_US)?;
                Latency::from_micros(us).map(ResumeLatency::Limit)
            }
            _ => None,
        }
    }

    /// The value for a limit of `latency`, `None` when the file cannot take it (above
    /// [`ResumeLatency::MAX_LIMIT_US`]).
    pub fn limit(latency: Latency) -> Option<ResumeLatency> {
        (latency.as_micros() <= Self::MAX_LIMIT_US).then_some(ResumeLatency::Limit(latency))
    }

    /// The text to write for this value: the inverse of [`ResumeLatency::parse`].
    pub fn sysfs_text(self) -> String {
        match self {
            ResumeLatency::Unconstrained => "0".to_owned(),
            ResumeLatency::Limit(l) if l == Latency::ZERO => "n/a".to_owned(),
            ResumeLatency::Limit(l) => l.as_micros().to_string(),
        }
    }

    /// CPU `cpu`'s value now (its `power/pm_qos_resume_latency_us`); an error names what the file
    /// holds when it is not a resume-latency value.
    pub fn of_cpu(cpu: u32) -> std::io::Result<ResumeLatency> {
        read_value(cpu)
    }

    /// The value for people, with what the file shows where it surprises: `10 us`,
    /// `0 us (sysfs: n/a)`, `none (sysfs: 0)`.
    pub fn describe(self) -> String {
        match self {
            ResumeLatency::Unconstrained => "none (sysfs: 0)".to_owned(),
            ResumeLatency::Limit(l) if l == Latency::ZERO => "0 us (sysfs: n/a)".to_owned(),
            ResumeLatency::Limit(l) => l.to_string(),
        }
    }

    /// The limit in microseconds, `None` without constraint.
    pub fn limit_us(self) -> Option<u32> {
        match self {
            ResumeLatency::Unconstrained => None,
            ResumeLatency::Limit(l) => Some(l.as_micros()),
        }
    }
}

impl std::fmt::Display for ResumeLatency {
    /// The file's text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sysfs_text())
    }
}

/// Stored as the file's text, so that the registry reads like the files it describes.
impl Serialize for ResumeLatency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.sysfs_text())
    }
}

impl<'de> Deserialize<'de> for ResumeLatency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ResumeLatency::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("'{text}' is not a resume-latency value"))
        })
    }
}

/// Reads CPU `cpu`'s resume-latency file, trimmed.
pub(crate) fn read_cpu(cpu: u32) -> std::io::Result<String> {
    Ok(file::read_small(resume_latency_path(cpu))?
        .trim_end()
        .to_owned())
}

/// Reads and decodes CPU `cpu`'s resume-latency file.
pub(crate) fn read_value(cpu: u32) -> std::io::Result<ResumeLatency> {
    let text = read_cpu(cpu)?;
    ResumeLatency::parse(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("reads '{text}', not a resume-latency value"),
        )
    })
}

/// Writes `value` to CPU `cpu`'s file, in one write as sysfs wants: opened with the privilege of
/// a setuid or capability install raised, for that open alone (the write needs no more).
pub(crate) fn write_value(cpu: u32, value: ResumeLatency) -> std::io::Result<()> {
    let path = resume_latency_path(cpu);
    let fd = elevated(|| {
        file::open(
            None,
            Path::new(&path),
            OFlag::O_WRONLY,
            Mode::empty(),
            Kind::Regular,
        )
    })?;
    std::fs::File::from(fd).write_all(value.sysfs_text().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_written_as_na_and_no_constraint_as_0() {
        assert_eq!(ResumeLatency::Limit(Latency::ZERO).sysfs_text(), "n/a");
        assert_eq!(ResumeLatency::Unconstrained.sysfs_text(), "0");
        assert_eq!(ResumeLatency::Limit(Latency::micros(20)).sysfs_text(), "20");
    }

    #[test]
    fn file_text_decodes_inverted() {
        assert_eq!(
            ResumeLatency::parse("0\n"),
            Some(ResumeLatency::Unconstrained)
        );
        assert_eq!(
            ResumeLatency::parse("n/a\n"),
            Some(ResumeLatency::Limit(Latency::ZERO))
        );
        assert_eq!(
            ResumeLatency::parse("777").and_then(ResumeLatency::limit_us),
            Some(777)
        );
        for bad in ["", "-1", "2147483647", "0x10", "abc", "n/a x"] {
            assert_eq!(ResumeLatency::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn strictness_orders_no_constraint_last() {
        let na = ResumeLatency::Limit(Latency::ZERO);
        let ten = ResumeLatency::Limit(Latency::micros(10));
        assert!(na < ten && ten < ResumeLatency::Unconstrained);
        assert_eq!(ResumeLatency::Unconstrained.min(ten), ten);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(text in ".*") {
            let _ = ResumeLatency::parse(&text);
        }

        #[test]
        fn sysfs_text_round_trips(us in 0u32..=ResumeLatency::MAX_LIMIT_US) {
            let value = ResumeLatency::Limit(Latency::micros(us));
            proptest::prop_assert_eq!(ResumeLatency::parse(&value.sysfs_text()), Some(value));
            proptest::prop_assert_ne!(value.sysfs_text(), "0");
        }
    }
}
