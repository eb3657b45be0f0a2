//! Per-CPU constraints against the real sysfs files: encoding, every exit path, overlapping
//! holders, stale holders, other tools' changes, bad input, the registry's safety.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use crate::common::{
    REGISTRY, REGISTRY_DIR, Reaped, lllqos, lllqos_std, read_cpu, wait_for_cpu, write_cpu,
};
use nix::sys::signal::Signal;
use predicates::prelude::*;

use crate::common::{cpus, last_cpu as cpu};

/// Creates the registry by hand, as a crash or another tool could have left it.
fn plant_registry(contents: &str) {
    std::fs::create_dir(REGISTRY_DIR).unwrap();
    std::fs::set_permissions(
        REGISTRY_DIR,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    std::fs::write(REGISTRY, contents).unwrap();
}

/// Starts a holder `lllqos --cpu LIST -l US` (no command) and waits until `cpu` reads `expect`.
fn holder(list: &str, us: u32, cpu: u32, expect: &str) -> Reaped {
    let child =
        Reaped::spawn(lllqos_std(["--cpu", list, "-l", &us.to_string()]).stderr(Stdio::piped()));
    wait_for_cpu(cpu, expect);
    child
}

/// Ends a holder with SIGTERM and returns its stderr.
fn stop(mut holder: Reaped) -> String {
    holder.signal(Signal::SIGTERM);
    assert_eq!(holder.wait().code(), Some(0));
    let mut err = String::new();
    std::io::Read::read_to_string(holder.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    err
}

#[test]
fn zero_is_written_as_na_never_as_0_and_restored() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    lllqos(["--cpu", &cpu.to_string(), "-l", "0", "cat"])
        .arg(crate::common::cpu_file(cpu))
        .assert()
        .success()
        .stdout("n/a\n");
    assert_eq!(read_cpu(cpu), before);
}

#[test]
fn other_values_are_written_in_decimal() {
    let _kernel = kernel!();
    let cpu = cpu();
    lllqos(["--cpu", &cpu.to_string(), "-l", "0.25ms", "cat"])
        .arg(crate::common::cpu_file(cpu))
        .assert()
        .success()
        .stdout("250\n");
}

#[test]
fn only_the_named_cpus_change_and_no_global_request_is_placed() {
    let kernel = kernel!();
    let cpu = cpu();
    let others: Vec<(u32, String)> = cpus()
        .into_iter()
        .filter(|&c| c != cpu)
        .map(|c| (c, read_cpu(c)))
        .collect();
    let script = format!(
        "od -An -td4 -N4 /dev/cpu_dma_latency; {}",
        others
            .iter()
            .map(|(c, _)| format!("cat {}", crate::common::cpu_file(*c).display()))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let out = lllqos(["--cpu", &cpu.to_string(), "-l", "0", "sh", "-c", &script])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap().trim().parse::<i32>().unwrap(),
        kernel.baseline
    );
    for ((_, before), now) in others.iter().zip(lines) {
        assert_eq!(before, now);
    }
}

#[test]
fn environment_names_the_latency_and_the_cpus() {
    let _kernel = kernel!();
    let cpu = cpu();
    lllqos([
        "--cpu",
        &cpu.to_string(),
        "-l",
        "15",
        "sh",
        "-c",
        "echo $LLLQOS_LATENCY_US $LLLQOS_CPUS",
    ])
    .assert()
    .success()
    .stdout(format!("15 {cpu}\n"));
}

#[test]
fn restored_when_the_command_is_killed_by_a_signal() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    let status = lllqos_std([
        "--cpu",
        &cpu.to_string(),
        "-l",
        "5",
        "sh",
        "-c",
        "kill -TERM $$",
    ])
    .status()
    .unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert_eq!(read_cpu(cpu), before);
}

