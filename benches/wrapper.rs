//! `cargo bench`: what the wrapper costs, and what its request does, measured in one run.
//!
//! 1. Start-up: `lllqos -l 0 -- true` against `chrt -o 0 true`, interleaved, median ratio
//!    (target <= 1.1). Ratios in one run, because absolute times on a shared VM drift.
//! 2. Peak RSS of lllqos while the command runs (target <= 2 MiB).
//! 3. Wake-ups of lllqos while the command sleeps (voluntary context switches; target 0).
//! 4. The request's effect on cyclictest: `cyclictest --laptop` (no request) alone, under lllqos,
//!    and plain `cyclictest` with its own built-in 0 us request; and `lllqos measure` with the same
//!    interval and priority, whose two phases must agree with cyclictest's runs.
//!
//! Needs root and rt-tests for part 4 (skipped otherwise). `cargo bench -- --quick` shortens it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LLLQOS: &str = env!("CARGO_BIN_EXE_lllqos");

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!(
        "lllqos benchmark ({})",
        if quick { "quick" } else { "full" }
    );
    startup(if quick { 200 } else { 2000 });
    resident_and_wakeups();
    cyclictest(if quick { 3 } else { 8 });
}

fn run(argv: &[&str]) -> Duration {
    let start = Instant::now();
    let status = Command::new(argv[0])
        .args(&argv[1..])
        .status()
        .expect(argv[0]);
    let elapsed = start.elapsed();
    assert!(status.success(), "{argv:?}: {status}");
    elapsed
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn startup(rounds: usize) {
    let chrt = ["chrt", "-o", "0", "true"];
    let lllqos = [LLLQOS, "-q", "-l", "0", "--", "true"];
    for _ in 0..20 {
        run(&chrt);
        run(&lllqos);
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(run(&chrt));
        b.push(run(&lllqos));
    }
    let (a, b) = (median(a), median(b));
    println!("\n## start-up ({rounds} interleaved runs each, median)");
    println!("chrt -o 0 true          {:>8.0} us", a.as_secs_f64() * 1e6);
    println!("lllqos -l 0 -- true     {:>8.0} us", b.as_secs_f64() * 1e6);
    println!(
        "ratio lllqos/chrt       {:>8.3}   (target <= 1.1)",
        b.as_secs_f64() / a.as_secs_f64()
    );
}

fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line[field.len()..]
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap()
}

fn resident_and_wakeups() {
    let mut child = Command::new(LLLQOS)
        .args(["-q", "-l", "0", "--", "sleep", "2.5"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let switches_before = status_field(child.id(), "voluntary_ctxt_switches:");
    std::thread::sleep(Duration::from_secs(2));
    let switches_after = status_field(child.id(), "voluntary_ctxt_switches:");
    let peak = status_field(child.id(), "VmHWM:");
    child.wait().unwrap();
    println!("\n## while `sleep` runs under lllqos");
    println!("peak RSS (VmHWM)        {peak:>8} KiB   (target <= 2048)");
    println!(
        "wake-ups in 2 s         {:>8}       (target 0)",
        switches_after - switches_before
    );
}

/// cyclictest's summary line: `T: 0 (...) P:80 I:1000 C: 8000 Min: 3 Act: 5 Avg: 44 Max: 150`.
fn cyclictest_stats(output: &str) -> Option<(u64, u64, u64)> {
    let line = output.lines().rev().find(|l| l.starts_with("T:"))?;
    let value = |key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    Some((value("Min:")?, value("Avg:")?, value("Max:")?))
}

fn cyclictest(seconds: u32) {
    println!("\n## cyclictest -p 80 -i 1000 -D {seconds} (us)");
    let available = Command::new("cyclictest")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !available || !nix::unistd::geteuid().is_root() {
        println!("SKIPPED: needs root and cyclictest (apt-get install rt-tests)");
        return;
    }
    let duration = seconds.to_string();
    let base = [
        "-p",
        "80",
        "-i",
        "1000",
        "-D",
        duration.as_str(),
        "-q",
        "-m",
    ];
    let runs: [(&str, Vec<&str>); 3] = [
        (
            "cyclictest --laptop (no request)",
            [&["cyclictest", "--laptop"][..], &base].concat(),
        ),
        (
            "lllqos -l 0 -- cyclictest --laptop",
            [
                &[LLLQOS, "-q", "-l", "0", "--", "cyclictest", "--laptop"][..],
                &base,
            ]
            .concat(),
        ),
        (
            "cyclictest (its own 0 us request)",
            [&["cyclictest"][..], &base].concat(),
        ),
    ];
    println!("{:<38} {:>6} {:>6} {:>6}", "", "min", "avg", "max");
    for (label, argv) in runs {
        let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
        match cyclictest_stats(&String::from_utf8_lossy(&out.stdout)) {
            Some((min, avg, max)) => println!("{label:<38} {min:>6} {avg:>6} {max:>6}"),
            None => println!(
                "{label:<38} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }
    }
    let out = Command::new(LLLQOS)
        .args([
            "measure",
            "--priority",
            "80",
            "--interval",
            "1000",
            "--duration",
            &duration,
            "--json",
        ])
        .output()
        .unwrap();
    match serde_json::from_slice::<serde_json::Value>(&out.stdout) {
        Ok(report) => {
            for (label, phase) in [
                ("lllqos measure, phase 1 (no request)", "without"),
                ("lllqos measure, phase 2 (0 us)", "with"),
            ] {
                let r = &report[phase];
                let (min, max) = (
                    r["min_us"].as_u64().unwrap_or(0),
                    r["max_us"].as_u64().unwrap_or(0),
                );
                let avg = r["avg_us"].as_f64().unwrap_or(0.0);
                println!("{label:<38} {min:>6} {avg:>6.0} {max:>6}");
            }
        }
        Err(_) => println!(
            "lllqos measure failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}
