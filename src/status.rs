//! `lllqos status`: what is in force, who holds it, and what it does to idle states.
//!
//! The kernel has no interface that lists the holders of `/dev/cpu_dma_latency`, but a holder is a
//! process with a file descriptor open on the node, and `/proc/PID/fd` shows those (all of them to
//! root, a user's own otherwise). Together with the per-CPU values, the idle states each CPU may
//! still enter, and lllqos's own registry, that answers "who is holding what?" in one command.
//!
//! Everything is collected into [`Status`], which is both the `--json` document (a stable interface,
//! documented in docs/json.md) and the source of the human summary. What cannot be read is said in
//! place of the value, and `status` still succeeds: a diagnosis tool must not fail when the
//! situation is unusual.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::app::describe_limit;
use crate::oserror::os_message;
use lllqos::idle;
use lllqos::lease::{CPU_DMA_LATENCY, CPU_WAKEUP_LATENCY, read_limit};
use lllqos::percpu::{self, ResumeLatency};
use lllqos::{CpuList, Latency};

/// Everything `lllqos status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The CPU latency limit in force (`null`: no constraint): `cpu_latency_us`, and
    /// `cpu_latency_error` when it cannot be read.
    #[serde(flatten)]
    pub cpu_latency: Reading<u32, CpuLatencyKeys>,
    /// Processes with the node open, lllqos status itself excluded.
    pub holders: Vec<Process>,
    /// False when some processes' descriptors could not be inspected (not root).
    pub holders_complete: bool,
    pub cpuidle: Cpuidle,
    pub cpus: Vec<Cpu>,
    /// lllqos's per-CPU registry; `None` when nothing is registered.
    pub registry: Option<RegistryStatus>,
    /// `/dev/cpu_wakeup_latency` (Linux 6.19+); `None` when the kernel has no such node.
    pub wakeup_latency: Option<WakeupLatency>,
}

/// A value read from the system (`None`: nothing is set), or why it could not be read. In JSON, two
/// keys named by `K`: the value (`null` when unreadable), and the error only when there is one.
#[derive(Debug, Clone)]
pub struct Reading<T, K> {
    pub result: Result<Option<T>, String>,
    keys: std::marker::PhantomData<K>,
}

impl<T, K> Reading<T, K> {
    pub fn new(result: Result<Option<T>, String>) -> Reading<T, K> {
        Reading {
            result,
            keys: std::marker::PhantomData,
        }
    }

    /// The value, `None` when there is none or it could not be read.
    pub fn value(&self) -> Option<&T> {
        self.result.as_ref().ok().and_then(Option::as_ref)
    }
}

/// The JSON keys of a [`Reading`].
pub trait Keys {
    const VALUE: &'static str;
    const ERROR: &'static str;
}

#[derive(Debug, Clone)]
pub struct CpuLatencyKeys;
impl Keys for CpuLatencyKeys {
    const VALUE: &'static str = "cpu_latency_us";
    const ERROR: &'static str = "cpu_latency_error";
}

#[derive(Debug, Clone)]
pub struct ResumeLatencyKeys;
impl Keys for ResumeLatencyKeys {
    const VALUE: &'static str = "resume_latency_us";
    const ERROR: &'static str = "resume_latency_error";
}

#[derive(Debug, Clone)]
pub struct WakeupLatencyKeys;
impl Keys for WakeupLatencyKeys {
    const VALUE: &'static str = "limit_us";
    const ERROR: &'static str = "error";
}

impl<T: Serialize, K: Keys> Serialize for Reading<T, K> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(K::VALUE, &self.value())?;
        if let Err(error) = &self.result {
            map.serialize_entry(K::ERROR, error)?;
        }
        map.end()
    }
}

