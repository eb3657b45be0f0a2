//! Killed at each step of a change, and at each of its file system calls: no original is lost.

use super::*;

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
        // nothing remains held, removes the registry, its holder file and the temporary file
        // instead of its last store: killed before the first removal, and once the registry is
        // gone).
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
