//! Failure paths of per-CPU requests, on the real kernel: a change that fails half-way is undone
//! before it is reported, a release that fails names every CPU it leaves changed and its value
//! before, and `lllqos recover` restores what a killed holder left.
//!
//! The failures are made for real: an 8 KiB tmpfs mounted on /run/lllqos (full after the lock's
//! doorbell and one registry file), a FIFO where the lock belongs, a directory anyone may write, a read-only bind mount.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::{
    REGISTRY_DIR, Reaped, describe, last_cpu, lllqos, lllqos_std, read_cpu, wait_for_cpu, write_cpu,
};
use nix::sys::signal::Signal;
use predicates::prelude::*;

/// A file system mounted on /run/lllqos for one test: unmounted, and the mount point removed when
/// this test made it, when the test ends, however it ends.
struct Mounted {
    made_dir: bool,
}

impl Mounted {
    /// A tmpfs of 8 KiB (two pages: the lock file's doorbell and the registry's first file fill
    /// it), mode 0700.
    fn full_tmpfs() -> Mounted {
        let made_dir = !Path::new(REGISTRY_DIR).exists();
        std::fs::create_dir_all(REGISTRY_DIR).unwrap();
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            "size=8k,mode=700",
            "tmpfs",
            REGISTRY_DIR,
        ]);
        Mounted { made_dir }
    }

    /// /run/lllqos bound onto itself, read-only: what a container or a sandbox may show.
    fn read_only() -> Mounted {
        let made_dir = !Path::new(REGISTRY_DIR).exists();
        std::fs::create_dir_all(REGISTRY_DIR).unwrap();
        mount(&["--bind", REGISTRY_DIR, REGISTRY_DIR]);
        mount(&["-o", "remount,ro,bind", REGISTRY_DIR]);
        Mounted { made_dir }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(REGISTRY_DIR).status();
        if self.made_dir {
            let _ = std::fs::remove_dir(REGISTRY_DIR);
        }
    }
}

fn mount(args: &[&str]) {
    let status = Command::new("mount").args(args).status().expect("mount");
    assert!(status.success(), "mount {args:?}");
}

/// A holder `lllqos --cpu CPU -l US` that has placed its value (its stderr piped).
fn holder(cpu: u32, us: u32) -> Reaped {
    let mut cmd = lllqos_std(["-q", "--cpu", &cpu.to_string(), "-l", &us.to_string()]);
    cmd.stderr(std::process::Stdio::piped());
    let holder = Reaped::spawn(&mut cmd);
    wait_for_cpu(cpu, &us.to_string());
    holder
}

#[test]
fn an_acquire_whose_last_store_fails_undoes_its_writes_and_leaves_no_file() {
    let _kernel = kernel!();
    let cpu = last_cpu();
    write_cpu(cpu, "33");
    let _full = Mounted::full_tmpfs();
    lllqos([
        "--strict",
        "--cpu",
        &cpu.to_string(),
        "-l",
        "10",
        "--",
        "true",
    ])
    .assert()
    .code(125)
    .stderr(predicate::str::contains("No space left on device"))
    .stderr(predicate::str::contains("stays").not());
    assert_eq!(read_cpu(cpu), "33");
    assert_eq!(crate::common::registry_left(), Vec::<String>::new());
    // Best effort: the command runs without the request, and sees the CPU as it was.
    let script = format!(
        "echo \"${{LLLQOS_LATENCY_US-unset}} $(cat {})\"",
        crate::common::cpu_file(cpu).display()
    );
    lllqos([
        "--cpu",
        &cpu.to_string(),
        "-l",
        "10",
        "--",
        "sh",
        "-c",
        &script,
    ])
    .assert()
    .success()
    .stdout("unset 33\n")
    .stderr(predicate::str::contains(
        "running without a latency request",
    ));
    assert_eq!(read_cpu(cpu), "33");
    assert_eq!(crate::common::registry_left(), Vec::<String>::new());
    lllqos(["status"])
        .assert()
        .success()
        .stdout(predicate::str::contains("lllqos registry    empty"));
}

