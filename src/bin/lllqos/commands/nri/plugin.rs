//! What the plugin does on each of the runtime's calls: a holder per container that asks, started
//! before the container is created and stopped when it stops.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::process::Child;

use anyhow::anyhow;
use prost::Message;

use lllqos::CpuList;
use lllqos::internal::oserror::os_message;

use super::api::{self, Container, ContainerRequest, PodSandbox, event};
use crate::commands::holder::{self, Holder, Notifier};
use crate::process::PidFd;
use crate::request::annotations::{Cpus, Wanted, wanted_by_pod};
use crate::request::{self, Chatter, Naming, Request};

/// A failed call: the gRPC code and the message the runtime passes on (to the kubelet, for a
/// container it refuses).
pub type Refusal = (i32, String);

/// The holders, by container id, and a synchronization under way.
pub struct Plugin {
    /// The process the holders' requests last with (`--pid`): the plugin.
    pid: i32,
    held: BTreeMap<String, Held>,
    /// The parts of a synchronization received so far (`more`).
    sync: api::SynchronizeRequest,
    /// Where the holders say they have placed their request.
    notifier: Notifier,
}

/// A container's running holder.
struct Held {
    child: Child,
    pidfd: PidFd,
    /// `container ID (pod NAMESPACE/NAME)`, for messages.
    what: String,
}

/// What a container asks for: its pod's annotations read for it, and the CPUs of a per-CPU
/// request (the container's cpuset resolved). `None`: nothing.
pub fn asks(
    pod: &PodSandbox,
    container: &Container,
) -> Result<Option<(Wanted, Option<CpuList>)>, String> {
    let annotations: BTreeMap<String, String> = (pod.annotations.iter())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let Some(wanted) = wanted_by_pod(&annotations, &container.name)? else {
        return Ok(None);
    };
    let cpuset = container.cpuset();
    let cpus = match &wanted.cpus {
        None => None,
        Some(Cpus::List(list)) => Some(list.clone()),
        Some(Cpus::ContainerIfPinned) if cpuset.is_empty() => return Ok(None),
        Some(Cpus::Container) if cpuset.is_empty() => {
            return Err(format!(
                "{}: the container has no cpuset of its own (linux.resources.cpu.cpus; a guaranteed pod with exclusive CPUs has one): name the CPUs instead",
                wanted.given
            ));
        }
        Some(Cpus::Container | Cpus::ContainerIfPinned) => Some(
            cpuset
                .parse()
                .map_err(|e| format!("{}: its cpuset '{cpuset}': {e}", wanted.given))?,
        ),
    };
    Ok(Some((wanted, cpus)))
}

/// `container ID (pod NAMESPACE/NAME)`.
fn describe(pod: &PodSandbox, container: &Container) -> String {
    format!(
        "container {} ({}, pod {})",
        container.id,
        container.name,
        pod_name(pod)
    )
}

fn pod_name(pod: &PodSandbox) -> String {
    format!("{}/{}", pod.namespace, pod.name)
}

fn decode<M: Message + Default>(payload: &[u8]) -> Result<M, Refusal> {
    M::decode(payload).map_err(|e| {
        (
            api::FAILED_PRECONDITION,
            format!("lllqos: a message it cannot read: {e}"),
        )
    })
}

impl Plugin {
    pub fn new() -> anyhow::Result<Plugin> {
        Ok(Plugin {
            pid: std::process::id() as i32,
            held: BTreeMap::new(),
            sync: api::SynchronizeRequest::default(),
            notifier: Notifier::new()?,
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
                self.place(pod, container)
                    .map_err(|e| (api::FAILED_PRECONDITION, format!("lllqos: {e}")))?;
                Ok(api::Empty {}.encode_to_vec())
            }
            "StopContainer" | "RemoveContainer" => {
                let request: ContainerRequest = decode(payload)?;
                if let Some(container) = &request.container {
                    self.release(&container.id);
                }
                Ok(api::Empty {}.encode_to_vec())
            }
            "StateChange" => {
                let change: api::StateChangeEvent = decode(payload)?;
                if let (event::REMOVE_CONTAINER | event::STOP_CONTAINER, Some(container)) =
                    (change.event, &change.container)
                {
                    self.release(&container.id);
                }
                Ok(api::Empty {}.encode_to_vec())
            }
            "Shutdown" => Ok(api::Empty {}.encode_to_vec()),
            _ => Err((api::UNIMPLEMENTED, format!("lllqos: no method {method}"))),
        }
    }

    /// Places what each running container asks for, unless it is held already. A container that
    /// runs cannot be refused: what fails is said, and the others are placed.
    fn synchronize(&mut self, sync: &api::SynchronizeRequest) {
        let pods: BTreeMap<&str, &PodSandbox> =
            sync.pods.iter().map(|pod| (pod.id.as_str(), pod)).collect();
        for container in &sync.containers {
            if !matches!(container.state, api::CREATED | api::PAUSED | api::RUNNING) {
                continue;
            }
            let Some(pod) = pods.get(container.pod_sandbox_id.as_str()) else {
                continue;
            };
            if let Err(e) = self.place(pod, container) {
                eprintln!("lllqos: nri: {e}");
            }
        }
    }

