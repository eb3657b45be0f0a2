//! What lllqos says where a container hides the kernel's interface: the node not passed in, /sys
//! mounted read-only. Each case is built for real in a private mount namespace (`unshare -m`); /sys
//! is made read-only with a bind remount, which changes that one mount, never sysfs itself.

use crate::common::{Missing, bin, last_cpu, read_cpu};

/// Runs `script` (with `$B` the lllqos binary) in a new mount namespace, or says that unshare(1)
/// is missing.
fn in_mount_namespace(script: &str) -> Result<std::process::Output, Missing> {
    crate::common::program("unshare", "util-linux")?;
    let output = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("B", bin())
        .output()
        .unwrap();
    Ok(output)
}

#[test]
fn a_node_not_passed_in_is_named_as_such() {
    let _kernel = kernel!();
    let output = given!(in_mount_namespace(
        "mount -t tmpfs tmpfs /dev && \"$B\" --strict -- true"
    ));
    let stderr = crate::common::refused(&output);
    assert!(
        stderr.contains("cannot open /dev/cpu_dma_latency: No such file or directory")
            && stderr.contains("docker run --device /dev/cpu_dma_latency"),
        "{stderr}"
    );
}

#[test]
fn a_read_only_sys_is_named_and_nothing_changes() {
    let _kernel = kernel!();
    let cpu = last_cpu();
    let before = read_cpu(cpu);
    let script = format!(
        "mount -o remount,bind,ro /sys && \"$B\" --strict --cpu {cpu} -l 3 -- true; echo status=$?; \
         \"$B\" --cpu {cpu} -l 3 -- true; echo status=$?"
    );
    let output = given!(in_mount_namespace(&script));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stdout, "status=125\nstatus=0\n", "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("Read-only file system")
                && l.contains("--cpu needs a writable /sys"))
    );
    assert!(lines[1].starts_with("lllqos: warning: "), "{stderr}");
    assert_eq!(read_cpu(cpu), before);
}