#[test]
fn restored_when_a_signal_sent_to_lllqos_ends_the_command() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    for signal in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        let mut child = Reaped::spawn(&mut lllqos_std([
            "--cpu",
            &cpu.to_string(),
            "-l",
            "6",
            "sleep",
            "30",
        ]));
        wait_for_cpu(cpu, "6");
        child.signal(signal);
        assert_eq!(child.wait().signal(), Some(signal as i32));
        assert_eq!(read_cpu(cpu), before, "after {signal}");
    }
}

#[test]
fn restored_when_the_command_cannot_be_run() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    lllqos([
        "--cpu",
        &cpu.to_string(),
        "-l",
        "5",
        "no-such-command-lllqos",
    ])
    .assert()
    .code(127);
    assert_eq!(read_cpu(cpu), before);
}

#[test]
fn hold_restores_on_release_signals_and_on_fatal_ones() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        let h = holder(&cpu.to_string(), 20, cpu, "20");
        let mut h = h;
        h.signal(signal);
        assert_eq!(h.wait().code(), Some(0));
        assert_eq!(read_cpu(cpu), before, "after {signal}");
    }
    for signal in [Signal::SIGUSR1, Signal::SIGALRM, Signal::SIGQUIT] {
        let mut h = holder(&cpu.to_string(), 21, cpu, "21");
        h.signal(signal);
        assert_eq!(h.wait().signal(), Some(signal as i32));
        assert_eq!(read_cpu(cpu), before, "after {signal}");
    }
}

#[test]
fn hold_with_pid_restores_when_the_process_exits() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    let mut sleeper = Reaped::spawn(Command::new("sleep").arg("0.5"));
    let mut h = Reaped::spawn(&mut lllqos_std([
        "--cpu",
        &cpu.to_string(),
        "-l",
        "22",
        "--pid",
        &sleeper.pid().to_string(),
    ]));
    wait_for_cpu(cpu, "22");
    sleeper.wait();
    assert_eq!(h.wait().code(), Some(0));
    assert_eq!(read_cpu(cpu), before);
}

#[test]
fn two_holders_the_strictest_wins_and_the_last_restores_either_order() {
    let _kernel = kernel!();
    let cpu = cpu();
    let list = cpu.to_string();
    let before = read_cpu(cpu);
    // Looser first, stricter leaves first.
    let a = holder(&list, 50, cpu, "50");
    let b = holder(&list, 20, cpu, "20");
    stop(b);
    assert_eq!(read_cpu(cpu), "50");
    stop(a);
    assert_eq!(read_cpu(cpu), before);
    // Looser first, looser leaves first.
    let a = holder(&list, 50, cpu, "50");
    let b = holder(&list, 20, cpu, "20");
    stop(a);
    assert_eq!(read_cpu(cpu), "20");
    stop(b);
    assert_eq!(read_cpu(cpu), before);
    // Stricter first: the looser one changes nothing.
    let a = holder(&list, 0, cpu, "n/a");
    let b = Reaped::spawn(lllqos_std(["--cpu", &list, "-l", "40"]).stderr(Stdio::piped()));
    crate::common::wait_until("the second holder to register", || {
        std::fs::read_to_string(REGISTRY)
            .map(|r| r.matches("\"pid\"").count() == 2)
            .unwrap_or(false)
    });
    assert_eq!(read_cpu(cpu), "n/a");
    stop(a);
    assert_eq!(read_cpu(cpu), "40");
    stop(b);
    assert_eq!(read_cpu(cpu), before);
}

#[test]
fn three_holders_on_overlapping_cpus() {
    let _kernel = kernel!();
    let all = cpus();
    applicable!(all.len() >= 2, "needs two CPUs");
    let (x, y) = (all[0], all[1]);
    let (bx, by) = (read_cpu(x), read_cpu(y));
    let both = format!("{x},{y}");
    let a = holder(&both, 30, y, "30");
    assert_eq!(read_cpu(x), "30");
    let b = holder(&y.to_string(), 10, y, "10");
    let c = holder(&x.to_string(), 20, x, "20");
    assert_eq!((read_cpu(x), read_cpu(y)), ("20".into(), "10".into()));
    stop(a);
    assert_eq!((read_cpu(x), read_cpu(y)), ("20".into(), "10".into()));
    stop(c);
    assert_eq!((read_cpu(x), read_cpu(y)), (bx.clone(), "10".into()));
    stop(b);
    assert_eq!((read_cpu(x), read_cpu(y)), (bx.clone(), by.clone()));
    // And in another order.
    let c = holder(&x.to_string(), 20, x, "20");
    let b = holder(&y.to_string(), 10, y, "10");
    let a = holder(&both, 5, y, "5");
    assert_eq!(read_cpu(x), "5");
    stop(b);
    stop(c);
    assert_eq!((read_cpu(x), read_cpu(y)), ("5".into(), "5".into()));
    stop(a);
    assert_eq!((read_cpu(x), read_cpu(y)), (bx, by));
}