/// A process holding a PM QoS node open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    pub pid: i32,
    pub user: String,
    pub command: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cpuidle {
    /// `None` when the kernel has no cpuidle (no `/sys/devices/system/cpu/cpuidle`).
    pub driver: Option<String>,
    pub governor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cpu {
    pub cpu: u32,
    pub online: bool,
    /// `resume_latency_us`: `None` = no constraint (`0` in sysfs), `Some(0)` = zero tolerance
    /// (`n/a`); and `resume_latency_error` when it cannot be read.
    #[serde(flatten)]
    pub resume_latency: Reading<u32, ResumeLatencyKeys>,
    /// The limit this CPU obeys: the smaller of the global limit and its own; `None` = none.
    pub effective_limit_us: Option<u32>,
    pub idle_states: Vec<CpuState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
/// An idle state of one CPU, judged against the CPU's effective limit.
pub struct CpuState {
    pub name: String,
    pub exit_latency_us: u32,
    pub disabled: bool,
    /// Not disabled, and its exit latency is within the CPU's effective limit.
    pub allowed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegistryStatus {
    pub path: String,
    /// Why the registry could not be read (not root, corrupt); then the lists are empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub holders: Vec<RegistryHolder>,
    /// Per CPU: the value found before the first holder, and the value lllqos last wrote.
    pub cpus: BTreeMap<u32, RegistryCpu>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegistryHolder {
    pub pid: i32,
    pub cpus: String,
    pub latency_us: u32,
    /// False for a holder that died without releasing (the next lllqos run drops it).
    pub live: bool,
    /// A live holder's command line (`null` for a dead one, or one that cannot be read).
    pub command: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegistryCpu {
    pub original: String,
    pub written: String,
    /// The value lllqos is about to write, while a change is under way (or was, when its holder
    /// was killed during it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WakeupLatency {
    /// `limit_us`, and `error` when it cannot be read.
    #[serde(flatten)]
    pub limit: Reading<u32, WakeupLatencyKeys>,
    pub holders: Vec<Process>,
}

/// Collects the status of this machine.
pub fn collect() -> Status {
    let cpu_latency = limit(CPU_DMA_LATENCY);
    let scan = scan_holders(&[CPU_DMA_LATENCY, CPU_WAKEUP_LATENCY]);
    let cpuidle = Cpuidle {
        driver: idle::driver(),
        governor: idle::governor(),
    };
    let listed = CpuList::listed();
    let cpus = (listed.as_ref().map_or(&[][..], |l| l.cpus()).iter())
        .map(|&cpu| collect_cpu(cpu, cpu_latency.value().copied()))
        .collect();
    let wakeup_latency = Path::new(CPU_WAKEUP_LATENCY)
        .exists()
        .then(|| WakeupLatency {
            limit: limit(CPU_WAKEUP_LATENCY),
            holders: scan.holders[1].clone(),
        });
    Status {
        cpu_latency,
        holders: scan.holders[0].clone(),
        holders_complete: scan.complete,
        cpuidle,
        cpus,
        registry: registry_status(),
        wakeup_latency,
    }
}

/// A node's limit in microseconds, `None` for no constraint, or why it cannot be read.
fn limit<K>(node: &str) -> Reading<u32, K> {
    Reading::new(match read_limit(node) {
        Ok(limit) => Ok(limit.map(|l| l.as_micros())),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(format!("{}: run as root to read it", os_message(&e)))
        }
        Err(e) => Err(os_message(&e)),
    })
}

fn collect_cpu(cpu: u32, global: Option<u32>) -> Cpu {
    let online = lllqos::cpulist::is_online(cpu);
    let resume_latency = Reading::new(match ResumeLatency::of_cpu(cpu) {
        Ok(value) => Ok(value.limit_us()),
        Err(e) => Err(os_message(&e)),
    });
    // The smaller of the two limits; `None` (no constraint) when neither constrains.
    let effective_limit_us = [global, resume_latency.value().copied()]
        .into_iter()
        .flatten()
        .min();
    let idle_states = idle_states(cpu, effective_limit_us);
    Cpu {
        cpu,
        online,
        resume_latency,
        effective_limit_us,
        idle_states,
    }
}

/// The idle states of `cpu` in index order, with `allowed` computed against `limit_us`.
fn idle_states(cpu: u32, limit_us: Option<u32>) -> Vec<CpuState> {
    lllqos::idle::cpu_states(cpu)
        .into_iter()
        .map(|s| CpuState::new(s.name, s.exit_latency_us, s.disabled, limit_us))
        .collect()
}

impl CpuState {
    /// A state as the governor sees it under `limit_us` (`None`: no limit).
    pub fn new(
        name: String,
        exit_latency_us: u32,
        disabled: bool,
        limit_us: Option<u32>,
    ) -> CpuState {
        let allowed = !disabled && limit_us.is_none_or(|limit| exit_latency_us <= limit);
        CpuState {
            name,
            exit_latency_us,
            disabled,
            allowed,
        }
    }
}

struct Scan {
    /// One list per node asked for, in the same order.
    holders: Vec<Vec<Process>>,
    complete: bool,
}

/// Finds the processes with any of `nodes` open, by their `/proc/PID/fd` links.
fn scan_holders(nodes: &[&str]) -> Scan {
    let me = std::process::id() as i32;
    let users = UserNames::default();
    let mut holders = vec![Vec::new(); nodes.len()];
    let mut complete = true;
    let devices: Vec<Option<u64>> = nodes.iter().map(|n| char_device(Path::new(n))).collect();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let fds = match std::fs::read_dir(entry.path().join("fd")) {
            Ok(fds) => fds,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                complete = false;
                continue;
            }
            Err(_) => continue, // the process exited meanwhile
        };
        let mut held = vec![false; nodes.len()];
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            // By path first (cheap); then, for a file elsewhere (a node made with mknod, a bind
            // mount), by device number: the inode behind the descriptor is what counts.
            let found = nodes
                .iter()
                .position(|n| target == Path::new(n))
                .or_else(|| {
                    if !target.is_absolute() || devices.iter().all(Option::is_none) {
                        return None;
                    }
                    let rdev = char_device(&fd.path())?;
                    devices.iter().position(|d| *d == Some(rdev))
                });
            if let Some(i) = found {
                held[i] = true;
            }
        }
        if held.iter().any(|&h| h) {
            let holder = describe_process(pid, &users);
            for (i, _) in held.iter().enumerate().filter(|(_, h)| **h) {
                holders[i].push(holder.clone());
            }
        }
    }
    for list in &mut holders {
        list.sort_by_key(|h| h.pid);
    }
    Scan { holders, complete }
}

/// The device number of the character device at `path` (followed), `None` for anything else.
fn char_device(path: &Path) -> Option<u64> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).ok()?;
    meta.file_type().is_char_device().then(|| meta.rdev())
}

