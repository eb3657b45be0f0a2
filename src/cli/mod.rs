//! The command line: the one definition that the binary, the tests, the man page and the shell
//! completions share (`cargo xtask gen` renders it; a test fails when the rendered files are stale).
//!
//! lllqos reads like `nice`, `chrt` or `timeout`: options, then the command and its arguments, which
//! are never parsed as lllqos's own (`lllqos -l 0 ./app -l 5` passes `-l 5` to the app). A command
//! whose name is also a subcommand's (`status`, `measure`, `trace`, `recover`, `oci-hook`) runs after
//! `--`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, ValueHint};

use crate::CpuList;
use crate::idle::StateNames;
use crate::latency::Latency;
use crate::lease::CPU_DMA_LATENCY;

use crate::internal::decimal::{Scan, scan};

mod examples;
mod keys;
mod lifetime;

pub use examples::{EXAMPLES, subcommand_examples};
pub use keys::{MEASURE_JSON_KEYS, STATUS_JSON_KEYS, TRACE_JSON_KEYS};
pub use lifetime::NRI_LIFETIME;

/// `lllqos trace --help`'s list of the JSON keys.
fn trace_json_help() -> String {
    let lines: Vec<String> = TRACE_JSON_KEYS
        .iter()
        .map(|(key, meaning)| format!("  {key:<16} {meaning}"))
        .collect();
    format!(
        "JSON keys (--json, one object per line):\n{}",
        lines.join("\n")
    )
}

/// Hold a CPU wake-up latency request for exactly as long as a command runs.
///
/// lllqos asks the kernel, through the PM QoS interface (/dev/cpu_dma_latency), to keep CPUs out of
/// idle states whose exit latency exceeds the requested value, runs COMMAND, and removes the request
/// the moment COMMAND has been reaped. Exit status, signals and the terminal behave as if COMMAND ran
/// directly. Without COMMAND, lllqos holds the request until it receives SIGTERM, SIGINT or SIGHUP
/// (or, with --pid, until the named processes have exited).
#[derive(Debug, Parser)]
#[command(
    name = "lllqos",
    version = crate::VERSION,
    after_help = examples::help(EXAMPLES),
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub hold: HoldArgs,

    #[command(subcommand)]
    pub subcommand: Option<Subcommand>,
}

