//! Crash consistency and hostile registry files, on the real kernel: an lllqos killed (SIGKILL) at
//! each step of placing and of releasing a per-CPU constraint loses no original value; files that
//! are not what they should be are refused at once; a holder waiting behind a stuck one ends on
//! SIGTERM; holders in other PID namespaces are not taken for dead.
//!
//! The kills are deterministic: strace kills lllqos on entering the Nth `renameat` (a registry
//! store) or the Nth write to the CPU's file, which is before that step happens.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{
    REGISTRY, REGISTRY_DIR, Reaped, cpu_file, last_cpu as cpu, lllqos, lllqos_std, read_cpu,
    wait_for_cpu, wait_until, write_cpu,
};
use nix::sys::signal::Signal;
use predicates::prelude::*;

/// A step of a change, as strace sees it: the Nth registry store, the Nth write of the CPU, or the
/// Nth removal of a file (the last step of a release that leaves nothing held: the registry goes).
#[derive(Debug, Clone, Copy)]
enum Step {
    Store(u32),
    Write(u32),
    Remove(u32),
}

/// `lllqos ARGS` under strace, killed by SIGKILL on entering `step`.
fn killed_at(step: Step, cpu: u32, args: &[&str]) -> Command {
    let file = cpu_file(cpu);
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o", "/dev/null"]);
    match step {
        Step::Store(n) => cmd.args([
            "-e",
            "trace=renameat,renameat2",
            "-e",
            &format!("inject=renameat,renameat2:signal=SIGKILL:when={n}"),
        ]),
        Step::Remove(n) => cmd.args([
            "-e",
            "trace=unlinkat",
            "-e",
            &format!("inject=unlinkat:signal=SIGKILL:when={n}"),
        ]),
        Step::Write(n) => cmd.args([
            "-P",
            file.to_str().unwrap(),
            "-e",
            "trace=write",
            "-e",
            &format!("inject=write:signal=SIGKILL:when={n}"),
        ]),
    };
    cmd.arg(crate::common::bin())
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// A holder `lllqos --cpu CPU -l US` that has placed its value.
fn holder(cpu: u32, us: u32, expect: &str) -> Reaped {
    let h = Reaped::spawn(&mut lllqos_std([
        "--cpu",
        &cpu.to_string(),
        "-l",
        &us.to_string(),
    ]));
    wait_for_cpu(cpu, expect);
    h
}

fn stop(mut h: Reaped) {
    h.signal(Signal::SIGTERM);
    assert_eq!(h.wait().code(), Some(0));
}

/// The end of a round: A (if any) leaves, or else one more lllqos comes and goes on the CPU (which
/// cleans up after the dead one); then the CPU must read `before` and nothing may be left in /run.
fn finish_round(a: Option<Reaped>, cpu: u32, before: &str, round: &str) {
    match a {
        Some(a) => stop(a),
        None => {
            lllqos(["--cpu", &cpu.to_string(), "-l", "9", "true"])
                .assert()
                .success();
        }
    }
    let left = || {
        let files: Vec<String> = (std::fs::read_dir(REGISTRY_DIR).into_iter().flatten())
            .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
            .collect();
        let registry = std::fs::read_to_string(REGISTRY).unwrap_or_default();
        format!("{round}; left in {REGISTRY_DIR}: {files:?} {registry}")
    };
    assert_eq!(read_cpu(cpu), before, "{}", left());
    assert!(!std::path::Path::new(REGISTRY_DIR).exists(), "{}", left());
}

/// A=10 holds; B=5 is killed at each step of placing its request. When A leaves, the original
/// value comes back and nothing is left in /run.
#[test]
fn killed_at_each_step_of_acquiring_no_original_is_lost() {
    let _kernel = kernel!();
    require_program!("strace", "strace");
    let cpu = cpu();
    let before = read_cpu(cpu);
    for alone in [false, true] {
        for step in [Step::Store(1), Step::Write(1), Step::Store(2)] {
            let a = (!alone).then(|| holder(cpu, 10, "10"));
            let status = killed_at(step, cpu, &["--cpu", &cpu.to_string(), "-l", "5", "true"])
                .status()
                .unwrap();
            assert!(killed(status), "{step:?}: {status:?}");
            finish_round(a, cpu, &before, &format!("{step:?}, alone: {alone}"));
        }
    }
}

/// B=5 is killed at each step of releasing, with A=10 still holding (B restores 10) or alone (B
/// restores the original). Either way, the original comes back when everyone has gone.
#[test]
fn killed_at_each_step_of_releasing_no_original_is_lost() {
    let _kernel = kernel!();
    require_program!("strace", "strace");
    let cpu = cpu();
    let before = read_cpu(cpu);
    for alone in [false, true] {
        // B's acquire stores twice and writes once; its release stores, writes, stores (or, when
        // nothing remains held, removes its holder file, the registry, the temporary file, the lock
        // and the directory instead of its last store: killed before the first removal, and once
        // the registry is gone).
        let steps: &[Step] = if alone {
            &[
                Step::Store(3),
                Step::Write(2),
                Step::Remove(1),
                Step::Remove(3),
            ]
        } else {
            &[Step::Store(3), Step::Write(2), Step::Store(4)]
        };
        for &step in steps {
            let a = (!alone).then(|| holder(cpu, 10, "10"));
            let mut b = Reaped(
                killed_at(step, cpu, &["--cpu", &cpu.to_string(), "-l", "5"])
                    .spawn()
                    .unwrap(),
            );
            wait_for_cpu(cpu, "5");
            // strace's child is lllqos: signal it, not strace.
            let lllqos_pid = wait_for_child(b.pid());
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(lllqos_pid), Signal::SIGTERM)
                .unwrap();
            let status = b.wait();
            assert!(killed(status), "{step:?}: {status:?}");
            finish_round(a, cpu, &before, &format!("{step:?}, alone: {alone}"));
        }
    }
}