/// A process's command line, words joined by spaces; `None` when it has none to read (gone, or a
/// kernel thread).
fn command_line(pid: i32) -> Option<String> {
    let cmdline = crate::file::read_small_bytes(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

fn describe_process(pid: i32, users: &UserNames) -> Process {
    let command = command_line(pid).unwrap_or_else(|| {
        format!(
            "[{}]",
            crate::file::read_small(format!("/proc/{pid}/comm"))
                .map(|comm| comm.trim_end().to_owned())
                .unwrap_or_default()
        )
    });
    let uid = crate::file::read_small(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find_map(|l| l.strip_prefix("Uid:"))?.to_owned();
            line.split_whitespace().next()?.parse::<u32>().ok()
        });
    let user = match uid {
        Some(uid) => users.name(uid),
        None => "?".to_owned(),
    };
    Process { pid, user, command }
}

/// User names by uid, looked up once each through the C library's name service (`getpwuid_r`):
/// `/etc/passwd`, and on glibc every NSS source the machine configures (LDAP, sssd, systemd's
/// DynamicUser, extrausers). A uid no source knows is shown as its number. (The musl build reads
/// `/etc/passwd` only: musl has no NSS modules.)
#[derive(Default)]
struct UserNames(RefCell<BTreeMap<u32, String>>);

impl UserNames {
    fn name(&self, uid: u32) -> String {
        self.0
            .borrow_mut()
            .entry(uid)
            .or_insert_with(
                || match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
                    Ok(Some(user)) => user.name,
                    _ => uid.to_string(),
                },
            )
            .clone()
    }
}

fn registry_status() -> Option<RegistryStatus> {
    let location = percpu::Registered::location().display().to_string();
    match percpu::registered() {
        Ok(None) => None,
        Ok(Some(registered)) => Some(RegistryStatus {
            path: location,
            error: None,
            holders: (registered.holders.iter())
                .map(|h| RegistryHolder {
                    pid: h.pid,
                    cpus: h.cpus.to_string(),
                    latency_us: h.latency.as_micros(),
                    live: h.live,
                    command: h.live.then(|| command_line(h.pid)).flatten(),
                })
                .collect(),
            cpus: (registered.cpus.iter())
                .map(|c| {
                    let entry = RegistryCpu {
                        original: c.original.to_string(),
                        written: c.written.to_string(),
                        intent: c.intent.map(|i| i.to_string()),
                    };
                    (c.cpu, entry)
                })
                .collect(),
        }),
        Err(error) => Some(RegistryStatus {
            path: location,
            error: Some(error.to_string()),
            holders: Vec::new(),
            cpus: BTreeMap::new(),
        }),
    }
}

