//! A privileged lllqos (a copy with `cap_dac_override`, and a setuid-root copy) run by an
//! unprivileged user created for the test: the command gets nothing of the privilege, the request
//! is placed, and path options cannot be turned against root's files.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{Missing, read_node};

/// A user and the privileged copies of lllqos, removed when dropped.
struct Setup {
    user: String,
    uid: u32,
    gid: u32,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Result<Setup, Missing> {
        for (tool, package) in [
            ("useradd", "passwd"),
            ("userdel", "passwd"),
            ("setcap", "libcap2-bin"),
        ] {
            crate::common::program(tool, package)?;
        }
        // The copies live in /tmp: executable by the test user, and setuid or file capabilities
        // have no effect on a nosuid mount.
        let dir = tempfile::Builder::new()
            .prefix("lllqos-privilege-")
            .tempdir()
            .unwrap();
        let mount = nix::sys::statvfs::statvfs(dir.path()).unwrap();
        if mount
            .flags()
            .contains(nix::sys::statvfs::FsFlags::ST_NOSUID)
        {
            let why = format!("{} is mounted nosuid", dir.path().display());
            return Err(Missing::Setup(why));
        }
        let user = format!("lqt{}", std::process::id() % 100_000_000);
        let status = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/bin/sh", &user])
            .status()
            .unwrap();
        assert!(status.success(), "useradd {user}");
        let id = |flag: &str| {
            let out = Command::new("id")
                .args([flag, user.as_str()])
                .output()
                .unwrap();
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .parse::<u32>()
                .unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        let setup = Setup {
            user,
            uid,
            gid,
            dir,
        };
        std::fs::set_permissions(setup.dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
        let cap = setup.copy("lllqos-cap");
        let status = Command::new("setcap")
            .arg("cap_dac_override+ep")
            .arg(&cap)
            .status()
            .unwrap();
        assert!(status.success(), "setcap");
        let suid = setup.copy("lllqos-setuid");
        std::fs::set_permissions(&suid, PermissionsExt::from_mode(0o4755)).unwrap();
        Ok(setup)
    }

    fn copy(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::copy(crate::common::bin(), &path).unwrap();
        std::fs::set_permissions(&path, PermissionsExt::from_mode(0o755)).unwrap();
        path
    }

    /// The privileged copies.
    fn copies(&self) -> [PathBuf; 2] {
        [
            self.dir.path().join("lllqos-cap"),
            self.dir.path().join("lllqos-setuid"),
        ]
    }

    /// A directory the test user owns (mode 0700), for files they may create.
    fn user_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(self.uid), Some(self.gid)).unwrap();
        std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o700)).unwrap();
        dir
    }

    /// `program args` run as the test user (real and effective uid and gid, no supplementary groups).
    fn as_user(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args).uid(self.uid).gid(self.gid).current_dir("/");
        cmd.env_remove("LLLQOS_LATENCY_US");
        cmd
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.user])
            .status();
        let _ = Command::new("userdel").arg(&self.user).status();
    }
}

macro_rules! setup {
    () => {{
        // The second only once the first is had: it needs root, and the kernel lock.
        let kernel = kernel!();
        (kernel, given!(Setup::new()))
    }};
}

