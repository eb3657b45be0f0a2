//! The keys of the JSON that `status`, `trace` and `measure` print, and what each holds: one
//! source, which `--help`, the man pages and docs/json.md render or are checked against, and which
//! the tests compare with what the command prints. A key path names a key inside objects with
//! `.`, inside arrays with `[]`; `<cpu>` stands for a CPU number used as a key, `<phase>` for
//! `without` or `with`.

/// The keys of each line of `lllqos trace --json`, and what they hold: the man page and the
/// JSON page of docs/ list them from here, and a test checks that trace prints exactly these.
pub const TRACE_JSON_KEYS: &[(&str, &str)] = &[
    (
        "time",
        "when, in seconds since the Unix epoch (a number, to the microsecond)",
    ),
    (
        "pid",
        "the process that made the change (null for a per-CPU value in force at the start that no process holds)",
    ),
    (
        "command",
        "its command as the kernel keeps it (/proc/PID/comm, 15 bytes at most; null when unknown)",
    ),
    (
        "target",
        "cpu_dma_latency (the global node), cpu_wakeup_latency where the kernel has it, or cpuN for CPU N's resume latency",
    ),
    (
        "action",
        "add, update or remove; held for what was in force at the start",
    ),
    (
        "value_us",
        "the request's value in microseconds; null for no constraint (a just-opened node's default, a removal, a CPU's sysfs 0) or, in a held line, a value that cannot be known (one of several holders of the node)",
    ),
    (
        "limit_before_us",
        "the target's limit in force before the change; null for no constraint",
    ),
    ("limit_after_us", "the same, after the change"),
];

/// The keys of `lllqos status --json`.
pub const STATUS_JSON_KEYS: &[(&str, &str)] = &[
    (
        "cpu_latency_us",
        "the global limit in force, read from the node (the smallest request of all holders); null for no constraint (the node reads 2000000000), or when it cannot be read",
    ),
    (
        "cpu_latency_error",
        "only when the node cannot be read: why (without root: Permission denied)",
    ),
    (
        "holders",
        "the processes with /dev/cpu_dma_latency open, this one excluded, by pid",
    ),
    ("holders[].pid", "its process id"),
    (
        "holders[].user",
        "its real user's name, from the name service (NSS), or the uid where no name is known",
    ),
    (
        "holders[].command",
        "its command line, words joined by spaces ([comm] for a process without one)",
    ),
    (
        "holders[].container",
        "the container an lllqos holds the request for (oci-hook's and nri's holders); null for any other holder",
    ),
    (
        "holders[].pod",
        "that container's pod, NAMESPACE/NAME (nri's holders); null for any other holder",
    ),
    (
        "holders_complete",
        "false when some processes could not be inspected (not root): the list may miss holders",
    ),
    (
        "cpuidle",
        "the cpuidle driver and governor; both null when the kernel has no cpuidle",
    ),
    (
        "cpuidle.driver",
        "the driver in use (haltpoll, intel_idle, acpi_idle), null without one",
    ),
    (
        "cpuidle.governor",
        "the governor in use (menu, teo, haltpoll), null without one",
    ),
    ("cpus", "every CPU the kernel lists, ascending"),
    ("cpus[].cpu", "its number"),
    ("cpus[].online", "whether it is online"),
    (
        "cpus[].resume_latency_us",
        "its own constraint (pm_qos_resume_latency_us): null for none (0 in sysfs), 0 for zero tolerance (n/a in sysfs), else microseconds; null too when it cannot be read",
    ),
    (
        "cpus[].resume_latency_error",
        "only when the CPU's file cannot be read: why",
    ),
    (
        "cpus[].effective_limit_us",
        "the limit the CPU obeys: the smaller of the global limit and its own; null for none",
    ),
    (
        "cpus[].idle_states",
        "its idle states in index order; empty without a cpuidle driver",
    ),
    (
        "cpus[].idle_states[].name",
        "the state's name as the kernel gives it (POLL, C1E)",
    ),
    (
        "cpus[].idle_states[].exit_latency_us",
        "its exit latency: the limit that still allows it",
    ),
    (
        "cpus[].idle_states[].disabled",
        "whether an administrator disabled it",
    ),
    (
        "cpus[].idle_states[].allowed",
        "not disabled, and its exit latency within effective_limit_us",
    ),
    (
        "cpus[].idle_states_error",
        "only when a state's files cannot be read: why (that state is left out of idle_states)",
    ),
    (
        "registry",
        "lllqos's per-CPU registry; null when nothing is registered",
    ),
    (
        "registry.path",
        "where it is kept (/run/lllqos/registry.json)",
    ),
    (
        "registry.error",
        "only when it cannot be read (not root, corrupt): why; the lists are then empty",
    ),
    (
        "registry.holders",
        "each holder's constraint, one per distinct limit",
    ),
    (
        "registry.holders[].pid",
        "the holder's process id, as this process sees it",
    ),
    ("registry.holders[].cpus", "its CPUs, as a cpulist"),
    ("registry.holders[].latency_us", "its limit on them"),
    (
        "registry.holders[].live",
        "false for a holder killed without releasing: the next lllqos on its CPUs, or lllqos recover, restores them",
    ),
    (
        "registry.holders[].command",
        "a live holder's command line; null for a dead one, or one that cannot be read",
    ),
    (
        "registry.holders[].container",
        "the container a live holder holds it for, as holders[].container",
    ),
    (
        "registry.holders[].pod",
        "that container's pod, as holders[].pod",
    ),
    ("registry.cpus", "each CPU lllqos has changed, by number"),
    ("registry.cpus.<cpu>", "a CPU lllqos has changed"),
    (
        "registry.cpus.<cpu>.original",
        "the value to restore when the last holder leaves (found before the first holder, or set by another tool since), as sysfs text",
    ),
    (
        "registry.cpus.<cpu>.written",
        "the value lllqos last wrote, as sysfs text",
    ),
    (
        "registry.cpus.<cpu>.intent",
        "only while a change is under way (or was, when its holder was killed during it): the value lllqos is about to write",
    ),
    (
        "wakeup_latency",
        "/dev/cpu_wakeup_latency (Linux 6.19+); null when the kernel has no such node",
    ),
    (
        "wakeup_latency.limit_us",
        "its limit in force; null for no constraint, or when it cannot be read",
    ),
    ("wakeup_latency.error", "only when it cannot be read: why"),
    (
        "wakeup_latency.holders",
        "its holders, each with the keys of holders[]",
    ),
];