/// A node's limit for people ("20 us", "no constraint"), or why it is unreadable.
fn human_reading<K>(reading: &Reading<u32, K>) -> String {
    match &reading.result {
        Ok(limit) => describe_limit(limit.and_then(Latency::from_micros)),
        Err(e) => format!("unreadable ({e})"),
    }
}

/// The lines of the human summary: a key in a column of its own, then the value.
#[derive(Default)]
struct Summary(String);

impl Summary {
    fn line(&mut self, key: &str, value: &str) {
        let _ = writeln!(self.0, "{key:<19}{value}");
    }

    /// Lines under one key: the key on the first only.
    fn lines(&mut self, key: &str, values: impl IntoIterator<Item = String>) {
        for (i, value) in values.into_iter().enumerate() {
            self.line(if i == 0 { key } else { "" }, &value);
        }
    }
}

/// The human summary.
pub fn render(status: &Status) -> String {
    let mut out = Summary::default();
    let limit = human_reading(&status.cpu_latency);
    out.line(
        "CPU latency limit",
        &format!("{limit}  ({CPU_DMA_LATENCY})"),
    );
    render_holders(&mut out, &status.holders, status.holders_complete);
    out.line("cpuidle", &describe_cpuidle(&status.cpuidle));
    render_resume_latency(&mut out, &status.cpus);
    render_idle_states(&mut out, &status.cpus);
    render_registry(&mut out, status.registry.as_ref());
    if let Some(w) = &status.wakeup_latency {
        let limit = human_reading(&w.limit);
        out.line(
            "Wake-up latency",
            &format!("{limit}  ({CPU_WAKEUP_LATENCY})"),
        );
        render_holders(&mut out, &w.holders, status.holders_complete);
    }
    out.0
}

fn describe_cpuidle(cpuidle: &Cpuidle) -> String {
    match (&cpuidle.driver, &cpuidle.governor) {
        (Some(d), Some(g)) => format!("driver {d}, governor {g}"),
        (Some(d), None) => format!("driver {d}"),
        _ => "not available (no cpuidle in this kernel)".to_owned(),
    }
}

/// `CPU 0: text` lines, CPUs with the same text grouped into one cpulist.
fn grouped(by_text: BTreeMap<String, Vec<u32>>) -> impl Iterator<Item = String> {
    by_text.into_iter().map(|(text, cpus)| {
        let list = CpuList::new(cpus).map(|l| l.describe()).unwrap_or_default();
        format!("{list}: {text}")
    })
}

/// Resume-latency constraints, only where there is one.
fn render_resume_latency(out: &mut Summary, cpus: &[Cpu]) {
    let mut by_value: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for cpu in cpus {
        let value = match &cpu.resume_latency.result {
            Err(e) => format!("unreadable ({e})"),
            Ok(Some(0)) => "n/a (zero tolerance)".to_owned(),
            Ok(Some(us)) => format!("{us} us"),
            Ok(None) => continue,
        };
        by_value.entry(value).or_default().push(cpu.cpu);
    }
    if by_value.is_empty() {
        out.line("Resume latency", "no per-CPU constraint");
    }
    out.lines("Resume latency", grouped(by_value));
}

/// The idle states each CPU may enter, and those it may not.
fn render_idle_states(out: &mut Summary, cpus: &[Cpu]) {
    let mut by_states: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for cpu in cpus {
        by_states
            .entry(describe_idle_states(cpu))
            .or_default()
            .push(cpu.cpu);
    }
    out.lines("Idle states", grouped(by_states));
}

fn describe_idle_states(cpu: &Cpu) -> String {
    let describe = |s: &CpuState| format!("{} ({} us)", s.name, s.exit_latency_us);
    let (allowed, refused): (Vec<&CpuState>, Vec<&CpuState>) =
        cpu.idle_states.iter().partition(|s| s.allowed);
    let allowed: Vec<String> = allowed.into_iter().map(describe).collect();
    let refused: Vec<String> = (refused.into_iter())
        .map(|s| {
            if s.disabled {
                format!("{} (disabled)", s.name)
            } else {
                describe(s)
            }
        })
        .collect();
    let mut text = if !cpu.online {
        "offline".to_owned()
    } else if cpu.idle_states.is_empty() {
        "none listed (without a cpuidle driver a CPU idles the architecture's default way)"
            .to_owned()
    } else if allowed.is_empty() {
        "none allowed".to_owned()
    } else {
        allowed.join(", ")
    };
    if !refused.is_empty() {
        let _ = write!(text, "; not allowed: {}", refused.join(", "));
    }
    text
}