/// The subcommands; without one, lllqos holds a request (see [`HoldArgs`]).
#[derive(Debug, clap::Subcommand)]
pub enum Subcommand {
    /// Show what is in force, who holds it, and which idle states each CPU may still enter.
    ///
    /// The CPU latency limit in force and its holders (the processes with /dev/cpu_dma_latency
    /// open), each CPU's own constraint, the idle states each CPU may still enter under the limits
    /// in force, and lllqos's per-CPU registry. What cannot be read (without root: the node, other
    /// users' processes, the registry) is said in place of the value.
    #[command(after_help = examples::help(subcommand_examples("status")))]
    Status(StatusArgs),
    /// Measure wake-up latency without, then with the request.
    ///
    /// A periodic loop on absolute time, as cyclictest runs, measures how late each wake-up is:
    /// phase one without a request of lllqos's, phase two with the request of --latency,
    /// --max-state and --cpu, side by side, with where the CPUs slept in each phase.
    #[command(after_help = examples::help(subcommand_examples("measure")))]
    Measure(MeasureArgs),
    /// Log every change of a CPU latency request as it happens.
    ///
    /// Who (pid, command), which constraint, the value, and the limit before and after, from the
    /// kernel's power trace events. Starts with what is in force; runs until SIGINT, SIGTERM or
    /// SIGHUP (or --duration). Needs root.
    #[command(
        after_help = examples::help(subcommand_examples("trace")),
        after_long_help = trace_json_help()
    )]
    Trace(TraceArgs),
    /// Print what status shows as Prometheus metrics.
    ///
    /// The limit in force, its holders, each CPU's constraint and effective limit, idle-state
    /// residency, and the registry, in the Prometheus text exposition format, in seconds, for
    /// node_exporter's textfile collector (lllqos-metrics(1) lists every metric). With --output,
    /// replace FILE atomically instead.
    #[command(after_help = examples::help(subcommand_examples("metrics")))]
    Metrics(MetricsArgs),
    /// Restore what per-CPU holders killed by SIGKILL left.
    ///
    /// Drops them from the registry and sets each CPU back to what the live holders need, or to its
    /// value from before lllqos. Says what it did; exits 0, also when there is nothing to do. The
    /// next lllqos on those CPUs does the same; run it when none will come (ExecStopPost= of a
    /// unit).
    #[command(after_help = examples::help(subcommand_examples("recover")))]
    Recover,
    /// Run as an OCI runtime hook: hold a request for a container's lifetime.
    ///
    /// As a createRuntime (or prestart) hook, lllqos reads the container's state on stdin and,
    /// when its annotations ask for it, holds a request while the container's init lives.
    /// lllqos.io/latency (--latency syntax) or lllqos.io/max-state (--max-state syntax,
    /// fallbacks included) choose the request; lllqos.io/cpus makes it per CPU: a cpulist, or
    /// `container` for the container's cpuset (linux.resources.cpu.cpus in the bundle's
    /// config.json). A detached holder places the request before the hook exits 0, and releases it
    /// when the init exits; a bad annotation, or a request that cannot be placed, fails the hook
    /// (status 125), which stops the container from starting. status and trace name the holder
    /// after the container id. Needs root, on the host, as runtimes run hooks; podman and CRI-O
    /// run it from their hooks.d (runc, Docker and containerd do not read hooks.d).
    #[command(after_help = examples::help(subcommand_examples("oci-hook")))]
    OciHook,
    /// Run as a containerd NRI plugin: hold a request for each Kubernetes container that asks.
    ///
    /// Connects to the runtime's NRI socket (or the descriptor containerd passes a plugin it
    /// starts from /opt/nri/plugins, NRI_PLUGIN_SOCKET), registers, and for each container whose
    /// pod asks, holds the request oci-hook would from its creation until it stops: pod
    /// annotations lllqos.io/latency, lllqos.io/max-state and lllqos.io/cpus (`container`: the
    /// container's cpuset, followed when it changes), each for one container as
    /// lllqos.io/latency.NAME, or CRI-O's cpu-c-states.crio.io. A bad annotation, or a request not
    /// in force within a second, fails the container's creation with a message naming it. Each
    /// request is held by a process of its own, which lasts as long as its container: a stop,
    /// crash, restart or upgrade of the plugin or of containerd leaves it in force, and the next
    /// plugin adopts it (see WHAT SURVIVES WHAT). When the runtime goes, the plugin waits for its
    /// socket and registers again. One plugin serves a runtime: a second refuses, naming the
    /// first. status names each request after its container and pod. Needs root, on the host.
    #[command(after_help = examples::help(subcommand_examples("nri")))]
    Nri(NriArgs),
}

/// Options of `lllqos nri`.
#[derive(Args, Debug, Clone)]
pub struct NriArgs {
    /// The runtime's NRI socket [default: the descriptor in NRI_PLUGIN_SOCKET when the runtime
    /// started the plugin, else /var/run/nri/nri.sock]
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub socket: Option<PathBuf>,
    /// The name the plugin registers under [default: NRI_PLUGIN_NAME, else lllqos]
    #[arg(long, value_name = "NAME", value_parser = parse_plugin_name)]
    pub plugin_name: Option<String>,
    /// Its index, two digits: its place among the runtime's plugins [default: NRI_PLUGIN_IDX,
    /// else 50]
    #[arg(long, value_name = "NN", value_parser = parse_plugin_index)]
    pub plugin_index: Option<String>,
}

/// An NRI plugin index: two digits.
pub fn parse_plugin_index(text: &str) -> Result<String, String> {
    if text.len() == 2 && text.bytes().all(|b| b.is_ascii_digit()) {
        Ok(text.to_owned())
    } else {
        Err("an NRI plugin index is two digits, 00 to 99".to_owned())
    }
}

/// An NRI plugin name: a word of letters, digits, `-`, `_` and `.`.
pub fn parse_plugin_name(text: &str) -> Result<String, String> {
    if !text.is_empty() && (text.bytes()).all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        Ok(text.to_owned())
    } else {
        Err("an NRI plugin name is letters, digits, '-', '_' and '.'".to_owned())
    }
}

/// Options of `lllqos trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Stop after this long: seconds, or with a unit (ms, s, m); default: until SIGINT, SIGTERM or SIGHUP.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Only changes made by process PID (may be repeated).
    #[arg(long, value_name = "PID", value_parser = clap::value_parser!(i32).range(1..))]
    pub pid: Vec<i32>,

    /// Only changes made by tasks whose command is NAME, as in /proc/PID/comm (its first 15
    /// bytes; may be repeated).
    #[arg(long, value_name = "NAME")]
    pub command: Vec<String>,

    /// Print JSON Lines (a stable interface; every key in lllqos-trace(1)): time, pid, command,
    /// target, action, value_us, limit_before_us, limit_after_us.
    #[arg(long)]
    pub json: bool,
}

