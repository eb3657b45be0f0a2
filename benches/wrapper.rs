//! `cargo bench`: what the wrapper costs, and what its request does, measured in one run.
//!
//! 1. Start-up: `lllqos -q -l 0 -- true` against `chrt -o 0 true`, in interleaved pairs, as the
//!    median of each run's ratio of medians over 3 runs. Ratios in one run, because absolute times
//!    on a shared VM drift. Both builds: this one (glibc, dynamically linked; target <= 1.15) and,
//!    when it has been built, the static musl one (`cargo build --release --target
//!    $(uname -m)-unknown-linux-musl`; target <= 1.03). `--version` against `chrt --version` too: the
//!    loading alone.
//! 2. Memory while the command runs: lllqos and its sentinel together (proportional set size,
//!    so that the pages they share are counted once), for each build.
//! 3. Wake-ups of lllqos while the command sleeps (voluntary context switches; target 0).
//! 4. The request's effect on cyclictest: `cyclictest --laptop` (no request) alone, under lllqos,
//!    and plain `cyclictest` with its own built-in 0 us request; and `lllqos measure` with the same
//!    interval and priority, whose two phases must agree with cyclictest's runs.
//!
//! Needs root and rt-tests for part 4 (skipped otherwise). `cargo bench -- --quick` shortens it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot measure stops, saying why

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LLLQOS: &str = env!("CARGO_BIN_EXE_lllqos");

/// The static musl build of this checkout, when it has been built.
fn musl() -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
        "target/{}-unknown-linux-musl/release/lllqos",
        std::env::consts::ARCH
    ));
    path.is_file().then(|| path.display().to_string())
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!(
        "lllqos benchmark ({})",
        if quick { "quick" } else { "full" }
    );
    // Other builds to compare, from LLLQOS_BENCH_ALSO (paths separated by commas), named by file.
    let also = std::env::var("LLLQOS_BENCH_ALSO").unwrap_or_default();
    let builds: Vec<(String, String)> = std::iter::once(("glibc".to_owned(), LLLQOS.to_owned()))
        .chain(musl().map(|m| ("musl".to_owned(), m)))
        .chain(also.split(',').filter(|p| !p.is_empty()).map(|p| {
            let name = p.rsplit('/').next().unwrap_or(p).to_owned();
            (name, p.to_owned())
        }))
        .collect();
    if builds.len() == 1 {
        println!(
            "(no musl build: cargo build --release --target {}-unknown-linux-musl)",
            std::env::consts::ARCH
        );
    }
    startup(&builds, if quick { 100 } else { 300 });
    resident_and_wakeups(&builds);
    cyclictest(if quick { 3 } else { 8 });
}

/// Runs `argv` with its output discarded and returns how long it took.
fn run(argv: &[&str]) -> Duration {
    let start = Instant::now();
    let status = Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        .status()
        .expect(argv[0]);
    let elapsed = start.elapsed();
    assert!(status.success(), "{argv:?}: {status}");
    elapsed
}

fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// Each command of `commands` `pairs` times, interleaved (each round in another order), three
/// times over: for each command, the median over the runs of (its median / the first
/// command's median), and its median time.
fn compare(commands: &[Vec<&str>], pairs: usize) -> Vec<(f64, Duration)> {
    for _ in 0..20 {
        for c in commands {
            run(c);
        }
    }
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut ratios = vec![Vec::new(); commands.len()];
    let mut times = vec![Vec::new(); commands.len()];
    for _ in 0..3 {
        let mut samples = vec![Vec::new(); commands.len()];
        // Each round in a new order: a command that always ran right after the same other one
        // (or first) would pay, or be spared, that one's effect on the caches every time.
        let mut order: Vec<usize> = (0..commands.len()).collect();
        for _ in 0..pairs {
            shuffle(&mut order, &mut seed);
            for &i in &order {
                samples[i].push(run(&commands[i]));
            }
        }
        let medians: Vec<Duration> = samples.into_iter().map(median).collect();
        for (i, m) in medians.iter().enumerate() {
            ratios[i].push(m.as_secs_f64() / medians[0].as_secs_f64());
            times[i].push(*m);
        }
    }
    ratios
        .into_iter()
        .zip(times)
        .map(|(r, t)| (median(r), median(t)))
        .collect()
}

/// Shuffles `items` (Fisher-Yates, with a xorshift generator: the same sequence every run).
fn shuffle(items: &mut [usize], seed: &mut u64) {
    for i in (1..items.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        items.swap(i, (*seed % (i as u64 + 1)) as usize);
    }
}

fn startup(builds: &[(String, String)], pairs: usize) {
    println!("\n## start-up ({pairs} interleaved runs of each, 3 times; median ratio)");
    for (what, baseline, args, target) in [
        (
            "-q -l 0 -- true",
            vec!["chrt", "-o", "0", "true"],
            vec!["-q", "-l", "0", "--", "true"],
            Some([1.15, 1.03]),
        ),
        (
            "--version",
            vec!["chrt", "--version"],
            vec!["--version"],
            None,
        ),
    ] {
        let mut commands = vec![baseline.clone()];
        for (_, binary) in builds {
            commands.push([&[binary.as_str()][..], &args].concat());
        }
        let results = compare(&commands, pairs);
        println!(
            "{:<34} {:>8.0} us",
            baseline.join(" "),
            results[0].1.as_secs_f64() * 1e6
        );
        for (i, ((build, _), (ratio, time))) in builds.iter().zip(&results[1..]).enumerate() {
            let goal = match target.and_then(|t| t.get(i).copied()) {
                Some(target) => format!("(target <= {target})"),
                None => String::new(),
            };
            println!(
                "lllqos {what} ({build}){:<width$} {:>8.0} us   ratio {ratio:.3} {goal}",
                "",
                time.as_secs_f64() * 1e6,
                width = 34usize.saturating_sub(what.len() + build.len() + 10),
            );
        }
    }
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

/// The proportional set size of a process, in KiB (pages shared with another counted in part).
fn pss(pid: u32) -> u64 {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

fn resident_and_wakeups(builds: &[(String, String)]) {
    println!("\n## while `sleep` runs under lllqos");
    for (build, binary) in builds {
        let mut child = Command::new(binary)
            .args(["-q", "-l", "0", "--", "sleep", "2.5"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let pid = child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let sentinel = children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
            .find(|c| {
                std::fs::read_to_string(format!("/proc/{c}/comm"))
                    .is_ok_and(|comm| comm.trim() == "qos-sentinel")
            });
        // The sentinel shares lllqos's memory (a CLONE_VM child): both report that one address
        // space, which counts once. (A forked sentinel would report a memory of its own.)
        let shared =
            sentinel.is_some_and(|s| status_field(s, "VmRSS:") == status_field(pid, "VmRSS:"));
        let together = pss(pid) + sentinel.filter(|_| !shared).map_or(0, pss);
        let switches_before = status_field(pid, "voluntary_ctxt_switches:");
        std::thread::sleep(Duration::from_secs(2));
        let switches_after = status_field(pid, "voluntary_ctxt_switches:");
        let peak = status_field(pid, "VmHWM:");
        child.wait().unwrap();
        println!(
            "{build:<6} lllqos + sentinel PSS {together:>6} KiB; lllqos peak RSS {peak:>6} KiB; wake-ups in 2 s {} (target 0)",
            switches_after - switches_before
        );
    }
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
