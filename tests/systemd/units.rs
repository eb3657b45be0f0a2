//! The units and the drop-in under the booted systemd: holds, signals, Type=notify, User= with the group, per-CPU restore, a forking daemon.

use super::*;

#[test]
fn the_hold_unit_holds_while_active_and_releases_on_stop() {
    let kernel = kernel!();
    let unit = contrib("systemd/lllqos-hold@.service");
    let machine = given!(Machine::boot(
        &[("lllqos-hold@.service", &unit)],
        Boot::default(),
    ));
    // Type=notify: active only once the request is in force.
    machine.systemctl(&["start", "lllqos-hold@7us.service"]);
    assert_eq!(read_node(), kernel.expect(7));
    machine.systemctl(&["stop", "lllqos-hold@7us.service"]);
    assert_eq!(read_node(), kernel.baseline);
    assert_eq!(
        machine.property("lllqos-hold@7us.service", "Result"),
        "success"
    );
}

#[test]
fn the_hold_unit_fails_without_the_node() {
    let kernel = kernel!();
    let unit = contrib("systemd/lllqos-hold@.service");
    let machine = given!(Machine::boot(
        &[("lllqos-hold@.service", &unit)],
        Boot {
            no_node: true,
            ..Boot::default()
        },
    ));
    let start = machine.run(&["systemctl", "start", "lllqos-hold@7us.service"]);
    assert!(!start.status.success());
    let failed = machine.run(&["systemctl", "is-failed", "lllqos-hold@7us.service"]);
    assert_eq!(String::from_utf8_lossy(&failed.stdout).trim(), "failed");
    assert_eq!(
        machine.property("lllqos-hold@7us.service", "ExecMainStatus"),
        "125"
    );
    assert_eq!(read_node(), kernel.baseline);
}

#[test]
fn the_drop_in_holds_while_the_service_runs_and_signals_arrive_once() {
    let kernel = kernel!();
    let direct = given!(counter("notify", None));
    let (direct_signals, direct_end) = hup_then_stop(&direct);
    drop(direct);
    let wrapped = given!(counter("notify", Some(drop_in("23"))));
    wait_until("the request", || read_node() == kernel.expect(23));
    let (signals, end) = hup_then_stop(&wrapped);
    assert_eq!(signals, "SIGHUP\nSIGTERM\n");
    assert_eq!(signals, direct_signals);
    // The service's own exit status (3 on SIGTERM), and the Result= it gives without lllqos.
    assert_eq!(end, direct_end);
    assert!(end.contains(&"ExecMainStatus=3".to_owned()), "{end:?}");
    assert_eq!(read_node(), kernel.baseline);
}

#[test]
fn a_notify_service_becomes_active_through_the_drop_in() {
    let kernel = kernel!();
    // `systemctl start` returns once the service has said READY=1 (through lllqos, its parent).
    let machine = given!(counter("notify", Some(drop_in("24"))));
    assert_eq!(machine.property("counter.service", "ActiveState"), "active");
    assert_eq!(read_node(), kernel.expect(24));
    machine.systemctl(&["stop", "counter.service"]);
    assert_eq!(read_node(), kernel.baseline);
}

/// With the default KillMode=control-group (the drop-in's KillMode=mixed left out), systemd sends
/// SIGTERM to every process of the unit, the service included, and lllqos relays the one it got:
/// the service gets SIGTERM from systemd and, unless lllqos's witness had already seen systemd's
/// (see README, "systemd"), a second time from lllqos.
#[test]
fn without_kill_mode_mixed_the_service_may_get_sigterm_twice() {
    let kernel = kernel!();
    let text = drop_in("25").replace("KillMode=mixed\n", "");
    assert!(!text.lines().any(|l| l.starts_with("KillMode=")));
    let machine = given!(counter("notify", Some(text)));
    machine.systemctl(&["stop", "counter.service"]);
    let signals = machine.read("/run/signals");
    let terms = signals.lines().filter(|l| *l == "SIGTERM").count();
    assert!((1..=2).contains(&terms), "{signals}");
    assert_eq!(read_node(), kernel.baseline);
}

