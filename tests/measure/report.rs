//! What a measurement reports: both phases, the baseline, idle residency, the chart; and the errors it gives before measuring.

use super::*;
use crate::common::idle::{IdleTree, State};

#[test]
fn a_short_run_gives_consistent_json() {
    let kernel = kernel!();
    let report = measure_json(&["--duration", "0.5", "--interval", "1000"]);
    check_phase(&report["without"], 500);
    check_phase(&report["with"], 500);
    let settings = &report["settings"];
    assert_eq!(settings["interval_us"], 1000);
    assert_eq!(settings["duration_s"], 0.5);
    assert_eq!(settings["policy"], "SCHED_OTHER");
    assert_eq!(settings["latency_us"], 0);
    assert!(settings["timer_slack_ns"].is_u64());
    assert_eq!(
        settings["baseline_clean"],
        kernel.baseline == crate::common::UNCONSTRAINED
    );
    assert!(report["ratio"]["avg"].is_f64() || report["ratio"]["avg"].is_null());
    assert_eq!(crate::common::read_node(), kernel.baseline);
}

#[test]
fn per_cpu_fifo_run_is_pinned_and_restores_the_cpu() {
    let _kernel = kernel!();
    let cpu = crate::common::last_cpu().to_string();
    let before = read_cpu(cpu.parse().unwrap());
    let report = measure_json(&[
        "--duration",
        "300ms",
        "--interval",
        "500",
        "--priority",
        "80",
        "--cpu",
        &cpu,
        "-l",
        "20us",
    ]);
    check_phase(&report["with"], 600);
    assert_eq!(report["settings"]["policy"], "SCHED_FIFO");
    assert_eq!(report["settings"]["priority"], 80);
    assert_eq!(report["settings"]["cpus"], cpu.as_str());
    assert_eq!(report["settings"]["latency_us"], 20);
    assert_eq!(read_cpu(cpu.parse().unwrap()), before);
}

#[test]
fn histogram_counts_add_up_to_the_samples() {
    let _kernel = kernel!();
    let report = measure_json(&["--duration", "0.2", "--histogram"]);
    for phase in ["without", "with"] {
        let total: u64 = report["histogram"][phase]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| pair[1].as_u64().unwrap())
            .sum();
        assert_eq!(total, report[phase]["samples"].as_u64().unwrap());
    }
    lllqos(["measure", "--duration", "0.2", "--histogram"])
        .assert()
        .success()
        .stdout(predicates::str::contains("histogram (us: without with"));
}