#[test]
fn a_holder_killed_by_sigkill_is_dropped_by_the_next_lllqos() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    let mut h = holder(&cpu.to_string(), 23, cpu, "23");
    h.signal(Signal::SIGKILL);
    h.wait();
    // Nothing could restore it: the value stays until another lllqos looks.
    assert_eq!(read_cpu(cpu), "23");
    let other = cpus()[0];
    lllqos(["-v", "--cpu", &other.to_string(), "-l", "7", "true"])
        .assert()
        .success()
        .stderr(predicate::str::contains("exited without releasing"));
    assert_eq!(read_cpu(cpu), before);
    assert!(!std::path::Path::new(REGISTRY_DIR).exists());
}

#[test]
fn a_reused_pid_is_not_mistaken_for_a_live_holder() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    // A registry left by a holder that was pid 1 in an earlier life (wrong start time).
    plant_registry(&format!(
        r#"{{"version":1,"cpus":{{"{cpu}":{{"original":"{before}","written":"31"}}}},"holders":[{{"pid":1,"start_time":999999999,"cpus":[{cpu}],"latency_us":31}}]}}"#
    ));
    write_cpu(cpu, "31");
    lllqos(["--cpu", &cpus()[0].to_string(), "-l", "7", "true"])
        .assert()
        .success();
    assert_eq!(read_cpu(cpu), before);
}

#[test]
fn a_value_changed_by_another_tool_is_left_alone_with_a_warning() {
    let _kernel = kernel!();
    let cpu = cpu();
    let h = holder(&cpu.to_string(), 50, cpu, "50");
    write_cpu(cpu, "300");
    let err = stop(h);
    assert!(err.contains(&format!("cpu{cpu}: resume latency was changed by another tool (lllqos wrote 50, found 300): left as it is")), "{err}");
    assert_eq!(read_cpu(cpu), "300");
}

#[test]
fn another_tools_value_is_restored_after_the_remaining_holders() {
    let _kernel = kernel!();
    let cpu = cpu();
    let list = cpu.to_string();
    let a = holder(&list, 50, cpu, "50");
    let b = holder(&list, 20, cpu, "20");
    write_cpu(cpu, "300");
    let err = stop(b);
    assert!(
        err.contains("300 will be restored when the last holder leaves"),
        "{err}"
    );
    assert_eq!(read_cpu(cpu), "50");
    stop(a);
    assert_eq!(read_cpu(cpu), "300");
}

#[test]
fn bad_cpu_lists_exit_125_and_change_nothing() {
    let _kernel = kernel!();
    let before: Vec<String> = cpus().iter().map(|&c| read_cpu(c)).collect();
    let dir = tempfile::tempdir().unwrap();
    let touched = dir.path().join("ran");
    for (bad, says) in [
        ("", "empty"),
        ("1,", "empty item"),
        ("a", "'a' is not a CPU number"),
        ("1-0", "reversed range 1-0"),
        ("0-", "'' is not a CPU number"),
        ("4096", "CPU 4096 does not exist"),
        ("0,4096", "CPU 4096 does not exist"),
    ] {
        let assert = lllqos(["--cpu", bad, "-l", "0", "touch"])
            .arg(&touched)
            .assert()
            .code(125);
        let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{bad:?}: {stderr}");
        assert!(!touched.exists());
        assert!(!std::path::Path::new(REGISTRY_DIR).exists());
        let now: Vec<String> = cpus().iter().map(|&c| read_cpu(c)).collect();
        assert_eq!(now, before);
    }
}