#[test]
fn a_release_that_cannot_use_the_registry_names_what_stays_changed() {
    let _kernel = kernel!();
    let cpu = last_cpu();
    let lock = format!("{REGISTRY_DIR}/lock");
    // What damage the registry gets during the hold, and how it is repaired afterwards.
    type Action<'a> = &'a dyn Fn();
    let damages: [(&str, Action, Action); 3] = [
        (
            "the lock is a FIFO",
            &|| {
                std::fs::remove_file(&lock).unwrap();
                nix::unistd::mkfifo(lock.as_str(), nix::sys::stat::Mode::S_IRWXU).unwrap();
            },
            &|| std::fs::remove_file(&lock).unwrap(),
        ),
        (
            "the directory is writable by anyone",
            &|| set_mode(REGISTRY_DIR, 0o777),
            &|| set_mode(REGISTRY_DIR, 0o700),
        ),
        (
            "the directory is replaced by a symlink",
            &|| {
                std::fs::rename(REGISTRY_DIR, "/run/lllqos.moved").unwrap();
                std::os::unix::fs::symlink("/run/lllqos.moved", REGISTRY_DIR).unwrap();
            },
            &|| {
                std::fs::remove_file(REGISTRY_DIR).unwrap();
                std::fs::rename("/run/lllqos.moved", REGISTRY_DIR).unwrap();
            },
        ),
    ];
    // Whatever happens, the moved directory does not outlive the test.
    let _moved = Removed("/run/lllqos.moved");
    for (what, damage, repair) in damages {
        write_cpu(cpu, "33");
        let mut hold = holder(cpu, 10);
        damage();
        hold.signal(Signal::SIGTERM);
        let out = hold.0.wait_with_output_stderr();
        assert_eq!(out.0.code(), Some(125), "{what}: {}", out.1);
        assert_eq!(out.1.lines().count(), 1, "{what}: {}", out.1);
        assert!(
            out.1
                .contains(&format!("cpu{cpu} stays at 10 us, it was 33 us"))
                && out.1.contains("lllqos recover"),
            "{what}: {}",
            out.1
        );
        assert_eq!(read_cpu(cpu), "10", "{what}");
        repair();
        lllqos(["recover"])
            .assert()
            .success()
            .stdout(predicate::str::contains(format!(
                "cpu{cpu}: resume latency set back to 33 us, from 10 us"
            )));
        assert_eq!(read_cpu(cpu), "33", "{what}");
        assert_eq!(
            crate::common::registry_left(),
            Vec::<String>::new(),
            "{what}"
        );
    }
}

/// A directory removed (with its contents) when the test ends, if it is there.
struct Removed(&'static str);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0);
    }
}