#[test]
fn human_output_shows_both_phases_and_the_policy() {
    let _kernel = kernel!();
    let out = lllqos(["measure", "--duration", "0.2"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    for needle in [
        "without",
        "with",
        "ratio",
        "samples",
        "min (us)",
        "avg (us)",
        "p50 (us)",
        "p99 (us)",
        "max (us)",
        "SCHED_OTHER (timer slack",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[test]
fn a_request_already_held_makes_the_baseline_not_clean() {
    let kernel = kernel!();
    let mut holder = Reaped::spawn(&mut lllqos_std(["-l", "100"]));
    wait_for_node(kernel.expect(100));
    let report = measure_json(&["--duration", "0.2"]);
    assert_eq!(report["settings"]["baseline_clean"], false);
    assert!(
        report["settings"]["baseline_note"]
            .as_str()
            .unwrap()
            .contains("another process holds")
    );
    lllqos(["measure", "--duration", "0.2"])
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "WARNING: the baseline is not clean",
        ));
    holder.signal(Signal::SIGTERM);
    holder.wait();
}

/// A constraint another tool set on a CPU the loops run on makes the baseline not clean, however
/// the loops run (one unpinned loop, one per CPU, one pinned), and is said once.
#[test]
fn a_constrained_cpu_makes_the_baseline_not_clean_however_it_is_measured() {
    let _kernel = kernel!();
    let cpu = crate::common::last_cpu();
    crate::common::write_cpu(cpu, "n/a");
    let cpu_text = cpu.to_string();
    for args in [
        &["--duration", "0.2"][..],
        &["--duration", "0.2", "--smp"],
        &["--duration", "0.2", "--cpu", &cpu_text],
    ] {
        let report = measure_json(args);
        assert_eq!(report["settings"]["baseline_clean"], false, "{args:?}");
        let note = report["settings"]["baseline_note"].as_str().unwrap();
        let said = format!("cpu{cpu} already has a resume-latency constraint");
        assert_eq!(note.matches(&said).count(), 1, "{args:?}: {note}");
    }
    assert_eq!(read_cpu(cpu), "n/a", "the other tool's value is kept");
}

#[test]
fn bad_arguments_exit_125() {
    for args in [
        &["--duration", "0"][..],
        &["--duration", "abc"],
        &["--duration", "-1"],
        &["--interval", "0"],
        &["--interval", "x"],
        &["--priority", "0"],
        &["--priority", "100"],
        &["--latency", "-5"],
        &["--cpu", "3-1"],
        &["--cpu", "4096"],
        &["--bogus"],
    ] {
        let assert = lllqos(["measure"]).args(args).assert().code(125);
        let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("lllqos: "), "{stderr}");
    }
}

#[test]
fn a_priority_that_cannot_be_had_exits_125() {
    let mut cmd = lllqos_std(["measure", "--duration", "0.2", "--priority", "80"]);
    // An unprivileged user without an RT budget, as most are.
    // SAFETY: set*id and setrlimit in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            let zero = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_RTPRIO, &zero);
            if libc::getuid() == 0 {
                libc::setresgid(65534, 65534, 65534);
                libc::setresuid(65534, 65534, 65534);
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run at SCHED_FIFO priority 80"));
}

/// Each phase reports, per CPU, the share of its time in each idle state: at most the whole phase
/// in all, and with a 0 us request nothing in a state deeper than 0 us.
#[test]
fn idle_residency_per_cpu_and_nothing_deeper_than_the_request() {
    let _kernel = kernel!();
    given!(deep_states());
    let report = measure_json(&["--duration", "1", "-l", "0"]);
    let cpus = lllqos::idle::all_states()
        .values()
        .filter(|s| !s.is_empty())
        .count();
    for phase in ["without", "with"] {
        let idle = report[phase]["idle_states"].as_array().unwrap();
        assert_eq!(idle.len(), cpus, "{phase}: {idle:?}");
        for cpu in idle {
            let states = cpu["states"].as_array().unwrap();
            let total: f64 = states.iter().map(|s| s["time_pct"].as_f64().unwrap()).sum();
            assert!(total <= 101.0, "{phase}: {cpu}");
            if phase == "with" {
                for state in states.iter().filter(|s| s["exit_latency_us"] != 0) {
                    assert!(state["time_pct"].as_f64().unwrap() < 0.5, "{state}");
                    assert_eq!(state["entries"], 0, "{state}");
                }
            }
        }
    }
    // The measuring CPU rests between samples: some time is spent idle without the request.
    let rested: f64 = report["without"]["idle_states"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["states"].as_array().unwrap().clone())
        .map(|s| s["time_pct"].as_f64().unwrap())
        .sum();
    assert!(rested > 10.0, "{report}");
}

/// A tree whose deeper state a thread of the test enters on every CPU while it lives: 1 ms of
/// `time` and one entry every 5 ms (so never more than a fifth of the time), `POLL` never.
struct Sleeping {
    tree: IdleTree,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sleeping {
    fn start() -> Sleeping {
        use std::sync::atomic::Ordering;
        let tree = IdleTree::lay_out(|_| vec![State::new("POLL", 0), State::new("C6 deep", 170)]);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let dirs: Vec<_> = (crate::common::cpus().into_iter())
            .map(|cpu| tree.state(cpu, 1))
            .collect();
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut ticks = 0_u64;
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(5));
                ticks += 1;
                for dir in &dirs {
                    // Replaced whole, as lllqos may read them at any moment.
                    for (file, value) in [("time", ticks * 1000), ("usage", ticks)] {
                        let new = dir.join(format!("{file}.new"));
                        std::fs::write(&new, format!("{value}\n")).unwrap();
                        std::fs::rename(&new, dir.join(file)).unwrap();
                    }
                }
            }
        });
        Sleeping {
            tree,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Sleeping {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where the CPUs slept, from the counters of a laid-out tree (so on every machine): each CPU with
/// the tree's states in order, the state entered counted in both phases, the other not, and no
/// phase's shares above what was slept.
#[test]
fn idle_residency_of_a_laid_out_tree() {
    let _kernel = kernel!();
    let sleeping = Sleeping::start();
    let out = lllqos(["measure", "--json", "--duration", "0.4"])
        .env("LLLQOS_SYSFS_CPU", sleeping.tree.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    drop(sleeping);
    let report: Value = serde_json::from_slice(&out).unwrap();
    let cpus = crate::common::cpus();
    for phase in ["without", "with"] {
        let idle = report[phase]["idle_states"].as_array().unwrap();
        let listed: Vec<u64> = idle.iter().map(|c| c["cpu"].as_u64().unwrap()).collect();
        let expected: Vec<u64> = cpus.iter().map(|&c| u64::from(c)).collect();
        assert_eq!(listed, expected, "{phase}");
        for cpu in idle {
            let states = cpu["states"].as_array().unwrap();
            let names: Vec<&str> = states.iter().map(|s| s["name"].as_str().unwrap()).collect();
            assert_eq!(names, ["POLL", "C6 deep"], "{phase}: {cpu}");
            assert_eq!(states[1]["exit_latency_us"], 170);
            assert_eq!(states[0]["entries"], 0, "{phase}: {cpu}");
            assert_eq!(states[0]["time_pct"], 0.0, "{phase}: {cpu}");
            assert!(states[1]["entries"].as_u64().unwrap() > 0, "{phase}: {cpu}");
            let pct = states[1]["time_pct"].as_f64().unwrap();
            assert!(pct > 0.0 && pct <= 21.0, "{phase}: {cpu}");
        }
    }
}

/// The human report has a table of where the CPUs slept, with the states of the tree it reads;
/// without a cpuidle driver it says there is nothing to compare, and why.
#[test]
fn the_human_report_shows_where_the_cpus_slept() {
    let _kernel = kernel!();
    let sleeping = Sleeping::start();
    let report = |tree: &std::path::Path| {
        let out = lllqos(["measure", "--duration", "0.3"])
            .env("LLLQOS_SYSFS_CPU", tree)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out).unwrap()
    };
    let out = report(sleeping.tree.path());
    assert!(
        out.contains("idle states (share of the phase; entries)"),
        "{out}"
    );
    assert!(out.contains("C6 deep"), "{out}");
    let empty = tempfile::tempdir().unwrap();
    let out = report(empty.path());
    assert!(
        out.contains("idle states: none (no cpuidle driver)"),
        "{out}"
    );
}

/// `--plot FILE.svg` writes one chart of both phases, SVG that parses as XML, with both labels.
#[test]
fn plot_writes_an_svg_with_both_phases() {
    let _kernel = kernel!();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("latency.svg");
    lllqos(["measure", "--duration", "0.3", "--plot"])
        .arg(&svg)
        .assert()
        .success();
    let text = std::fs::read_to_string(&svg).unwrap();
    let words: Vec<String> = text
        .split(['<', '>'])
        .map(|t| t.trim().to_owned())
        .collect();
    assert!(text.starts_with("<svg"), "{}", &text[..text.len().min(200)]);
    assert!(text.trim_end().ends_with("</svg>"));
    assert!(
        words.iter().any(|w| w.starts_with("without: p99 ")),
        "{text}"
    );
    assert!(words.iter().any(|w| w.starts_with("with: p99 ")), "{text}");
    // Parses as XML (Python's parser: an independent reader).
    require_program!("python3", "python3");
    let parsed = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])",
        ])
        .arg(&svg)
        .status()
        .unwrap();
    assert!(parsed.success(), "not XML");
}

