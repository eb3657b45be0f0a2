//! What the plugin does on each of the runtime's calls, and when a holder ends: a holder per
//! container that asks, which lasts as long as the container, not as long as the plugin.
//!
//! - **Created** (CreateContainer): the holder is started, watching the pod's sandbox (the
//!   container's own process does not exist yet; the sandbox outlives the plugin and ends with
//!   the pod; a runtime that does not tell its pid: the plugin), and the call is answered once it
//!   is in force, within [`holder::DEADLINE`], or refused.
//! - **Started** (PostStartContainer, with the init's pid): once the call is answered (the start
//!   does not wait for it), a holder watching the init is started, then the first one stopped:
//!   from here the request lasts until the container's last process has exited (its init: the PID
//!   namespace ends with it), whatever becomes of the plugin or the runtime.
//! - **Updated** (UpdateContainer with a new cpuset, for a request on the container's cpuset): a
//!   holder on the new CPUs is started before the update is applied, and the former one stopped
//!   once it has been (PostUpdateContainer): neither set of CPUs is left unconstrained while the
//!   container runs there.
//! - **Stopped or removed**: the holder is stopped and reaped; the request is gone when the answer
//!   leaves. Its holder ends by itself when the container ends while no plugin listens.
//! - **A holder that ends on its own** while its container runs (killed by an administrator or the
//!   OOM killer) is placed again at once, and said once on stderr. One that could not place its
//!   request is said and not retried.
//! - **Synchronize** (at each registration: a start, a restart, a reconnection): the holders that
//!   serve this runtime are found in `/proc` ([`holder::find`]) and adopted when they hold what
//!   their container asks, watching what it should; extra and orphaned ones are stopped. The call
//!   is answered then, before the missing holders are started: the containers run already, so
//!   nothing waits for their requests, and placing a thousand takes longer than the runtime's
//!   deadline. They are started afterwards in small batches between the runtime's calls
//!   ([`Plugin::place_pending`]), so that a creation meanwhile is answered in time; a call about
//!   one of them (its stop) finds it tracked and waits for nothing.

mod sync;
mod tracked;

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use prost::Message;

use super::api::{self, Container, ContainerRequest, PodSandbox, event};
use super::refusal::Refusal;
use crate::commands::container::holder::{Notifier, Spec};
use tracked::Which;
use tracked::{Holder, Tracked, annotations, describe, process, watch_of};

/// The holders, by container id, and a synchronization under way.
pub struct Plugin {
    /// The plugin's pid: what a created container's holder watches until the container runs.
    pid: i32,
    /// The runtime served (its NRI socket's path): every holder carries it (`LLLQOS_NRI`).
    runtime: String,
    containers: BTreeMap<String, Tracked>,
    /// Containers whose holders are to be started (after a synchronization), in order.
    pending: VecDeque<String>,
    /// Started containers whose holders are to move to their inits, once the call is answered.
    to_watch: Vec<String>,
    /// The parts of a synchronization received so far (`more`).
    sync: api::SynchronizeRequest,
    /// Where the holders a call waits for say they have placed their request.
    notifier: Notifier,
}

fn decode<M: Message + Default>(payload: &[u8]) -> Result<M, Refusal> {
    M::decode(payload).map_err(|e| Refusal::Unreadable(format!("a message it cannot read: {e}")))
}

impl Plugin {
    /// The plugin of `runtime`, whose holders say they are ready on `notify`.
    pub fn new(runtime: &str, notify: std::path::PathBuf) -> anyhow::Result<Plugin> {
        Ok(Plugin {
            pid: std::process::id() as i32,
            runtime: runtime.to_owned(),
            containers: BTreeMap::new(),
            pending: VecDeque::new(),
            to_watch: Vec::new(),
            sync: api::SynchronizeRequest::default(),
            notifier: Notifier::at(notify)?,
        })
    }

