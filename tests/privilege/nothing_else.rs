//! Root for the request and nothing else: the privileged copies, run by the test user, through
//! every subcommand and every option that names a file, a process or a priority. Nothing is
//! created, read or granted that the user could not have had with a plain copy.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use super::*;

/// The one line a refusal gives: status 125, the subcommand named, and why.
fn assert_refused(out: &std::process::Output, name: &str, copy: &Path) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{copy:?} {name}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{copy:?} {name}: {stderr}");
    assert!(
        stderr.starts_with(&format!(
            "lllqos: {name}: refused in a setuid or file-capability install"
        )),
        "{copy:?}: {stderr}"
    );
}

#[test]
fn trace_is_refused_before_it_touches_tracefs() {
    let (kernel, setup) = setup!();
    for copy in setup.copies() {
        let started = Instant::now();
        let out = setup
            .as_user(&copy, &["trace", "--duration", "3"])
            .output()
            .unwrap();
        assert_refused(&out, "trace", &copy);
        assert!(started.elapsed() < Duration::from_secs(2), "{copy:?}");
        assert!(out.stdout.is_empty(), "{copy:?}: nothing of the log");
        // No instance left in a tracefs the host has mounted (where it has not, lllqos's own
        // mount would have been private to it).
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        if let Some(line) = mountinfo.lines().find(|l| l.contains(" - tracefs ")) {
            let root = line.split(' ').nth(4).unwrap();
            let instances = std::fs::read_dir(format!("{root}/instances")).unwrap();
            assert!(
                !instances
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("lllqos-trace."))
            );
        }
    }
    assert_eq!(read_node(), kernel.baseline);
}

/// The state names a root-only bundle and PID 1: no word of the bundle's config, no holder.
#[test]
fn oci_hook_is_refused_and_reveals_nothing_of_roots_files() {
    let (kernel, setup) = setup!();
    let secret = tempfile::tempdir().unwrap();
    std::fs::set_permissions(secret.path(), PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::write(
        secret.path().join("config.json"),
        r#"{"linux":{"resources":{"cpu":{"cpus":"TOP-SECRET-123"}}}}"#,
    )
    .unwrap();
    for bundle in [secret.path().to_owned(), secret.path().join("no-such-dir")] {
        let state = format!(
            r#"{{"id":"lllqos-privileged","pid":1,"bundle":"{}","annotations":{{"lllqos.io/cpus":"container"}}}}"#,
            bundle.display()
        );
        for copy in setup.copies() {
            let mut child = setup
                .as_user(&copy, &["oci-hook"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), state.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert_refused(&out, "oci-hook", &copy);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("TOP-SECRET") && !stderr.contains("config.json"));
            assert_eq!(read_node(), kernel.baseline, "no holder placed a request");
        }
    }
    let holders = Command::new("pgrep")
        .args(["-x", "lllqos-privileg"])
        .output()
        .unwrap();
    assert!(
        holders.stdout.is_empty(),
        "no holder named after the container"
    );
}

/// The NRI plugin is root's: a privileged copy connects to no socket it is given.
#[test]
fn nri_is_refused() {
    let (kernel, setup) = setup!();
    for copy in setup.copies() {
        let out = setup
            .as_user(&copy, &["nri", "--socket", "/run/no-such.sock"])
            .output()
            .unwrap();
        assert_refused(&out, "nri", &copy);
        assert_eq!(read_node(), kernel.baseline);
    }
}

/// A holder killed with SIGKILL left a CPU changed: the privileged copy does not restore it (the
/// registry and the CPU stay as they are); root's recover does.
#[test]
fn recover_is_refused_and_leaves_the_registry_and_the_cpus_alone() {
    let (_kernel, setup) = setup!();
    let cpu = crate::common::last_cpu();
    let before = crate::common::read_cpu(cpu);
    let mut holder = crate::common::Reaped::spawn(&mut crate::common::lllqos_std([
        "--cpu",
        &cpu.to_string(),
        "-l",
        "11",
    ]));
    crate::common::wait_for_cpu(cpu, "11");
    holder.signal(nix::sys::signal::Signal::SIGKILL);
    holder.wait();
    let registry = std::fs::read(crate::common::REGISTRY).unwrap();
    for copy in setup.copies() {
        let out = setup.as_user(&copy, &["recover"]).output().unwrap();
        assert_refused(&out, "recover", &copy);
        assert_eq!(crate::common::read_cpu(cpu), "11", "{copy:?}");
        assert_eq!(std::fs::read(crate::common::REGISTRY).unwrap(), registry);
    }
    crate::common::lllqos(["recover"]).assert().success();
    assert_eq!(crate::common::read_cpu(cpu), before);
}

/// `--plot` is the user's to name and is opened as the user: not a root-only directory, not a
/// root-only file, not through a link to one; a file in the user's own directory is theirs.
#[test]
fn measure_plot_is_opened_with_the_users_rights() {
    let (_kernel, setup) = setup!();
    let root_only = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root_only.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let roots = root_only.path().join("roots.svg");
    std::fs::write(&roots, "root's").unwrap();
    std::fs::set_permissions(&roots, PermissionsExt::from_mode(0o600)).unwrap();
    let mine = setup.user_dir("plots");
    std::os::unix::fs::symlink(&roots, mine.join("link.svg")).unwrap();
    // Made as the user, so that the link is theirs.
    std::os::unix::fs::lchown(mine.join("link.svg"), Some(setup.uid), Some(setup.gid)).unwrap();
    let created = root_only.path().join("created.svg");
    for copy in setup.copies() {
        for target in [created.clone(), roots.clone(), mine.join("link.svg")] {
            let out = setup
                .as_user(
                    &copy,
                    &[
                        "measure",
                        "--duration",
                        "0.1",
                        "--plot",
                        target.to_str().unwrap(),
                    ],
                )
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(125),
                "{copy:?} {target:?}: {stderr}"
            );
            assert!(stderr.contains("Permission denied"), "{stderr}");
        }
        assert!(
            !created.exists(),
            "{copy:?} created a file in root's directory"
        );
        assert_eq!(std::fs::read(&roots).unwrap(), b"root's", "{copy:?}");
        let own = mine.join("own.svg");
        let out = setup
            .as_user(
                &copy,
                &[
                    "measure",
                    "--duration",
                    "0.1",
                    "--plot",
                    own.to_str().unwrap(),
                ],
            )
            .output()
            .unwrap();
        assert!(out.status.success(), "{copy:?}: {out:?}");
        let meta = std::fs::metadata(&own).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (setup.uid, setup.gid), "{copy:?}");
        std::fs::remove_file(&own).unwrap();
    }
}