/// Options of `lllqos measure`.
#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// The request of phase two; with --cpu, the loop is pinned to those CPUs.
    #[command(flatten)]
    pub request: RequestArgs,

    /// Length of each phase: seconds, or with a unit (ms, s, m).
    #[arg(long, value_name = "DURATION", default_value = "5", value_parser = parse_duration)]
    pub duration: Duration,

    /// Period of the loop, in microseconds.
    #[arg(long, value_name = "US", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
    pub interval: u32,

    /// One loop per CPU, each pinned to it, all at the same priority (as cyclictest -S): on the CPUs
    /// of --cpu, or every online CPU lllqos may run on. Shows each CPU and the total.
    #[arg(short = 'S', long)]
    pub smp: bool,

    /// Run the loop SCHED_FIFO at this priority (1-99); default: normal scheduling.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=99))]
    pub priority: Option<u8>,

    /// Also print the histograms (1 us buckets).
    #[arg(long)]
    pub histogram: bool,

    /// Print JSON: {"without": {...}, "with": {...}, "ratio": {...}, "settings": {...}}, and with
    /// --smp "per_cpu": [{"cpu": N, "without": {...}, "with": {...}}].
    #[arg(long)]
    pub json: bool,

    /// Also write both phases' latency histograms as one chart to FILE (SVG, for a browser).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub plot: Option<PathBuf>,
}

/// Options of `lllqos metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Write the metrics to FILE instead of stdout, atomically (a temporary file in FILE's
    /// directory, then renamed over it), as node_exporter's textfile collector needs: e.g.
    /// /var/lib/prometheus/node-exporter/lllqos.prom.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath, value_parser = file_path)]
    pub output: Option<PathBuf>,
}

/// Options of `lllqos status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON (a stable interface; every key in lllqos-status(1)) instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// What to request: `--latency` or `--max-state`, on the global node or per CPU with `--cpu`. The
/// same options for the wrapper, the hold and `measure`'s phase two.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Latency limit to request: microseconds, or a value with a unit (ns, us, µs, ms, s), e.g. 50,
    /// 50us, 0.5ms. 0 keeps CPUs out of every idle state but polling.
    #[arg(
        short,
        long,
        value_name = "VALUE",
        default_value = "0",
        allow_hyphen_values = true
    )]
    pub latency: Latency,

    /// Name the limit by idle state instead: the deepest state to allow, as the kernel names it in
    /// /sys/devices/system/cpu/cpuN/cpuidle/stateK/name (case-insensitive). The request becomes
    /// that state's exit latency. Names separated by commas are tried in order and the first this
    /// machine has wins (C1E,C1). The list may end with a fallback for machines that have none of
    /// the names (a VM, a host without a cpuidle driver): a latency (C6,C1,20us) to request that,
    /// or `none` to request nothing, warn once and go on without a request. Without a fallback, no
    /// match is an error. With --cpu, each CPU gets its own state's exit latency (or the fallback).
    #[arg(
        long,
        value_name = "NAME[,NAME...][,FALLBACK]",
        conflicts_with = "latency"
    )]
    pub max_state: Option<StateNames>,

    /// Constrain only these CPUs, through their per-CPU resume latency, instead of placing the
    /// global request: a kernel cpulist (0-3,8,10-11) or `auto` for the CPUs lllqos may run on
    /// (set with taskset). The values found are restored when lllqos ends. (measure also pins its
    /// loop to these CPUs.)
    #[arg(long, value_name = "LIST|auto")]
    pub cpu: Option<CpuSpec>,
}

/// What to request, and for how long: the options of `lllqos [OPTIONS] [--] [COMMAND [ARGS]...]`.
#[derive(Debug, Args)]
pub struct HoldArgs {
    /// What to request.
    #[command(flatten)]
    pub request: RequestArgs,