    /// Answers the runtime's call of `method` with `payload`: the response's payload, or a refusal.
    pub fn call(&mut self, method: &str, payload: &[u8]) -> Result<Vec<u8>, Refusal> {
        match method {
            "Configure" => {
                let request: api::ConfigureRequest = decode(payload)?;
                eprintln!(
                    "lllqos: nri: configured by {} {}",
                    request.runtime_name, request.runtime_version
                );
                let events = event::mask(&[
                    event::CREATE_CONTAINER,
                    event::POST_START_CONTAINER,
                    event::UPDATE_CONTAINER,
                    event::POST_UPDATE_CONTAINER,
                    event::STOP_CONTAINER,
                    event::REMOVE_CONTAINER,
                ]);
                Ok(api::ConfigureResponse { events }.encode_to_vec())
            }
            "Synchronize" => {
                let part: api::SynchronizeRequest = decode(payload)?;
                let more = part.more;
                self.sync.pods.extend(part.pods);
                self.sync.containers.extend(part.containers);
                if !more {
                    let whole = std::mem::take(&mut self.sync);
                    self.synchronize(&whole);
                }
                Ok(api::SynchronizeResponse { more }.encode_to_vec())
            }
            "CreateContainer" => {
                let request: ContainerRequest = decode(payload)?;
                let (pod, container) = parts(&request)?;
                self.create(pod, container)?;
                Ok(api::Empty {}.encode_to_vec())
            }
            "StateChange" => {
                let change: api::StateChangeEvent = decode(payload)?;
                if let (Some(pod), Some(container)) = (&change.pod, &change.container) {
                    self.changed(change.event, pod, container, None);
                }
                Ok(api::Empty {}.encode_to_vec())
            }
            "Shutdown" => Ok(api::Empty {}.encode_to_vec()),
            _ => {
                let Some(event) = event_of(method) else {
                    return Err(Refusal::Unknown(format!("no method {method}")));
                };
                let request: ContainerRequest = decode(payload)?;
                let (pod, container) = parts(&request)?;
                self.changed(event, pod, container, request.linux_resources.as_ref());
                Ok(api::Empty {}.encode_to_vec())
            }
        }
    }

    /// A container event that nothing is refused for: started, updated, stopped, removed.
    fn changed(
        &mut self,
        event: i32,
        pod: &PodSandbox,
        container: &Container,
        resources: Option<&api::LinuxResources>,
    ) {
        match event {
            event::POST_START_CONTAINER => self.started(container),
            event::UPDATE_CONTAINER => {
                let cpuset = resources.map_or(container.cpuset(), api::LinuxResources::cpuset);
                self.update(pod, container, cpuset);
            }
            event::POST_UPDATE_CONTAINER => self.updated(&container.id),
            event::STOP_CONTAINER | event::REMOVE_CONTAINER => self.release(&container.id),
            _ => {}
        }
    }

    /// CreateContainer: the holder, watching the plugin until the container runs, in force before
    /// the answer; or the refusal that says why not.
    fn create(&mut self, pod: &PodSandbox, container: &Container) -> Result<(), Refusal> {
        let annotations = annotations(pod);
        let described = describe(pod, container, &annotations, container.cpuset());
        let what = described.describe();
        let Some(placement) = described
            .placement()
            .map_err(|e| Refusal::Annotations(format!("{what}: {e}")))?
        else {
            return Ok(());
        };
        let spec = Spec::new(&described, &placement, Some(&self.runtime));
        // A container created again under the same id (not in CRI; in NRI's contract, maybe):
        // its former holder goes once the new one holds.
        let former = self.containers.remove(&container.id);
        let mut tracked = Tracked {
            what,
            spec,
            watch: watch_of(pod, container),
            holder: None,
            former: None,
        };
        let watch = tracked.watch(self.pid);
        let child = (tracked.spec)
            .start(watch, &self.notifier)
            .map_err(|e| Refusal::NotPlaced(format!("{}: {e:#}", tracked.what)))?;
        tracked.holder = Some(
            Holder::started(child, watch)
                .map_err(|e| Refusal::NotPlaced(format!("{}: {e}", tracked.what)))?,
        );
        eprintln!(
            "lllqos: nri: {}: holds {}",
            tracked.what, placement.wanted.given
        );
        self.containers.insert(container.id.clone(), tracked);
        if let Some(former) = former {
            former
                .holder
                .into_iter()
                .chain(former.former)
                .for_each(Holder::stop);
        }
        Ok(())
    }

    /// PostStartContainer: the holder is to watch the container's init, once the call is answered
    /// ([`Plugin::after_answer`]): the container's start does not wait for it.
    fn started(&mut self, container: &Container) {
        let Some(tracked) = self.containers.get_mut(&container.id) else {
            return;
        };
        let Some(init) = process(container.pid) else {
            return;
        };
        tracked.watch = Some(init);
        if !self.to_watch.contains(&container.id) {
            self.to_watch.push(container.id.clone());
        }
    }

    /// What an answered call left to do: the holders of started containers move to their inits
    /// (a new holder watching the init, in force, then the one watching the sandbox stopped: the
    /// request is never absent between).
    pub fn after_answer(&mut self) {
        for id in std::mem::take(&mut self.to_watch) {
            let Some(tracked) = self.containers.get_mut(&id) else {
                continue;
            };
            let watch = tracked.watch(self.pid);
            if tracked.holder.as_ref().is_some_and(|h| h.watches == watch) {
                continue;
            }
            match tracked.spec.start(watch, &self.notifier) {
                Ok(child) => match Holder::started(child, watch) {
                    Ok(holder) => {
                        if let Some(old) = tracked.holder.replace(holder) {
                            old.stop();
                        }
                        eprintln!(
                            "lllqos: nri: {}: its holder watches pid {watch}",
                            tracked.what
                        );
                    }
                    Err(e) => eprintln!("lllqos: nri: {}: {e}", tracked.what),
                },
                // The holder watching the plugin goes on holding; a synchronization retries.
                Err(e) => eprintln!("lllqos: nri: {}: {e:#}", tracked.what),
            }
        }
    }

