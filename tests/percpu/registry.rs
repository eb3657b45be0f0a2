//! The registry against hostile files: symlinks, corruption, values out of range, other users.

use super::*;

#[test]
fn a_symlinked_registry_directory_is_refused() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    let target = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(target.path(), REGISTRY_DIR).unwrap();
    let result = lllqos(["--strict", "--cpu", &cpu.to_string(), "-l", "0", "true"])
        .assert()
        .code(125);
    std::fs::remove_file(REGISTRY_DIR).unwrap();
    let stderr = String::from_utf8(result.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("/run/lllqos"), "{stderr}");
    assert_eq!(read_cpu(cpu), before);
    assert_eq!(
        std::fs::read_dir(target.path()).unwrap().count(),
        0,
        "wrote through the symlink"
    );
}

#[test]
fn a_corrupt_registry_is_a_clear_error_and_is_kept() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    plant_registry("{ not json");
    lllqos(["--strict", "--cpu", &cpu.to_string(), "-l", "0", "true"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains(
            "corrupt registry /run/lllqos/registry.json",
        ));
    // Best effort: a warning, and the command runs.
    lllqos(["--cpu", &cpu.to_string(), "-l", "0", "echo", "ran"])
        .assert()
        .success()
        .stdout("ran\n")
        .stderr(
            predicate::str::contains("warning").and(predicate::str::contains("corrupt registry")),
        );
    assert_eq!(std::fs::read_to_string(REGISTRY).unwrap(), "{ not json");
    assert_eq!(read_cpu(cpu), before);
    std::fs::remove_dir_all(REGISTRY_DIR).unwrap();
}

#[test]
fn a_registry_with_any_field_out_of_range_is_refused_and_nothing_changes() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    let holder = |pid: &str, cpus: &str, latency: &str| {
        format!(
            r#"{{"version":1,"cpus":{{}},"holders":[{{"pid":{pid},"start_time":1,"cpus":{cpus},"latency_us":{latency}}}]}}"#
        )
    };
    for (registry, why) in [
        (holder("1", "[1]", "3000000000"), "latency"),
        (holder("1", "[1]", "2147483647"), "latency"),
        (holder("1", "[1]", "-5"), "-5"),
        (holder("0", "[1]", "5"), "pid"),
        (holder("-7", "[1]", "5"), "pid"),
        (holder("1", "[]", "5"), "holds no CPU"),
        (holder("1", "[4294967295]", "5"), "out of range"),
        (holder("1", "[\"1\"]", "5"), "string \"1\""),
        (holder("\"x\"", "[1]", "5"), "string \"x\""),
        (
            r#"{"version":1,"cpus":{"1":{"original":"0","written":"99999999999"}},"holders":[]}"#
                .to_owned(),
            "99999999999",
        ),
        (
            r#"{"version":1,"cpus":{"1":{"original":"0"}},"holders":[]}"#.to_owned(),
            "written",
        ),
        (r#"{"version":1,"cpus":{"1":"#.to_owned(), "EOF"),
    ] {
        plant_registry(&registry);
        lllqos([
            "--strict",
            "--cpu",
            &cpu.to_string(),
            "-l",
            "9",
            "echo",
            "ran",
        ])
        .assert()
        .code(125)
        .stdout("")
        .stderr(
            predicate::str::contains("corrupt registry /run/lllqos/registry.json")
                .and(predicate::str::contains(why)),
        );
        lllqos(["--cpu", &cpu.to_string(), "-l", "9", "echo", "ran"])
            .assert()
            .success()
            .stdout("ran\n")
            .stderr(predicate::str::contains("warning: --cpu"));
        assert_eq!(
            std::fs::read_to_string(REGISTRY).unwrap(),
            registry,
            "{why}"
        );
        assert_eq!(read_cpu(cpu), before, "{why}");
        lllqos(["status"])
            .assert()
            .success()
            .stdout(predicate::str::contains("corrupt registry"));
        std::fs::remove_dir_all(REGISTRY_DIR).unwrap();
    }
}

#[test]
fn the_registry_is_private() {
    let _kernel = kernel!();
    let cpu = cpu();
    let mut h = Reaped::spawn(&mut lllqos_std(["--cpu", &cpu.to_string(), "-l", "24"]));
    wait_for_cpu(cpu, "24");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(REGISTRY_DIR), 0o700);
    assert_eq!(mode(REGISTRY), 0o600);
    h.signal(Signal::SIGTERM);
    h.wait();
}
