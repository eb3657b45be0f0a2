//! The JSON of `status`, `measure` and `trace` against its one documentation
//! (`lllqos::cli::{STATUS,MEASURE,TRACE}_JSON_KEYS`, which --help, the man pages and docs/json.md
//! render or are checked against): every key printed is documented, and every key documented is
//! printed in one of the situations made here (holders, a stale one, an unreadable node, an
//! interrupted measurement...), but for the few that need what a test cannot make.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::idle::{IdleTree, State};
use crate::common::{Reaped, last_cpu, lllqos, lllqos_std, wait_for_cpu, wait_for_node};
use nix::sys::signal::Signal;
use serde_json::Value;

/// The key paths of a JSON value, as the documentation writes them: `a.b`, `a[].b`, `<cpu>` for a
/// CPU number used as a key.
fn paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let key = if key.bytes().all(|b| b.is_ascii_digit()) {
                    "<cpu>"
                } else {
                    key
                };
                let path = if prefix.is_empty() {
                    key.to_owned()
                } else {
                    format!("{prefix}.{key}")
                };
                out.insert(path.clone());
                paths(inner, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items.iter().filter(|i| i.is_object()) {
                paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// `documented` must hold every path of `printed`, and `printed` every documented path but
/// `unseen` (keys only a situation the test cannot make prints).
fn compare(keys: &[(&str, &str)], printed: &BTreeSet<String>, unseen: &[&str]) {
    let documented: BTreeSet<String> = keys.iter().map(|(k, _)| (*k).to_owned()).collect();
    let undocumented: Vec<&String> = printed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "printed, not documented: {undocumented:?}"
    );
    let never: Vec<&String> = (documented.difference(printed))
        .filter(|k| !unseen.contains(&k.as_str()))
        .collect();
    assert!(never.is_empty(), "documented, never printed: {never:?}");
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

#[test]
fn status_prints_exactly_the_documented_keys() {
    let _kernel = kernel!();
    require_program!("setpriv", "util-linux");
    let cpu = last_cpu();
    let mut global = Reaped::spawn(&mut lllqos_std(["-l", "61"]));
    wait_for_node(crate::common::read_node().min(61));
    let mut stale = Reaped::spawn(&mut lllqos_std(["--cpu", &cpu.to_string(), "-l", "62"]));
    wait_for_cpu(cpu, "62");
    stale.signal(Signal::SIGKILL);
    stale.wait();
    let mut live = Reaped::spawn(&mut lllqos_std(["--cpu", &cpu.to_string(), "-l", "63"]));
    crate::common::wait_until("the live holder to register", || {
        std::fs::read_to_string(crate::common::REGISTRY)
            .is_ok_and(|r| r.contains(&format!("\"pid\":{},", live.pid())))
    });
    let mut printed = BTreeSet::new();
    paths(
        &json(&lllqos(["status", "--json"]).output().unwrap()),
        "",
        &mut printed,
    );
    // Without root: the node and the registry cannot be read.
    let as_nobody = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(crate::common::bin())
        .args(["status", "--json"])
        .current_dir("/")
        .output()
        .unwrap();
    paths(&json(&as_nobody), "", &mut printed);
    for holder in [&mut global, &mut live] {
        holder.signal(Signal::SIGTERM);
        holder.wait();
    }
    // The wake-up latency node's holders have the keys of holders[].
    let printed: BTreeSet<String> = (printed.into_iter())
        .map(|p| p.replace("wakeup_latency.holders[].", "holders[]."))
        .collect();
    compare(
        lllqos::cli::STATUS_JSON_KEYS,
        &printed,
        &[
            // A CPU's file that cannot be read (an idle state's: tests/metrics/unread.rs), a
            // change caught half-way, a kernel before 6.19.
            "cpus[].resume_latency_error",
            "cpus[].idle_states_error",
            "registry.cpus.<cpu>.intent",
            "wakeup_latency.limit_us",
            "wakeup_latency.error",
            "wakeup_latency.holders",
        ],
    );
}

#[test]
fn measure_prints_exactly_the_documented_keys() {
    let _kernel = kernel!();
    // Idle states from a tree, so that their keys are printed on any machine.
    let tree = IdleTree::lay_out(|_| {
        vec![State {
            time_us: 5,
            entries: 1,
            ..State::new("POLL", 0)
        }]
    });
    let cpu = last_cpu().to_string();
    let mut printed = BTreeSet::new();
    for args in [
        &["measure", "--duration", "0.2", "--json"][..],
        &[
            "measure",
            "--duration",
            "0.2",
            "--json",
            "--smp",
            "--histogram",
            "--cpu",
            &cpu,
        ],
    ] {
        let out = lllqos(args)
            .env("LLLQOS_SYSFS_CPU", tree.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        paths(&json(&out), "", &mut printed);
    }
    // Interrupted: the partial report says by what.
    let mut interrupted =
        Reaped::spawn(lllqos_std(["measure", "--duration", "5", "--json"]).stdout(Stdio::piped()));
    std::thread::sleep(Duration::from_millis(500));
    interrupted.signal(Signal::SIGINT);
    interrupted.wait();
    let mut text = String::new();
    std::io::Read::read_to_string(interrupted.0.stdout.as_mut().unwrap(), &mut text).unwrap();
    paths(&serde_json::from_str(&text).unwrap(), "", &mut printed);
    let printed: BTreeSet<String> = (printed.into_iter())
        .map(|p| {
            let phased = |p: &str, prefix: &str| {
                ["without", "with"].iter().find_map(|phase| {
                    let whole = format!("{prefix}{phase}");
                    (p == whole || p.starts_with(&format!("{whole}.")))
                        .then(|| p.replacen(&whole, &format!("{prefix}<phase>"), 1))
                })
            };
            (phased(&p, ""))
                .or_else(|| phased(&p, "per_cpu[]."))
                .or_else(|| phased(&p, "histogram."))
                .unwrap_or(p)
        })
        .collect();
    compare(lllqos::cli::MEASURE_JSON_KEYS, &printed, &[]);
}

#[test]
fn trace_prints_exactly_the_documented_keys() {
    let _kernel = kernel!();
    let out = lllqos(["trace", "--json", "--duration", "300ms"])
        .output()
        .unwrap();
    require!(out.status.success(), "trace cannot run here: {out:?}");
    let mut hold = Reaped::spawn(&mut lllqos_std(["-l", "64"]));
    let mut trace =
        Reaped::spawn(lllqos_std(["trace", "--json", "--duration", "1s"]).stdout(Stdio::piped()));
    std::thread::sleep(Duration::from_millis(300));
    hold.signal(Signal::SIGTERM);
    hold.wait();
    assert!(trace.wait().success());
    let mut text = String::new();
    std::io::Read::read_to_string(trace.0.stdout.as_mut().unwrap(), &mut text).unwrap();
    let mut printed = BTreeSet::new();
    for line in text.lines() {
        paths(&serde_json::from_str(line).unwrap(), "", &mut printed);
    }
    compare(lllqos::cli::TRACE_JSON_KEYS, &printed, &[]);
}