/// The keys of `lllqos measure --json`.
pub const MEASURE_JSON_KEYS: &[(&str, &str)] = &[
    (
        "<phase>",
        "without (phase one, no request of lllqos's) and with (phase two, the request): the statistics of every loop together",
    ),
    ("<phase>.samples", "the wake-ups measured"),
    ("<phase>.min_us", "the smallest lateness, in microseconds"),
    (
        "<phase>.avg_us",
        "the average lateness (a number with decimals)",
    ),
    ("<phase>.p50_us", "the median"),
    ("<phase>.p99_us", "the 99th percentile"),
    ("<phase>.max_us", "the largest lateness"),
    (
        "<phase>.idle_states",
        "where each CPU slept during the phase; empty without a cpuidle driver",
    ),
    ("<phase>.idle_states[].cpu", "the CPU"),
    (
        "<phase>.idle_states[].states",
        "its idle states in index order",
    ),
    ("<phase>.idle_states[].states[].name", "the state's name"),
    (
        "<phase>.idle_states[].states[].exit_latency_us",
        "its exit latency",
    ),
    (
        "<phase>.idle_states[].states[].time_pct",
        "percent of the phase spent in it, to 0.1",
    ),
    (
        "<phase>.idle_states[].states[].entries",
        "times it was entered during the phase",
    ),
    (
        "ratio",
        "with divided by without, for min, avg, p50, p99 and max; each null when without is 0",
    ),
    ("ratio.min", "of min_us"),
    ("ratio.avg", "of avg_us"),
    ("ratio.p50", "of p50_us"),
    ("ratio.p99", "of p99_us"),
    ("ratio.max", "of max_us"),
    ("settings", "how it was measured"),
    (
        "settings.duration_s",
        "the length of each phase, in seconds",
    ),
    ("settings.interval_us", "the loop's period"),
    (
        "settings.policy",
        "SCHED_FIFO or SCHED_OTHER (whose threads get a timer slack)",
    ),
    (
        "settings.priority",
        "the SCHED_FIFO priority; null for SCHED_OTHER",
    ),
    ("settings.timer_slack_ns", "the loop's timer slack"),
    (
        "settings.latency_us",
        "the request of phase two (the strictest, per CPU); null when --max-state fell back to none",
    ),
    (
        "settings.cpus",
        "the CPUs of a per-CPU request; null for the global one",
    ),
    ("settings.smp", "whether one loop ran per CPU (--smp)"),
    (
        "settings.baseline_limit_us",
        "the global limit in force during phase one; null for none",
    ),
    (
        "settings.baseline_clean",
        "false when something already constrained the CPUs measured during phase one",
    ),
    (
        "settings.baseline_note",
        "what constrained them; null when nothing did",
    ),
    (
        "histogram",
        "only with --histogram: each phase's non-empty 1 us buckets",
    ),
    (
        "histogram.<phase>",
        "[[us, count], ...]; bucket 10000 counts the samples of 10 ms or more",
    ),
    (
        "per_cpu",
        "only with --smp: each CPU's loop, with the statistics keys of <phase> (which are then the total of all loops)",
    ),
    ("per_cpu[].cpu", "the CPU"),
    (
        "per_cpu[].<phase>",
        "its loop's statistics: samples, min_us, avg_us, p50_us, p99_us, max_us",
    ),
    ("per_cpu[].<phase>.samples", "as <phase>.samples"),
    ("per_cpu[].<phase>.min_us", "as <phase>.min_us"),
    ("per_cpu[].<phase>.avg_us", "as <phase>.avg_us"),
    ("per_cpu[].<phase>.p50_us", "as <phase>.p50_us"),
    ("per_cpu[].<phase>.p99_us", "as <phase>.p99_us"),
    ("per_cpu[].<phase>.max_us", "as <phase>.max_us"),
    (
        "interrupted_by",
        "only when a signal ended the measurement early: its name (SIGINT); the statistics cover what was measured until then",
    ),
];
