//! One holder: the value written as the file wants it, on the CPUs named only, restored on every way out.

use super::*;

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
        assert_eq!(crate::common::registry_left(), Vec::<String>::new());
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
    require_program!("taskset", "util-linux");
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
            .contains("\"latency_us\":20")
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