    /// UpdateContainer: a request on the container's cpuset moves to its new cpuset (the former
    /// holder stays until the update is applied).
    fn update(&mut self, pod: &PodSandbox, container: &Container, cpuset: &str) {
        let annotations = annotations(pod);
        let described = describe(pod, container, &annotations, cpuset);
        let Some(tracked) = self.containers.get_mut(&container.id) else {
            return;
        };
        let placement = match described.placement() {
            Ok(Some(placement)) => placement,
            Ok(None) => {
                // No request any more (CRI-O's annotation, and no cpuset now).
                let tracked = self.containers.remove(&container.id);
                tracked.into_iter().for_each(Plugin::stop_all);
                return;
            }
            Err(e) => {
                eprintln!(
                    "lllqos: nri: {}: the update: {e}; the request stays as it was",
                    tracked.what
                );
                return;
            }
        };
        let spec = Spec::new(&described, &placement, Some(&self.runtime));
        if spec == tracked.spec {
            return;
        }
        let watch = tracked.watch(self.pid);
        match spec.start(watch, &self.notifier) {
            Ok(child) => match Holder::started(child, watch) {
                Ok(holder) => {
                    eprintln!(
                        "lllqos: nri: {}: holds {} (updated)",
                        tracked.what, placement.wanted.given
                    );
                    tracked.spec = spec;
                    if let Some(previous) = tracked.former.take() {
                        previous.stop();
                    }
                    tracked.former = tracked.holder.replace(holder);
                }
                Err(e) => eprintln!("lllqos: nri: {}: {e}", tracked.what),
            },
            Err(e) => eprintln!(
                "lllqos: nri: {}: the update: {e:#}; the request stays as it was",
                tracked.what
            ),
        }
    }

    /// PostUpdateContainer: the update is applied; the former holder goes.
    fn updated(&mut self, id: &str) {
        if let Some(former) = self.containers.get_mut(id).and_then(|t| t.former.take()) {
            former.stop();
        }
    }

    /// Stops the holders of container `id`, if it has any, and waits for them: the request is gone
    /// when this returns.
    fn release(&mut self, id: &str) {
        self.pending.retain(|pending| pending != id);
        if let Some(tracked) = self.containers.remove(id) {
            let what = tracked.what.clone();
            Plugin::stop_all(tracked);
            eprintln!("lllqos: nri: {what}: released");
        }
    }

    fn stop_all(tracked: Tracked) {
        tracked
            .holder
            .into_iter()
            .chain(tracked.former)
            .for_each(Holder::stop);
    }

