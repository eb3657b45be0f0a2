//! Idle states laid out as `/sys/devices/system/cpu` is, for `LLLQOS_SYSFS_CPU`: the idle-state
//! logic of `--max-state`, `status`, `measure` and `metrics` is tested on every machine, cpuidle
//! driver or not, and on the kernel's own states where it has some. Only idle states are read from
//! such a tree: the node and the per-CPU files the tests read back are still the kernel's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The kernel's tree.
pub const SYSFS_CPU: &str = "/sys/devices/system/cpu";

/// One idle state to lay out: its name, exit latency and counters.
#[derive(Debug, Clone)]
pub struct State {
    pub name: &'static str,
    pub latency_us: u32,
    pub time_us: u64,
    pub entries: u64,
}

impl State {
    /// A state with its counters at zero.
    pub const fn new(name: &'static str, latency_us: u32) -> State {
        State {
            name,
            latency_us,
            time_us: 0,
            entries: 0,
        }
    }
}

/// Every CPU's idle states, as read from a tree: cpu -> [(name, exit latency us)].
pub type Listing = BTreeMap<u32, Vec<(String, u32)>>;

/// A tree in a directory of the test's, removed with it.
pub struct IdleTree {
    dir: tempfile::TempDir,
}

impl IdleTree {
    /// A tree where each CPU of this machine has the states `states(cpu)` gives, enabled, under
    /// the driver `test_idle` and the governor `menu`.
    pub fn lay_out(states: impl Fn(u32) -> Vec<State>) -> IdleTree {
        let tree = IdleTree {
            dir: tempfile::Builder::new()
                .prefix("lllqos-cpuidle-")
                .tempdir()
                .unwrap(),
        };
        let root = tree.path();
        std::fs::create_dir_all(root.join("cpuidle")).unwrap();
        std::fs::write(root.join("cpuidle/current_driver"), "test_idle\n").unwrap();
        std::fs::write(root.join("cpuidle/current_governor"), "menu\n").unwrap();
        for cpu in super::cpus() {
            for (index, state) in states(cpu).iter().enumerate() {
                let dir = tree.state(cpu, index);
                std::fs::create_dir_all(&dir).unwrap();
                for (file, text) in [
                    ("name", state.name.to_owned()),
                    ("latency", state.latency_us.to_string()),
                    ("time", state.time_us.to_string()),
                    ("usage", state.entries.to_string()),
                    ("disable", "0".to_owned()),
                ] {
                    std::fs::write(dir.join(file), format!("{text}\n")).unwrap();
                }
            }
        }
        tree
    }

    /// The tree's root, for `LLLQOS_SYSFS_CPU`.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The directory of a CPU's idle state.
    pub fn state(&self, cpu: u32, index: usize) -> PathBuf {
        state_dir(self.path(), cpu, index)
    }
}

/// The directory of a CPU's idle state in the tree at `root`.
pub fn state_dir(root: &Path, cpu: u32, index: usize) -> PathBuf {
    root.join(format!("cpu{cpu}/cpuidle/state{index}"))
}

/// Every CPU's idle states in the tree at `root`, read as the test's own reader (not the
/// library's): CPUs without states are left out.
pub fn listing(root: &Path) -> Listing {
    let mut all = BTreeMap::new();
    for cpu in super::cpus() {
        let mut list = Vec::new();
        for index in 0.. {
            let dir = state_dir(root, cpu, index);
            let Ok(name) = std::fs::read_to_string(dir.join("name")) else {
                break;
            };
            let latency = std::fs::read_to_string(dir.join("latency")).unwrap();
            list.push((name.trim().to_owned(), latency.trim().parse().unwrap()));
        }
        if !list.is_empty() {
            all.insert(cpu, list);
        }
    }
    all
}

/// Where a test reads idle states: a tree it laid out (always), then the kernel's own where it has
/// idle states. Each runs lllqos with `LLLQOS_SYSFS_CPU` set accordingly.
pub struct Source {
    pub tree: Option<IdleTree>,
    pub states: Listing,
}

impl Source {
    /// The laid-out `tree` and, where this kernel lists idle states, the kernel's.
    pub fn both(tree: IdleTree) -> Vec<Source> {
        let laid_out = Source {
            states: listing(tree.path()),
            tree: Some(tree),
        };
        let kernel = listing(Path::new(SYSFS_CPU));
        if kernel.is_empty() {
            println!("(the kernel lists no idle states: only the laid-out tree is tested)");
            return vec![laid_out];
        }
        vec![
            laid_out,
            Source {
                tree: None,
                states: kernel,
            },
        ]
    }

    /// `lllqos` with these arguments, reading idle states from this source.
    pub fn lllqos<I, S>(&self, args: I) -> assert_cmd::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = super::lllqos(args);
        if let Some(tree) = &self.tree {
            command.env("LLLQOS_SYSFS_CPU", tree.path());
        }
        command
    }

    /// The root the states are read from.
    pub fn root(&self) -> &Path {
        self.tree
            .as_ref()
            .map_or(Path::new(SYSFS_CPU), IdleTree::path)
    }

    /// The states' names, sorted, each once.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = (self.states.values().flatten())
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The exit latency `--max-state name` places: the smallest of that state's over all CPUs.
    pub fn global_latency(&self, name: &str) -> u32 {
        (self.states.values().flatten())
            .filter(|(n, _)| n == name)
            .map(|(_, us)| *us)
            .min()
            .unwrap()
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tree {
            Some(tree) => write!(f, "the tree at {}", tree.path().display()),
            None => write!(f, "the kernel's idle states"),
        }
    }
}
