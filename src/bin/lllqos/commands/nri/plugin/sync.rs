//! Synchronization: at each registration, the holders in place are adopted, the ones no container
//! needs stopped, and the missing ones queued, to be started after the answer (see the parent
//! module's documentation for why that is safe).

use std::collections::BTreeMap;
use std::time::Instant;

use super::super::api::{self, PodSandbox};
use super::Plugin;
use super::tracked::{Holder, Tracked, annotations, describe, watch_of};
use crate::commands::container::holder::{self, Found, Spec};
use crate::process::PidFd;

/// How many holders are started between two polls of the runtime's connection, after a
/// synchronization: a few milliseconds each.
const BATCH: usize = 16;

impl Plugin {
    /// Whether holders wait to be started (after a synchronization).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Starts the next few holders a synchronization found missing, without waiting for them.
    pub fn place_pending(&mut self) {
        for _ in 0..BATCH {
            let Some(id) = self.pending.pop_front() else {
                return;
            };
            let Some(tracked) = self.containers.get_mut(&id) else {
                continue;
            };
            if tracked.holder.is_some() {
                continue;
            }
            let watch = tracked.watch(self.pid);
            match (tracked.spec.spawn(watch))
                .map_err(|e| format!("{e:#}"))
                .and_then(|child| Holder::started(child, watch))
            {
                Ok(holder) => tracked.holder = Some(holder),
                Err(e) => eprintln!("lllqos: nri: {}: {e}", tracked.what),
            }
        }
    }

    /// Adopts the holders in place, stops the ones no container needs, and queues what is
    /// missing: see the module documentation.
    pub(super) fn synchronize(&mut self, sync: &api::SynchronizeRequest) {
        let began = Instant::now();
        let pods: BTreeMap<&str, &PodSandbox> =
            sync.pods.iter().map(|pod| (pod.id.as_str(), pod)).collect();
        let mut found: BTreeMap<String, Vec<Found>> = BTreeMap::new();
        for holder in holder::find(&self.runtime) {
            found.entry(holder.id.clone()).or_default().push(holder);
        }
        let mut wanted: BTreeMap<String, Tracked> = BTreeMap::new();
        for container in &sync.containers {
            if !matches!(container.state, api::CREATED | api::PAUSED | api::RUNNING) {
                continue;
            }
            let Some(pod) = pods.get(container.pod_sandbox_id.as_str()) else {
                continue;
            };
            let annotations = annotations(pod);
            let described = describe(pod, container, &annotations, container.cpuset());
            let what = described.describe();
            match described.placement() {
                Ok(Some(placement)) => {
                    let spec = Spec::new(&described, &placement, Some(&self.runtime));
                    let tracked = Tracked {
                        what,
                        spec,
                        watch: watch_of(pod, container),
                        holder: None,
                        former: None,
                    };
                    wanted.insert(container.id.clone(), tracked);
                }
                Ok(None) => {}
                // A container that runs cannot be refused: what fails is said.
                Err(e) => eprintln!("lllqos: nri: {what}: {e}"),
            }
        }
        let (mut adopted, mut stopped) = (0, 0);
        // What this plugin tracks already (a reconnection): kept where it holds what is wanted.
        for (id, mut tracked) in std::mem::take(&mut self.containers) {
            if let Some(want) = wanted.get_mut(&id)
                && want.spec == tracked.spec
            {
                want.holder = tracked.holder.take();
            }
            Plugin::stop_all(tracked);
        }
        for (id, holders) in found {
            for found in holders {
                let want = wanted.get_mut(&id);
                if (want.as_ref())
                    .and_then(|want| want.holder.as_ref())
                    .is_some_and(|holder| holder.pidfd.pid() == found.pid)
                {
                    continue; // this plugin's own, kept above
                }
                let Ok(pidfd) = PidFd::open(found.pid) else {
                    continue; // gone meanwhile
                };
                let holder = Holder {
                    pidfd,
                    child: None,
                    watches: found.watches,
                };
                match want {
                    Some(want) if want.holder.is_none() && want.spec.request == found.request => {
                        want.holder = Some(holder);
                        adopted += 1;
                    }
                    _ => {
                        holder.stop();
                        stopped += 1;
                    }
                }
            }
        }
        // A holder in force that watches another process than it should (it was started before
        // its container ran, or by a runtime that did not tell the sandbox): it moves once the
        // call is answered, never absent between.
        for (id, tracked) in &wanted {
            if (tracked.holder.as_ref()).is_some_and(|h| h.watches != tracked.watch(self.pid)) {
                self.to_watch.push(id.clone());
            }
        }
        let missing: Vec<String> = (wanted.iter())
            .filter(|(_, t)| t.holder.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        self.pending = missing.iter().cloned().collect();
        self.containers = wanted;
        eprintln!(
            "lllqos: nri: synchronized in {} ms: {} containers ask, {} held ({adopted} adopted), {} to place, {stopped} stopped",
            began.elapsed().as_millis(),
            self.containers.len(),
            self.containers.len() - missing.len(),
            missing.len()
        );
    }
}
