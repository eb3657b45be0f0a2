//! Debian's podman, which reads hooks.d, runs the hooks.d file the package ships (its path pointed
//! at this build) for a busybox image imported from a local rootfs: the request is in force while
//! the container runs and gone after, and a container without the annotation is left alone. The
//! storage, the run state and the image live in a directory of the test's, removed with it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::{Missing, bin, read_node, wait_for_node, wait_until};

const IMAGE: &str = "lllqos-test-busybox";

/// podman with a storage of its own, and the image imported; everything removed when dropped.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Result<Podman, Missing> {
        crate::common::program("podman", "podman")?;
        let dir = tempfile::Builder::new()
            .prefix("lllqos-podman-")
            .tempdir()
            .unwrap();
        crate::common::busybox_rootfs(&dir.path().join("rootfs"), &["sh", "sleep", "cat"])?;
        let tar = dir.path().join("rootfs.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(dir.path().join("rootfs"))
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        // The hooks.d file the package installs, run from this build.
        let hooks = dir.path().join("hooks.d");
        std::fs::create_dir(&hooks).unwrap();
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/oci/lllqos.json"),
        )
        .unwrap();
        assert!(shipped.contains("\"/usr/bin/lllqos\""), "{shipped}");
        let local = shipped.replace("\"/usr/bin/lllqos\"", &format!("\"{}\"", bin().display()));
        std::fs::write(hooks.join("lllqos.json"), local).unwrap();
        let podman = Podman { dir };
        let out = podman
            .command()
            .arg("import")
            .arg(&tar)
            .arg(IMAGE)
            .output()
            .unwrap();
        assert!(out.status.success(), "podman import: {out:?}");
        Ok(podman)
    }

    /// `podman` with the storage, run state and temporary files in the test's directory.
    fn command(&self) -> Command {
        let at = |name: &str| self.dir.path().join(name);
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(at("root"))
            .arg("--runroot")
            .arg(at("run"))
            .arg("--tmpdir")
            .arg(at("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "none"]);
        command
    }

    /// A container that prints `started` and waits for a line on stdin, with these annotations.
    fn run(&self, annotations: &[&str]) -> Container {
        let mut command = self.command();
        command
            .args(["run", "-i", "--rm", "--network", "none"])
            // Where root lacks CAP_SYS_RESOURCE (some sandboxes), podman's default limits fail.
            .args([
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1000:1000",
            ])
            .arg("--hooks-dir")
            .arg(self.dir.path().join("hooks.d"));
        for annotation in annotations {
            command.args(["--annotation", annotation]);
        }
        let child = command
            .args([IMAGE, "/bin/sh", "-c", "echo started; read line"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Container { child }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.command().args(["rm", "-af"]).output();
        let _ = self.command().args(["rmi", "-af"]).output();
    }
}

/// A running `podman run`; killed if the test ends early.
struct Container {
    child: Child,
}

impl Container {
    /// Waits for `started`: the container's process runs (after the hook).
    fn started(&mut self) {
        let mut line = String::new();
        let stdout = self.child.stdout.as_mut().unwrap();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert_eq!(line, "started\n", "{:?}", self.stderr());
    }

    /// Ends the container (its process reads its line) and waits for podman.
    fn finish(mut self) {
        self.child.stdin.take().unwrap().write_all(b"\n").unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }

    fn stderr(&mut self) -> String {
        let _ = self.child.kill();
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut text);
        }
        text
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

/// The holders `lllqos status` names after a container.
fn container_holders() -> Vec<String> {
    let out = crate::common::lllqos(["status", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["holders"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["container"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn podman_runs_the_shipped_hook_and_the_request_lives_with_the_container() {
    let kernel = kernel!();
    let podman = given!(Podman::new());
    let mut container = podman.run(&["lllqos.io/latency=23us"]);
    container.started();
    assert_eq!(read_node(), kernel.expect(23));
    let named = container_holders();
    assert_eq!(
        named.len(),
        1,
        "one holder, named after the container: {named:?}"
    );
    container.finish();
    wait_for_node(kernel.baseline);
    assert!(container_holders().is_empty());
}

#[test]
fn podman_leaves_a_container_without_the_annotation_alone() {
    let kernel = kernel!();
    let podman = given!(Podman::new());
    let mut container = podman.run(&["other.io/x=1"]);
    container.started();
    assert_eq!(read_node(), kernel.baseline);
    assert!(container_holders().is_empty());
    container.finish();
    wait_until("nothing to change", || read_node() == kernel.baseline);
}
