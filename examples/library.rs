//! The library as another crate uses it, through its public API only: the README's example, the
//! strict form, a per-CPU constraint, and telling errors apart. `tests/library.rs` runs it against
//! the real kernel; by hand, as root: `cargo run --example library -- CPU`.

use lllqos::{CpuConstraint, CpuErrorKind, CpuList, Latency, Lease};

/// The README's example ("Library"), as written there.
fn readme() -> Result<(), std::io::Error> {
    use lllqos::{Latency, Lease};

    let lease = Lease::best_effort(Latency::ZERO); // never fails, like the Python package
    if lease.acquired() {
        println!("limit in force: {}", lease.limit_in_force()?);
    }
    // ... latency-critical work ...
    drop(lease); // request removed
    Ok(())
}

/// A limit written as a constant.
const LIMIT: Latency = Latency::micros(7);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    readme()?;

    // Strict: an error when the node is missing or not permitted, told apart by kind.
    let lease = Lease::acquire(LIMIT)?;
    println!("strict: {}", lease.limit_in_force()?);
    drop(lease);
    let missing = Lease::acquire_on("/nonexistent/cpu_dma_latency", LIMIT)
        .err()
        .ok_or("a missing node was accepted")?;
    println!("missing node: {}", missing.is_missing());

    // Per CPU: placed, read back, released (the value found before returns).
    let cpus: CpuList = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "0".into())
        .parse()?;
    let constraint = CpuConstraint::acquire(&cpus, LIMIT)?;
    for &cpu in cpus.cpus() {
        let path = format!("/sys/devices/system/cpu/cpu{cpu}/power/pm_qos_resume_latency_us");
        println!("cpu{cpu}: {}", std::fs::read_to_string(path)?.trim());
    }
    constraint.release()?;

    // A CPU this machine does not have: refused before anything changes, and matched by kind.
    let absent: CpuList = "65535".parse()?;
    match CpuConstraint::acquire(&absent, LIMIT) {
        Err(error) if error.kind() == CpuErrorKind::NoSuchCpu => println!("no such cpu: {error}"),
        other => return Err(format!("expected NoSuchCpu, got {other:?}").into()),
    }
    Ok(())
}
