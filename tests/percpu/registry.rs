//! The registry against hostile files: symlinks, corruption, values out of range, other users.

use super::*;

#[test]
fn a_symlinked_registry_directory_is_refused() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    let target = tempfile::tempdir().unwrap();
    // The directory as it is before lllqos first runs (the guard puts back what was there).
    let _ = std::fs::remove_dir_all(REGISTRY_DIR);
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

/// No descriptor of the registry (its lock, the holder file, the registry file) reaches the
/// command, whichever way lllqos starts it (posix_spawn; fork and exec under SCHED_RESET_ON_FORK
/// and with SIGCHLD ignored), nor a process the command starts, nor the witness of group-wide
/// signals: a copy would keep a dead holder's lock, and its values, alive.
#[test]
fn no_descriptor_of_the_registry_reaches_the_command_or_any_child() {
    let _kernel = kernel!();
    require_program!("chrt", "util-linux");
    let cpu = cpu();
    let before = read_cpu(cpu);
    // The command lists its descriptors, and those of a child of its own; then waits, so that
    // the sentinel's can be read too.
    let list = "for f in /proc/$$/fd/*; do readlink $f; done; \
                sh -c 'for f in /proc/$$/fd/*; do readlink $f; done'; \
                echo listed; read line || true";
    let lllqos = crate::common::bin();
    let cpu_arg = cpu.to_string();
    let direct = ["--cpu", &cpu_arg, "-l", "4", "--", "sh", "-c", list];
    let launches: [(&str, Vec<&str>); 3] = [
        ("posix_spawn", vec![]),
        (
            "chrt --reset-on-fork",
            vec!["chrt", "--reset-on-fork", "--other", "0"],
        ),
        (
            "SIGCHLD ignored",
            vec!["sh", "-c", "trap '' CHLD; exec \"$0\" \"$@\""],
        ),
    ];
    for (how, prefix) in launches {
        let mut command = match prefix.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&lllqos);
                command
            }
            None => Command::new(&lllqos),
        };
        command
            .args(direct)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = Reaped(command.spawn().unwrap());
        let mut out = std::io::BufReader::new(child.0.stdout.take().unwrap());
        let mut seen = Vec::new();
        loop {
            let mut line = String::new();
            assert!(
                std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
                "{how}"
            );
            if line.trim() == "listed" {
                break;
            }
            seen.push(line.trim().to_owned());
        }
        assert_eq!(read_cpu(cpu), "4", "{how}");
        assert!(
            !seen.iter().any(|target| target.starts_with(REGISTRY_DIR)),
            "{how}: the command has {seen:?}"
        );
        // The witness of group-wide signals keeps no descriptor at all. (Each launch execs
        // lllqos in the process spawned here.)
        let mut sentinels = Vec::new();
        crate::common::wait_until("the sentinel", || {
            sentinels = sentinels_of(child.pid());
            !sentinels.is_empty()
        });
        for sentinel in sentinels {
            crate::common::wait_until("the sentinel to close its descriptors", || {
                std::fs::read_dir(format!("/proc/{sentinel}/fd")).is_ok_and(|d| d.count() == 0)
            });
        }
        drop(child.0.stdin.take());
        assert!(child.wait().success(), "{how}");
        assert_eq!(read_cpu(cpu), before, "{how}");
    }
}

/// The `qos-sentinel` children of process `pid`.
fn sentinels_of(pid: i32) -> Vec<i32> {
    (std::fs::read_dir("/proc").into_iter().flatten().flatten())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            stat.contains("(qos-sentinel)")
                && stat
                    .rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                    == Some(pid)
        })
        .collect()
}
