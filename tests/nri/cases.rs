//! The cases: one behaviour each, on a containerd of the test's own.

use super::{Containerd, Pod, holders};
use crate::common::{cpus, read_cpu, read_node, wait_for_node, wait_until};

/// The holders `lllqos status --json` shows: (container, pod).
fn workloads() -> Vec<(String, String)> {
    (holders().iter())
        .filter_map(|h| {
            Some((
                h["container"].as_str()?.to_owned(),
                h["pod"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

#[test]
fn nri_holds_a_pods_request_from_creation_until_the_container_stops() {
    let kernel = kernel!();
    let mut containerd = given!(Containerd::start());
    let plugin = containerd.plugin();
    let pod = Pod {
        name: "rt",
        annotations: &[("lllqos.io/latency", "23us")],
    };
    let pod_id = containerd.pod(&pod);
    let id = containerd.create(&pod_id, &pod, "app", "").unwrap();
    // In force once created: before the container's process exists.
    assert_eq!(read_node(), kernel.expect(23));
    assert_eq!(workloads(), [(id.clone(), "default/rt".to_owned())]);
    containerd.start_container(&id);
    assert_eq!(read_node(), kernel.expect(23));
    containerd.stop(&id);
    wait_for_node(kernel.baseline);
    assert!(workloads().is_empty());
    containerd.remove(&id);
    assert!(
        plugin
            .said()
            .contains(&format!("container {id} (app, pod default/rt): released"))
    );
}

#[test]
fn nri_leaves_a_pod_without_annotations_alone() {
    let kernel = kernel!();
    let mut containerd = given!(Containerd::start());
    let _plugin = containerd.plugin();
    let pod = Pod {
        name: "plain",
        annotations: &[("example.com/other", "1")],
    };
    let pod_id = containerd.pod(&pod);
    let id = containerd.create(&pod_id, &pod, "app", "").unwrap();
    containerd.start_container(&id);
    assert_eq!(read_node(), kernel.baseline);
    assert!(workloads().is_empty());
}

#[test]
fn nri_places_per_cpu_on_the_containers_cpuset_and_restores_it() {
    let _kernel = kernel!();
    let all = cpus();
    applicable!(all.len() >= 2, "needs a second CPU");
    let (cpu, other) = (all[1], all[0]);
    let (before, other_before) = (read_cpu(cpu), read_cpu(other));
    let mut containerd = given!(Containerd::start());
    let _plugin = containerd.plugin();
    // Only the container named `pinned` asks (the per-container form), on its own cpuset.
    let pod = Pod {
        name: "pinned-pod",
        annotations: &[
            ("lllqos.io/latency.pinned", "7"),
            ("lllqos.io/cpus.pinned", "container"),
        ],
    };
    let pod_id = containerd.pod(&pod);
    let sidecar = containerd.create(&pod_id, &pod, "sidecar", "").unwrap();
    let id = containerd
        .create(&pod_id, &pod, "pinned", &cpu.to_string())
        .unwrap();
    assert_eq!(read_cpu(cpu), "7");
    assert_eq!(read_cpu(other), other_before);
    assert_eq!(workloads(), [(id.clone(), "default/pinned-pod".to_owned())]);
    containerd.start_container(&id);
    containerd.start_container(&sidecar);
    containerd.stop(&id);
    wait_until("the CPU's value back", || read_cpu(cpu) == before);
}

#[test]
fn nri_reads_crio_cpu_c_states_as_crio_does() {
    let _kernel = kernel!();
    let all = cpus();
    applicable!(all.len() >= 2, "needs a second CPU");
    let cpu = all[1];
    let before = read_cpu(cpu);
    let mut containerd = given!(Containerd::start());
    let _plugin = containerd.plugin();
    let pod = Pod {
        name: "openshift",
        annotations: &[("cpu-c-states.crio.io", "disable")],
    };
    let pod_id = containerd.pod(&pod);
    // Pinned: only polling on its CPU ("n/a"); not pinned: nothing, as CRI-O.
    let id = containerd
        .create(&pod_id, &pod, "pinned", &cpu.to_string())
        .unwrap();
    let unpinned = containerd.create(&pod_id, &pod, "unpinned", "").unwrap();
    assert_eq!(read_cpu(cpu), "n/a");
    assert_eq!(workloads().len(), 1);
    containerd.remove(&unpinned);
    containerd.remove(&id);
    wait_until("the CPU's value back", || read_cpu(cpu) == before);
}

#[test]
fn nri_refuses_a_container_whose_annotation_is_bad_and_names_it() {
    let kernel = kernel!();
    let mut containerd = given!(Containerd::start());
    let _plugin = containerd.plugin();
    let pod = Pod {
        name: "typo",
        annotations: &[("lllqos.io/latency.app", "fast")],
    };
    let pod_id = containerd.pod(&pod);
    let error = containerd.create(&pod_id, &pod, "app", "").unwrap_err();
    assert!(error.contains("lllqos.io/latency.app=fast"), "{error}");
    assert_eq!(read_node(), kernel.baseline);
    assert!(workloads().is_empty());
}

#[test]
fn nri_runs_as_a_plugin_containerd_starts_from_its_plugin_directory() {
    let kernel = kernel!();
    let mut containerd = given!(Containerd::start_with(true));
    let pod = Pod {
        name: "started-by-containerd",
        annotations: &[("lllqos.io/latency", "19")],
    };
    let pod_id = containerd.pod(&pod);
    let id = containerd.create(&pod_id, &pod, "app", "").unwrap();
    assert_eq!(read_node(), kernel.expect(19));
    containerd.stop(&id);
    wait_for_node(kernel.baseline);
}

#[test]
fn nri_is_not_woken_between_events() {
    let kernel = kernel!();
    let mut containerd = given!(Containerd::start());
    let plugin = containerd.plugin();
    let pod = Pod {
        name: "quiet",
        annotations: &[("lllqos.io/latency", "41")],
    };
    let pod_id = containerd.pod(&pod);
    let id = containerd.create(&pod_id, &pod, "app", "").unwrap();
    containerd.start_container(&id);
    plugin.wait_watching(&id);
    assert_eq!(read_node(), kernel.expect(41));
    // Holding a request, with containerd idle: no timer, no polling.
    let before = plugin.wake_ups();
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(plugin.wake_ups(), before);
}

#[test]
fn nri_says_in_one_line_when_the_socket_cannot_be_reached() {
    let out = crate::common::lllqos(["nri", "--socket", "/nonexistent/nri.sock"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("lllqos: cannot connect to the NRI socket /nonexistent/nri.sock: "),
        "{stderr}"
    );
    assert!(stderr.contains("is NRI enabled in containerd?"), "{stderr}");
}

#[test]
fn nri_refuses_a_bad_plugin_index_or_name() {
    for args in [
        ["nri", "--plugin-index", "5"],
        ["nri", "--plugin-name", "a b"],
    ] {
        let out = crate::common::lllqos(args).output().unwrap();
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("NRI plugin"), "{stderr}");
    }
    // From the runtime's variables too.
    let out = crate::common::lllqos(["nri", "--socket", "/nonexistent"])
        .env("NRI_PLUGIN_IDX", "x1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NRI_PLUGIN_IDX=x1"));
}

#[test]
fn nri_releases_when_the_containers_process_exits_on_its_own() {
    let kernel = kernel!();
    let mut containerd = given!(Containerd::start());
    let _plugin = containerd.plugin();
    let pod = Pod {
        name: "batch",
        annotations: &[("lllqos.io/latency", "29")],
    };
    let pod_id = containerd.pod(&pod);
    let id = containerd
        .create_running(&pod_id, &pod, "job", "", &["sleep", "1"])
        .unwrap();
    containerd.start_container(&id);
    assert_eq!(read_node(), kernel.expect(29));
    // No StopContainer from the kubelet: the process ends, and containerd says so.
    wait_for_node(kernel.baseline);
    assert!(workloads().is_empty());
}

#[test]
fn nri_dies_of_another_ending_signal_and_the_containers_keep_their_requests() {
    let kernel = kernel!();
    let mut containerd = given!(Containerd::start());
    let plugin = containerd.plugin();
    let pod = Pod {
        name: "quit",
        annotations: &[("lllqos.io/latency", "43")],
    };
    let pod_id = containerd.pod(&pod);
    let id = containerd.create(&pod_id, &pod, "app", "").unwrap();
    containerd.start_container(&id);
    assert_eq!(read_node(), kernel.expect(43));
    let status = plugin.signal(nix::sys::signal::Signal::SIGQUIT);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGQUIT),
        "{status:?}"
    );
    // The request is the container's: it holds on, and goes with the container.
    assert_eq!(read_node(), kernel.expect(43));
    assert_eq!(workloads(), [(id.clone(), "default/quit".to_owned())]);
    assert_ne!(holder_pid(&id), 0);
    containerd.stop(&id);
    wait_for_node(kernel.baseline);
    assert!(workloads().is_empty());
}

/// The pid of the holder `status --json` names after container `id`.
fn holder_pid(id: &str) -> i32 {
    let out = crate::common::lllqos(["status", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (json["holders"].as_array().unwrap().iter())
        .find(|h| h["container"] == id)
        .and_then(|h| h["pid"].as_i64())
        .unwrap() as i32
}

#[test]
fn nri_refuses_a_descriptor_from_the_runtime_that_is_not_a_socket() {
    for (setup, value, why) in [
        ("", "abc", "not a descriptor number above 2"),
        ("exec 7</dev/null;", "7", "descriptor 7 is not a socket"),
        ("", "9", "descriptor 9 is not open"),
    ] {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{setup} NRI_PLUGIN_SOCKET={value} exec \"$0\" nri",))
            .arg(crate::common::bin())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.trim_end(),
            format!("lllqos: NRI_PLUGIN_SOCKET={value}: {why}"),
        );
    }
}