#[test]
fn a_service_user_in_the_packages_group_places_its_request_without_root() {
    let kernel = kernel!();
    let service = "[Service]\nType=notify\nUser=nobody\nSupplementaryGroups=lllqos\n\
                   ExecStart=/usr/bin/lllqos --strict --latency 11\n";
    let sysusers = contrib("debian/lllqos.sysusers");
    let machine = given!(Machine::boot(
        &[
            ("user-hold.service", service),
            ("lllqos.sysusers", &sysusers),
        ],
        Boot::default(),
    ));
    // The group as the package makes it, and the node as its udev rule sets it (the node is the
    // host's: its owner and mode are put back when the test ends).
    let sysusers_path = "/usr/local/lib/systemd/system/lllqos.sysusers";
    let made = machine.run(&["systemd-sysusers", sysusers_path]);
    assert!(made.status.success(), "{made:?}");
    let group = machine.run(&["getent", "group", "lllqos"]);
    let gid: u32 = String::from_utf8_lossy(&group.stdout)
        .split(':')
        .nth(2)
        .and_then(|g| g.parse().ok())
        .expect("the lllqos group");
    let _node = NodeAccess::set(gid, 0o660);
    machine.systemctl(&["start", "user-hold.service"]);
    assert_eq!(read_node(), kernel.expect(11));
    // Held by lllqos running as nobody, with the group.
    let pid = machine.property("user-hold.service", "MainPID");
    let status = machine.read(&format!("/proc/{pid}/status"));
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    assert_eq!(uid.split_whitespace().nth(1), Some("65534"), "{status}");
    machine.systemctl(&["stop", "user-hold.service"]);
    assert_eq!(read_node(), kernel.baseline);
    // Without the group, the same service fails (--strict): the group is what grants it.
    machine.install(
        "user-hold.service",
        &service.replace("SupplementaryGroups=lllqos\n", ""),
    );
    assert!(
        !machine
            .run(&["systemctl", "start", "user-hold.service"])
            .status
            .success()
    );
    assert_eq!(read_node(), kernel.baseline);
}

/// The host node's group and mode, set for a test and put back when dropped.
struct NodeAccess {
    owner: (u32, u32),
    mode: u32,
}

impl NodeAccess {
    fn set(gid: u32, mode: u32) -> NodeAccess {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(NODE).unwrap();
        let saved = NodeAccess {
            owner: (meta.uid(), meta.gid()),
            mode: meta.mode() & 0o7777,
        };
        std::os::unix::fs::chown(NODE, None, Some(gid)).unwrap();
        std::fs::set_permissions(NODE, PermissionsExt::from_mode(mode)).unwrap();
        saved
    }
}

impl Drop for NodeAccess {
    fn drop(&mut self) {
        let _ = std::os::unix::fs::chown(NODE, Some(self.owner.0), Some(self.owner.1));
        let _ = std::fs::set_permissions(NODE, PermissionsExt::from_mode(self.mode));
    }
}

#[test]
fn a_per_cpu_unit_killed_with_sigkill_is_restored_by_exec_stop_post() {
    let _kernel = kernel!();
    // The instance is a range, as the docs' own example (lllqos-hold-cpus@2-3): written as is.
    let cpus = crate::common::cpus();
    let (first, last) = (cpus[0], crate::common::last_cpu());
    let before: Vec<String> = cpus.iter().map(|&cpu| read_cpu(cpu)).collect();
    let unit = contrib("systemd/lllqos-hold-cpus@.service");
    let machine = given!(Machine::boot(
        &[("lllqos-hold-cpus@.service", &unit)],
        Boot {
            writable_sys: true,
            ..Boot::default()
        },
    ));
    let instance = format!("lllqos-hold-cpus@{first}-{last}.service");
    machine.install(
        &format!("{instance}.d/latency.conf"),
        "[Service]\nEnvironment=LATENCY=13us\n",
    );
    machine.systemctl(&["start", &instance]);
    for &cpu in &cpus {
        assert_eq!(read_cpu(cpu), "13", "cpu{cpu}");
    }
    // Every process of the unit, lllqos included, with no chance to restore anything.
    machine.systemctl(&["kill", "-s", "KILL", &instance]);
    machine.wait_for(&instance, "failed");
    let after: Vec<String> = cpus.iter().map(|&cpu| read_cpu(cpu)).collect();
    assert_eq!(after, before, "ExecStopPost=-lllqos recover restored them");
    assert!(machine.read("/run/lllqos/registry.json").is_empty());
}