    /// Waits up to `timeout` for one of the caller's `own` descriptors to be readable, or for a
    /// holder to exit; handles each holder that exited ([`Plugin::ended`]), and says which of
    /// `own` are readable (none, when a signal interrupted the wait).
    pub fn wait(&mut self, own: &[BorrowedFd], timeout: PollTimeout) -> nix::Result<Vec<bool>> {
        let holders = self.holders();
        let mut fds: Vec<PollFd> = (own.iter().copied())
            .chain(holders.iter().map(|(_, _, fd)| *fd))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => return Ok(vec![false; own.len()]),
            Err(e) => return Err(e),
        }
        let mut ready: Vec<bool> = fds.iter().map(|fd| fd.any().unwrap_or(false)).collect();
        drop(fds);
        let ended: Vec<(String, Which)> = (holders.into_iter().zip(&ready[own.len()..]))
            .filter(|(_, ready)| **ready)
            .map(|((id, which, _), _)| (id, which))
            .collect();
        for (id, which) in ended {
            self.ended(&id, which);
        }
        ready.truncate(own.len());
        Ok(ready)
    }

    /// The holders' pidfds (readable once a holder has exited), with their containers' ids.
    fn holders(&self) -> Vec<(String, Which, BorrowedFd<'_>)> {
        let mut all = Vec::new();
        for (id, tracked) in &self.containers {
            if let Some(holder) = &tracked.holder {
                all.push((id.clone(), Which::Current, holder.pidfd.as_fd()));
            }
            if let Some(holder) = &tracked.former {
                all.push((id.clone(), Which::Former, holder.pidfd.as_fd()));
            }
        }
        all
    }

    /// A holder of container `id` has exited. The current one: when the container has ended
    /// (its init is gone), so has its request, and the container is forgotten; when the container
    /// runs on, its holder was killed, and it is placed again at once.
    fn ended(&mut self, id: &str, which: Which) {
        let Some(tracked) = self.containers.get_mut(id) else {
            return;
        };
        let holder = match which {
            Which::Former => tracked.former.take(),
            Which::Current => tracked.holder.take(),
        };
        let (Some(holder), Which::Current) = (holder, which) else {
            return;
        };
        let status = holder.ended();
        if !tracked.watched_runs() {
            let what = tracked.what.clone();
            self.release(id);
            eprintln!("lllqos: nri: {what}: the container ended");
            return;
        }
        if status.is_some_and(|s| s.code() == Some(crate::exit::ExitStatus::Failure.code())) {
            // It could not place the request (said on stderr, which is ours): not again.
            eprintln!(
                "lllqos: nri: {}: its holder could not place the request; not retried until the plugin synchronizes again",
                tracked.what
            );
            self.containers.remove(id);
            return;
        }
        let how = status.map_or_else(|| "it ended".to_owned(), |s| format!("it ended ({s})"));
        let watch = tracked.watch(self.pid);
        match tracked
            .spec
            .spawn(watch)
            .map_err(|e| format!("{e:#}"))
            .and_then(|child| Holder::started(child, watch))
        {
            Ok(holder) => {
                tracked.holder = Some(holder);
                eprintln!(
                    "lllqos: nri: {}: its holder was not stopped by the plugin: {how}; placed again",
                    tracked.what
                );
            }
            Err(e) => eprintln!(
                "lllqos: nri: {}: its holder ended ({how}) and cannot be placed again: {e}",
                tracked.what
            ),
        }
    }

    /// The containers it holds for (for tests of the reconciliation).
    #[cfg(test)]
    fn tracked(&self) -> std::collections::BTreeSet<String> {
        self.containers.keys().cloned().collect()
    }
}

/// The event a call is about, for the calls that are events (a runtime calls some of them by
/// name, and tells the rest through StateChange).
fn event_of(method: &str) -> Option<i32> {
    Some(match method {
        "PostStartContainer" => event::POST_START_CONTAINER,
        "UpdateContainer" => event::UPDATE_CONTAINER,
        "PostUpdateContainer" => event::POST_UPDATE_CONTAINER,
        "StopContainer" => event::STOP_CONTAINER,
        "RemoveContainer" => event::REMOVE_CONTAINER,
        _ => return None,
    })
}

/// The pod and container a request names (both are always there).
fn parts(request: &ContainerRequest) -> Result<(&PodSandbox, &Container), Refusal> {
    match (&request.pod, &request.container) {
        (Some(pod), Some(container)) => Ok((pod, container)),
        _ => Err(Refusal::Unreadable(
            "a request that names no pod or no container".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_subscribes_to_create_start_update_stop_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let mut plugin = Plugin::new("/nonexistent/nri.sock", dir.path().join("notify")).unwrap();
        let reply = plugin
            .call(
                "Configure",
                &api::ConfigureRequest::default().encode_to_vec(),
            )
            .unwrap();
        let events = api::ConfigureResponse::decode(&reply[..]).unwrap().events;
        assert_eq!(events, 1 << 3 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10);
        assert!(matches!(
            plugin.call("Nonesuch", &[]).unwrap_err(),
            Refusal::Unknown(_)
        ));
        assert!(matches!(
            plugin.call("CreateContainer", &[0xff]).unwrap_err(),
            Refusal::Unreadable(_)
        ));
    }

    #[test]
    fn a_synchronization_tracks_what_asks_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let mut plugin = Plugin::new("/nonexistent/nri.sock", dir.path().join("notify")).unwrap();
        let pod = PodSandbox {
            id: "p".into(),
            name: "rt".into(),
            namespace: "default".into(),
            annotations: [("lllqos.io/latency.app".to_owned(), "5".to_owned())].into(),
            pid: 0,
        };
        let container = |id: &str, name: &str, state| Container {
            id: id.into(),
            pod_sandbox_id: "p".into(),
            name: name.into(),
            state,
            linux: None,
            pid: 0,
        };
        let sync = api::SynchronizeRequest {
            pods: vec![pod],
            containers: vec![
                container("a", "app", api::RUNNING),
                container("b", "sidecar", api::RUNNING),
                container("c", "app", 4), // stopped
            ],
            more: false,
        };
        plugin.synchronize(&sync);
        assert_eq!(plugin.tracked(), ["a".to_owned()].into());
        assert!(plugin.has_pending());
    }
}
