//! `lllqos nri` under a real containerd with NRI enabled, its containers created through the CRI
//! as the kubelet creates them.
//!
//! Debian bookworm's containerd (1.6) has no NRI; trixie's (1.7) has. A trixie root made by
//! `debootstrap` (once, then cached under the target directory, as the systemd tests' root) holds
//! containerd, runc, Go and the CRI API's Go package, with which `cri.go` (a small CRI client, and
//! the maker of the OCI image archive) is built. Each test runs a containerd of its own, chrooted
//! into that root in a private mount namespace, with its state, its configuration and its sockets
//! in a directory of the test's; the plugin runs on the host, on that containerd's NRI socket, as
//! the package's unit runs it. There is no registry: the image is a busybox rootfs, imported.
//! Requests reach the host's kernel, where the test reads them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::common::{Missing, bin, wait_until};

mod cases;
mod lifetime;

/// The image every pod and container runs (and the pods' sandbox image).
const IMAGE: &str = "lllqos.test/busybox:1";

/// Runs `script` with `sh` in a private mount namespace where `root`'s /proc is mounted.
fn in_root(root: &Path, script: &str) -> Output {
    let script = format!(
        "mount --make-rprivate / && mount -t proc proc {root}/proc && chroot {root} sh -c '{script}'",
        root = root.display()
    );
    Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap()
}

/// The cached trixie root with containerd and the CRI client built, made on first use.
fn root() -> Result<PathBuf, Missing> {
    for (tool, package) in [("debootstrap", "debootstrap"), ("unshare", "util-linux")] {
        crate::common::program(tool, package)?;
    }
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nri-root");
    std::fs::create_dir_all(&cache).unwrap();
    let root = cache.join("trixie");
    // One test makes it; the others wait for it.
    let lock = std::fs::File::create(cache.join("lock")).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    if !root.join("usr/bin/containerd").exists() {
        make_root(&cache, &root)?;
    }
    // The client, rebuilt when its source changes.
    let source = include_str!("cri.go");
    let built = root.join("build/cri.go");
    if std::fs::read_to_string(&built).ok().as_deref() != Some(source)
        || !root.join("build/cri").exists()
    {
        std::fs::create_dir_all(root.join("build")).unwrap();
        std::fs::write(&built, source).unwrap();
        let out = in_root(
            &root,
            "cd /build && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=/build/cache GOFLAGS=-buildvcs=false go build -o cri cri.go",
        );
        if !out.status.success() {
            let _ = std::fs::remove_file(&built);
            panic!("cannot build the CRI client: {out:?}");
        }
    }
    // The image archive, made once from the busybox rootfs.
    let image = root.join("build/image.tar");
    if !image.exists() {
        let dir = tempfile::tempdir().unwrap();
        crate::common::busybox_rootfs(&dir.path().join("rootfs"), &["sh", "sleep", "cat"])?;
        let out = Command::new(root.join("build/cri"))
            .arg("image")
            .arg(dir.path().join("rootfs"))
            .arg(IMAGE)
            .arg(&image)
            .output()
            .unwrap();
        assert!(out.status.success(), "cri image: {out:?}");
    }
    Ok(root)
}

