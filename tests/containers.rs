//! What lllqos says where a container hides the kernel's interface: the node not passed in, /sys
//! mounted read-only. Each case is built for real in a private mount namespace (`unshare -m`); /sys
//! is made read-only with a bind remount, which changes that one mount, never sysfs itself.

mod common;

use common::{Kernel, bin, read_cpu};

/// Runs `script` (with `$B` the lllqos binary) in a new mount namespace; `None` where unshare
/// cannot make one (no root, no unshare(1)).
fn in_mount_namespace(test: &str, script: &str) -> Option<std::process::Output> {
    if !common::have_or_skip(test, "unshare", "util-linux") {
        return None;
    }
    let output = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("B", bin())
        .output()
        .unwrap();
    Some(output)
}

#[test]
fn a_node_not_passed_in_is_named_as_such() {
    let Some(_kernel) = Kernel::take(common::test_name!()) else {
        return;
    };
    let Some(output) = in_mount_namespace(
        common::test_name!(),
        "mount -t tmpfs tmpfs /dev && \"$B\" --strict -- true",
    ) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot open /dev/cpu_dma_latency: No such file or directory")
            && stderr.contains("docker run --device /dev/cpu_dma_latency"),
        "{stderr}"
    );
}

#[test]
fn a_read_only_sys_is_named_and_nothing_changes() {
    let Some(_kernel) = Kernel::take(common::test_name!()) else {
        return;
    };
    let cpu = common::resume_latency_files().len() as u32 - 1;
    let before = read_cpu(cpu);
    let script = format!(
        "mount -o remount,bind,ro /sys && \"$B\" --strict --cpu {cpu} -l 3 -- true; echo status=$?; \
         \"$B\" --cpu {cpu} -l 3 -- true; echo status=$?"
    );
    let Some(output) = in_mount_namespace("a_read_only_sys_is_named_and_nothing_changes", &script)
    else {
        return;
    };
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
