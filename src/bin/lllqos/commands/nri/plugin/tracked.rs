//! What the plugin keeps of each container that asks: its holder, and what that holder watches.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::process::Child;
use std::time::Duration;

use lllqos::internal::oserror::os_message;
use lllqos::internal::procfs;

use super::super::api::{Container, PodSandbox};
use crate::commands::container::holder::Spec;
use crate::commands::container::{self, Cpuset};
use crate::process::PidFd;

/// How long a holder told to stop may take before it is killed.
const STOP_PATIENCE: Duration = Duration::from_secs(5);

/// A container that asks, and its holder.
pub(super) struct Tracked {
    /// `container ID (NAME, pod NAMESPACE/NAME)`, for messages.
    pub(super) what: String,
    pub(super) spec: Spec,
    /// The process its holder watches, with its start time: the container's init once it runs,
    /// its pod's sandbox until then (which outlives the plugin, and ends with the pod); `None`:
    /// the plugin (a runtime that tells neither).
    pub(super) watch: Option<(i32, u64)>,
    pub(super) holder: Option<Holder>,
    /// The holder on the CPUs the container had before an update, until it is applied.
    pub(super) former: Option<Holder>,
}

impl Tracked {
    /// The pid its holder watches (`plugin`: the plugin's).
    pub(super) fn watch(&self, plugin: i32) -> i32 {
        self.watch.map_or(plugin, |(pid, _)| pid)
    }

    /// Whether the process its holder watches still runs (the plugin always does).
    pub(super) fn watched_runs(&self) -> bool {
        self.watch
            .is_none_or(|(pid, start)| procfs::start_time(pid) == Some(start))
    }
}

/// A running holder: started by this plugin (`child`), or adopted from an earlier one.
pub(super) struct Holder {
    pub(super) pidfd: PidFd,
    pub(super) child: Option<Child>,
    /// The process it watches.
    pub(super) watches: i32,
}

/// Which holder of a container a pidfd is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Current,
    Former,
}

pub(super) fn annotations(pod: &PodSandbox) -> BTreeMap<String, String> {
    (pod.annotations.iter())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `container` as the shared module sees it, its pod's `annotations` given.
pub(super) fn describe<'a>(
    pod: &'a PodSandbox,
    container: &'a Container,
    annotations: &'a BTreeMap<String, String>,
    cpuset: &'a str,
) -> container::Container<'a> {
    container::Container {
        id: &container.id,
        name: Some(&container.name),
        pod: Some(container::Pod {
            namespace: &pod.namespace,
            name: &pod.name,
            annotations,
        }),
        annotations: None,
        cpuset: Cpuset::Known(cpuset),
    }
}

/// Process `pid` (as NRI gives it: 0 for none) with its start time, while it runs.
pub(super) fn process(pid: u32) -> Option<(i32, u64)> {
    let pid = i32::try_from(pid).ok().filter(|&pid| pid > 0)?;
    Some((pid, procfs::start_time(pid)?))
}

/// What the holder of `container` (of `pod`) is to watch: its init when it runs, else its pod's
/// sandbox.
pub(super) fn watch_of(pod: &PodSandbox, container: &Container) -> Option<(i32, u64)> {
    process(container.pid).or_else(|| process(pod.pid))
}

impl Holder {
    /// A holder this plugin starts: tracked from the start, or killed (never left untracked).
    pub(super) fn started(child: Child, watches: i32) -> Result<Holder, String> {
        let mut child = child;
        match PidFd::open(child.id() as i32) {
            Ok(pidfd) => Ok(Holder {
                pidfd,
                child: Some(child),
                watches,
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "cannot watch its holder ({}): stopped it",
                    os_message(&e)
                ))
            }
        }
    }

    /// Stops the holder and waits until it has exited: its request is gone when this returns.
    pub(super) fn stop(mut self) {
        self.pidfd.signal(libc::SIGTERM);
        if let Some(child) = self.child.as_mut() {
            let _ = child.wait();
            return;
        }
        // Adopted: not our child; its pidfd tells when it has exited.
        let mut fds = [nix::poll::PollFd::new(
            self.pidfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let patience =
            nix::poll::PollTimeout::try_from(STOP_PATIENCE).unwrap_or(nix::poll::PollTimeout::MAX);
        if nix::poll::poll(&mut fds, patience) != Ok(1) {
            self.pidfd.signal(libc::SIGKILL);
        }
    }

    /// How it ended (its exit status, for a child of this plugin), once its pidfd is readable.
    pub(super) fn ended(mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|child| child.wait().ok())
    }
}
