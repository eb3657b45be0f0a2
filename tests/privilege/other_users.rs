//! The per-CPU registry against other users, in each install mode: no user can make another's
//! request wait (a setuid holder cannot be stopped while it holds the registry's lock), nor lock
//! another out (`/run/lllqos` is root's: a capability install does not make it, and one a user
//! owns is replaced by root's next holder and by `lllqos recover`).

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use super::*;
use crate::common::{
    REGISTRY, REGISTRY_DIR, Reaped, cpu_file, last_cpu, lllqos, lllqos_std, read_cpu,
    registry_left, state, wait_for_cpu, wait_until,
};
use nix::sys::signal::Signal;
use predicates::prelude::*;

/// /run/lllqos as it is before anything made it (the guard puts back what was there).
fn no_registry_dir() {
    assert!(registry_left().is_empty(), "{:?}", registry_left());
    let _ = std::fs::remove_dir_all(REGISTRY_DIR);
}

/// The user's setuid lllqos, started by the user's shell, is sent SIGSTOP by the user after a
/// random pause, again and again, until one stop lands while it holds the registry's lock
/// (refused: it is out of its user's reach there). Whatever each stop did, root's request on the
/// same CPU is placed within a second.
#[test]
fn a_user_cannot_stop_a_setuid_holder_inside_the_registry_lock() {
    let (_kernel, setup) = setup!();
    let [_, setuid] = setup.copies();
    let cpu = last_cpu();
    let before = read_cpu(cpu);
    let mut refused = 0;
    let mut tries = 0;
    while refused == 0 {
        tries += 1;
        assert!(
            tries <= 400,
            "no stop landed inside the registry's lock in 400 tries"
        );
        // Pauses from 0 to 9.9 ms, spread over the tries (the holder starts and places its
        // request within them).
        let pause = (tries * 7_919) % 10_000;
        let script = format!(
            "{} -q --cpu {cpu} -l 7 -- true >/dev/null 2>&1 & pid=$!; sleep 0.00{pause:04}; \
             err=$(kill -STOP $pid 2>&1); echo \"$pid $?\"; echo \"$err\"",
            setuid.display()
        );
        let out = setup
            .as_user(Path::new("/bin/sh"), &["-c", &script])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = stdout.lines();
        let (pid, status) = lines
            .next()
            .and_then(|line| line.split_once(' '))
            .unwrap_or_else(|| panic!("{stdout}"));
        let pid: i32 = pid.parse().unwrap();
        let stopped = status == "0";
        if lines.next().is_some_and(|e| e.contains("not permitted")) {
            refused += 1;
        }
        let started = Instant::now();
        lllqos(["--cpu", &cpu.to_string(), "-l", "6", "--", "true"])
            .timeout(Duration::from_secs(20))
            .assert()
            .success()
            .stderr("");
        let took = started.elapsed();
        // The user's lllqos goes on and ends (continued if a stop landed).
        if stopped {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGCONT);
        }
        wait_until("the user's lllqos to end", || {
            matches!(state(pid), '?' | 'Z')
        });
        assert!(
            took < Duration::from_secs(1),
            "root's request took {took:?} beside a user's lllqos (stopped: {stopped})"
        );
    }
    assert_eq!(read_cpu(cpu), before);
    assert_eq!(registry_left(), Vec::<String>::new());
}

