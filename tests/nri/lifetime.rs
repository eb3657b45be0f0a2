//! A container's request lasts the container's life, not the plugin's nor containerd's: a sampler
//! reads the node every millisecond while a held container runs across restarts of each, and
//! not one sample may be above the container's value. Afterwards there is exactly one holder for
//! it, and its stop releases the request within a second.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{Containerd, Plugin, Pod, holders};
use crate::common::{Kernel, Sampler, cpus, read_cpu, read_node, wait_until};

/// The pids of the holders `lllqos status --json` shows for container `id`.
fn holders_of(id: &str) -> Vec<i64> {
    (holders().iter())
        .filter(|h| h["container"] == id)
        .filter_map(|h| h["pid"].as_i64())
        .collect()
}

/// Leaves the plugin (or containerd) down for a while, not waiting for anything: the sampler
/// must see the node through a time with nobody there to hold the request but the holder.
fn down_a_while() {
    std::thread::sleep(Duration::from_millis(300));
}

/// Waits for `plugin`'s `nth` synchronization, which must say `says`.
fn synchronized(plugin: &Plugin, nth: usize, says: &str) -> String {
    let synchronized = plugin.wait_synchronized(nth);
    assert!(synchronized.contains(says), "{synchronized}");
    synchronized
}

/// Waits until the node is back to `kernel`'s baseline after container `id` stopped `since`:
/// within a second, and with no holder left for it.
fn gone_within_a_second(kernel: &Kernel, id: &str, since: Instant) {
    wait_until("the request gone", || read_node() == kernel.baseline);
    assert!(
        since.elapsed() < Duration::from_secs(1),
        "{:?}",
        since.elapsed()
    );
    assert!(holders_of(id).is_empty());
}

/// A running container of a pod named `name` that asks for `us` microseconds, held (its holder
/// watching it): its id.
fn held(containerd: &mut Containerd, plugin: &Plugin, name: &str, us: u32) -> String {
    let us = us.to_string();
    let pod = Pod {
        name,
        annotations: &[("lllqos.io/latency", &us)],
    };
    let pod_id = containerd.pod(&pod);
    let id = containerd.create(&pod_id, &pod, "app", "").unwrap();
    containerd.start_container(&id);
    plugin.wait_watching(&id);
    id
}

/// Checks what a scenario left: no sample above the container's value, one holder for it, and its
/// stop releasing the request within a second.
fn afterwards(kernel: &Kernel, containerd: &Containerd, id: &str, us: u32, samples: &[i32]) {
    let limit = kernel.expect(us as i32);
    let above = samples.iter().filter(|&&s| s > limit).count();
    assert_eq!(
        above,
        0,
        "{above} of {} samples above {limit} us",
        samples.len()
    );
    assert!(samples.len() > 100, "{} samples", samples.len());
    wait_until("one holder for the container", || holders_of(id).len() == 1);
    assert_eq!(read_node(), limit);
    containerd.stop(id);
    gone_within_a_second(kernel, id, Instant::now());
}

#[test]
fn nri_a_request_holds_through_a_plugin_sigterm_and_restart() {
    let kernel = kernel!();
    let mut containerd = given!(Containerd::start());
    let plugin = containerd.plugin();
    let id = held(&mut containerd, &plugin, "term", 27);
    let sampler = Sampler::start();
    assert_eq!(plugin.terminate().code(), Some(0));
    down_a_while();
    let again = containerd.plugin();
    synchronized(&again, 1, "1 held (1 adopted), 0 to place");
    afterwards(&kernel, &containerd, &id, 27, &sampler.finish());
}

#[test]
fn nri_a_request_holds_through_a_plugin_sigkill_and_restart() {
    let kernel = kernel!();
    let mut containerd = given!(Containerd::start());
    let mut plugin = containerd.plugin();
    let id = held(&mut containerd, &plugin, "kill", 28);
    let sampler = Sampler::start();
    plugin.kill();
    down_a_while();
    let again = containerd.plugin();
    synchronized(&again, 1, "1 held (1 adopted), 0 to place");
    afterwards(&kernel, &containerd, &id, 28, &sampler.finish());
}

