//! The examples of `--help` and the man pages, for lllqos and each subcommand: one source, which
//! the README is checked against too.

/// The examples of `lllqos --help`, the man page (rendered by the xtask) and the README (checked
/// by a test): the command, and what it does.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "lllqos -l 0 -- ./control-loop",
        "Run ./control-loop while 0 us is requested",
    ),
    (
        "lllqos -l 50us chrt -f 80 ./app",
        "Run ./app under SCHED_FIFO with a 50 us limit",
    ),
    ("lllqos -l 0", "Hold 0 us until SIGTERM, SIGINT or SIGHUP"),
    (
        "lllqos -l 100 --pid 4242",
        "Hold 100 us while process 4242 lives",
    ),
    (
        "lllqos --cpu 2-3 -l 0 -- ./rt-app",
        "Keep only CPUs 2 and 3 out of deep idle states",
    ),
    (
        "lllqos --max-state C1E,C1 -- ./app",
        "Allow C1E (or C1 without C1E), nothing deeper",
    ),
    (
        "taskset -c 2 lllqos --cpu auto -- ./rt-app",
        "Constrain the CPUs the command may run on",
    ),
    ("lllqos status", "See what is in force and who holds it"),
    (
        "lllqos trace --command python3",
        "Log python3's requests as they change",
    ),
    (
        "lllqos measure --priority 80 --duration 10",
        "Measure the effect on wake-up latency",
    ),
];

/// The examples of `lllqos SUBCOMMAND --help` and of its man page.
pub fn subcommand_examples(subcommand: &str) -> &'static [(&'static str, &'static str)] {
    match subcommand {
        "status" => &[
            (
                "lllqos status",
                "What is in force, who holds it, which idle states remain",
            ),
            (
                "lllqos status --json | jq .cpu_latency_us",
                "The limit in force, for a script",
            ),
        ],
        "measure" => &[
            (
                "lllqos measure --priority 80 --duration 10",
                "Without, then with a 0 us request",
            ),
            (
                "lllqos measure --cpu 2 -l 10 --priority 80",
                "A per-CPU request of 10 us on CPU 2",
            ),
            (
                "lllqos measure --smp --plot latency.svg",
                "One loop per CPU, and a chart",
            ),
        ],
        "trace" => &[
            ("lllqos trace", "Every change of a request, as it happens"),
            (
                "lllqos trace --command python3 --json",
                "python3's changes, as JSON Lines",
            ),
            (
                "lllqos trace --duration 10s > changes.log",
                "Ten seconds of changes, to a file",
            ),
        ],
        "metrics" => &[
            ("lllqos metrics", "The Prometheus text format, on stdout"),
            (
                "lllqos metrics --output /var/lib/prometheus/node-exporter/lllqos.prom",
                "For node_exporter's textfile collector",
            ),
        ],
        "recover" => &[(
            "lllqos recover",
            "Restore what holders killed by SIGKILL left",
        )],
        "nri" => &[
            (
                "systemctl enable --now lllqos-nri",
                "Run the plugin beside containerd (the unit lllqos-nri.service)",
            ),
            (
                "lllqos nri --socket /var/run/nri/nri.sock",
                "Run it by hand, on the runtime's NRI socket",
            ),
        ],
        "oci-hook" => &[(
            "podman run --annotation lllqos.io/latency=0 IMAGE",
            "A request for the container's lifetime (podman reads hooks.d)",
        )],
        _ => &[],
    }
}

/// `Examples:` and `examples`, aligned, for `--help`.
pub fn help(examples: &[(&str, &str)]) -> String {
    let width = examples.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    let lines: Vec<String> = examples
        .iter()
        .map(|(command, what)| format!("  {command:width$}  {what}"))
        .collect();
    format!("Examples:\n{}", lines.join("\n"))
}
