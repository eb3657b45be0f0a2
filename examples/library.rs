//! The library as another crate uses it, through its public API only: the README's example, the
//! strict form, per-CPU constraints, and telling errors apart. `tests/library.rs` runs it against
//! the real kernel; by hand, as root: `cargo run --example library -- CPU`. With `watched` after
//! the CPU, it holds a watched constraint until killed: `kill -9` it, and the CPU is restored.

use lllqos::{CpuConstraint, CpuErrorKind, CpuLimits, CpuList, Latency, Lease};

/// The README's example ("Library"), as written there.
fn readme() -> Result<(), Box<dyn std::error::Error>> {
    use lllqos::{Latency, Lease, Periodic};
    use std::time::Duration;

    let mut lease = Lease::best_effort(Latency::ZERO); // never fails, like the Python package
    println!("lease acquired: {}", lease.acquired());
    // 100 activations 1 ms apart, each slept to on the monotonic clock: no drift.
    let mut worst = Duration::ZERO;
    for deadline in Periodic::new(Duration::from_millis(1)).take(100) {
        worst = worst.max(deadline.elapsed()); // ... latency-critical work ...
    }
    println!("latest activation: {} us late", worst.as_micros());
    if lease.acquired() {
        lease.set(Latency::micros(50))?; // lighter work: the same request, a new value
        if let Some(limit) = lease.limit_in_force()? {
            println!("limit in force: {limit}"); // the strictest of every holder's
        }
    }
    drop(lease); // request removed
    Ok(())
}

/// Prints each CPU's resume-latency file, read back from sysfs.
fn show(cpus: &CpuList, when: &str) -> std::io::Result<()> {
    for &cpu in cpus.cpus() {
        let path = format!("/sys/devices/system/cpu/cpu{cpu}/power/pm_qos_resume_latency_us");
        println!(
            "{when}: cpu{cpu}: {}",
            std::fs::read_to_string(path)?.trim()
        );
    }
    Ok(())
}

/// A limit written as a constant.
const LIMIT: Latency = Latency::micros(7);

/// A constraint guarded by a watchdog, held until this process is killed: whatever kills it, the
/// watchdog restores the CPUs.
fn watched(cpus: &CpuList) -> Result<(), Box<dyn std::error::Error>> {
    let _constraint = CpuConstraint::acquire_each_watched(&CpuLimits::uniform(cpus, LIMIT))?;
    show(cpus, "watched")?;
    loop {
        std::thread::park();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(2).as_deref() == Some("watched") {
        let cpus: CpuList = std::env::args().nth(1).unwrap_or_default().parse()?;
        return watched(&cpus);
    }
    readme()?;

    // Strict: an error when the node is missing or not permitted, told apart by kind.
    let mut lease = Lease::acquire(Latency::ZERO)?;
    lease.set(LIMIT)?;
    let in_force = lease.limit_in_force()?.ok_or("no limit in force")?;
    println!("strict, then set: {in_force}");
    drop(lease);
    let missing = Lease::acquire_on("/nonexistent/cpu_dma_latency", LIMIT)
        .err()
        .ok_or("a missing node was accepted")?;
    println!("missing node: {}", missing.is_missing());

    // Per CPU: placed, read back, changed in place, shared with a stricter holder, released (the
    // value found before returns).
    let cpus: CpuList = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "0".into())
        .parse()?;
    let mut constraint = CpuConstraint::acquire(&cpus, LIMIT)?;
    show(&cpus, "placed")?;
    constraint.set(Latency::micros(9))?;
    show(&cpus, "set to 9 us")?;
    let stricter = CpuConstraint::acquire(&cpus, Latency::micros(8))?;
    constraint.set(Latency::micros(20))?;
    show(&cpus, "set to 20 us beside a holder of 8 us")?;
    stricter.release()?;
    show(&cpus, "that holder gone")?;
    constraint.release()?;

    // A CPU this machine does not have: refused before anything changes, and matched by kind.
    let absent: CpuList = "65535".parse()?;
    match CpuConstraint::acquire(&absent, LIMIT) {
        Err(error) if error.kind() == CpuErrorKind::NoSuchCpu => println!("no such cpu: {error}"),
        other => return Err(format!("expected NoSuchCpu, got {other:?}").into()),
    }
    Ok(())
}