fn render_registry(out: &mut Summary, registry: Option<&RegistryStatus>) {
    let Some(r) = registry else {
        out.line("lllqos registry", "empty");
        return;
    };
    match &r.error {
        Some(e) => out.line("lllqos registry", &format!("unreadable ({e})")),
        None => out.line("lllqos registry", &r.path),
    }
    for h in &r.holders {
        let state = if h.live {
            "live"
        } else {
            "stale: exited without releasing"
        };
        let cpus = crate::measure::describe_cpus(&h.cpus);
        let by = match &h.command {
            Some(command) => format!(" ({})", crate::printable(command)),
            None => String::new(),
        };
        let text = format!(
            "pid {}{by} holds {} us on {cpus} ({state})",
            h.pid, h.latency_us
        );
        out.line("", &text);
    }
    for (cpu, c) in &r.cpus {
        let under_way = match &c.intent {
            Some(intent) => format!(
                "; a change to {intent} was under way (a holder was killed during it, or is making it now)"
            ),
            None => String::new(),
        };
        let text = format!(
            "cpu{cpu}: found {}, lllqos wrote {}{under_way}",
            c.original, c.written
        );
        out.line("", &text);
    }
}

fn render_holders(out: &mut Summary, holders: &[Process], complete: bool) {
    if holders.is_empty() {
        let none = if complete {
            "none"
        } else {
            "none visible (run as root to see every process)"
        };
        out.line("Holders", none);
        return;
    }
    let user_width = holders.iter().map(|h| h.user.len()).max().unwrap_or(0);
    let pid_width = (holders.iter())
        .map(|h| h.pid.to_string().len())
        .max()
        .unwrap_or(0);
    out.lines(
        "Holders",
        holders.iter().map(|h| {
            format!(
                "{:>pid_width$}  {:<user_width$}  {}",
                h.pid,
                h.user,
                crate::printable(&h.command)
            )
        }),
    );
    if !complete {
        out.line(
            "",
            "(only your own processes: run as root to see every holder)",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_is_two_keys_the_error_only_when_there_is_one() {
        let json = |r: Reading<u32, ResumeLatencyKeys>| serde_json::to_string(&r).unwrap();
        assert_eq!(
            json(Reading::new(Ok(Some(5)))),
            r#"{"resume_latency_us":5}"#
        );
        assert_eq!(
            json(Reading::new(Ok(None))),
            r#"{"resume_latency_us":null}"#
        );
        assert_eq!(
            json(Reading::new(Err("Permission denied".into()))),
            r#"{"resume_latency_us":null,"resume_latency_error":"Permission denied"}"#
        );
    }

    #[test]
    fn allowed_means_enabled_and_within_the_limit() {
        let state =
            |latency, disabled, limit| CpuState::new("S".into(), latency, disabled, limit).allowed;
        assert!(state(0, false, Some(0)));
        assert!(!state(1, false, Some(0)));
        assert!(state(100, false, Some(100)));
        assert!(!state(101, false, Some(100)));
        assert!(state(5000, false, None));
        assert!(!state(0, true, None));
    }

    fn cpu(cpu: u32, online: bool, idle_states: Vec<CpuState>) -> Cpu {
        Cpu {
            cpu,
            online,
            resume_latency: Reading::new(Ok(None)),
            effective_limit_us: None,
            idle_states,
        }
    }

    #[test]
    fn an_offline_cpu_is_said_offline_and_a_single_cpu_singular() {
        let status = Status {
            cpu_latency: Reading::new(Ok(None)),
            holders: Vec::new(),
            holders_complete: true,
            cpuidle: Cpuidle {
                driver: Some("haltpoll".into()),
                governor: Some("haltpoll".into()),
            },
            cpus: vec![
                cpu(0, true, vec![CpuState::new("POLL".into(), 0, false, None)]),
                cpu(1, false, Vec::new()),
            ],
            registry: None,
            wakeup_latency: None,
        };
        let text = render(&status);
        assert!(text.contains("CPU 1: offline\n"), "{text}");
        assert!(!text.contains("no cpuidle driver"), "{text}");
        assert!(text.contains("CPU 0: POLL (0 us)"), "{text}");
    }

    #[test]
    fn user_names_come_from_the_name_service() {
        let users = UserNames::default();
        assert_eq!(users.name(0), "root");
        assert_eq!(users.name(0), "root", "cached");
        // A uid no source knows is its number.
        assert_eq!(users.name(4_000_000_007), "4000000007");
    }
}