/// containerd ended by `signal` and started again, the plugin waiting for it and registering again.
fn through_containerd(signal: Signal, name: &str, us: u32) {
    let kernel = kernel!();
    let mut containerd = given!(Containerd::start());
    let plugin = containerd.plugin();
    let id = held(&mut containerd, &plugin, name, us);
    let sampler = Sampler::start();
    containerd.kill_daemon(signal);
    wait_until("the plugin to wait for containerd", || {
        plugin.said().contains("the runtime closed the connection")
    });
    down_a_while();
    containerd.start_daemon();
    synchronized(&plugin, 2, "1 held (0 adopted), 0 to place");
    afterwards(&kernel, &containerd, &id, us, &sampler.finish());
}

#[test]
fn nri_a_request_holds_through_a_containerd_sigterm_and_restart() {
    through_containerd(Signal::SIGTERM, "ctd-term", 29);
}

#[test]
fn nri_a_request_holds_through_a_containerd_sigkill_and_restart() {
    through_containerd(Signal::SIGKILL, "ctd-kill", 30);
}

#[test]
fn nri_a_request_holds_while_the_plugin_restarts_with_containerd_down() {
    let kernel = kernel!();
    let mut containerd = given!(Containerd::start());
    let mut plugin = containerd.plugin();
    let id = held(&mut containerd, &plugin, "down", 31);
    let sampler = Sampler::start();
    plugin.kill();
    containerd.kill_daemon(Signal::SIGTERM);
    // Started while containerd is down: it waits for the socket.
    let again = containerd.plugin_started();
    wait_until("the plugin to wait", || {
        again.said().contains("waiting for the runtime")
    });
    down_a_while();
    containerd.start_daemon();
    synchronized(&again, 1, "1 held (1 adopted), 0 to place");
    afterwards(&kernel, &containerd, &id, 31, &sampler.finish());
}

#[test]
fn nri_a_container_stopped_while_the_plugin_is_down_releases_within_a_second() {
    let kernel = kernel!();
    let mut containerd = given!(Containerd::start());
    let mut plugin = containerd.plugin();
    let id = held(&mut containerd, &plugin, "alone", 32);
    assert_eq!(read_node(), kernel.expect(32));
    plugin.kill();
    // Nobody hears the stop but the holder, which watches the container's init.
    containerd.stop(&id);
    gone_within_a_second(&kernel, &id, Instant::now());
    // The next plugin finds nothing to do.
    let again = containerd.plugin();
    synchronized(&again, 1, " 0 containers ask");
}

#[test]
fn nri_a_killed_holder_is_placed_again_within_a_second_and_said_once() {
    let kernel = kernel!();
    let mut containerd = given!(Containerd::start());
    let plugin = containerd.plugin();
    let id = held(&mut containerd, &plugin, "victim", 37);
    let holder = holders_of(&id)[0];
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(holder as i32), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    wait_until("a new holder", || {
        holders_of(&id).iter().any(|&pid| pid != holder) && read_node() == kernel.expect(37)
    });
    assert!(
        killed.elapsed() < Duration::from_secs(1),
        "{:?}",
        killed.elapsed()
    );
    let said = plugin.said();
    assert_eq!(
        said.matches("its holder was not stopped by the plugin")
            .count(),
        1,
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "container {id} (app, pod default/victim): its holder was not stopped by the plugin: it ended (signal: 9 (SIGKILL)); placed again"
        )),
        "{said}"
    );
    containerd.stop(&id);
    wait_until("the request gone", || read_node() == kernel.baseline);
}