#[test]
fn the_command_runs_as_the_real_user_with_no_capability_and_the_request_placed() {
    let (kernel, setup) = setup!();
    for copy in setup.copies() {
        // Programs that keep whatever they are given (a shell would drop a setuid euid by itself).
        let out = setup
            .as_user(
                &copy,
                &[
                    "-l",
                    "42",
                    "--",
                    "grep",
                    "-E",
                    "^(Uid|Gid|CapInh|CapPrm|CapEff|CapAmb):",
                    "/proc/self/status",
                ],
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{copy:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let field = |name: &str| -> Vec<String> {
            let line = lines
                .iter()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in {lines:?}"));
            line[name.len()..]
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        assert_eq!(field("Uid:"), vec![setup.uid.to_string(); 4], "{copy:?}");
        assert_eq!(field("Gid:"), vec![setup.gid.to_string(); 4], "{copy:?}");
        for caps in ["CapInh:", "CapPrm:", "CapEff:", "CapAmb:"] {
            assert_eq!(field(caps), vec!["0000000000000000"], "{caps} {copy:?}");
        }

        let out = setup
            .as_user(
                &copy,
                &[
                    "-l",
                    "42",
                    "--",
                    "dd",
                    "if=/dev/cpu_dma_latency",
                    "of=/dev/null",
                    "count=0",
                ],
            )
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "the command could open the node: {copy:?}"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));

        // The request is in force while the command runs: root reads the node.
        let mut child = setup
            .as_user(
                &copy,
                &[
                    "-l",
                    "42",
                    "--",
                    "sh",
                    "-c",
                    "echo env=$LLLQOS_LATENCY_US; read line || true",
                ],
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "env=42", "{copy:?}");
        assert_eq!(read_node(), kernel.expect(42), "{copy:?}");
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        assert_eq!(read_node(), kernel.baseline);
    }
}

#[test]
fn pass_fd_lets_the_unprivileged_command_change_its_request_and_nothing_else() {
    let (kernel, setup) = setup!();
    let bytes: String = 13i32
        .to_ne_bytes()
        .iter()
        .map(|b| format!("\\{b:03o}"))
        .collect();
    for copy in setup.copies() {
        // The command cannot open the node, yet changes the request through the descriptor.
        let script =
            format!("id -u; printf '{bytes}' >&$LLLQOS_FD && echo changed; read line || true");
        let mut child = setup
            .as_user(&copy, &["-l", "40", "--pass-fd", "--", "sh", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), setup.uid.to_string(), "{copy:?}");
        line.clear();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "changed", "{copy:?}");
        assert_eq!(read_node(), kernel.expect(13), "{copy:?}");
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        assert_eq!(read_node(), kernel.baseline);
    }
}