    /// PM QoS node to place the request on, e.g. /dev/cpu_wakeup_latency (Linux 6.19+).
    #[arg(
        long,
        value_name = "PATH",
        default_value = CPU_DMA_LATENCY,
        value_hint = ValueHint::FilePath,
        value_parser = node_path,
        conflicts_with = "cpu"
    )]
    pub device: PathBuf,

    /// Exit with status 125, running nothing, when the request cannot be placed (by default lllqos
    /// warns and runs COMMAND anyway).
    #[arg(long)]
    pub strict: bool,

    /// Print no warnings.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Report the requested value and the limit actually in force.
    #[arg(short, long)]
    pub verbose: bool,

    /// Name this lllqos after what it holds the request for (a service, a container): the kernel
    /// keeps the first 15 bytes as its command, which lllqos trace shows and --command matches;
    /// lllqos status shows its whole command line, this option included.
    #[arg(long, value_name = "NAME", value_parser = process_name)]
    pub name: Option<String>,

    /// Without COMMAND: hold until process PID has exited (may be repeated: until all have).
    #[arg(
        long,
        value_name = "PID",
        conflicts_with = "command",
        value_parser = clap::value_parser!(i32).range(1..)
    )]
    pub pid: Vec<i32>,

    /// Let COMMAND change the request while it runs: it inherits the request's descriptor, whose
    /// number LLLQOS_FD names. A write of exactly 4 bytes, a native-endian s32 from 0 to
    /// 2147483647 (microseconds), sets the request; -1 resets it to no constraint. The kernel
    /// reads a write of any other length as a hexadecimal string (printf 12 asks for 18 us) and
    /// ignores other negative values: write the 4 binary bytes. The descriptor grants this one
    /// request and nothing else, so it works after a privilege drop; a process that keeps it open
    /// keeps the request in force. Without --pass-fd the descriptor is not inherited and LLLQOS_FD
    /// is unset. A per-CPU request (--cpu) has no descriptor to pass.
    #[arg(long, conflicts_with = "cpu")]
    pub pass_fd: bool,

    /// Hold the request until COMMAND and every process it leaves running have exited (a daemon
    /// that forks, a script that backgrounds work): lllqos becomes their child subreaper and
    /// reaps them as they exit. It still exits with COMMAND's status. A signal lllqos relays goes
    /// to COMMAND while it runs, then to every process left below lllqos; one that ends a process,
    /// relayed to COMMAND, also reaches them once COMMAND has exited.
    #[arg(long)]
    pub descendants: bool,

    /// The command to run while the request is in force, and its arguments.
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        num_args = 1..,
        value_hint = ValueHint::CommandWithArguments
    )]
    pub command: Vec<OsString>,
}

/// `--name`: printable text, not empty.
fn process_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("an empty name names nothing".to_owned());
    }
    if text.chars().any(char::is_control) {
        return Err("a name with control characters would garble ps, status and trace".to_owned());
    }
    Ok(text.to_owned())
}

/// `--output`: any path but an empty one.
fn file_path(text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("an empty path names no file".to_owned());
    }
    Ok(PathBuf::from(text))
}

/// `--device`: any path but an empty one (clap would call an empty value a missing one).
fn node_path(text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("an empty path is not a PM QoS node".to_owned());
    }
    Ok(PathBuf::from(text))
}

/// What `--cpu` accepts: a list, or `auto` for the CPUs this process may run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuSpec {
    /// `auto`: the affinity mask lllqos itself has (so `taskset -c 2 lllqos --cpu auto` means 2).
    Auto,
    /// An explicit list.
    List(CpuList),
}

impl CpuSpec {
    /// The CPUs meant.
    pub fn resolve(&self) -> std::io::Result<CpuList> {
        match self {
            CpuSpec::Auto => CpuList::affinity(),
            CpuSpec::List(list) => Ok(list.clone()),
        }
    }
}

impl std::str::FromStr for CpuSpec {
    type Err = crate::cpulist::ParseCpuListError;

    fn from_str(text: &str) -> Result<CpuSpec, Self::Err> {
        match text {
            "auto" => Ok(CpuSpec::Auto),
            list => list.parse().map(CpuSpec::List),
        }
    }
}

/// A duration as lllqos's options take it (`measure --duration`): seconds, or with a unit (`ms`,
/// `s`, `m`); decimals allowed, exact to the millisecond. More than zero, at most 24 hours.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
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

/// The clap command, for generators and tests.
pub fn command() -> clap::Command {
    Cli::command()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    proptest::proptest! {
        #[test]
        fn a_bad_duration_is_refused_naming_it(text in "[-+0-9.]{0,30}(ms|s|m|x)?") {
            if let Err(err) = parse_duration(&text) {
                proptest::prop_assert!(err.contains(&format!("'{}'", text)), "{}", err);
            }
        }
    }
}