#[test]
fn nri_an_update_moves_a_per_cpu_request_to_the_new_cpuset() {
    let _kernel = kernel!();
    let all = cpus();
    applicable!(all.len() >= 2, "needs a second CPU");
    let (from, to) = (all[1], all[0]);
    let (from_before, to_before) = (read_cpu(from), read_cpu(to));
    let mut containerd = given!(Containerd::start());
    let _plugin = containerd.plugin();
    let pod = Pod {
        name: "moved",
        annotations: &[("lllqos.io/latency", "9"), ("lllqos.io/cpus", "container")],
    };
    let pod_id = containerd.pod(&pod);
    let id = containerd
        .create(&pod_id, &pod, "app", &from.to_string())
        .unwrap();
    containerd.start_container(&id);
    assert_eq!(
        (read_cpu(from), read_cpu(to)),
        ("9".to_owned(), to_before.clone())
    );
    // The kubelet's CPU manager moves it.
    containerd.update(&id, &to.to_string());
    wait_until("the request on the new CPU alone", || {
        read_cpu(to) == "9" && read_cpu(from) == from_before
    });
    assert_eq!(holders_of(&id).len(), 1);
    containerd.stop(&id);
    wait_until("both CPUs back", || {
        read_cpu(to) == to_before && read_cpu(from) == from_before
    });
}

#[test]
fn nri_a_second_plugin_on_the_same_runtime_is_refused_naming_the_first() {
    let containerd = given!(Containerd::start());
    let first = containerd.plugin();
    let second = crate::common::lllqos(["nri", "--socket"])
        .arg(containerd.nri_socket())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "lllqos: another lllqos nri (pid {}) serves the runtime at {}",
            first.pid(),
            containerd.nri_socket().display()
        )),
        "{stderr}"
    );
}

#[test]
fn nri_a_holder_not_in_force_in_time_refuses_the_creation_and_leaves_nothing() {
    let kernel = kernel!();
    let cpu = *cpus().last().unwrap();
    let before = read_cpu(cpu);
    let mut containerd = given!(Containerd::start());
    let _plugin = containerd.plugin();
    // The registry busy for longer than the deadline (another lllqos in a long change).
    std::fs::create_dir_all(crate::common::REGISTRY_DIR).unwrap();
    std::fs::set_permissions(
        crate::common::REGISTRY_DIR,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    // Never shortened: a waiting lllqos maps its first bytes (the doorbell).
    let lock = std::os::unix::fs::OpenOptionsExt::mode(
        std::fs::OpenOptions::new().create(true).append(true),
        0o600,
    )
    .open(format!("{}/lock", crate::common::REGISTRY_DIR))
    .unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    let pod = Pod {
        name: "slow",
        annotations: &[("lllqos.io/latency", "6"), ("lllqos.io/cpus", "container")],
    };
    let pod_id = containerd.pod(&pod);
    let error = containerd
        .create(&pod_id, &pod, "app", &cpu.to_string())
        .unwrap_err();
    drop(lock);
    assert!(
        error.contains("lllqos: container")
            && error.contains("the holder did not place the request within 1 s"),
        "{error}"
    );
    assert_eq!(read_cpu(cpu), before);
    assert_eq!(read_node(), kernel.baseline);
    wait_until("no holder left", || holders().is_empty());
}

#[test]
fn nri_two_hundred_containers_are_adopted_not_placed_twice() {
    let kernel = kernel!();
    let count = 200;
    let mut containerd = given!(Containerd::start());
    let mut plugin = containerd.plugin();
    let pod = Pod {
        name: "many",
        annotations: &[("lllqos.io/latency", "33")],
    };
    let pod_id = containerd.pod(&pod);
    let ids = containerd.many(&pod_id, &pod, "app", count);
    assert_eq!(ids.len(), count);
    assert_eq!(read_node(), kernel.expect(33));
    wait_until("every container held, its holder watching it", || {
        holders().len() == count
            && plugin.said().matches(": its holder watches pid ").count() == count
    });
    plugin.kill();
    let again: Plugin = containerd.plugin();
    let synchronized = synchronized(
        &again,
        1,
        &format!("{count} containers ask, {count} held ({count} adopted), 0 to place, 0 stopped"),
    );
    println!("after the restart: {synchronized}");
    // The runtime's deadline for a whole synchronization is 2 s.
    let ms: u64 = synchronized
        .trim_start_matches("lllqos: nri: synchronized in ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ms < 2000, "{synchronized}");
    assert_eq!(holders().len(), count);
    for id in &ids {
        containerd.stop(id);
    }
    wait_until("every request gone", || read_node() == kernel.baseline);
}