/// Whether strace reports its tracee killed by SIGKILL (it dies of the same signal).
fn killed(status: std::process::ExitStatus) -> bool {
    status.signal() == Some(libc::SIGKILL) || status.code() == Some(128 + libc::SIGKILL)
}

/// The child of `pid` that runs lllqos, once there is one.
fn wait_for_child(pid: i32) -> i32 {
    let mut child = None;
    // By name: strace forks a short-lived child of its own first, to probe ptrace.
    wait_until("strace to start lllqos", || {
        child = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|c| c.parse::<i32>().ok())
            .find(|c| {
                std::fs::read_to_string(format!("/proc/{c}/comm"))
                    .is_ok_and(|comm| comm.trim() == "lllqos")
            });
        child.is_some()
    });
    child.unwrap_or(0)
}

/// The system calls by which lllqos touches files: every step of a change (the registry's
/// directory, lock, holder file, stores, the CPU's file) is one of them.
const FILE_CALLS: &[&str] = &[
    "mkdir",
    "openat",
    "newfstatat",
    "fcntl",
    "flock",
    "read",
    "pread64",
    "write",
    "fsync",
    "renameat",
    "renameat2",
    "unlinkat",
    "getdents64",
    "close",
];

/// How often `lllqos ARGS` (itself, not its command) makes each of [`FILE_CALLS`].
fn file_calls(args: &[&str]) -> Vec<(&'static str, u32)> {
    let log = tempfile::NamedTempFile::new().unwrap();
    let status = Command::new("strace")
        .args(["-qq", "-o"])
        .arg(log.path())
        .args(["-e", &format!("trace={}", FILE_CALLS.join(","))])
        .arg(crate::common::bin())
        .args(args)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(log.path()).unwrap();
    (FILE_CALLS.iter())
        .map(|&call| {
            let prefix = format!("{call}(");
            (
                call,
                text.lines().filter(|l| l.starts_with(&prefix)).count() as u32,
            )
        })
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// Not only at the steps the other tests name: lllqos killed on entering each of its file system
/// calls in turn (every store, write, lock, open and removal of a whole acquire and release),
/// alone or beside a holder. Whatever the moment, the next lllqos (or the holder's own release)
/// puts the original back and leaves nothing in /run/lllqos: no holder file, no registry, no
/// descriptor that would keep a dead holder alive.
#[test]
fn killed_at_every_file_system_call_of_a_change_no_original_is_lost() {
    let _kernel = kernel!();
    require_program!("strace", "strace");
    let cpu = cpu();
    let before = read_cpu(cpu);
    let args = ["--cpu", &cpu.to_string(), "-l", "5", "true"];
    for alone in [true, false] {
        let calls = {
            let a = (!alone).then(|| holder(cpu, 10, "10"));
            let calls = file_calls(&args);
            finish_round(a, cpu, &before, "counting");
            calls
        };
        assert!(calls.iter().any(|&(call, _)| call == "flock"), "{calls:?}");
        for (call, count) in calls {
            for n in 1..=count {
                let a = (!alone).then(|| holder(cpu, 10, "10"));
                let status = Command::new("strace")
                    .args(["-qq", "-o", "/dev/null", "-e", &format!("trace={call}")])
                    .args(["-e", &format!("inject={call}:signal=SIGKILL:when={n}")])
                    .arg(crate::common::bin())
                    .args(args)
                    .stdin(Stdio::null())
                    .status()
                    .unwrap();
                // A run may make a call fewer times than the counting run did (a lock had at
                // once): then it finished.
                assert!(
                    killed(status) || status.success(),
                    "{call} #{n}: {status:?}"
                );
                finish_round(a, cpu, &before, &format!("{call} #{n}, alone: {alone}"));
            }
        }
    }
}

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
            .is_ok_and(|r| r.contains(&format!("\"pid\": {},", b.pid())))
    });
    write_cpu(cpu, "n/a");
    stop(b);
    assert_eq!(read_cpu(cpu), "n/a");
    stop(a);
    assert_eq!(read_cpu(cpu), "n/a");
    assert!(!std::path::Path::new(REGISTRY_DIR).exists());
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

/// A file to plant in the registry directory: its name, what lllqos must call it, how to make it.
type Planted = (&'static str, &'static str, fn(&str));

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

/// A holder waiting for the registry lock behind another lllqos stopped in the middle of placing
/// its request (strace stops it with SIGSTOP at its first registry store) says what it
/// waits for after a second, and ends at once on SIGTERM, changing nothing: a wrapper dies of the
/// signal, as its command would have; a hold ends with status 0.
#[test]
fn a_holder_waiting_behind_a_stopped_one_says_so_and_ends_on_sigterm() {
    let _kernel = kernel!();
    require_program!("strace", "strace");
    let cpu = cpu();
    let before = read_cpu(cpu);
    let mut strace = Reaped(
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
    let guard = Stopped(wait_for_child(strace.pid()));
    let stopped = guard.0;
    // It stops on its first registry store (the registry with its intent is in place), holding
    // the lock until its second, which never comes.
    wait_until("the first lllqos to stop holding the registry lock", || {
        std::path::Path::new(REGISTRY).exists()
    });
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
            format!("lllqos: waiting for {lock} held by pid {stopped}\n")
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

/// A process killed with SIGKILL when the test ends, however it ends: a process strace stopped is
/// not ended by killing strace (it would be left stopped, or continue on its own).
struct Stopped(i32);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), Signal::SIGKILL);
    }
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