#[test]
fn a_forking_daemon_under_descendants_holds_until_the_daemon_exits() {
    let kernel = kernel!();
    // A classic daemon: forks, the child starts a session and forks again, the first two exit;
    // the daemon writes its pid and waits for a signal. As the README says, the unit is
    // Type=exec with lllqos --descendants as its main process.
    let daemon = r#"
import os, signal
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
with open("/run/daemon.pid", "w") as f:
    f.write(str(os.getpid()))
signal.pause()
"#;
    let service = "[Service]\nType=exec\nKillMode=mixed\nExecStart=/usr/bin/lllqos --latency 19 \
                   --descendants -- /usr/bin/python3 /usr/local/lib/systemd/system/daemon.py\n";
    let machine = given!(Machine::boot(
        &[("daemon.py", daemon), ("daemon.service", service)],
        Boot::default(),
    ));
    for ending in ["kill", "stop"] {
        machine.run(&["rm", "-f", "/run/daemon.pid"]);
        machine.systemctl(&["start", "daemon.service"]);
        wait_until("the daemon's pid file", || {
            !machine.read("/run/daemon.pid").is_empty()
        });
        // The process systemd started has exited; its daemon holds the request.
        assert_eq!(read_node(), kernel.expect(19));
        assert_eq!(machine.property("daemon.service", "ActiveState"), "active");
        let pid = machine.read("/run/daemon.pid");
        match ending {
            // The daemon ends by itself: the unit ends, and the request with it.
            "kill" => assert!(
                machine
                    .run(&["sh", "-c", &format!("kill {}", pid.trim())])
                    .status
                    .success()
            ),
            // systemctl stop: lllqos relays SIGTERM to the daemon.
            _ => machine.systemctl(&["stop", "daemon.service"]),
        }
        machine.wait_for("daemon.service", "inactive");
        assert_eq!(read_node(), kernel.baseline, "{ending}");
    }
}

/// The metrics service, sandboxed as shipped, writes node_exporter's file with every source read
/// (as root with its two capabilities: the node, every process's descriptors, the registry), and
/// its timer starts.
#[test]
fn the_metrics_service_writes_the_textfile_collectors_file() {
    let kernel = kernel!();
    let service = contrib("systemd/lllqos-metrics.service");
    let timer = contrib("systemd/lllqos-metrics.timer");
    let hold = contrib("systemd/lllqos-hold@.service");
    let machine = given!(Machine::boot(
        &[
            ("lllqos-metrics.service", &service),
            ("lllqos-metrics.timer", &timer),
            ("lllqos-hold@.service", &hold),
        ],
        Boot::default(),
    ));
    machine.systemctl(&["start", "lllqos-hold@42.service"]);
    let output = machine.run(&["mkdir", "-p", "/var/lib/prometheus/node-exporter"]);
    assert!(output.status.success(), "{output:?}");
    machine.systemctl(&["start", "lllqos-metrics.service"]);
    let text = machine.read("/var/lib/prometheus/node-exporter/lllqos.prom");
    let limit = (text.lines())
        .find_map(|line| line.strip_prefix("lllqos_cpu_latency_limit_seconds "))
        .and_then(|value| value.parse::<f64>().ok());
    assert_eq!(limit, Some(f64::from(kernel.expect(42)) / 1e6), "{text}");
    for source in ["cpu_latency", "holders", "resume_latency", "registry"] {
        assert!(
            text.contains(&format!("lllqos_scrape_error{{source=\"{source}\"}} 0\n")),
            "{source}: {text}"
        );
    }
    assert!(
        text.contains(" --latency 42\""),
        "the hold unit's holder: {text}"
    );
    machine.systemctl(&["start", "lllqos-metrics.timer"]);
    machine.wait_for("lllqos-metrics.timer", "active");
}