/// `--priority` gets the scheduling the user could get: refused as for a plain copy.
#[test]
fn measure_priority_is_what_the_user_could_get() {
    let (_kernel, setup) = setup!();
    for copy in setup.copies() {
        let args = ["measure", "--duration", "0.1", "--priority", "99", "--json"];
        let out = setup.as_user(&copy, &args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{copy:?}: {stderr}");
        assert!(
            stderr.contains("cannot run at SCHED_FIFO priority 99: Operation not permitted (needs root, CAP_SYS_NICE, or an RLIMIT_RTPRIO of at least 99)"),
            "{copy:?}: {stderr}"
        );
    }
}

/// ... and granted when the user's RLIMIT_RTPRIO allows it (limits.conf's rtprio).
#[test]
fn measure_priority_is_granted_by_the_users_rtprio_limit() {
    let (_kernel, setup) = setup!();
    let raise = libc::rlimit {
        rlim_cur: 99,
        rlim_max: 99,
    };
    // SAFETY: getrlimit and setrlimit on plain structs; the limit is put back below.
    let mut before = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_RTPRIO, &mut before) };
    let raised = before.rlim_max >= 99
        || unsafe { libc::prlimit(0, libc::RLIMIT_RTPRIO, &raise, std::ptr::null_mut()) } == 0;
    unsafe { libc::setrlimit(libc::RLIMIT_RTPRIO, &before) };
    applicable!(
        raised,
        "root here may not raise RLIMIT_RTPRIO (no CAP_SYS_RESOURCE, as in some sandboxes)"
    );
    let args = ["measure", "--duration", "0.1", "--priority", "99", "--json"];
    for copy in setup.copies() {
        // The limit is raised while the child is root, then it becomes the user.
        let mut granted = Command::new(&copy);
        granted.args(args).current_dir("/");
        let (uid, gid) = (setup.uid, setup.gid);
        // SAFETY: setrlimit, setgroups, setgid and setuid in the child before exec, on integers.
        unsafe {
            granted.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: 99,
                    rlim_max: 99,
                };
                if libc::setrlimit(libc::RLIMIT_RTPRIO, &limit) < 0
                    || libc::setgroups(0, std::ptr::null()) < 0
                    || libc::setgid(gid) < 0
                    || libc::setuid(uid) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = granted.output().unwrap();
        assert!(out.status.success(), "{copy:?}: {out:?}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["settings"]["policy"], "SCHED_FIFO");
    }
}