    /// Starts the holder of what `container` asks for, unless it asks nothing or is held already.
    fn place(&mut self, pod: &PodSandbox, container: &Container) -> Result<(), String> {
        let what = describe(pod, container);
        if self.held.contains_key(&container.id) {
            return Ok(());
        }
        let Some((wanted, cpus)) = asks(pod, container).map_err(|e| format!("{what}: {e}"))? else {
            return Ok(());
        };
        let request = request::resolve(
            &wanted.request(cpus),
            Chatter::Warnings,
            Naming::Annotations,
        )
        .map_err(|e| format!("{what}: {}: {e:#}", wanted.given))?;
        if let Request::Nothing(_) = request {
            return Ok(());
        }
        let pod_name = pod_name(pod);
        let child = holder::start(
            &Holder {
                id: &container.id,
                pod: Some(&pod_name),
                pid: self.pid,
                wanted: &wanted,
                cpus: request.cpus(),
            },
            &self.notifier,
        )
        .map_err(|e| format!("{e:#}"))?;
        let pidfd = PidFd::open(child.id() as i32)
            .map_err(|e| anyhow!("{what}: its holder: {}", os_message(&e)))
            .map_err(|e| format!("{e:#}"))?;
        eprintln!("lllqos: nri: {what}: holds {}", wanted.given);
        self.held
            .insert(container.id.clone(), Held { child, pidfd, what });
        Ok(())
    }

    /// Stops the holder of container `id`, if there is one, and waits for it: the request is gone
    /// when this returns.
    fn release(&mut self, id: &str) {
        if let Some(mut held) = self.held.remove(id) {
            // SAFETY: kill on the pid of our own child, not yet reaped (its pidfd is open).
            unsafe { libc::kill(held.child.id() as i32, libc::SIGTERM) };
            let _ = held.child.wait();
            eprintln!("lllqos: nri: {}: released", held.what);
        }
    }

    /// Stops every holder and waits for them.
    pub fn release_all(&mut self) {
        let ids: Vec<String> = self.held.keys().cloned().collect();
        for id in ids {
            self.release(&id);
        }
    }

    /// The holders' pidfds (readable once a holder has exited), with their containers' ids.
    pub fn holders(&self) -> Vec<(String, BorrowedFd<'_>)> {
        (self.held.iter())
            .map(|(id, held)| (id.clone(), held.pidfd.as_fd()))
            .collect()
    }

    /// Reaps the holder of container `id`, which has exited on its own (killed), and says so.
    pub fn reap(&mut self, id: &str) {
        if let Some(mut held) = self.held.remove(id) {
            let status = held.child.wait().map(|s| s.to_string()).unwrap_or_default();
            eprintln!(
                "lllqos: nri: {}: its holder ended ({status}); the request is gone until the container is created again or the plugin restarts",
                held.what
            );
        }
    }
}

/// The pod and container a request names (both are always there).
fn parts(request: &ContainerRequest) -> Result<(&PodSandbox, &Container), Refusal> {
    match (&request.pod, &request.container) {
        (Some(pod), Some(container)) => Ok((pod, container)),
        _ => Err((
            api::FAILED_PRECONDITION,
            "lllqos: a request that names no pod or no container".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotations: &[(&str, &str)]) -> PodSandbox {
        PodSandbox {
            id: "p".into(),
            name: "rt".into(),
            namespace: "default".into(),
            annotations: (annotations.iter())
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn container(name: &str, cpuset: &str) -> Container {
        Container {
            id: "c".into(),
            pod_sandbox_id: "p".into(),
            name: name.into(),
            state: api::RUNNING,
            linux: Some(api::LinuxContainer {
                resources: Some(api::LinuxResources {
                    cpu: Some(api::LinuxCpu {
                        cpus: cpuset.into(),
                    }),
                }),
            }),
        }
    }

    #[test]
    fn container_means_the_containers_cpuset() {
        let pod = pod(&[("lllqos.io/latency", "7"), ("lllqos.io/cpus", "container")]);
        let (wanted, cpus) = asks(&pod, &container("app", "1,3")).unwrap().unwrap();
        assert_eq!(wanted.latency.as_micros(), 7);
        assert_eq!(cpus, Some("1,3".parse().unwrap()));
        let error = asks(&pod, &container("app", "")).unwrap_err();
        assert!(
            error.starts_with(
                "lllqos.io/cpus=container lllqos.io/latency=7: the container has no cpuset"
            ),
            "{error}"
        );
    }

    #[test]
    fn crio_c_states_leaves_an_unpinned_container_alone() {
        let pod = pod(&[("cpu-c-states.crio.io", "disable")]);
        assert_eq!(asks(&pod, &container("app", "")), Ok(None));
        let (wanted, cpus) = asks(&pod, &container("app", "0")).unwrap().unwrap();
        assert_eq!(wanted.latency.as_micros(), 0);
        assert_eq!(cpus, Some("0".parse().unwrap()));
    }

    #[test]
    fn the_plugin_subscribes_to_create_stop_and_remove() {
        let mut plugin = Plugin::new().unwrap();
        let reply = plugin
            .call(
                "Configure",
                &api::ConfigureRequest::default().encode_to_vec(),
            )
            .unwrap();
        let events = api::ConfigureResponse::decode(&reply[..]).unwrap().events;
        assert_eq!(events, 1 << 3 | 1 << 9 | 1 << 10);
        assert_eq!(
            plugin.call("Nonesuch", &[]).unwrap_err().0,
            api::UNIMPLEMENTED
        );
    }
}