fn set_mode(path: &str, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Waits for a child and returns its status and its stderr.
trait WaitStderr {
    fn wait_with_output_stderr(&mut self) -> (std::process::ExitStatus, String);
}

impl WaitStderr for std::process::Child {
    fn wait_with_output_stderr(&mut self) -> (std::process::ExitStatus, String) {
        let mut stderr = String::new();
        if let Some(mut err) = self.stderr.take() {
            std::io::Read::read_to_string(&mut err, &mut stderr).unwrap();
        }
        (self.wait().unwrap(), stderr)
    }
}

#[test]
fn a_read_only_mount_appearing_during_the_hold_is_named_not_blamed_on_sys() {
    let _kernel = kernel!();
    let cpu = last_cpu();
    let before = read_cpu(cpu);
    let mut hold = holder(cpu, 10);
    let read_only = Mounted::read_only();
    hold.signal(Signal::SIGTERM);
    let (status, stderr) = hold.0.wait_with_output_stderr();
    assert_eq!(status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    assert!(stderr.contains("/run/lllqos"), "{stderr}");
    assert!(!stderr.contains("/sys is mounted read-only"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cpu{cpu} stays at 10 us, it was {}",
            describe(&before)
        )),
        "{stderr}"
    );
    drop(read_only);
    lllqos(["recover"]).assert().success();
    assert_eq!(read_cpu(cpu), before);
}

#[test]
fn a_read_only_registry_is_not_blamed_on_sys_and_nothing_changes() {
    let _kernel = kernel!();
    let cpu = last_cpu();
    let before = read_cpu(cpu);
    let _read_only = Mounted::read_only();
    lllqos([
        "--strict",
        "--cpu",
        &cpu.to_string(),
        "-l",
        "10",
        "--",
        "true",
    ])
    .assert()
    .code(125)
    .stderr(predicate::str::contains("/run/lllqos"))
    .stderr(predicate::str::contains("Read-only file system"))
    .stderr(predicate::str::contains("/sys is mounted read-only").not());
    assert_eq!(read_cpu(cpu), before);
}

#[test]
fn recover_restores_what_a_killed_holder_left_and_says_so() {
    let _kernel = kernel!();
    let cpu = last_cpu();
    write_cpu(cpu, "33");
    let mut hold = holder(cpu, 10);
    let pid = hold.pid();
    hold.signal(Signal::SIGKILL);
    hold.wait();
    assert_eq!(read_cpu(cpu), "10", "a killed holder cannot restore");
    lllqos(["recover"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "dropped holder pid {pid} from the registry"
        )))
        .stdout(predicate::str::contains(format!(
            "cpu{cpu}: resume latency set back to 33 us, from 10 us"
        )));
    assert_eq!(read_cpu(cpu), "33");
    assert_eq!(crate::common::registry_left(), Vec::<String>::new());
    // Nothing left to do: said so, status 0, and nothing created.
    lllqos(["recover"])
        .assert()
        .success()
        .stdout("lllqos recover: nothing to recover\n");
    assert_eq!(crate::common::registry_left(), Vec::<String>::new());
}

#[test]
fn recover_leaves_a_live_holders_request_in_force() {
    let _kernel = kernel!();
    let cpu = last_cpu();
    let before = read_cpu(cpu);
    let mut live = holder(cpu, 20);
    let mut dead = holder(cpu, 10);
    dead.signal(Signal::SIGKILL);
    dead.wait();
    assert_eq!(read_cpu(cpu), "10");
    lllqos(["recover"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "cpu{cpu}: resume latency set back to 20 us, from 10 us"
        )));
    assert_eq!(read_cpu(cpu), "20", "the live holder's request stays");
    live.signal(Signal::SIGTERM);
    assert!(live.wait().success());
    assert_eq!(read_cpu(cpu), before);
    assert_eq!(crate::common::registry_left(), Vec::<String>::new());
}

#[test]
fn recover_without_root_is_a_clear_125_when_there_is_something_to_recover() {
    let _kernel = kernel!();
    let cpu = last_cpu();
    let before = read_cpu(cpu);
    let mut dead = holder(cpu, 10);
    dead.signal(Signal::SIGKILL);
    dead.wait();
    let out = lllqos_std(["recover"])
        .env_clear()
        .output_as(65534)
        .unwrap();
    let stderr = crate::common::refused(&out);
    assert!(stderr.starts_with("lllqos: recover: "), "{stderr}");
    assert_eq!(read_cpu(cpu), "10");
    lllqos(["recover"]).assert().success();
    assert_eq!(read_cpu(cpu), before);
}

/// Runs a command as another user.
trait OutputAs {
    fn output_as(&mut self, uid: u32) -> std::io::Result<std::process::Output>;
}

impl OutputAs for Command {
    fn output_as(&mut self, uid: u32) -> std::io::Result<std::process::Output> {
        use std::os::unix::process::CommandExt;
        self.uid(uid).gid(uid).output()
    }
}
