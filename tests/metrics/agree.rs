//! `lllqos status --json` and `lllqos metrics` are two views of one reading: for the same state of
//! the machine (a global holder, a per-CPU holder, a registry holder killed without releasing)
//! every limit and every holder one shows, the other shows alike.

use crate::common::{Reaped, last_cpu, lllqos, lllqos_std, wait_for_cpu, wait_for_node};
use nix::sys::signal::Signal;

/// Microseconds from seconds as metrics print them (`None`: `+Inf`, no constraint).
fn parse_seconds(text: &str) -> Option<u64> {
    (text != "+Inf").then(|| (text.parse::<f64>().unwrap() * 1e6).round() as u64)
}

#[test]
fn status_and_metrics_show_the_same_limits_and_holders() {
    let kernel = kernel!();
    let cpu = last_cpu();
    let mut global = Reaped::spawn(&mut lllqos_std(["-l", "61"]));
    wait_for_node(kernel.expect(61));
    let mut per_cpu = Reaped::spawn(&mut lllqos_std(["--cpu", &cpu.to_string(), "-l", "44"]));
    wait_for_cpu(cpu, "44");
    // A second one, killed: its record stays, stale, until the next change of the registry.
    let mut killed = Reaped::spawn(&mut lllqos_std(["--cpu", &cpu.to_string(), "-l", "38"]));
    wait_for_cpu(cpu, "38");
    killed.signal(Signal::SIGKILL);
    killed.wait();
    let status: serde_json::Value =
        serde_json::from_slice(&lllqos(["status", "--json"]).output().unwrap().stdout).unwrap();
    let text = String::from_utf8(lllqos(["metrics"]).output().unwrap().stdout).unwrap();
    let metric = |series: &str| super::value(&text, series);
    // The global limit.
    assert_eq!(
        metric("lllqos_cpu_latency_limit_seconds")
            .as_deref()
            .and_then(parse_seconds),
        status["cpu_latency_us"].as_u64()
    );
    same_cpus(&status, &text);
    // The holders of the global request, by pid.
    let mut status_pids: Vec<i64> = (status["holders"].as_array().unwrap().iter())
        .map(|h| h["pid"].as_i64().unwrap())
        .collect();
    let mut metric_pids: Vec<i64> = (text.lines())
        .filter_map(|l| l.strip_prefix("lllqos_cpu_latency_request_seconds{pid=\""))
        .map(|l| l.split('"').next().unwrap().parse().unwrap())
        .collect();
    status_pids.sort_unstable();
    metric_pids.sort_unstable();
    assert_eq!(metric_pids, status_pids);
    assert!(status_pids.contains(&i64::from(global.pid())));
    same_registry(&status, &text);
    per_cpu.signal(Signal::SIGTERM);
    per_cpu.wait();
    global.signal(Signal::SIGTERM);
    global.wait();
    lllqos(["recover"]).assert().success();
}

/// Each CPU: its own value, the limit it obeys, and which states it may enter.
fn same_cpus(status: &serde_json::Value, text: &str) {
    let metric = |series: &str| super::value(text, series);
    for entry in status["cpus"].as_array().unwrap() {
        let n = entry["cpu"].as_u64().unwrap();
        let own = metric(&format!("lllqos_cpu_resume_latency_seconds{{cpu=\"{n}\"}}")).unwrap();
        assert_eq!(
            parse_seconds(&own),
            entry["resume_latency_us"].as_u64(),
            "cpu{n}"
        );
        let effective = metric(&format!(
            "lllqos_cpu_effective_latency_limit_seconds{{cpu=\"{n}\"}}"
        ))
        .unwrap();
        assert_eq!(
            parse_seconds(&effective),
            entry["effective_limit_us"].as_u64(),
            "cpu{n}"
        );
        for state in entry["idle_states"].as_array().unwrap() {
            let name = state["name"].as_str().unwrap();
            let allowed = metric(&format!(
                "lllqos_cpu_idle_state_allowed{{cpu=\"{n}\",state=\"{name}\"}}"
            ));
            let expected = if state["allowed"].as_bool().unwrap() {
                "1"
            } else {
                "0"
            };
            assert_eq!(allowed.as_deref(), Some(expected), "cpu{n} {name}");
        }
    }
}

/// The registry: each holder's CPUs, value and liveness; the stale count.
fn same_registry(status: &serde_json::Value, text: &str) {
    let metric = |series: &str| super::value(text, series);
    let registry = status["registry"]["holders"].as_array().unwrap();
    assert_eq!(registry.len(), 2, "{status}");
    for holder in registry {
        let (pid, live) = (
            holder["pid"].as_i64().unwrap(),
            holder["live"].as_bool().unwrap(),
        );
        let line = (text.lines())
            .find(|l| {
                l.starts_with("lllqos_percpu_request_seconds{")
                    && l.contains(&format!("pid=\"{pid}\""))
                    && l.contains(&format!("cpu=\"{}\"", holder["cpus"].as_str().unwrap()))
            })
            .unwrap_or_else(|| panic!("holder {pid} in the metrics\n{text}"));
        assert!(line.contains(&format!("stale=\"{}\"", !live)), "{line}");
        let value = line.rsplit(' ').next().unwrap();
        assert_eq!(
            parse_seconds(value),
            holder["latency_us"].as_u64(),
            "{line}"
        );
    }
    let stale = registry.iter().filter(|h| h["live"] == false).count();
    assert_eq!(
        metric("lllqos_percpu_stale_holders"),
        Some(stale.to_string())
    );
    assert_eq!(stale, 1);
}
