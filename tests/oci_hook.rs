//! `lllqos oci-hook` under a real OCI runtime: runc runs a bundle whose root file system holds a
//! static busybox, with the hook in `config.json`'s `hooks.createRuntime`, as podman and CRI-O
//! put it there from `contrib/oci/lllqos.json`. runc keeps its state in a directory of the test's
//! (`--root`), so nothing of it is left on the machine.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Missing, bin, lllqos, read_cpu, read_node, wait_until};
use serde_json::{Value, json};

/// A bundle and a runc state directory, removed when dropped.
struct Bundle {
    dir: tempfile::TempDir,
    id: String,
}

impl Bundle {
    /// A bundle whose container prints `started` and waits for a line on stdin, with these
    /// annotations and, when given, this cpuset; or what is missing (runc, a static busybox).
    fn new(annotations: Value, cpuset: Option<&str>) -> Result<Bundle, Missing> {
        crate::common::program("runc", "runc")?;
        let dir = tempfile::Builder::new()
            .prefix("lllqos-oci-")
            .tempdir()
            .unwrap();
        crate::common::busybox_rootfs(&dir.path().join("rootfs"), &["sh"])?;
        let spec = Command::new("runc")
            .args(["spec", "--bundle"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(spec.success(), "runc spec");
        let path = dir.path().join("config.json");
        let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(["sh", "-c", "echo started; read line"]);
        config["root"]["readonly"] = json!(true);
        config["annotations"] = annotations;
        // The hook as the shipped hooks.d file gives it, run from this build.
        let mut hook = hooks_d()["hook"].clone();
        hook["path"] = json!(bin());
        config["hooks"] = json!({ "createRuntime": [hook] });
        if let Some(cpus) = cpuset {
            config["linux"]["resources"]["cpu"] = json!({"cpus": cpus});
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let id = format!("lllqos-test-{}", std::process::id());
        Ok(Bundle { dir, id })
    }

    /// `runc run` of the bundle, its stdin and stdout piped.
    fn run(&self) -> Container {
        let child = Command::new("runc")
            .arg("--root")
            .arg(self.state_dir())
            .args(["run", "--bundle"])
            .arg(self.dir.path())
            .arg(&self.id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Container { child }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("runc-state")
    }
}

/// A running `runc run`; killed (the container with it) if the test ends early.
struct Container {
    child: Child,
}

impl Container {
    /// Waits for the container's `started`: its process runs, after the hook.
    fn started(&mut self) {
        let mut line = String::new();
        let stdout = self.child.stdout.as_mut().unwrap();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert_eq!(line, "started\n", "{}", self.stderr_if_exited());
    }

    fn stderr_if_exited(&mut self) -> String {
        match self.child.try_wait() {
            Ok(Some(_)) => {
                let mut text = String::new();
                let _ =
                    std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut text);
                text
            }
            _ => String::new(),
        }
    }

    /// Lets the container's process end, and waits for runc.
    fn finish(mut self) -> std::process::Output {
        let _ = self.child.stdin.take().unwrap().write_all(b"go\n");
        let child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        child.wait_with_output().unwrap()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `contrib/oci/lllqos.json`, the hooks.d file the package installs for podman and CRI-O.
fn hooks_d() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/oci/lllqos.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_hooks_d_file_runs_the_hook_at_create_runtime_for_lllqos_annotations() {
    let file = hooks_d();
    assert_eq!(file["version"], "1.0.0");
    assert_eq!(file["hook"]["path"], "/usr/bin/lllqos");
    assert_eq!(file["hook"]["args"], json!(["lllqos", "oci-hook"]));
    assert_eq!(file["when"]["annotations"], json!({"^lllqos\\.io/": ".*"}));
    assert_eq!(file["stages"], json!(["createRuntime"]));
}

/// `lllqos status --json`.
fn status() -> Value {
    let out = lllqos(["status", "--json"]).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_request_is_in_force_while_the_container_runs_and_gone_within_a_second_after() {
    let kernel = kernel!();
    let bundle = given!(Bundle::new(json!({"lllqos.io/latency": "17us"}), None));
    let mut container = bundle.run();
    container.started();
    assert_eq!(read_node(), kernel.expect(17));
    // status names the holder after the container, and so does the command trace shows.
    let status = status();
    let holders = status["holders"].as_array().unwrap();
    let holder = holders
        .iter()
        .find(|h| {
            h["command"]
                .as_str()
                .unwrap()
                .contains(&format!("--name {}", bundle.id))
        })
        .unwrap_or_else(|| panic!("no holder named after {}: {status}", bundle.id));
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", holder["pid"])).unwrap();
    assert_eq!(comm.trim_end(), &bundle.id[..15]);
    let text = lllqos(["status"]).output().unwrap().stdout;
    assert!(String::from_utf8_lossy(&text).contains(&bundle.id));

    let output = container.finish();
    let ended = Instant::now();
    assert!(output.status.success(), "{output:?}");
    wait_until("the request to be released", || {
        read_node() == kernel.baseline
    });
    assert!(
        ended.elapsed() < Duration::from_secs(1),
        "released {:?} after the container exited",
        ended.elapsed()
    );
}

#[test]
fn a_bad_annotation_stops_the_container_from_starting_and_names_the_value() {
    let kernel = kernel!();
    for (annotations, named) in [
        (
            json!({"lllqos.io/latency": "fast"}),
            "lllqos.io/latency=fast",
        ),
        (
            json!({"lllqos.io/max-state": "NoSuchState"}),
            "lllqos.io/max-state=NoSuchState",
        ),
        (json!({"lllqos.io/latncy": "0"}), "lllqos.io/latncy=0"),
        (json!({"lllqos.io/cpus": "4095"}), "lllqos.io/cpus=4095"),
        (
            json!({"lllqos.io/cpus": "container"}),
            "lllqos.io/cpus=container",
        ),
    ] {
        let bundle = given!(Bundle::new(annotations, None));
        let output = bundle.run().finish();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{named}: the container ran");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "", "{named}");
        assert!(stderr.contains(named), "{named}: {stderr}");
        assert_eq!(read_node(), kernel.baseline);
        assert!(crate::common::registry_left().is_empty());
    }
}

#[test]
fn per_cpu_on_the_containers_cpuset_is_placed_and_restored() {
    let _kernel = kernel!();
    let cpu = crate::common::last_cpu();
    let before = read_cpu(cpu);
    let bundle = given!(Bundle::new(
        json!({"lllqos.io/latency": "9", "lllqos.io/cpus": "container"}),
        Some(&cpu.to_string())
    ));
    let mut container = bundle.run();
    container.started();
    assert_eq!(read_cpu(cpu), "9");
    let registry = &status()["registry"]["holders"][0];
    assert_eq!(registry["cpus"], cpu.to_string().as_str());
    assert!(
        (registry["command"].as_str().unwrap()).contains(&bundle.id),
        "{registry}"
    );
    let output = container.finish();
    assert!(output.status.success(), "{output:?}");
    wait_until("the CPU to be restored", || read_cpu(cpu) == before);
    wait_until("the registry to be emptied", || {
        crate::common::registry_left().is_empty()
    });
}

#[test]
fn a_container_without_lllqos_annotations_is_left_alone() {
    let kernel = kernel!();
    let bundle = given!(Bundle::new(json!({"other.io/x": "1"}), None));
    let mut container = bundle.run();
    container.started();
    assert_eq!(read_node(), kernel.baseline);
    assert!(container.finish().status.success());
}

#[test]
fn a_none_fallback_starts_the_container_without_a_request() {
    let kernel = kernel!();
    let bundle = given!(Bundle::new(
        json!({"lllqos.io/max-state": "NoSuchState,none"}),
        None
    ));
    let mut container = bundle.run();
    container.started();
    assert_eq!(read_node(), kernel.baseline);
    let output = container.finish();
    assert!(output.status.success());
}

#[test]
fn the_hook_refuses_input_that_is_not_a_container_state() {
    lllqos(["oci-hook"])
        .write_stdin("not json")
        .assert()
        .code(125)
        .stderr(predicates::str::starts_with(
            "lllqos: stdin is not an OCI container state",
        ));
    lllqos(["oci-hook"])
        .write_stdin(r#"{"id":"c1","annotations":{"lllqos.io/latency":"0"}}"#)
        .assert()
        .code(125)
        .stderr(predicates::str::contains(
            "container c1: the state names no running process",
        ));
}

/// A config.json that is a FIFO (nobody will write it) is refused at once, naming it, and nothing is
/// placed.
#[test]
fn a_fifo_for_config_json_is_refused_at_once() {
    let kernel = kernel!();
    let bundle = tempfile::tempdir().unwrap();
    let config = bundle.path().join("config.json");
    nix::unistd::mkfifo(&config, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let init = crate::common::Reaped::spawn(Command::new("sleep").arg("60"));
    let state = format!(
        r#"{{"id":"c4","pid":{},"bundle":"{}","annotations":{{"lllqos.io/cpus":"container"}}}}"#,
        init.pid(),
        bundle.path().display()
    );
    let started = Instant::now();
    let out = lllqos(["oci-hook"]).write_stdin(state).output().unwrap();
    let stderr = crate::common::refused(&out);
    assert!(
        stderr.contains(&format!(
            "{}: a FIFO where a regular file was expected",
            config.display()
        )),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(read_node(), kernel.baseline);
    assert!(crate::common::registry_left().is_empty());
}

/// A standard input that never ends: the state is read as soon as it is whole; without one, the
/// hook gives up after its deadline with one line, and places nothing.
#[test]
fn a_stdin_that_never_closes_is_read_to_the_state_or_to_the_deadline() {
    let kernel = kernel!();
    let hook = |state: &str| {
        let mut child = Command::new(bin())
            .arg("oci-hook")
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(state.as_bytes()).unwrap();
        let started = Instant::now();
        let out = child.wait_with_output().unwrap();
        drop(stdin); // kept open until the hook has ended
        (out, started.elapsed())
    };
    let (out, took) = hook(r#"{"id":"c5","pid":1,"annotations":{"other.io/x":"1"}}"#);
    assert!(out.status.success(), "{out:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let (out, took) = hook("");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert_eq!(
        stderr,
        "lllqos: no container state on stdin within 5 s (a runtime writes it and closes stdin): run lllqos oci-hook as a runtime hook\n"
    );
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert_eq!(read_node(), kernel.baseline);
}

#[test]
fn a_container_whose_process_is_gone_is_refused() {
    // A pid past the kernel's largest (pid_max is at most 4194304): no such process.
    lllqos(["oci-hook"])
        .write_stdin(r#"{"id":"c2","pid":4194305,"annotations":{"lllqos.io/latency":"0"}}"#)
        .assert()
        .code(125)
        .stderr(predicates::str::starts_with(
            "lllqos: container c2: its process 4194305: ",
        ));
}

/// The holder's own failure (here: no node, as on a host whose /dev lacks it) fails the hook with
/// the holder's reason after the annotation, and nothing is left placed or running.
#[test]
fn a_request_the_holder_cannot_place_fails_the_hook_with_its_reason() {
    let kernel = kernel!();
    require_program!("unshare", "util-linux");
    let init = crate::common::Reaped::spawn(Command::new("sleep").arg("60"));
    let state = format!(
        r#"{{"id":"c3","pid":{},"annotations":{{"lllqos.io/latency":"5"}}}}"#,
        init.pid()
    );
    let output = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        // A /dev with /dev/null but without the PM QoS node.
        .arg(r#"mount -t tmpfs tmpfs /dev && mknod -m 666 /dev/null c 1 3 && exec "$B" oci-hook"#)
        .env("B", bin())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(state.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.starts_with("lllqos: container c3: lllqos.io/latency=5: ")
            && stderr.contains("cannot open /dev/cpu_dma_latency"),
        "{stderr}"
    );
    assert_eq!(read_node(), kernel.baseline);
    let holders = status()["holders"].to_string();
    assert!(!holders.contains("--name c3"), "{holders}");
}
