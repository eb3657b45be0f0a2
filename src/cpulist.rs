//! CPU lists in the kernel's syntax: `0-3,8,10-11` (as in `/sys/devices/system/cpu/online`), and
//! `taskset -c`'s strides, `0-10:2`.
//!
//! Parsing is syntax only; whether the CPUs exist is a question for the machine, which the per-CPU
//! constraint asks before it changes anything on any CPU.

use std::fmt;
use std::str::FromStr;

/// Where the kernel describes CPUs.
pub(crate) const SYSFS_CPU: &str = "/sys/devices/system/cpu";

/// The largest CPU number accepted (the kernel's NR_CPUS is at most 8192).
const MAX_CPU: u32 = 65_535;

/// A non-empty, sorted set of CPU numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CpuList(Vec<u32>);

impl CpuList {
    /// A list of these CPUs (sorted, duplicates dropped), or `None` if empty.
    pub fn new(cpus: impl IntoIterator<Item = u32>) -> Option<CpuList> {
        let mut cpus: Vec<u32> = cpus.into_iter().collect();
        cpus.sort_unstable();
        cpus.dedup();
        (!cpus.is_empty()).then_some(CpuList(cpus))
    }

    /// The CPUs this process may run on (`sched_getaffinity`): `--cpu auto`.
    pub fn affinity() -> std::io::Result<CpuList> {
        let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))?;
        let cpus = (0..nix::sched::CpuSet::count() as u32)
            .filter(|&cpu| set.is_set(cpu as usize).unwrap_or(false));
        CpuList::new(cpus).ok_or_else(|| std::io::Error::other("empty affinity mask"))
    }

    /// `CPU 3` or `CPUs 0-3,8`: the list after its noun, singular for a single CPU.
    pub fn describe(&self) -> String {
        let noun = if self.0.len() == 1 { "CPU" } else { "CPUs" };
        format!("{noun} {self}")
    }

    /// The CPU numbers, ascending.
    pub fn cpus(&self) -> &[u32] {
        &self.0
    }

    /// The CPUs the kernel describes (`cpuN` directories under `/sys/devices/system/cpu`), online
    /// or not; `None` where it describes none (no sysfs).
    pub fn listed() -> Option<CpuList> {
        CpuList::new(listed_cpus())
    }

    /// The CPUs present on this machine (`/sys/devices/system/cpu/present`).
    pub fn present() -> Option<CpuList> {
        crate::internal::file::read_small(format!("{SYSFS_CPU}/present"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// The CPUs the kernel describes (`cpuN` directories under `/sys/devices/system/cpu`), ascending.
pub(crate) fn listed_cpus() -> Vec<u32> {
    listed_cpus_in(std::path::Path::new(SYSFS_CPU))
}

/// The CPUs a tree laid out as `/sys/devices/system/cpu` describes (its `cpuN` directories).
pub(crate) fn listed_cpus_in(root: &std::path::Path) -> Vec<u32> {
    let mut cpus: Vec<u32> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            entry
                .ok()?
                .file_name()
                .to_str()?
                .strip_prefix("cpu")?
                .parse()
                .ok()
        })
        .collect();
    cpus.sort_unstable();
    cpus
}

/// Whether CPU `cpu` is online (a CPU without an `online` file, such as CPU 0 on many machines,
/// cannot be taken offline, and is).
pub fn is_online(cpu: u32) -> bool {
    crate::internal::file::read_small(format!("{SYSFS_CPU}/cpu{cpu}/online"))
        .map_or(true, |text| text.trim() == "1")
}

impl fmt::Display for CpuList {
    /// The compact form: `0-3,8`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if end == start {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
            i += 1;
        }
        Ok(())
    }
}

/// Why a CPU list was refused; the message names the list and the part at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseCpuListError(String);

impl fmt::Display for ParseCpuListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseCpuListError {}

impl FromStr for CpuList {
    type Err = ParseCpuListError;

    fn from_str(text: &str) -> Result<CpuList, ParseCpuListError> {
        let fail = |why: String| ParseCpuListError(format!("invalid CPU list '{text}': {why}"));
        if text.is_empty() {
            return Err(fail("empty".into()));
        }
        let number = |s: &str| -> Result<u32, ParseCpuListError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail(format!("'{s}' is not a CPU number")));
            }
            match s.parse::<u32>() {
                Ok(n) if n <= MAX_CPU => Ok(n),
                _ => Err(fail(format!("CPU {s} is out of range"))),
            }
        };
        let mut cpus = Vec::new();
        for item in text.split(',') {
            if item.is_empty() {
                return Err(fail("empty item".into()));
            }
            let (range, stride) = match item.split_once(':') {
                Some((range, stride)) => (range, Some(number(stride)?)),
                None => (item, None),
            };
            let (start, end) = match (range.split_once('-'), stride) {
                (Some((a, b)), _) => (number(a)?, number(b)?),
                (None, None) => (number(range)?, number(range)?),
                (None, Some(_)) => return Err(fail(format!("a stride needs a range: '{item}'"))),
            };
            let stride = stride.unwrap_or(1);
            if start > end {
                return Err(fail(format!("reversed range {start}-{end}")));
            }
            if stride == 0 {
                return Err(fail(format!("zero stride in '{item}'")));
            }
            cpus.extend((start..=end).step_by(stride as usize));
        }
        // Every item was parsed and named at least one CPU; an empty list was refused above.
        CpuList::new(cpus).ok_or_else(|| fail("empty".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> Vec<u32> {
        text.parse::<CpuList>().unwrap().cpus().to_vec()
    }

    #[test]
    fn kernel_syntax() {
        assert_eq!(list("0"), [0]);
        assert_eq!(list("0-3,8,10-11"), [0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(list("3,1,1,2"), [1, 2, 3]);
        assert_eq!(list("0-10:4"), [0, 4, 8]);
        assert_eq!(list("5-5"), [5]);
    }

    #[test]
    fn a_single_cpu_is_singular() {
        assert_eq!(list_of("0").describe(), "CPU 0");
        assert_eq!(list_of("0,2").describe(), "CPUs 0,2");
    }

    fn list_of(text: &str) -> CpuList {
        text.parse().unwrap()
    }

    #[test]
    fn compact_display() {
        for text in ["0", "0-3,8,10-11", "1,3,5", "0-1"] {
            assert_eq!(text.parse::<CpuList>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn malformed_lists_are_refused_with_the_list_named() {
        for bad in [
            "",
            ",",
            "1,",
            ",1",
            "a",
            "1-",
            "-1",
            "3-1",
            "1--2",
            "1 ",
            " 1",
            "0x1",
            "1-3:0",
            "4:2",
            "99999999999",
            "70000",
        ] {
            let err = bad.parse::<CpuList>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid CPU list '{bad}'")),
                "{err}"
            );
        }
        assert!(
            "3-1"
                .parse::<CpuList>()
                .unwrap_err()
                .to_string()
                .contains("reversed range 3-1")
        );
    }
}
