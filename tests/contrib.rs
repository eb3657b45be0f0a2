//! The material in contrib/: systemd units checked by `systemd-analyze verify`, the udev rule by a
//! syntax check against the real device (udevadm 252 has no `verify`, and `udevadm test` would
//! apply the permissions to the real node).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::Missing;

fn contrib(path: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("contrib")
            .join(path),
    )
    .unwrap()
}

/// Runs `systemd-analyze verify UNIT` with the units of `dir` on the unit path; returns stderr.
///
/// As root it runs as `nobody`: run as root, systemd-analyze leaves a file of its own in
/// /run/systemd, and a test must not change the machine.
fn verify(dir: &Path, unit: &str) -> Result<String, Missing> {
    crate::common::program("systemd-analyze", "systemd")?;
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(["verify", "--man=no"])
        .arg(dir.join(unit))
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()));
    if nix::unistd::geteuid().is_root() {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{unit}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stderr).unwrap())
}

/// A world-readable directory for the units, with a copy of the binary under test in it.
fn unit_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::copy(crate::common::bin(), dir.path().join("lllqos")).unwrap();
    dir
}

/// The unit text with lllqos (named without a directory, for systemd's search path) replaced by
/// the copy in `dir`: verify checks that ExecStart's program exists and is executable, and lllqos
/// is not installed where the tests run.
fn localize(unit: &str, dir: &Path) -> String {
    unit.replace(
        "ExecStart=lllqos ",
        &format!("ExecStart={} ", dir.join("lllqos").display()),
    )
}

fn write(path: PathBuf, text: &str) {
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(path, PermissionsExt::from_mode(0o644)).unwrap();
}

#[test]
fn the_hold_template_unit_verifies() {
    let dir = unit_dir();
    let unit = localize(&contrib("systemd/lllqos-hold@.service"), dir.path());
    write(dir.path().join("lllqos-hold@.service"), &unit);
    let warnings = given!(verify(dir.path(), "lllqos-hold@50us.service"));
    assert_eq!(warnings, "");
}

#[test]
fn the_metrics_service_and_timer_verify() {
    let dir = unit_dir();
    for unit in ["lllqos-metrics.service", "lllqos-metrics.timer"] {
        let text = localize(&contrib(&format!("systemd/{unit}")), dir.path());
        write(dir.path().join(unit), &text);
    }
    for unit in ["lllqos-metrics.service", "lllqos-metrics.timer"] {
        let warnings = given!(verify(dir.path(), unit));
        assert_eq!(warnings, "", "{unit}");
    }
}

#[test]
fn the_nri_service_verifies_beside_containerd() {
    let dir = unit_dir();
    let unit = localize(&contrib("systemd/lllqos-nri.service"), dir.path());
    write(dir.path().join("lllqos-nri.service"), &unit);
    // The unit it starts after and is wanted by, as containerd's package installs one.
    write(
        dir.path().join("containerd.service"),
        "[Service]\nExecStart=/bin/sleep infinity\n",
    );
    let warnings = given!(verify(dir.path(), "lllqos-nri.service"));
    assert_eq!(warnings, "");
}

#[test]
fn the_nri_service_leaves_the_holders_when_it_stops() {
    // The holders are in the unit's cgroup: stopping or restarting the plugin must signal the
    // plugin alone (systemd's default, control-group, would end every container's request), and
    // nothing may stop the plugin with containerd (it waits for containerd by itself).
    let unit = contrib("systemd/lllqos-nri.service");
    let settings: Vec<&str> = unit.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(settings.contains(&"KillMode=process"), "{unit}");
    for binding in ["BindsTo=", "PartOf=", "Requisite="] {
        assert!(
            !settings.iter().any(|l| l.starts_with(binding)),
            "{binding} in {unit}"
        );
    }
    // A descriptor per held container: room for 10,000 and more.
    let limit = (settings.iter())
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(limit >= 10_100, "LimitNOFILE={limit}");
}

#[test]
fn the_per_cpu_hold_template_unit_verifies() {
    let dir = unit_dir();
    let unit = localize(&contrib("systemd/lllqos-hold-cpus@.service"), dir.path());
    write(dir.path().join("lllqos-hold-cpus@.service"), &unit);
    let warnings = given!(verify(dir.path(), "lllqos-hold-cpus@0-1.service"));
    assert_eq!(warnings, "");
}

#[test]
fn the_drop_in_verifies_on_a_notify_service() {
    let dir = unit_dir();
    let service = "[Service]\nType=notify\nExecStart=/bin/sleep infinity\n";
    write(dir.path().join("myapp.service"), service);
    let drop_ins = dir.path().join("myapp.service.d");
    std::fs::create_dir(&drop_ins).unwrap();
    std::fs::set_permissions(&drop_ins, PermissionsExt::from_mode(0o755)).unwrap();
    let drop_in = localize(&contrib("systemd/lllqos.conf"), dir.path())
        .replace("/usr/bin/myapp --its-own --options", "/bin/sleep infinity");
    write(drop_ins.join("lllqos.conf"), &drop_in);
    let warnings = given!(verify(dir.path(), "myapp.service"));
    assert_eq!(warnings, "");
    for setting in ["ExecStart=\n", "KillMode=mixed", "NotifyAccess=all"] {
        assert!(drop_in.contains(setting), "{setting}");
    }
}

#[test]
fn the_hold_unit_runs_lllqos_strict_with_the_instance_as_latency_and_the_node_allowed() {
    let unit = contrib("systemd/lllqos-hold@.service");
    assert!(unit.contains("ExecStart=lllqos --strict --latency %I"));
    assert!(unit.contains("DeviceAllow=/dev/cpu_dma_latency rw"));
}

/// The udev rule gives the package's group (the one its sysusers.d file creates) the PM QoS nodes,
/// by their kernel names, which are the names the kernel uses (/sys/class/misc/NAME where the
/// node exists here).
#[test]
fn the_udev_rule_gives_the_packages_group_the_pm_qos_nodes() {
    let rule = contrib("udev/70-lllqos.rules");
    let sysusers = contrib("debian/lllqos.sysusers");
    let group = sysusers
        .lines()
        .find_map(|l| l.strip_prefix("g "))
        .and_then(|l| l.split_whitespace().next())
        .expect("a g line in lllqos.sysusers");
    let mut kernels = Vec::new();
    for line in rule
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    {
        let mut keys = Vec::new();
        for item in line.split(", ") {
            let (key, op, value) = ["==", "="]
                .iter()
                .find_map(|op| item.split_once(op).map(|(k, v)| (k, *op, v)))
                .unwrap_or_else(|| panic!("no operator in {item:?}"));
            assert!(
                value.starts_with('"') && value.ends_with('"') && value.len() >= 2,
                "{item}"
            );
            let value = &value[1..value.len() - 1];
            match (key, op) {
                ("KERNEL", "==") => kernels.push(value.to_owned()),
                ("GROUP", "=") => assert_eq!(value, group),
                ("MODE", "=") => assert_eq!(value, "0660"),
                other => panic!("unexpected {other:?} in the rule"),
            }
            keys.push(key);
        }
        assert_eq!(keys, ["KERNEL", "GROUP", "MODE"], "{line}");
    }
    assert_eq!(kernels, ["cpu_dma_latency", "cpu_wakeup_latency"]);
    for name in &kernels {
        let class = Path::new("/sys/class/misc").join(name);
        if class.exists() {
            let uevent = std::fs::read_to_string(class.join("uevent")).unwrap();
            assert!(uevent.contains(&format!("DEVNAME={name}\n")), "{uevent}");
        }
    }
}
