//! Other tools' values, files that are not what they should be, a stuck holder, other PID namespaces, a release that fails.

use super::*;

/// A=10 and B=20 hold; another tool writes `n/a` (zero tolerance). When B leaves, the value stays
/// `n/a` (never loosened to A's 10); when A leaves, `n/a` is left as the other tool set it.
#[test]
fn another_tools_stricter_value_is_not_loosened_while_holders_remain() {
    let _kernel = kernel!();
    let cpu = cpu();
    let a = holder(cpu, 10, "10");
    let b = holder(cpu, 20, "10");
    // B changes no value: wait until it is in the registry.
    wait_until("the second holder to register", || {
        std::fs::read_to_string(REGISTRY)
            .is_ok_and(|r| r.contains(&format!("\"pid\":{},", b.pid())))
    });
    write_cpu(cpu, "n/a");
    stop(b);
    assert_eq!(read_cpu(cpu), "n/a");
    stop(a);
    assert_eq!(read_cpu(cpu), "n/a");
    assert_eq!(crate::common::registry_left(), Vec::<String>::new());
}

/// A value stricter than the request, found before the first holder, is kept: lllqos grants
/// nothing looser than what the machine had.
#[test]
fn a_stricter_original_value_is_kept_and_restored() {
    let _kernel = kernel!();
    let cpu = cpu();
    write_cpu(cpu, "3");
    lllqos(["--cpu", &cpu.to_string(), "-l", "50", "--", "cat"])
        .arg(cpu_file(cpu))
        .assert()
        .success()
        .stdout("3\n");
    assert_eq!(read_cpu(cpu), "3");
}

/// Something that is not a regular file where the registry or its lock should be: refused at once
/// with the file named; the command runs without the request (or, with --strict, 125) and no CPU
/// changes.
#[test]
fn registry_files_that_are_not_files_are_refused_at_once() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    let make: [Planted; 6] = [
        ("registry.json", "a FIFO", |p| {
            nix::unistd::mkfifo(
                p,
                nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
            )
            .unwrap()
        }),
        ("registry.json", "a directory", |p| {
            std::fs::create_dir(p).unwrap()
        }),
        ("registry.json", "a socket", |p| {
            std::mem::forget(std::os::unix::net::UnixListener::bind(p).unwrap())
        }),
        ("registry.json", "a character device", |p| {
            nix::sys::stat::mknod(
                p,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
                nix::sys::stat::makedev(1, 3),
            )
            .unwrap()
        }),
        ("registry.json", "larger than 1048576 bytes", |p| {
            std::fs::write(p, vec![b' '; 2 << 20]).unwrap()
        }),
        ("lock", "a FIFO", |p| {
            nix::unistd::mkfifo(
                p,
                nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
            )
            .unwrap()
        }),
    ];
    for (name, what, create) in make {
        let _ = std::fs::remove_dir_all(REGISTRY_DIR);
        std::fs::create_dir(REGISTRY_DIR).unwrap();
        std::fs::set_permissions(
            REGISTRY_DIR,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let path = format!("{REGISTRY_DIR}/{name}");
        create(&path);
        let refused = format!("refusing to use {path}: {what}");
        let started = Instant::now();
        lllqos([
            "--strict",
            "--cpu",
            &cpu.to_string(),
            "-l",
            "5",
            "echo",
            "ran",
        ])
        .timeout(Duration::from_secs(10))
        .assert()
        .code(125)
        .stdout("")
        .stderr(predicate::str::contains(&refused));
        lllqos(["--cpu", &cpu.to_string(), "-l", "5", "echo", "ran"])
            .timeout(Duration::from_secs(10))
            .assert()
            .success()
            .stdout("ran\n")
            .stderr(predicate::str::contains(&refused));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path} as {what}: took {:?}",
            started.elapsed()
        );
        assert_eq!(read_cpu(cpu), before, "{what}");
        if name == "registry.json" {
            lllqos(["status"])
                .timeout(Duration::from_secs(10))
                .assert()
                .success()
                .stdout(predicate::str::contains(&refused));
        }
        std::fs::remove_dir_all(REGISTRY_DIR).unwrap();
    }
}

