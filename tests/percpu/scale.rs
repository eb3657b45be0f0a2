//! The registry at scale: a change never reads the kernel's lock table and asks a few holders,
//! however many there are; a thousand holders ended at once all leave. How long it takes is
//! benches/registry.sh's business (docs/benchmarks.md), not a test's.

use std::time::{Duration, Instant};

use super::*;
use crate::common::registry_left;

/// How many records the registry holds.
fn registered() -> usize {
    std::fs::read_to_string(REGISTRY)
        .unwrap_or_default()
        .matches("\"pid\":")
        .count()
}

/// Starts `count` holders `lllqos -q --cpu CPU -l US` (US from 1 to 5) at once, and waits until
/// the registry names them all (a minute at most: a debug build, a slow machine).
fn holders(cpu: u32, count: usize) -> Vec<Reaped> {
    let started: Vec<Reaped> = (0..count)
        .map(|i| {
            let us = (1 + i % 5).to_string();
            Reaped::spawn(&mut lllqos_std([
                "-q",
                "--cpu",
                &cpu.to_string(),
                "-l",
                &us,
            ]))
        })
        .collect();
    let since = Instant::now();
    while registered() < count {
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "{} of {count} holders registered after a minute",
            registered()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    started
}

/// Ends every holder with SIGTERM at once, and waits until all have exited with status 0.
fn end_all(holders: Vec<Reaped>) {
    for holder in &holders {
        holder.signal(Signal::SIGTERM);
    }
    let since = Instant::now();
    for mut holder in holders {
        let status = loop {
            if let Some(status) = holder.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                since.elapsed() < Duration::from_secs(60),
                "holders still running a minute after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.code(), Some(0));
    }
}

/// One `lllqos --cpu` beside 60 holders, traced: it never opens /proc/locks (which takes the
/// kernel's global lock table for the whole machine), and opens fewer holder files than there are
/// holders (it asks those that decide its CPU, and a few others).
#[test]
fn a_change_beside_many_holders_reads_no_lock_table_and_asks_a_few_holders() {
    let _kernel = kernel!();
    require_program!("strace", "strace");
    let cpu = cpu();
    let before = read_cpu(cpu);
    let many = holders(cpu, 60);
    let log = tempfile::NamedTempFile::new().unwrap();
    let status = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=open,openat", "-o"])
        .arg(log.path())
        .arg(crate::common::bin())
        .args(["--cpu", &cpu.to_string(), "-l", "9", "--", "true"])
        .status()
        .unwrap();
    assert!(status.success());
    let opens = std::fs::read_to_string(log.path()).unwrap();
    assert_eq!(opens.matches("/proc/locks").count(), 0, "{opens}");
    let holder_files = opens.lines().filter(|l| l.contains("\"holder.")).count();
    // Its own holder file is one of them.
    assert!(
        (2..60).contains(&holder_files),
        "{holder_files} holder files opened beside 60 holders"
    );
    assert_eq!(read_cpu(cpu), "1");
    end_all(many);
    assert_eq!(read_cpu(cpu), before);
    assert_eq!(registry_left(), Vec::<String>::new());
}

/// A thousand holders of one CPU, started at once and ended at once: every one registers, every
/// one releases and exits 0, the CPU gets its own value back, and nothing is left in /run/lllqos.
#[test]
fn a_thousand_holders_ended_at_once_all_release() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    let many = holders(cpu, 1000);
    assert_eq!(read_cpu(cpu), "1");
    end_all(many);
    assert_eq!(read_cpu(cpu), before);
    assert_eq!(registry_left(), Vec::<String>::new());
}
