//! `lllqos metrics` against the kernel: the values read back in seconds, the idle-state counters
//! of a tree the test lays out and of the kernel's own, `promtool check metrics`, the atomic
//! `--output`, and Debian's prometheus-node-exporter serving it through its textfile collector.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::idle::{IdleTree, State};

mod agree;
mod output;
mod unread;
use crate::common::{Reaped, cpus, last_cpu, lllqos, lllqos_std, wait_for_cpu, wait_for_node};
use nix::sys::signal::Signal;

/// `lllqos metrics` with these environment variables; its stdout.
fn metrics(env: &[(&str, &Path)]) -> String {
    let mut command = lllqos(["metrics"]);
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The value of the sample whose name and labels are `series` (`name{a="b"}` as printed).
fn value(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find_map(|line| Some(line.strip_prefix(series)?.strip_prefix(' ')?.to_owned()))
}

#[test]
fn a_hold_of_123_us_reads_0_000123_seconds_with_its_holder_labelled() {
    let kernel = kernel!();
    require!(
        kernel.baseline == crate::common::UNCONSTRAINED,
        "another process holds a request on this machine"
    );
    let mut hold = Reaped::spawn(&mut lllqos_std(["-l", "123"]));
    wait_for_node(123);
    let text = metrics(&[]);
    assert_eq!(
        value(&text, "lllqos_cpu_latency_limit_seconds").as_deref(),
        Some("0.000123")
    );
    assert_eq!(
        value(&text, "lllqos_cpu_latency_constrained").as_deref(),
        Some("1")
    );
    let series = format!(
        "lllqos_cpu_latency_request_seconds{{pid=\"{}\",command=\"{} -l 123\",user=\"root\",container=\"\",pod=\"\"}}",
        hold.pid(),
        crate::common::bin().display()
    );
    assert_eq!(value(&text, &series).as_deref(), Some("0.000123"), "{text}");
    hold.signal(Signal::SIGTERM);
    hold.wait();
    let text = metrics(&[]);
    assert_eq!(
        value(&text, "lllqos_cpu_latency_limit_seconds").as_deref(),
        Some("+Inf")
    );
    assert!(
        !text.contains("lllqos_cpu_latency_request_seconds{"),
        "{text}"
    );
}

#[test]
fn a_per_cpu_45_us_reads_4_5e_05_for_that_cpu_and_a_killed_holder_is_stale() {
    let kernel = kernel!();
    let cpu = last_cpu();
    let mut hold = Reaped::spawn(&mut lllqos_std(["--cpu", &cpu.to_string(), "-l", "45"]));
    wait_for_cpu(cpu, "45");
    let text = metrics(&[]);
    let own = format!("lllqos_cpu_resume_latency_seconds{{cpu=\"{cpu}\"}}");
    assert_eq!(value(&text, &own).as_deref(), Some("4.5e-05"), "{text}");
    let effective = format!("lllqos_cpu_effective_latency_limit_seconds{{cpu=\"{cpu}\"}}");
    let expected = f64::from(kernel.expect(45)) / 1e6;
    let effective: f64 = value(&text, &effective).unwrap().parse().unwrap();
    assert_eq!(effective, expected);
    let command = format!("{} --cpu {cpu} -l 45", crate::common::bin().display());
    let pid = hold.pid();
    let request = |stale: bool| {
        format!(
            "lllqos_percpu_request_seconds{{cpu=\"{cpu}\",pid=\"{pid}\",command=\"{}\",container=\"\",pod=\"\",stale=\"{stale}\"}}",
            if stale { "" } else { &command }
        )
    };
    assert_eq!(
        value(&text, &request(false)).as_deref(),
        Some("4.5e-05"),
        "{text}"
    );
    assert_eq!(
        value(&text, "lllqos_percpu_stale_holders").as_deref(),
        Some("0")
    );
    hold.signal(Signal::SIGKILL);
    hold.wait();
    let text = metrics(&[]);
    assert_eq!(
        value(&text, &request(true)).as_deref(),
        Some("4.5e-05"),
        "{text}"
    );
    assert_eq!(
        value(&text, "lllqos_percpu_stale_holders").as_deref(),
        Some("1")
    );
    lllqos(["recover"]).assert().success();
}

/// A tree with two idle states per CPU and known counters.
fn lay_out_tree() -> IdleTree {
    IdleTree::lay_out(|cpu| {
        vec![
            State {
                time_us: 1_500_000 + u64::from(cpu),
                entries: 42,
                ..State::new("POLL", 0)
            },
            State {
                time_us: 2_000_000_000,
                entries: 7_000_001,
                ..State::new("C6 deep", 170)
            },
        ]
    })
}

/// Idle-state metrics from a tree the test lays out, on any machine: the counters in seconds and
/// entries, the exit latency, and whether the limit in force allows each state.
#[test]
fn idle_states_of_a_laid_out_tree_read_back_with_the_limit_in_force() {
    let kernel = kernel!();
    require!(
        kernel.baseline == crate::common::UNCONSTRAINED,
        "another process holds a request on this machine"
    );
    let tree = lay_out_tree();
    let cpus = cpus();
    let env = [("LLLQOS_SYSFS_CPU", tree.path())];
    let mut hold = Reaped::spawn(&mut lllqos_std(["-l", "100"]));
    wait_for_node(100);
    let text = metrics(&env);
    for &cpu in &cpus {
        let series = |name: &str, state: &str| format!("{name}{{cpu=\"{cpu}\",state=\"{state}\"}}");
        let read = |name: &str, state: &str| value(&text, &series(name, state));
        let poll_time = format!("{}", (1_500_000.0 + f64::from(cpu)) / 1e6);
        assert_eq!(
            read("lllqos_cpu_idle_state_time_seconds_total", "POLL"),
            Some(poll_time)
        );
        assert_eq!(
            read("lllqos_cpu_idle_state_time_seconds_total", "C6 deep").as_deref(),
            Some("2000")
        );
        assert_eq!(
            read("lllqos_cpu_idle_state_entries_total", "C6 deep").as_deref(),
            Some("7.000001e+06")
        );
        assert_eq!(
            read("lllqos_cpu_idle_state_exit_latency_seconds", "C6 deep").as_deref(),
            Some("0.00017")
        );
        // 100 us in force: POLL is allowed, C6 (170 us) is not.
        assert_eq!(
            read("lllqos_cpu_idle_state_allowed", "POLL").as_deref(),
            Some("1")
        );
        assert_eq!(
            read("lllqos_cpu_idle_state_allowed", "C6 deep").as_deref(),
            Some("0")
        );
    }
    hold.signal(Signal::SIGTERM);
    hold.wait();
    let text = metrics(&env);
    let c6 = format!(
        "lllqos_cpu_idle_state_allowed{{cpu=\"{}\",state=\"C6 deep\"}}",
        cpus[0]
    );
    assert_eq!(
        value(&text, &c6).as_deref(),
        Some("1"),
        "no limit: every state"
    );
}

/// The kernel's own counters, where it has idle states: what metrics says lies between two reads
/// of the files themselves.
#[test]
fn idle_states_of_the_kernel_read_back_between_two_reads_of_sysfs() {
    let _kernel = kernel!();
    let cpu = last_cpu();
    let dir = format!("/sys/devices/system/cpu/cpu{cpu}/cpuidle/state0");
    applicable!(
        Path::new(&dir).exists(),
        "this kernel lists no cpuidle states (no cpuidle driver)"
    );
    let read = |file: &str| -> u64 {
        std::fs::read_to_string(format!("{dir}/{file}"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let name = std::fs::read_to_string(format!("{dir}/name"))
        .unwrap()
        .trim()
        .to_owned();
    let before = (read("time"), read("usage"));
    let text = metrics(&[]);
    let after = (read("time"), read("usage"));
    let series = |metric: &str| format!("{metric}{{cpu=\"{cpu}\",state=\"{name}\"}}");
    let time: f64 = value(&text, &series("lllqos_cpu_idle_state_time_seconds_total"))
        .unwrap()
        .parse()
        .unwrap();
    let entries: f64 = value(&text, &series("lllqos_cpu_idle_state_entries_total"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (before.0 as f64 / 1e6..=after.0 as f64 / 1e6).contains(&time),
        "{before:?} {time} {after:?}"
    );
    assert!((before.1 as f64..=after.1 as f64).contains(&entries));
    let latency = read("latency") as f64 / 1e6;
    assert_eq!(
        value(&text, &series("lllqos_cpu_idle_state_exit_latency_seconds"))
            .unwrap()
            .parse::<f64>()
            .unwrap(),
        latency
    );
}

/// Valid for Prometheus's own linter, with holders, a per-CPU request and a stale one.
/// Asserts that `promtool check metrics` finds `text` valid, without a word.
fn promtool_accepts(text: &str) {
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}\n{text}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
}

#[test]
fn promtool_finds_the_output_valid() {
    let _kernel = kernel!();
    require_program!("promtool", "prometheus");
    let cpu = last_cpu();
    let mut global = Reaped::spawn(&mut lllqos_std(["-l", "77", "--name", "with \"quotes\""]));
    let mut per_cpu = Reaped::spawn(&mut lllqos_std(["--cpu", &cpu.to_string(), "-l", "30"]));
    wait_for_cpu(cpu, "30");
    let tree = lay_out_tree();
    for env in [vec![], vec![("LLLQOS_SYSFS_CPU", tree.path())]] {
        promtool_accepts(&metrics(&env));
    }
    global.signal(Signal::SIGTERM);
    global.wait();
    per_cpu.signal(Signal::SIGTERM);
    per_cpu.wait();
}

#[test]
fn output_replaces_the_file_atomically_and_leaves_nothing_else() {
    let _kernel = kernel!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lllqos.prom");
    std::fs::write(&file, "old\n").unwrap();
    lllqos(["metrics", "--output", file.to_str().unwrap()])
        .assert()
        .success()
        .stdout("");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# HELP lllqos_"), "{text}");
    assert!(text.ends_with("\n"));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["lllqos.prom"]);
    // A directory that is not there: one line, status 125, nothing created.
    let missing = dir.path().join("no/such/dir/lllqos.prom");
    let out = lllqos(["metrics", "--output", missing.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        stderr,
        format!(
            "lllqos: --output {}: No such file or directory\n",
            missing.display()
        )
    );
}

/// Debian's prometheus-node-exporter, its textfile collector pointed at `--output`'s directory,
/// serves lllqos's samples and reports no textfile error.
#[test]
fn node_exporter_serves_the_output_through_its_textfile_collector() {
    let _kernel = kernel!();
    require_program!("prometheus-node-exporter", "prometheus-node-exporter");
    let dir = tempfile::tempdir().unwrap();
    lllqos([
        "metrics",
        "--output",
        dir.path().join("lllqos.prom").to_str().unwrap(),
    ])
    .assert()
    .success();
    // A free loopback port: bind one, let it go, give it to node_exporter.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _exporter = Reaped::spawn(
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            .arg(format!(
                "--collector.textfile.directory={}",
                dir.path().display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let started = Instant::now();
    let page = loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            stream
                .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .unwrap();
            let mut page = String::new();
            stream.read_to_string(&mut page).unwrap();
            break page;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "node_exporter did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(page.starts_with("HTTP/1.0 200"), "{page}");
    assert!(page.contains("\nnode_textfile_scrape_error 0\n"), "{page}");
    assert!(
        page.contains("\nlllqos_cpu_latency_limit_seconds "),
        "{page}"
    );
    assert!(
        page.contains("\nlllqos_scrape_error{source=\"registry\"} 0\n"),
        "{page}"
    );
}

/// The metric names of docs/metrics.md's table.
fn documented() -> std::collections::BTreeSet<String> {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md"))
            .unwrap();
    (docs.lines())
        .filter_map(|line| line.strip_prefix("| `lllqos_"))
        .filter_map(|rest| Some(format!("lllqos_{}", rest.split('`').next()?)))
        .collect()
}

/// docs/metrics.md lists every family the code can write, and no other; every family written
/// (with holders, a per-CPU request and idle states) is listed.
#[test]
fn docs_list_every_metric_and_no_other() {
    let _kernel = kernel!();
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin/lllqos/commands/metrics/mod.rs"),
    )
    .unwrap();
    let code = source.split("#[cfg(test)]").next().unwrap();
    let in_code: std::collections::BTreeSet<String> = (code.split('"'))
        .filter(|word| word.starts_with("lllqos_"))
        .filter(|word| word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .map(str::to_owned)
        .collect();
    assert_eq!(documented(), in_code);
    let cpu = last_cpu();
    let mut hold = Reaped::spawn(&mut lllqos_std([
        "--cpu",
        &cpu.to_string(),
        "-l",
        "33",
        "--",
        "sleep",
        "60",
    ]));
    wait_for_cpu(cpu, "33");
    let tree = lay_out_tree();
    let text = metrics(&[("LLLQOS_SYSFS_CPU", tree.path())]);
    for family in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = family.split(' ').next().unwrap();
        assert!(
            documented().contains(name),
            "{name} is not in docs/metrics.md"
        );
    }
    hold.signal(Signal::SIGTERM);
    hold.wait();
}

/// The queries of docs/metrics.md are PromQL Prometheus accepts.
#[test]
fn the_documented_queries_are_valid_promql() {
    require_program!("promtool", "prometheus");
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md"))
            .unwrap();
    let queries = docs.split("## Queries").nth(1).unwrap();
    let mut rules = String::from("groups:\n- name: docs\n  rules:\n");
    let mut count = 0;
    for block in queries.split("\n\n").filter(|b| b.starts_with("    ")) {
        count += 1;
        rules.push_str(&format!("  - record: query_{count}\n    expr: |\n"));
        for line in block.lines() {
            rules.push_str(&format!("      {}\n", line.trim_start_matches("    ")));
        }
    }
    assert_eq!(count, 5, "{queries}");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}