#[test]
fn auto_takes_the_cpus_lllqos_may_run_on() {
    let _kernel = kernel!();
    let all = cpus();
    let cpu = cpu();
    let mut cmd = lllqos_std([
        "--cpu",
        "auto",
        "-l",
        "12",
        "sh",
        "-c",
        "cat /sys/devices/system/cpu/cpu*/power/pm_qos_resume_latency_us",
    ]);
    // What `taskset -c CPU lllqos ...` does.
    // SAFETY: sched_setaffinity in the child before exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            let mut set = nix::sched::CpuSet::new();
            set.set(cpu as usize).unwrap();
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
                .map_err(std::io::Error::from)
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let values: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    for (i, &c) in all.iter().enumerate() {
        if c == cpu {
            assert_eq!(values[i], "12");
        } else {
            assert_ne!(values[i], "12");
        }
    }
    if crate::common::have("taskset") {
        lllqos(["-v", "--cpu", "auto", "-l", "13", "true"])
            .assert()
            .success();
        let out = Command::new("taskset")
            .args(["-c", &cpu.to_string()])
            .arg(crate::common::bin())
            .args(["--cpu", "auto", "-l", "13", "sh", "-c", "echo $LLLQOS_CPUS"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), cpu.to_string());
    }
}

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

#[test]
fn the_library_guard_restores_on_drop() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    let list: lllqos::CpuList = cpu.to_string().parse().unwrap();
    {
        let guard =
            lllqos::CpuConstraint::acquire(&list, lllqos::Latency::from_micros(26).unwrap())
                .unwrap();
        assert_eq!(read_cpu(cpu), "26");
        assert!(guard.notices().is_empty());
    }
    assert_eq!(read_cpu(cpu), before);
}

/// `--max-state` with `--cpu` gives each CPU its own limit; two constraints of one process are
/// separate registry records, each released on its own.
#[test]
fn per_cpu_limits_differ_and_two_guards_of_one_process_release_separately() {
    let _kernel = kernel!();
    let all = cpus();
    applicable!(all.len() >= 2, "needs two CPUs");
    let (a, b) = (all[all.len() - 2], all[all.len() - 1]);
    let before = (read_cpu(a), read_cpu(b));
    let us = |n| lllqos::Latency::micros(n);
    let limits = lllqos::CpuLimits::new([(a, us(31)), (b, us(32))]).unwrap();
    let each = lllqos::CpuConstraint::acquire_each(&limits).unwrap();
    assert_eq!(
        (read_cpu(a), read_cpu(b)),
        ("31".to_owned(), "32".to_owned())
    );
    // A second guard of this process on `b` alone, stricter.
    let only_b: lllqos::CpuList = b.to_string().parse().unwrap();
    let second = lllqos::CpuConstraint::acquire(&only_b, us(20)).unwrap();
    assert_eq!(read_cpu(b), "20");
    // Releasing the first leaves the second in force, and its record in the registry.
    each.release().unwrap();
    assert_eq!(read_cpu(a), before.0);
    assert_eq!(read_cpu(b), "20");
    assert!(
        std::fs::read_to_string(REGISTRY)
            .unwrap()
            .contains("\"latency_us\": 20")
    );
    let notices = second.release().unwrap();
    assert!(notices.is_empty(), "{notices:?}");
    assert_eq!((read_cpu(a), read_cpu(b)), before);
}

#[test]
fn a_full_stderr_does_not_stop_the_command_and_the_cpu_is_restored() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    let out = Command::new("sh")
        .args([
            "-c",
            &format!(
                "\"$0\" -v --cpu {cpu} -l 5 -- cat {} 2>/dev/full",
                crate::common::cpu_file(cpu).display()
            ),
        ])
        .arg(crate::common::bin())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "5\n");
    assert_eq!(read_cpu(cpu), before);
}
