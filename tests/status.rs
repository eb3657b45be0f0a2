//! `lllqos status` against the real kernel, with requests placed by a process that is not lllqos
//! as well as by lllqos, and per-CPU values written directly in sysfs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::idle::{self, IdleTree, Source, State};
use crate::common::{
    Reaped, last_cpu, lllqos, lllqos_std, read_node, wait_for_cpu, wait_for_node, write_cpu,
};
use nix::sys::signal::Signal;
use serde_json::Value;

/// A holder that is not lllqos: opens the node, writes 4 bytes, holds until its stdin closes.
const FOREIGN_HOLDER: &str = r#"
import struct, sys
node = open("/dev/cpu_dma_latency", "wb", buffering=0)
node.write(struct.pack("i", int(sys.argv[1])))
print("ready", flush=True)
sys.stdin.read()
"#;

fn foreign_holder(us: i32) -> Reaped {
    let mut child = Reaped(
        Command::new("python3")
            .args(["-c", FOREIGN_HOLDER, &us.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

fn status_json() -> Value {
    status_json_of(lllqos(["status", "--json"]))
}

fn status_json_of(mut command: assert_cmd::Command) -> Value {
    let out = command.assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).expect("status --json is JSON")
}

fn status_text() -> String {
    let out = lllqos(["status"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

fn holder_pids(status: &Value) -> Vec<i64> {
    status["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["pid"].as_i64().unwrap())
        .collect()
}

fn cpu_entry(status: &Value, cpu: u32) -> Value {
    status["cpus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cpu"] == cpu)
        .unwrap()
        .clone()
}

#[test]
fn shows_a_foreign_holder_and_its_limit_then_nothing_after_it_exits() {
    let kernel = kernel!();
    require_program!("python3", "python3");
    let mut holder = foreign_holder(55);
    let status = status_json();
    assert_eq!(status["cpu_latency_us"], kernel.expect(55));
    let entry = status["holders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["pid"] == holder.pid())
        .expect("the foreign holder is listed")
        .clone();
    assert_eq!(entry["user"], "root");
    assert!(
        entry["command"].as_str().unwrap().contains("python3 -c"),
        "{entry}"
    );
    let text = status_text();
    assert!(
        text.contains(&format!("{} us", kernel.expect(55))),
        "{text}"
    );
    assert!(text.contains(&format!("{}  root", holder.pid())), "{text}");

    drop(holder.0.stdin.take());
    holder.wait();
    let status = status_json();
    assert!(!holder_pids(&status).contains(&(holder.pid() as i64)));
    if kernel.baseline == crate::common::UNCONSTRAINED {
        // No constraint is null, as everywhere else in the document.
        assert_eq!(status["cpu_latency_us"], Value::Null);
        assert_eq!(status["holders"], serde_json::json!([]));
        assert!(status_text().contains("no constraint"));
    } else {
        assert_eq!(status["cpu_latency_us"], kernel.baseline);
    }
}

#[test]
fn shows_lllqos_holders_but_not_itself() {
    let kernel = kernel!();
    let mut hold = Reaped::spawn(&mut lllqos_std(["-l", "66"]));
    wait_for_node(kernel.expect(66));
    // status run under another lllqos: the outer one is a holder, status itself is not.
    let out = lllqos([
        "-l",
        "67",
        "--",
        crate::common::bin().to_str().unwrap(),
        "status",
        "--json",
    ])
    .assert()
    .success()
    .get_output()
    .stdout
    .clone();
    let status: Value = serde_json::from_slice(&out).unwrap();
    let commands: Vec<&str> = status["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["command"].as_str().unwrap())
        .collect();
    assert!(
        commands.iter().any(|c| c.ends_with("lllqos -l 66")),
        "{commands:?}"
    );
    assert!(
        commands.iter().any(|c| c.contains("lllqos -l 67 --")),
        "{commands:?}"
    );
    assert!(
        !commands
            .iter()
            .any(|c| c.ends_with("status --json") && !c.contains("-l 67")),
        "{commands:?}"
    );
    assert!(holder_pids(&status).contains(&(hold.pid() as i64)));
    hold.signal(Signal::SIGTERM);
    hold.wait();
    assert_eq!(read_node(), kernel.baseline);
}

#[test]
fn per_cpu_values_including_zero_tolerance() {
    let _kernel = kernel!();
    let cpu = last_cpu();
    write_cpu(cpu, "n/a");
    let status = status_json();
    assert_eq!(cpu_entry(&status, cpu)["resume_latency_us"], 0);
    assert!(status_text().contains(&format!("CPU {cpu}: n/a (zero tolerance)")));
    write_cpu(cpu, "777");
    assert_eq!(cpu_entry(&status_json(), cpu)["resume_latency_us"], 777);
    assert!(status_text().contains(&format!("CPU {cpu}: 777 us")));
    write_cpu(cpu, "0");
    assert_eq!(
        cpu_entry(&status_json(), cpu)["resume_latency_us"],
        Value::Null
    );
    let text = status_text();
    assert!(!text.contains("777 us"), "{text}");
}

/// `allowed` recomputed from the tree at `root`: not disabled and exit latency within
/// min(global, own). Returns how many states it checked.
fn check_allowed(status: &Value, root: &Path) -> usize {
    let global = status["cpu_latency_us"].as_u64();
    let mut checked = 0;
    for cpu in status["cpus"].as_array().unwrap() {
        let own = cpu["resume_latency_us"].as_u64();
        let limit = [global, own]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(u64::MAX);
        let n = cpu["cpu"].as_u64().unwrap() as u32;
        for (k, state) in cpu["idle_states"].as_array().unwrap().iter().enumerate() {
            let dir = idle::state_dir(root, n, k);
            let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
            let latency: u64 = read("latency").trim().parse().unwrap();
            let disabled = read("disable").trim() != "0";
            assert_eq!(state["exit_latency_us"], latency);
            assert_eq!(state["disabled"], disabled);
            assert_eq!(
                state["allowed"],
                !disabled && latency <= limit,
                "cpu{n} state{k}"
            );
            checked += 1;
        }
    }
    checked
}

/// Which idle states each CPU may enter follows the global limit, the CPU's own, and a state's
/// `disable`: from a tree the test lays out (one state disabled), and the kernel's own states.
#[test]
fn idle_states_allowed_follow_the_limits() {
    let kernel = kernel!();
    let cpu = last_cpu();
    let tree = IdleTree::lay_out(|cpu| {
        vec![
            State::new("POLL", 0),
            State::new("C1", 3),
            State::new("C1E", 40 + cpu),
            State::new("C6", 170),
        ]
    });
    std::fs::write(tree.state(cpu, 1).join("disable"), "1\n").unwrap();
    for source in Source::both(tree) {
        let status = || status_json_of(source.lllqos(["status", "--json"]));
        let checked = check_allowed(&status(), source.root());
        assert_eq!(
            checked,
            source.states.values().map(Vec::len).sum::<usize>(),
            "{source}"
        );
        // The CPU's own limit: states deeper than it are not allowed there, and only there.
        write_cpu(cpu, "50");
        let now = status();
        check_allowed(&now, source.root());
        if source.tree.is_some() {
            let allowed = |c: u32| -> Vec<bool> {
                (now["cpus"].as_array().unwrap().iter())
                    .find(|e| e["cpu"] == c)
                    .unwrap()["idle_states"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["allowed"].as_bool().unwrap())
                    .collect()
            };
            // POLL, C1 (disabled on this CPU), C1E (40 + cpu us), C6 (170 us).
            assert_eq!(allowed(cpu), [true, false, true, false], "{now}");
        }
        write_cpu(cpu, "0");
        // The global limit: nothing deeper than 0 us.
        let mut hold = Reaped::spawn(&mut lllqos_std(["-l", "0"]));
        wait_for_node(kernel.expect(0));
        let held = status();
        check_allowed(&held, source.root());
        for c in held["cpus"].as_array().unwrap() {
            for state in c["idle_states"].as_array().unwrap() {
                if state["exit_latency_us"].as_u64().unwrap() > 0 {
                    assert_eq!(state["allowed"], false);
                }
            }
        }
        hold.signal(Signal::SIGTERM);
        hold.wait();
        write_cpu(cpu, "n/a");
        check_allowed(&status(), source.root());
        write_cpu(cpu, "0");
    }
}

/// The text names the driver and each CPU's states, and which of them the CPU's limit forbids.
#[test]
fn the_text_lists_the_idle_states_of_a_laid_out_tree() {
    let _kernel = kernel!();
    let cpu = last_cpu();
    let tree = IdleTree::lay_out(|_| vec![State::new("POLL", 0), State::new("C6 deep", 170)]);
    write_cpu(cpu, "100");
    let out = lllqos(["status"])
        .env("LLLQOS_SYSFS_CPU", tree.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("driver test_idle"), "{text}");
    assert!(
        text.contains(&format!(
            "CPU {cpu}: POLL (0 us); not allowed: C6 deep (170 us)"
        )),
        "{text}"
    );
    write_cpu(cpu, "0");
}

#[test]
fn registry_entries_live_and_stale() {
    let _kernel = kernel!();
    let cpu = last_cpu();
    let mut hold = Reaped::spawn(&mut lllqos_std(["--cpu", &cpu.to_string(), "-l", "0"]));
    wait_for_cpu(cpu, "n/a");
    let status = status_json();
    let holder = &status["registry"]["holders"][0];
    assert_eq!(holder["pid"], hold.pid());
    assert_eq!(holder["live"], true);
    assert_eq!(
        status["registry"]["cpus"][cpu.to_string()]["written"],
        "n/a"
    );
    let command = format!("{} --cpu {cpu} -l 0", crate::common::bin().display());
    assert_eq!(holder["command"], command.as_str());
    assert!(status_text().contains(&format!(
        "pid {} ({command}) holds 0 us on CPU {cpu} (live)",
        hold.pid()
    )));
    hold.signal(Signal::SIGKILL);
    hold.wait();
    assert_eq!(status_json()["registry"]["holders"][0]["live"], false);
    assert_eq!(
        status_json()["registry"]["holders"][0]["command"],
        Value::Null
    );
    assert!(status_text().contains("stale"));
    // The next lllqos drops it and restores the CPU.
    lllqos(["--cpu", &cpu.to_string(), "-l", "5", "true"])
        .assert()
        .success();
    assert_eq!(status_json()["registry"], Value::Null);
}

#[test]
fn json_has_the_documented_shape() {
    let _kernel = kernel!();
    let status = status_json();
    for key in [
        "cpu_latency_us",
        "holders",
        "cpuidle",
        "cpus",
        "registry",
        "wakeup_latency",
    ] {
        assert!(status.get(key).is_some(), "missing {key}");
    }
    assert!(
        status["cpuidle"].get("driver").is_some() && status["cpuidle"].get("governor").is_some()
    );
    let cpus = status["cpus"].as_array().unwrap();
    assert_eq!(cpus.len(), crate::common::resume_latency_files().len());
    for cpu in cpus {
        for key in ["cpu", "online", "resume_latency_us", "idle_states"] {
            assert!(cpu.get(key).is_some(), "missing cpus[].{key}");
        }
    }
}

#[test]
fn status_takes_no_hold_options() {
    lllqos(["-l", "5", "status"]).assert().code(127);
    lllqos(["status", "--bogus"]).assert().code(125);
}

/// A holder of a second node made with mknod (same device number, another path) is found: holders
/// are identified by the device behind the descriptor, not by its path.
#[test]
fn a_holder_of_a_node_made_elsewhere_with_mknod_is_found() {
    let kernel = kernel!();
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("qos");
    let rdev = std::fs::metadata(crate::common::NODE).map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.rdev()
    });
    nix::sys::stat::mknod(
        &node,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        rdev.unwrap(),
    )
    .unwrap();
    let hold = Reaped::spawn(&mut lllqos_std([
        "--device".as_ref(),
        node.as_os_str(),
        "-l".as_ref(),
        "41".as_ref(),
    ]));
    wait_for_node(kernel.expect(41));
    let status = status_json();
    assert!(
        holder_pids(&status).contains(&i64::from(hold.pid())),
        "{status}"
    );
    assert_eq!(status["holders_complete"], true);
}

/// A holder whose user exists only in an NSS module (libnss-extrausers, set up in a private mount
/// namespace: nsswitch.conf bound over, /var/lib/extrausers on a tmpfs, for this run only) is shown
/// by name: `status` asks the name service, not /etc/passwd.
#[test]
fn a_holder_known_only_to_an_nss_module_is_shown_by_name() {
    let _kernel = kernel!();
    let module = [
        "/usr/lib/libnss_extrausers.so.2",
        "/lib/x86_64-linux-gnu/libnss_extrausers.so.2",
    ];
    require!(
        module.iter().any(|m| Path::new(m).exists()),
        "needs libnss-extrausers (Debian package libnss-extrausers)"
    );
    require_program!("unshare", "util-linux");
    applicable!(
        !crate::common::is_static(&crate::common::bin()),
        "a static binary (the musl build) has no NSS: it reads /etc/passwd only"
    );
    let (uid, name) = (61_234, "lqnssuser");
    assert!(
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .unwrap()
            .is_none(),
        "uid {uid} must be unknown to this machine"
    );
    // Root opens the node; the process that keeps it open runs as the NSS-only user.
    let mut holder = Reaped::spawn(Command::new("sh").args([
        "-c",
        &format!(
            "exec 3<>{}; exec setpriv --reuid={uid} --regid={uid} --clear-groups sleep 30",
            crate::common::NODE
        ),
    ]));
    crate::common::wait_until("the holder to run as its user", || {
        std::fs::read_to_string(format!("/proc/{}/status", holder.pid()))
            .is_ok_and(|s| s.contains(&format!("Uid:\t{uid}\t")))
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("nsswitch.conf"),
        "passwd: files extrausers\ngroup: files\n",
    )
    .unwrap();
    let users = dir.path().join("extrausers");
    std::fs::create_dir(&users).unwrap();
    std::fs::write(
        users.join("passwd"),
        format!("{name}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin\n"),
    )
    .unwrap();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            r#"mount --bind "$D/nsswitch.conf" /etc/nsswitch.conf &&
               mount -t tmpfs tmpfs /var/lib && mkdir /var/lib/extrausers &&
               cp "$D/extrausers/passwd" /var/lib/extrausers/ && "$B" status --json"#,
        )
        .env("D", dir.path())
        .env("B", crate::common::bin())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pid = holder.pid();
    let found = (status["holders"].as_array().unwrap().iter())
        .find(|h| h["pid"] == pid)
        .unwrap_or_else(|| panic!("holder {pid} in {status}"));
    assert_eq!(found["user"], name);
    holder.signal(Signal::SIGKILL);
    holder.wait();
}

/// A user who may not read root's registry is told so (permission denied), not that it must be a
/// directory.
#[test]
fn an_unreadable_registry_is_permission_denied_for_a_user() {
    let _kernel = kernel!();
    require_program!("setpriv", "util-linux");
    let cpu = last_cpu();
    let mut holder = Reaped::spawn(&mut lllqos_std(["--cpu", &cpu.to_string(), "-l", "17"]));
    wait_for_cpu(cpu, "17");
    let as_nobody = |args: &[&str]| {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(crate::common::bin())
            .args(args)
            .current_dir("/")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let json: Value = serde_json::from_str(&as_nobody(&["status", "--json"])).unwrap();
    assert_eq!(
        json["registry"]["error"], "cannot open /run/lllqos: Permission denied",
        "{json}"
    );
    let text = as_nobody(&["status"]);
    assert!(
        text.contains("unreadable (cannot open /run/lllqos: Permission denied)"),
        "{text}"
    );
    assert!(!text.contains("symlink"), "{text}");
    holder.signal(Signal::SIGTERM);
    holder.wait();
}
