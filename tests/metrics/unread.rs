//! What `lllqos metrics` could not read is claimed by no series: run as a user who cannot read the
//! global node, a state's file of a laid-out tree, or a CPU's own resume-latency file, no limit,
//! effective limit or `allowed` is emitted that depends on it, `lllqos_scrape_error` names the
//! source, and promtool accepts the text.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use super::{lay_out_tree, promtool_accepts, value};
use crate::common::{cpu_file, last_cpu};

/// `lllqos metrics` run as nobody (uid and gid 65534), with `LLLQOS_SYSFS_CPU` when given, inside
/// `sh -c PREFIX`: its stdout.
fn as_nobody(tree: Option<&std::path::Path>, prefix: &str) -> String {
    let mut command = Command::new("unshare");
    command.args([
        "-m",
        "sh",
        "-c",
        &format!("{prefix} exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$0\" metrics"),
    ]);
    command.arg(crate::common::bin());
    if let Some(tree) = tree {
        command.env("LLLQOS_SYSFS_CPU", tree);
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The series (name and labels) of `text` whose name is `name`.
fn series<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    (text.lines())
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .collect()
}

#[test]
fn an_unreadable_global_node_leaves_out_every_limit_that_depends_on_it() {
    let _kernel = kernel!();
    require_program!("promtool", "prometheus");
    require_program!("setpriv", "util-linux");
    let tree = lay_out_tree();
    std::fs::set_permissions(tree.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let text = as_nobody(Some(tree.path()), "");
    assert_eq!(
        value(&text, "lllqos_scrape_error{source=\"cpu_latency\"}").as_deref(),
        Some("1"),
        "{text}"
    );
    for name in [
        "lllqos_cpu_latency_limit_seconds",
        "lllqos_cpu_effective_latency_limit_seconds",
        "lllqos_cpu_idle_state_allowed",
    ] {
        assert_eq!(series(&text, name), Vec::<&str>::new(), "{name}\n{text}");
    }
    // What was read is there: the states' counters and exit latencies.
    assert!(!series(&text, "lllqos_cpu_idle_state_exit_latency_seconds").is_empty());
    promtool_accepts(&text);
}

#[test]
fn an_unreadable_state_file_is_a_scrape_error_and_its_state_is_left_out() {
    let _kernel = kernel!();
    require_program!("promtool", "prometheus");
    require_program!("setpriv", "util-linux");
    let tree = lay_out_tree();
    std::fs::set_permissions(tree.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let cpu = last_cpu();
    let hidden = tree.state(cpu, 1).join("latency");
    std::fs::set_permissions(&hidden, PermissionsExt::from_mode(0o000)).unwrap();
    let text = as_nobody(Some(tree.path()), "");
    assert_eq!(
        value(&text, "lllqos_scrape_error{source=\"idle_states\"}").as_deref(),
        Some("1"),
        "{text}"
    );
    // The deep state of that CPU is in no series; its POLL is, and the other CPUs' both.
    let deep = format!("{{cpu=\"{cpu}\",state=\"C6 deep\"}}");
    assert!(!text.contains(&deep), "{text}");
    assert!(
        text.contains(&format!("{{cpu=\"{cpu}\",state=\"POLL\"}}")),
        "{text}"
    );
    promtool_accepts(&text);
}

#[test]
fn an_unreadable_per_cpu_file_leaves_out_that_cpus_limits() {
    let _kernel = kernel!();
    require_program!("promtool", "prometheus");
    require_program!("setpriv", "util-linux");
    require_program!("unshare", "util-linux");
    let cpu = last_cpu();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let locked = dir.path().join("unreadable");
    std::fs::write(&locked, "0\n").unwrap();
    std::fs::set_permissions(&locked, PermissionsExt::from_mode(0o000)).unwrap();
    // In a mount namespace of its own: the CPU's file, as this run sees it, is one nobody reads.
    let text = as_nobody(
        None,
        &format!(
            "mount --bind {} {} &&",
            locked.display(),
            cpu_file(cpu).display()
        ),
    );
    assert_eq!(
        value(&text, "lllqos_scrape_error{source=\"resume_latency\"}").as_deref(),
        Some("1"),
        "{text}"
    );
    let labelled = format!("{{cpu=\"{cpu}\"");
    for name in [
        "lllqos_cpu_resume_latency_seconds",
        "lllqos_cpu_effective_latency_limit_seconds",
        "lllqos_cpu_idle_state_allowed",
    ] {
        assert!(
            !series(&text, name).iter().any(|s| s.contains(&labelled)),
            "{name}\n{text}"
        );
    }
    promtool_accepts(&text);
}