#[test]
fn device_cannot_name_a_file_the_user_could_not_use() {
    let (_kernel, setup) = setup!();
    // A root-only directory with a root-only file in it, and a user-owned symlink to it.
    let secret_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(secret_dir.path(), PermissionsExt::from_mode(0o700)).unwrap();
    let secret = secret_dir.path().join("secret");
    std::fs::write(&secret, "root's").unwrap();
    std::fs::set_permissions(&secret, PermissionsExt::from_mode(0o600)).unwrap();
    let links = setup.dir.path().join("links");
    std::fs::create_dir(&links).unwrap();
    std::os::unix::fs::symlink(&secret, links.join("to-secret")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", links.join("to-shadow")).unwrap();
    std::os::unix::fs::symlink(crate::common::NODE, links.join("to-node")).unwrap();
    let shadow_before = std::fs::read("/etc/shadow").ok();

    for copy in setup.copies() {
        let refuse = |device: &Path, says: &str| {
            let out = setup
                .as_user(
                    &copy,
                    &["--strict", "--device", device.to_str().unwrap(), "true"],
                )
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(125),
                "{copy:?} {device:?}: {stderr}"
            );
            assert!(stderr.contains(says), "{copy:?} {device:?}: {stderr}");
        };
        refuse(&secret, "Permission denied");
        refuse(&secret_dir.path().join("no-such-file"), "Permission denied");
        refuse(&links.join("to-secret"), "Permission denied");
        refuse(Path::new("/etc/shadow"), "not a character device");
        refuse(&links.join("to-shadow"), "not a character device");
        refuse(Path::new("/dev/null"), "not a PM QoS device node");
        refuse(Path::new("/dev/kmsg"), "not a PM QoS device node");
        // The genuine node may be named through any path the user can follow.
        let out = setup
            .as_user(
                &copy,
                &[
                    "--strict",
                    "--device",
                    links.join("to-node").to_str().unwrap(),
                    "sh",
                    "-c",
                    "echo $LLLQOS_LATENCY_US",
                ],
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    }
    assert_eq!(std::fs::read(&secret).unwrap(), b"root's");
    assert_eq!(std::fs::read("/etc/shadow").ok(), shadow_before);
}

#[test]
fn a_setuid_install_keeps_the_registry_root_owned_and_restores() {
    let (_kernel, setup) = setup!();
    let cpu = crate::common::last_cpu();
    let before = crate::common::read_cpu(cpu);
    let [_, setuid] = setup.copies();
    let script = format!(
        "stat -c '%u %a' {} {}; cat {}",
        crate::common::REGISTRY_DIR,
        crate::common::REGISTRY,
        crate::common::cpu_file(cpu).display()
    );
    let out = setup
        .as_user(
            &setuid,
            &["--cpu", &cpu.to_string(), "-l", "0", "sh", "-c", &script],
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The registry directory is root's and private (the user cannot look inside); the CPU holds
    // the request.
    assert_eq!(stdout.lines().next(), Some("0 700"), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("n/a"), "{stdout}");
    assert_eq!(crate::common::registry_left(), Vec::<String>::new());
    assert_eq!(crate::common::read_cpu(cpu), before);
}

#[test]
fn an_unprivileged_user_gets_a_warning_not_the_node() {
    let (_kernel, setup) = setup!();
    let plain = setup.copy("lllqos-plain");
    let out = setup
        .as_user(&plain, &["sh", "-c", "echo ${LLLQOS_LATENCY_US-unset}"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "unset");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("warning: cannot open /dev/cpu_dma_latency: Permission denied")
    );
    let out = setup
        .as_user(&plain, &["--strict", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn an_unprivileged_user_cannot_constrain_a_cpu_and_changes_nothing() {
    let (_kernel, setup) = setup!();
    let plain = setup.copy("lllqos-plain");
    // The directory as the package makes it at boot (root's, private).
    std::fs::create_dir_all(crate::common::REGISTRY_DIR).unwrap();
    std::fs::set_permissions(
        crate::common::REGISTRY_DIR,
        PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let cpu = crate::common::last_cpu().to_string();
    let before = crate::common::read_cpu(cpu.parse().unwrap());
    let out = setup
        .as_user(
            &plain,
            &[
                "--cpu",
                &cpu,
                "-l",
                "0",
                "sh",
                "-c",
                "echo ${LLLQOS_CPUS-unset}",
            ],
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "unset");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        format!(
            "lllqos: warning: --cpu {cpu}: cannot open /run/lllqos: Permission denied; running without a latency request\n"
        )
    );
    let out = setup
        .as_user(&plain, &["--strict", "--cpu", &cpu, "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(crate::common::read_cpu(cpu.parse().unwrap()), before);
    assert_eq!(crate::common::registry_left(), Vec::<String>::new());
}

#[test]
fn status_without_root_says_what_it_cannot_read_and_succeeds() {
    let (_kernel, setup) = setup!();
    let plain = setup.copy("lllqos-plain");
    let out = setup.as_user(&plain, &["status"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("unreadable (Permission denied: run as root to read it)"),
        "{text}"
    );
    assert!(text.contains("run as root to see every process"), "{text}");
    let out = setup
        .as_user(&plain, &["status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["cpu_latency_us"], serde_json::Value::Null);
    assert_eq!(json["holders_complete"], false);
    assert!(
        json["cpu_latency_error"]
            .as_str()
            .unwrap()
            .contains("Permission denied")
    );
}

#[test]
fn measure_without_permission_fails_before_measuring() {
    let (_kernel, setup) = setup!();
    let plain = setup.copy("lllqos-plain");
    let cpu = crate::common::last_cpu().to_string();
    for args in [
        &["measure", "--duration", "10"][..],
        &["measure", "--duration", "10", "--cpu", &cpu],
    ] {
        let start = std::time::Instant::now();
        let out = setup.as_user(&plain, args).output().unwrap();
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
        // Not after a 10 s phase one.
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{args:?}"
        );
    }
}

// After `setup!`, which they use.
mod nothing_else;
mod other_users;