/// A capability install finds no /run/lllqos: it refuses, naming the fix, and makes nothing that
/// would be its user's. Once root's holder has made it, the user's holder and root's hold side by
/// side, each restoring what it changed.
#[test]
fn a_capability_install_never_makes_the_registry_and_roots_request_holds() {
    let (_kernel, setup) = setup!();
    let [cap, _] = setup.copies();
    let cpu = last_cpu();
    let before = read_cpu(cpu);
    no_registry_dir();
    let out = setup
        .as_user(
            &cap,
            &["--strict", "--cpu", &cpu.to_string(), "-l", "5", "true"],
        )
        .output()
        .unwrap();
    let stderr = crate::common::refused(&out);
    assert!(
        stderr.contains("/run/lllqos does not exist") && stderr.contains("tmpfiles"),
        "{stderr}"
    );
    assert!(!Path::new(REGISTRY_DIR).exists());
    assert_eq!(read_cpu(cpu), before);
    // Root's holder makes it, root's and private.
    let mut root = Reaped::spawn(&mut lllqos_std([
        "-q",
        "--cpu",
        &cpu.to_string(),
        "-l",
        "8",
    ]));
    wait_for_cpu(cpu, "8");
    let dir = std::fs::metadata(REGISTRY_DIR).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o7777), (0, 0o700));
    // The user's capability install holds beside it, stricter, and gives the CPU back.
    let mut user = Reaped::spawn(&mut setup.as_user(
        &cap,
        &["-q", "--strict", "--cpu", &cpu.to_string(), "-l", "5"],
    ));
    wait_for_cpu(cpu, "5");
    user.signal(Signal::SIGTERM);
    assert_eq!(user.wait().code(), Some(0));
    assert_eq!(read_cpu(cpu), "8");
    root.signal(Signal::SIGTERM);
    assert_eq!(root.wait().code(), Some(0));
    assert_eq!(read_cpu(cpu), before);
    let dir = std::fs::metadata(REGISTRY_DIR).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o7777), (0, 0o700));
    assert_eq!(registry_left(), Vec::<String>::new());
}

/// A /run/lllqos that a user owns (what a capability install of an older lllqos made), with a
/// registry planted in it and a file that keeps it from being empty: root's next holder replaces
/// it by its own, says so, and holds; `lllqos recover` does the same; neither trusts what was in
/// it.
#[test]
fn a_registry_directory_a_user_owns_is_replaced_by_roots_holder_and_by_recover() {
    let (_kernel, setup) = setup!();
    let cpu = last_cpu();
    let before = read_cpu(cpu);
    let planted = format!(
        r#"{{"version":1,"cpus":{{"{cpu}":{{"original":"0","written":"3"}}}},"holders":[]}}"#
    );
    let users = || {
        no_registry_dir();
        std::fs::create_dir(REGISTRY_DIR).unwrap();
        std::fs::write(REGISTRY, &planted).unwrap();
        std::fs::write(format!("{REGISTRY_DIR}/keep"), "").unwrap();
        for path in [
            REGISTRY_DIR.to_owned(),
            REGISTRY.to_owned(),
            format!("{REGISTRY_DIR}/keep"),
        ] {
            std::os::unix::fs::chown(&path, Some(setup.uid), Some(setup.gid)).unwrap();
        }
    };
    let replaced = format!("/run/lllqos belonged to uid {}", setup.uid);
    let roots = |dir: &std::fs::Metadata| (dir.uid(), dir.mode() & 0o7777) == (0, 0o700);

    users();
    // Status, a reader, does not trust it either, and says whose it is.
    lllqos(["status"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "it belongs to uid {}, not root",
            setup.uid
        )));
    let script = format!("cat {}", cpu_file(cpu).display());
    lllqos([
        "--strict",
        "--cpu",
        &cpu.to_string(),
        "-l",
        "7",
        "--",
        "sh",
        "-c",
        &script,
    ])
    .assert()
    .success()
    .stdout("7\n")
    .stderr(predicate::str::contains(&replaced));
    assert!(roots(&std::fs::metadata(REGISTRY_DIR).unwrap()));
    // The planted original ("0") was not restored: the CPU has its own value back.
    assert_eq!(read_cpu(cpu), before);
    assert_eq!(registry_left(), Vec::<String>::new());

    users();
    lllqos(["recover"])
        .assert()
        .success()
        .stdout(predicate::str::contains(&replaced));
    assert!(roots(&std::fs::metadata(REGISTRY_DIR).unwrap()));
    assert_eq!(read_cpu(cpu), before);
    assert_eq!(registry_left(), Vec::<String>::new());
    // What was moved aside is gone too.
    let aside = std::fs::read_dir("/run")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("lllqos.of-uid-"))
        .collect::<Vec<_>>();
    assert_eq!(aside, Vec::<String>::new());
}