/// An `lllqos --cpu CPU -l 7` under strace, stopped (SIGSTOP) at its first registry store: the
/// registry with its intent is in place, and it holds the lock until its second store, which never
/// comes. strace, and the stopped lllqos (killed when the guard is dropped).
fn stopped_in_the_lock(cpu: u32) -> (Reaped, Stopped) {
    let strace = Reaped(
        Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                "trace=renameat,renameat2",
            ])
            .args(["-e", "inject=renameat,renameat2:signal=SIGSTOP:when=1"])
            .arg(crate::common::bin())
            .args(["--cpu", &cpu.to_string(), "-l", "7"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stopped = Stopped(wait_for_child(strace.pid()));
    wait_until("the first lllqos to stop holding the registry lock", || {
        std::path::Path::new(REGISTRY).exists()
    });
    (strace, stopped)
}

/// A holder waiting for the registry lock behind another lllqos stopped in the middle of placing
/// its request says what it waits for after a second, and ends at once on SIGTERM, changing
/// nothing: a wrapper dies of the signal, as its command would have; a hold ends with status 0.
#[test]
fn a_holder_waiting_behind_a_stopped_one_says_so_and_ends_on_sigterm() {
    let _kernel = kernel!();
    require_program!("strace", "strace");
    let cpu = cpu();
    let before = read_cpu(cpu);
    let (mut strace, guard) = stopped_in_the_lock(cpu);
    let stopped = guard.0;
    let lock = format!("{REGISTRY_DIR}/lock");
    for (args, expect) in [(vec!["echo", "ran"], None), (vec![], Some(0))] {
        let mut waiting = Reaped::spawn(
            lllqos_std(["--cpu", &cpu.to_string(), "-l", "5"])
                .args(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        // Its first line, after a second of waiting, says for whom; then it is ended.
        let mut stderr = std::io::BufReader::new(waiting.0.stderr.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
        assert_eq!(
            line,
            format!("lllqos: waiting for {lock} held by pid {stopped}, stopped\n")
        );
        let sent = Instant::now();
        waiting.signal(Signal::SIGTERM);
        let status = waiting.wait();
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "{:?}",
            sent.elapsed()
        );
        match expect {
            Some(code) => assert_eq!(status.code(), Some(code)),
            None => assert_eq!(status.signal(), Some(libc::SIGTERM)),
        }
        let mut out = String::new();
        std::io::Read::read_to_string(waiting.0.stdout.as_mut().unwrap(), &mut out).unwrap();
        assert_eq!(out, "", "the command must not run");
        assert_eq!(read_cpu(cpu), before);
    }
    // The stopped one is killed (strace leaves with it); the next lllqos cleans up after it.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(stopped), Signal::SIGKILL).unwrap();
    strace.wait();
    lllqos(["--cpu", &cpu.to_string(), "-l", "9", "true"])
        .assert()
        .success();
    assert_eq!(read_cpu(cpu), before);
}

/// Behind a holder stopped inside the registry's lock, a waiter gives up once the registry has not
/// changed for the stall limit (10 s), saying so in one line and changing nothing: with
/// `--strict` it exits 125 without running its command; without, it warns and runs the command
/// without a request.
#[test]
fn a_waiter_gives_up_on_a_registry_stalled_for_the_limit() {
    let _kernel = kernel!();
    require_program!("strace", "strace");
    let cpu = cpu();
    let before = read_cpu(cpu);
    let (mut strace, guard) = stopped_in_the_lock(cpu);
    let waiter = |options: &[&str]| {
        lllqos_std(options.iter().copied())
            .args(["--cpu", &cpu.to_string(), "-l", "5", "echo", "ran"])
            .output()
            .unwrap()
    };
    // Both at once: each waits the whole limit. Quiet, the strict one says only its error.
    let (strict, lenient) = std::thread::scope(|scope| {
        let strict = scope.spawn(|| waiter(&["--strict", "--quiet"]));
        let lenient = scope.spawn(|| waiter(&[]));
        (strict.join().unwrap(), lenient.join().unwrap())
    });
    let gave_up = format!(
        "gave up waiting for {REGISTRY_DIR}/lock held by pid {}, stopped after 10 s in which the registry did not change",
        guard.0
    );
    let stderr = crate::common::refused(&strict);
    assert!(stderr.contains(&gave_up), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&strict.stdout), "");
    let stderr = String::from_utf8_lossy(&lenient.stderr);
    assert_eq!(lenient.status.code(), Some(0), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].starts_with("lllqos: waiting for "), "{stderr}");
    assert!(lines[1].contains(&gave_up), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&lenient.stdout), "ran\n");
    drop(guard);
    strace.wait();
    lllqos(["--cpu", &cpu.to_string(), "-l", "9", "true"])
        .assert()
        .success();
    assert_eq!(read_cpu(cpu), before);
}

/// A holder in another PID namespace (pid 1 there) is alive to every other lllqos: its request is
/// kept while an lllqos outside comes and goes, and the original returns when it leaves.
#[test]
fn a_holder_in_another_pid_namespace_is_not_taken_for_dead() {
    let _kernel = kernel!();
    require_program!("unshare", "util-linux");
    let cpu = cpu();
    let before = read_cpu(cpu);
    let mut inner = Reaped::spawn(
        Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc"])
            .arg(crate::common::bin())
            .args(["--cpu", &cpu.to_string(), "-l", "6"]),
    );
    wait_for_cpu(cpu, "6");
    // An outside lllqos with a looser request comes and goes: the inner one's 6 stays.
    lllqos(["--cpu", &cpu.to_string(), "-l", "40", "true"])
        .assert()
        .success()
        .stderr("");
    assert_eq!(read_cpu(cpu), "6");
    // unshare forwards nothing: end the holder itself (its pid as seen from here).
    let holder = wait_for_child(inner.pid());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(holder), Signal::SIGTERM).unwrap();
    inner.wait();
    assert_eq!(read_cpu(cpu), before);
    assert!(!std::path::Path::new(REGISTRY).exists());
}

/// A value that cannot be restored (the registry was corrupted during the hold) is an error: the
/// message names the CPU and its value before lllqos, and a command that exited 0 gives 125; a
/// command that failed keeps its own status.
#[test]
fn a_release_that_fails_is_exit_125_unless_the_command_failed() {
    let _kernel = kernel!();
    let cpu = cpu();
    let before = read_cpu(cpu);
    for (exit, expect) in [(0, 125), (3, 3)] {
        let script = format!("echo garbage > {REGISTRY}; exit {exit}");
        lllqos([
            "--cpu",
            &cpu.to_string(),
            "-l",
            "12",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .assert()
        .code(expect)
        .stderr(predicate::str::contains(
            "cannot restore CPU resume latency: corrupt registry",
        ))
        .stderr(predicate::str::contains(format!(
            "cpu{cpu} stays at 12 us, it was {}",
            crate::common::describe(&before)
        )));
        assert_eq!(read_cpu(cpu), "12");
        write_cpu(cpu, &before);
        std::fs::remove_dir_all(REGISTRY_DIR).unwrap();
    }
}
