//! The loops: one per CPU with --smp, and every way a signal ends them (the request released, the partial result printed).

use super::*;

#[test]
fn interrupted_measurement_restores_the_cpu_and_dies_of_the_signal() {
    let _kernel = kernel!();
    let cpu: u32 = crate::common::last_cpu();
    let before = read_cpu(cpu);
    let mut run = Reaped::spawn(&mut lllqos_std([
        "measure",
        "--duration",
        "0.3",
        "--cpu",
        &cpu.to_string(),
        "-l",
        "9",
    ]));
    wait_for_cpu(cpu, "9");
    run.signal(Signal::SIGINT);
    assert_eq!(run.wait().signal(), Some(libc::SIGINT));
    assert_eq!(read_cpu(cpu), before);
}

#[test]
fn any_terminating_signal_restores_the_cpu_prints_the_partial_result_and_kills_lllqos() {
    let _kernel = kernel!();
    let cpu: u32 = crate::common::last_cpu();
    let before = read_cpu(cpu);
    for signal in [
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGALRM,
        Signal::SIGTERM,
        Signal::SIGHUP,
    ] {
        let mut cmd = lllqos_std([
            "measure",
            "--json",
            "--duration",
            "0.3",
            "--cpu",
            &cpu.to_string(),
            "-l",
            "7",
        ]);
        cmd.stdout(std::process::Stdio::piped());
        // Each with its default disposition, whatever this test inherited (under nohup, SIGHUP
        // is ignored, and measure rightly keeps it so).
        // SAFETY: signal(2) with SIG_DFL in the child before exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::signal(signal as i32, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut run = Reaped::spawn(&mut cmd);
        wait_for_cpu(cpu, "7");
        run.signal(signal);
        let status = run.wait();
        assert_eq!(status.signal(), Some(signal as i32), "{signal}");
        assert!(!status.core_dumped());
        assert_eq!(read_cpu(cpu), before, "after {signal}");
        let mut out = String::new();
        std::io::Read::read_to_string(run.0.stdout.as_mut().unwrap(), &mut out).unwrap();
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["interrupted_by"], signal.as_str(), "{out}");
        assert!(report["without"]["samples"].as_u64().unwrap() > 0, "{out}");
    }
}

/// The online CPUs this test may run on: what `--smp` measures without `--cpu`.
fn allowed_cpus() -> Vec<u32> {
    lllqos::cpulist::CpuList::affinity()
        .unwrap()
        .cpus()
        .to_vec()
}

#[test]
fn smp_gives_one_row_per_cpu_with_the_expected_samples_and_their_total() {
    let kernel = kernel!();
    let report = measure_json(&["--smp", "--duration", "0.5", "--interval", "1000"]);
    let per_cpu = report["per_cpu"].as_array().expect("per_cpu with --smp");
    let cpus: Vec<u64> = per_cpu.iter().map(|c| c["cpu"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = allowed_cpus().into_iter().map(u64::from).collect();
    assert_eq!(cpus, expected, "one loop per online CPU, in order");
    for phase in ["without", "with"] {
        let mut samples = 0;
        for cpu in per_cpu {
            check_phase(&cpu[phase], 500);
            assert!(cpu[phase].get("idle_states").is_none(), "{cpu}");
            samples += cpu[phase]["samples"].as_u64().unwrap();
        }
        assert_eq!(
            report[phase]["samples"].as_u64(),
            Some(samples),
            "the total"
        );
        let max = per_cpu.iter().map(|c| c[phase]["max_us"].as_u64().unwrap());
        assert_eq!(report[phase]["max_us"].as_u64(), max.max());
    }
    assert_eq!(report["settings"]["smp"], true);
    assert_eq!(crate::common::read_node(), kernel.baseline);
}

#[test]
fn smp_with_cpu_measures_only_those_cpus_and_restores_them() {
    let _kernel = kernel!();
    let cpu = crate::common::last_cpu();
    let before = read_cpu(cpu);
    let list = cpu.to_string();
    let report = measure_json(&[
        "-S",
        "--cpu",
        &list,
        "--duration",
        "0.3",
        "--priority",
        "80",
    ]);
    let per_cpu = report["per_cpu"].as_array().unwrap();
    assert_eq!(per_cpu.len(), 1, "{report}");
    assert_eq!(per_cpu[0]["cpu"], cpu);
    check_phase(&per_cpu[0]["with"], 300);
    assert_eq!(read_cpu(cpu), before);
    let text = lllqos(["measure", "--smp", "--duration", "0.2"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(text).unwrap();
    let rows: Vec<&str> = (text.lines())
        .filter(|l| l.starts_with("cpu") && !l.contains('%'))
        .collect();
    assert_eq!(rows.len(), allowed_cpus().len(), "{text}");
    assert!(text.lines().any(|l| l.starts_with("all ")), "{text}");
}

#[test]
fn without_smp_there_is_no_per_cpu_key() {
    let _kernel = kernel!();
    let report = measure_json(&["--duration", "0.1"]);
    assert!(report.get("per_cpu").is_none(), "{report}");
    assert_eq!(report["settings"]["smp"], false);
}

#[test]
fn ctrl_c_stops_every_smp_loop_restores_the_cpus_and_reports_each() {
    let _kernel = kernel!();
    let cpus = crate::common::cpus();
    let list = cpus
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let before: Vec<String> = cpus.iter().map(|&cpu| read_cpu(cpu)).collect();
    let mut cmd = lllqos_std(["measure", "--smp", "--json", "--duration", "60"]);
    cmd.args(["--cpu", &list, "-l", "9"]);
    cmd.stdout(std::process::Stdio::piped());
    let mut run = Reaped::spawn(&mut cmd);
    // Phase one would take a minute: the signal, once every loop runs, ends both phases at once.
    let pid = run.pid();
    crate::common::wait_until("a measuring thread on every CPU", || {
        let names = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok());
        names.filter(|n| n.starts_with("measure cpu")).count() == cpus.len()
    });
    run.signal(Signal::SIGINT);
    assert_eq!(run.wait().signal(), Some(libc::SIGINT));
    let after: Vec<String> = cpus.iter().map(|&cpu| read_cpu(cpu)).collect();
    assert_eq!(after, before);
    let mut out = String::new();
    std::io::Read::read_to_string(run.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["interrupted_by"], "SIGINT", "{out}");
    let per_cpu = report["per_cpu"].as_array().unwrap();
    assert_eq!(per_cpu.len(), cpus.len(), "{out}");
    for cpu in per_cpu {
        assert_eq!(cpu["with"]["samples"], 0, "{out}");
    }
}
