//! The library from outside the crate: `examples/library.rs` (built by `cargo test`, public API
//! only) run against the real kernel, its output read back and the machine left as it was.

use crate::common::read_cpu;

#[test]
fn an_outside_program_places_and_releases_both_kinds_of_request() {
    let kernel = kernel!();
    let example = crate::common::bin()
        .parent()
        .unwrap()
        .join("examples")
        .join("library");
    let cpu = crate::common::last_cpu();
    let before = read_cpu(cpu);
    let output = std::process::Command::new(&example)
        .arg(cpu.to_string())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", example.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "lease acquired: true", "{stdout}");
    assert!(lines[1].starts_with("latest activation: "), "{stdout}");
    let expected = [
        format!("limit in force: {} us", kernel.expect(50)),
        format!("strict, then set: {} us", kernel.expect(7)),
        "missing node: true".to_owned(),
        format!("placed: cpu{cpu}: 7"),
        format!("set to 9 us: cpu{cpu}: 9"),
        format!("set to 20 us beside a holder of 8 us: cpu{cpu}: 8"),
        format!("that holder gone: cpu{cpu}: 20"),
    ];
    assert_eq!(lines[2..9], expected, "{stdout}");
    assert!(
        lines[9].starts_with("no such cpu: CPU 65535 does not exist"),
        "{stdout}"
    );
    assert_eq!(read_cpu(cpu), before);
    assert_eq!(crate::common::read_node(), kernel.baseline);
}

#[test]
fn a_watched_constraint_is_restored_within_a_second_of_a_sigkill() {
    let _kernel = kernel!();
    let example = crate::common::bin()
        .parent()
        .unwrap()
        .join("examples")
        .join("library");
    let cpu = crate::common::last_cpu();
    let before = read_cpu(cpu);
    let mut child = crate::common::Reaped::spawn(
        std::process::Command::new(&example)
            .args([cpu.to_string(), "watched".into()])
            .stdout(std::process::Stdio::piped()),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.0.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), format!("watched: cpu{cpu}: 7"));
    child.signal(nix::sys::signal::Signal::SIGKILL);
    child.wait();
    let killed = std::time::Instant::now();
    crate::common::wait_for_cpu(cpu, &before);
    let took = killed.elapsed();
    assert!(
        took < std::time::Duration::from_secs(1),
        "restored after {took:?}"
    );
    // The watchdog went with its work done: none is left.
    crate::common::wait_until("the watchdog to exit", || {
        !crate::common::processes_named("lllqos-watchdog")
    });
}
