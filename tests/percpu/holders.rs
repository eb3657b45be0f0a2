//! Several holders and other tools: the strictest request wins, the last holder restores, a dead one is dropped, another tool is never loosened.

use super::*;

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
    assert_eq!(crate::common::registry_left(), Vec::<String>::new());
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