/// A chart that cannot be written is an error before anything is measured: exit 125 at once.
#[test]
fn plot_to_an_unwritable_path_exits_125_before_measuring() {
    let started = std::time::Instant::now();
    lllqos([
        "measure",
        "--duration",
        "5",
        "--plot",
        "/nonexistent/dir/latency.svg",
    ])
    .assert()
    .code(125)
    .stdout("")
    .stderr("lllqos: --plot /nonexistent/dir/latency.svg: No such file or directory\n");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

/// Root refused SCHED_FIFO (a cgroup with no real-time time, as in a container or a systemd
/// service: a new cgroup of the cpu controller has cpu.rt_runtime_us 0) is told why, not that it
/// needs root; and the --plot file it was to write is not left behind, empty.
#[test]
fn root_refused_real_time_is_told_why_and_no_plot_file_is_left() {
    let _kernel = kernel!();
    let controller = std::path::Path::new("/sys/fs/cgroup/cpu");
    applicable!(
        controller.join("cpu.rt_runtime_us").exists(),
        "no cgroup v1 cpu controller with real-time group scheduling here"
    );
    let group = controller.join(format!("lllqos-test-{}", std::process::id()));
    std::fs::create_dir(&group).unwrap();
    // Removed however the test ends (its processes have exited by then).
    struct Removed(std::path::PathBuf);
    impl Drop for Removed {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _removed = Removed(group.clone());
    assert_eq!(
        std::fs::read_to_string(group.join("cpu.rt_runtime_us"))
            .unwrap()
            .trim(),
        "0"
    );
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("chart.svg");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"echo $$ > "$G/cgroup.procs" && exec "$B" measure --duration 0.1 --priority 80 --plot "$P""#)
        .env("G", &group)
        .env("B", crate::common::bin())
        .env("P", &plot)
        .output()
        .unwrap();
    let stderr = crate::common::refused(&out);
    assert!(
        stderr.contains("cannot run at SCHED_FIFO priority 80: Operation not permitted")
            && stderr.contains("root was refused real-time scheduling")
            && !stderr.contains("needs root"),
        "{stderr}"
    );
    assert!(!plot.exists(), "no empty chart left behind");
    // An existing file is left as it was.
    std::fs::write(&plot, "before").unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"echo $$ > "$G/cgroup.procs" && exec "$B" measure --duration 0.1 --priority 80 --plot "$P" 2>/dev/null"#)
        .env("G", &group)
        .env("B", crate::common::bin())
        .env("P", &plot)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(125));
    assert_eq!(std::fs::read_to_string(&plot).unwrap(), "before");
}