/// status sees what the user may see: not the node's limit, not other users' descriptors, not
/// the registry in root's directory.
#[test]
fn status_sees_only_what_the_user_may_see() {
    let (_kernel, setup) = setup!();
    let cpu = crate::common::last_cpu();
    let mut holder = crate::common::Reaped::spawn(&mut crate::common::lllqos_std([
        "--cpu",
        &cpu.to_string(),
        "-l",
        "12",
    ]));
    crate::common::wait_for_cpu(cpu, "12");
    for copy in setup.copies() {
        let out = setup
            .as_user(&copy, &["status", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{copy:?}: {out:?}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["cpu_latency_us"], serde_json::Value::Null, "{copy:?}");
        assert_eq!(json["holders_complete"], false, "{copy:?}");
        assert!(
            json["registry"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("Permission denied")),
            "{copy:?}: {json}"
        );
        assert_eq!(json["registry"]["holders"], serde_json::json!([]));
    }
    holder.signal(nix::sys::signal::Signal::SIGTERM);
    holder.wait();
}

/// `--pid` names any process, as for a plain copy (a pidfd needs no permission): the hold lasts
/// while root's process lives. `$NOTIFY_SOCKET` naming a socket only root may reach gets nothing:
/// the environment does not steer a privileged run.
#[test]
fn pid_and_the_environment_grant_nothing_more() {
    let (kernel, setup) = setup!();
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), PermissionsExt::from_mode(0o700)).unwrap();
    let socket_path = private.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_nonblocking(true).unwrap();
    for copy in setup.copies() {
        let mut roots = crate::common::Reaped::spawn(Command::new("sleep").arg("0.5"));
        let pid = roots.pid().to_string();
        let started = Instant::now();
        let out = setup
            .as_user(&copy, &["-l", "21", "--pid", &pid])
            .env("NOTIFY_SOCKET", &socket_path)
            .env("LLLQOS_REGISTRY", private.path())
            .env("TMPDIR", private.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{copy:?}: {out:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "held while it lived"
        );
        roots.wait();
        let mut buf = [0u8; 64];
        assert!(
            socket.recv(&mut buf).is_err(),
            "{copy:?}: a datagram reached root's socket"
        );
        assert_eq!(
            std::fs::read_dir(private.path()).unwrap().count(),
            1,
            "only the socket"
        );
        assert_eq!(read_node(), kernel.baseline);
    }
}

/// `metrics --output` is written as the user: not into root's directory, and the user's own file
/// is theirs; what the user may not read is left out, as for a plain copy.
#[test]
fn metrics_output_is_the_users() {
    let (_kernel, setup) = setup!();
    let roots = tempfile::tempdir().unwrap();
    std::fs::set_permissions(roots.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let mine = setup.user_dir("metrics");
    for copy in setup.copies() {
        let target = roots.path().join("lllqos.prom");
        let out = setup
            .as_user(&copy, &["metrics", "--output", target.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{copy:?}: {out:?}");
        assert_eq!(
            std::fs::read_dir(roots.path()).unwrap().count(),
            0,
            "{copy:?}"
        );
        let own = mine.join("lllqos.prom");
        let out = setup
            .as_user(&copy, &["metrics", "--output", own.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{copy:?}: {out:?}");
        let meta = std::fs::metadata(&own).unwrap();
        assert_eq!(meta.uid(), setup.uid, "{copy:?}");
        let text = std::fs::read_to_string(&own).unwrap();
        assert!(
            text.contains("lllqos_scrape_error{source=\"cpu_latency\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("lllqos_scrape_error{source=\"holders\"} 1\n"),
            "{text}"
        );
    }
}

/// Every `LLLQOS_` variable lllqos reads from its own environment steers nothing in a privileged
/// run: `LLLQOS_SYSFS_CPU` naming a tree only root may read (with a state named after a secret)
/// is ignored by `status`, `metrics` and `--max-state`, which read the kernel's; the variables it
/// reads only from other processes (`LLLQOS_CONTAINER`, `LLLQOS_POD`, `LLLQOS_NRI`) and the ones
/// it sets for its command change nothing either.
#[test]
fn no_lllqos_variable_steers_a_privileged_run() {
    let (kernel, setup) = setup!();
    let secret = crate::common::idle::IdleTree::lay_out(|_| {
        vec![crate::common::idle::State::new("SECRET-STATE-77", 7)]
    });
    std::fs::set_permissions(secret.path(), PermissionsExt::from_mode(0o700)).unwrap();
    let variables = [
        ("LLLQOS_SYSFS_CPU", secret.path().to_str().unwrap()),
        ("LLLQOS_CONTAINER", "SECRET-CONTAINER"),
        ("LLLQOS_POD", "SECRET/POD"),
        ("LLLQOS_NRI", "/root/SECRET.sock"),
        ("LLLQOS_FD", "0"),
        ("LLLQOS_LATENCY_US", "1"),
        ("LLLQOS_CPUS", "0"),
    ];
    for copy in setup.copies() {
        for args in [&["status"][..], &["status", "--json"], &["metrics"]] {
            let out = setup.as_user(&copy, args).envs(variables).output().unwrap();
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!said.contains("SECRET"), "{copy:?} {args:?}: {said}");
        }
        // --max-state names the kernel's states, not the tree's: a name only the tree has is
        // refused (125), nothing placed.
        let out = setup
            .as_user(
                &copy,
                &["--strict", "--max-state", "SECRET-STATE-77", "true"],
            )
            .envs(variables)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{copy:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("(7 us)"),
            "{copy:?}: the tree was read: {stderr}"
        );
        assert_eq!(read_node(), kernel.baseline);
    }
}