/// debootstrap, then apt in the root (debootstrap's own resolver picks conflicting Go packages).
fn make_root(cache: &Path, root: &Path) -> Result<(), Missing> {
    let partial = cache.join("trixie.partial");
    let _ = std::fs::remove_dir_all(&partial);
    let output = Command::new("debootstrap")
        .args(["--variant=minbase", "trixie"])
        .arg(&partial)
        .output()
        .unwrap();
    let failed = |what: &str, output: &Output| {
        let _ = std::fs::remove_dir_all(&partial);
        Err(Missing::Setup(format!(
            "{what} could not make a Debian trixie root (no network?): {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )))
    };
    if !output.status.success() {
        return failed("debootstrap", &output);
    }
    let output = in_root(
        &partial,
        "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends containerd runc golang-go golang-github-kubernetes-cri-api-dev golang-google-grpc-dev",
    );
    if !output.status.success() {
        return failed("apt-get", &output);
    }
    // What the CRI plugin reads to make a pod's files, and where the test's directory goes.
    std::fs::write(partial.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    std::fs::create_dir_all(partial.join("mnt/test")).unwrap();
    std::fs::rename(&partial, root).unwrap();
    Ok(())
}

/// A containerd of the test's own; its pods removed and it stopped when dropped. It may be
/// stopped or killed and started again ([`Containerd::kill_daemon`], [`Containerd::start_daemon`]):
/// its state is in the test's directory, and its containers run on under their shims.
pub struct Containerd {
    root: PathBuf,
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    pods: Vec<String>,
}

/// What a pod's spec and a container's say (as JSON for the client).
pub struct Pod<'a> {
    pub name: &'a str,
    pub annotations: &'a [(&'a str, &'a str)],
}

impl Pod<'_> {
    fn json(&self) -> serde_json::Value {
        let annotations: serde_json::Map<String, serde_json::Value> = (self.annotations.iter())
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        serde_json::json!({"name": self.name, "namespace": "default", "annotations": annotations})
    }
}

impl Containerd {
    pub fn start() -> Result<Containerd, Missing> {
        Containerd::start_with(false)
    }

    /// With `plugin`, lllqos installed in containerd's plugin directory as the package's
    /// contrib/nri/50-lllqos (this build, copied where the chrooted containerd sees it).
    pub fn start_with(plugin: bool) -> Result<Containerd, Missing> {
        let root = root()?;
        let dir = tempfile::Builder::new()
            .prefix("lllqos-nri-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::create_dir(dir.path().join("plugins")).unwrap();
        if plugin {
            std::fs::copy(bin(), dir.path().join("lllqos")).unwrap();
            let shipped = std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/nri/50-lllqos"),
            )
            .unwrap();
            assert!(shipped.contains("exec /usr/bin/lllqos nri"), "{shipped}");
            let script = dir.path().join("plugins/50-lllqos");
            std::fs::write(
                &script,
                shipped.replace("/usr/bin/lllqos", "/mnt/test/lllqos"),
            )
            .unwrap();
            std::fs::set_permissions(script, PermissionsExt::from_mode(0o755)).unwrap();
        }
        std::fs::copy(root.join("build/image.tar"), dir.path().join("image.tar")).unwrap();
        let mut containerd = Containerd {
            root,
            dir,
            daemon: None,
            pods: Vec::new(),
        };
        containerd.start_daemon();
        let out = Command::new("nsenter")
            .args(["-t", &containerd.daemon_pid().to_string(), "-m", "-r"])
            .args([
                "ctr",
                "-n",
                "k8s.io",
                "images",
                "import",
                "/mnt/test/image.tar",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "ctr images import: {out:?}");
        Ok(containerd)
    }

    /// Starts containerd (again), and waits until it listens on both sockets.
    pub fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "containerd runs already");
        // A killed containerd leaves its sockets: gone, so that the wait below sees new ones.
        let _ = std::fs::remove_file(self.socket());
        let _ = std::fs::remove_file(self.nri_socket());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("containerd.log"))
            .unwrap();
        self.daemon = Some(
            Command::new("sh")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nri/containerd.sh"))
                .arg(&self.root)
                .arg(self.dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        wait_until("containerd to listen", || {
            self.socket().exists() && self.nri_socket().exists()
        });
    }

    /// Ends containerd with `signal` (its containers run on) and waits for it.
    pub fn kill_daemon(&mut self, signal: nix::sys::signal::Signal) {
        let mut daemon = self.daemon.take().expect("containerd runs");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon.id() as i32), signal).unwrap();
        daemon.wait().unwrap();
    }

    fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().expect("containerd runs").id()
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("run/containerd/containerd.sock")
    }

    /// The NRI socket, as the plugin on the host reaches it.
    pub fn nri_socket(&self) -> PathBuf {
        self.dir.path().join("run/nri/nri.sock")
    }

    /// The CRI client's output, or its error.
    fn cri(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(self.root.join("build/cri"))
            .arg("-socket")
            .arg(self.socket())
            .args(args)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// RunPodSandbox: the pod's id.
    pub fn pod(&mut self, pod: &Pod) -> String {
        let id = self.cri(&["pod", &pod.json().to_string()]).unwrap();
        self.pods.push(id.clone());
        id
    }

    /// CreateContainer in pod `pod_id` (spec `pod`): the container's id, or the runtime's error.
    pub fn create(
        &self,
        pod_id: &str,
        pod: &Pod,
        name: &str,
        cpuset: &str,
    ) -> Result<String, String> {
        self.create_running(pod_id, pod, name, cpuset, &["sleep", "100000"])
    }

    /// CreateContainer of a container that runs `command`.
    pub fn create_running(
        &self,
        pod_id: &str,
        pod: &Pod,
        name: &str,
        cpuset: &str,
        command: &[&str],
    ) -> Result<String, String> {
        let spec = serde_json::json!({
            "name": name,
            "image": IMAGE,
            "command": command,
            "cpuset": cpuset,
            "pod": pod.json(),
        });
        self.cri(&["create", pod_id, &spec.to_string()])
    }

    /// `count` containers named `name-1` to `name-N`, created and started in pod `pod_id`: their
    /// ids.
    pub fn many(&self, pod_id: &str, pod: &Pod, name: &str, count: usize) -> Vec<String> {
        let spec = serde_json::json!({
            "name": name,
            "image": IMAGE,
            "command": ["sleep", "100000"],
            "cpuset": "",
            "pod": pod.json(),
        });
        let ids = self
            .cri(&["many", pod_id, &spec.to_string(), &count.to_string()])
            .unwrap();
        ids.lines().map(str::to_owned).collect()
    }

    /// UpdateContainerResources: the container's new cpuset.
    pub fn update(&self, id: &str, cpuset: &str) {
        self.cri(&["update", id, cpuset]).unwrap();
    }

    /// StartContainer, StopContainer, RemoveContainer.
    pub fn start_container(&self, id: &str) {
        self.cri(&["start", id]).unwrap();
    }
    pub fn stop(&self, id: &str) {
        self.cri(&["stop", id]).unwrap();
    }
    pub fn remove(&self, id: &str) {
        self.cri(&["rm", id]).unwrap();
    }

    /// The plugin, started on this containerd's NRI socket; it has synchronized when this
    /// returns.
    pub fn plugin(&self) -> Plugin {
        let plugin = self.plugin_started();
        plugin.wait_synchronized(1);
        plugin
    }

    /// The plugin, started on this containerd's NRI socket (which it may be waiting for).
    pub fn plugin_started(&self) -> Plugin {
        let log = self
            .dir
            .path()
            .join(format!("plugin-{}.log", rand_suffix()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin())
            .arg("nri")
            .arg("--socket")
            .arg(self.nri_socket())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Plugin { child, log }
    }
}

/// Every holder `lllqos status --json` lists, global and per-CPU.
fn holders() -> Vec<serde_json::Value> {
    let out = crate::common::lllqos(["status", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
    [list(&json["holders"]), list(&json["registry"]["holders"])].concat()
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.daemon.is_none() {
            self.start_daemon();
        }
        for pod in &self.pods {
            let _ = self.cri(&["stoppod", pod]);
            let _ = self.cri(&["rmpod", pod]);
        }
        if let Some(mut daemon) = self.daemon.take() {
            // SAFETY: kill on our own child, not yet reaped.
            unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
            let _ = daemon.wait();
        }
        // What a plugin killed on this containerd's socket left: its lock and notification
        // socket (named after the socket's path), and their directory once empty.
        let name: String = (self
            .nri_socket()
            .to_string_lossy()
            .trim_start_matches('/')
            .chars())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
        for suffix in ["lock", "notify"] {
            let _ = std::fs::remove_file(format!("/run/lllqos-nri/{name}.{suffix}"));
        }
        let _ = std::fs::remove_dir("/run/lllqos-nri");
    }
}

/// A running `lllqos nri`; stopped (SIGTERM) when dropped.
pub struct Plugin {
    child: Child,
    log: PathBuf,
}

impl Plugin {
    /// What it has said on stderr.
    pub fn said(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until it has synchronized `n` times (once per registration), and returns what it
    /// said of the last: `synchronized in N ms: ...`.
    pub fn wait_synchronized(&self, n: usize) -> String {
        wait_until("the plugin to synchronize", || {
            self.said().matches("lllqos: nri: synchronized in ").count() >= n
        });
        let said = self.said();
        said.lines()
            .filter(|line| line.starts_with("lllqos: nri: synchronized in "))
            .nth(n - 1)
            .unwrap()
            .to_owned()
    }

    /// Waits until the holder of container `id` watches the container's own process (it watched
    /// the pod's sandbox until the container started).
    pub fn wait_watching(&self, id: &str) {
        wait_until("the holder to watch the container", || {
            self.said()
                .lines()
                .any(|line| line.contains(id) && line.contains(": its holder watches pid "))
        });
    }

    /// Its pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// How often it has been woken (its voluntary and involuntary context switches).
    pub fn wake_ups(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        (status.lines())
            .filter(|line| line.contains("ctxt_switches:"))
            .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    }

    /// SIGKILL: it dies, as under the OOM killer.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and its exit status.
    pub fn terminate(self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM)
    }

    /// `signal`, and its exit status.
    pub fn signal(mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill on our own child, not yet reaped.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let _ = self.child.wait();
        }
    }
}
