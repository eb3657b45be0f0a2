//! One way from a container to its request: what `oci-hook` and `nri` share.
//!
//! A runtime describes a container in its own terms: an OCI runtime writes its state (id, the
//! init's pid, the bundle whose `config.json` has the cpuset, the container's annotations); NRI
//! sends messages (id, name, the pod with its annotations, the cpuset, the pid once it runs). Both
//! become a [`Container`], and from there everything is the same: the annotations read
//! ([`crate::request::annotations`]), the container's cpuset resolved where they ask for it, the
//! request resolved as the command line's would be ([`crate::request::resolve`]), and a holder
//! ([`holder`]), lllqos itself, started to keep it for the container's life.

pub mod holder;

use std::collections::BTreeMap;
use std::path::Path;

use lllqos::CpuList;

use crate::request::annotations::{CPUS, Cpus, Wanted, wanted, wanted_by_pod};
use crate::request::{self, Chatter, Naming, Request};

/// A Kubernetes pod, as NRI names it.
#[derive(Debug, Clone, Copy)]
pub struct Pod<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// The pod's annotations, which ask for its containers (per container as `...latency.NAME`).
    pub annotations: &'a BTreeMap<String, String>,
}

/// Where a container's cpuset is, when its annotations ask for it (`lllqos.io/cpus=container`).
#[derive(Debug, Clone, Copy)]
pub enum Cpuset<'a> {
    /// Known: NRI's `linux.resources.cpu.cpus` (empty: none).
    Known(&'a str),
    /// In the bundle's `config.json` (OCI runtimes), read only when asked for.
    Bundle(Option<&'a Path>),
}

/// A container, whatever runtime described it.
#[derive(Debug, Clone, Copy)]
pub struct Container<'a> {
    pub id: &'a str,
    /// Its name in its pod (NRI); `None` for an OCI runtime's container.
    pub name: Option<&'a str>,
    /// Its pod (NRI), whose annotations ask; without one, the container's own `annotations` do.
    pub pod: Option<Pod<'a>>,
    /// The container's own annotations (OCI).
    pub annotations: Option<&'a BTreeMap<String, String>>,
    pub cpuset: Cpuset<'a>,
}

/// What a container asks for, resolved: the annotations as read (for messages) and the request.
#[derive(Debug)]
pub struct Placement {
    pub wanted: Wanted,
    pub request: Request,
}

impl Container<'_> {
    /// `container ID (NAME, pod NAMESPACE/NAME)`, or `container ID`, for messages.
    pub fn describe(&self) -> String {
        match (self.name, self.pod) {
            (Some(name), Some(pod)) => format!(
                "container {} ({name}, pod {}/{})",
                self.id, pod.namespace, pod.name
            ),
            _ => format!("container {}", self.id),
        }
    }

    /// Its pod's name, `NAMESPACE/NAME`, which its holder carries (`LLLQOS_POD`).
    pub fn pod_name(&self) -> Option<String> {
        self.pod
            .map(|pod| format!("{}/{}", pod.namespace, pod.name))
    }

    /// What the container asks for: `None` when it asks nothing (no annotation of ours, CRI-O's
    /// on a container without a cpuset, or a `--max-state` list that falls back to `none`); an
    /// error names the annotation and the value, or says what is missing, before anything is
    /// placed.
    pub fn placement(&self) -> Result<Option<Placement>, String> {
        let asked = match (self.pod, self.annotations) {
            (Some(pod), _) => wanted_by_pod(pod.annotations, self.name.unwrap_or_default())?,
            (None, Some(annotations)) => wanted(annotations)?,
            (None, None) => None,
        };
        let Some(wanted) = asked else {
            return Ok(None);
        };
        let cpus = match &wanted.cpus {
            None => None,
            Some(Cpus::List(list)) => Some(list.clone()),
            Some(cpus @ (Cpus::Container | Cpus::ContainerIfPinned)) => {
                match self.cpuset(&wanted)? {
                    Some(cpuset) => Some(cpuset),
                    // CRI-O's annotation leaves a container without a cpuset alone, as CRI-O does.
                    None if *cpus == Cpus::ContainerIfPinned => return Ok(None),
                    None => {
                        return Err(format!(
                            "{}: the container has no cpuset of its own (linux.resources.cpu.cpus; a guaranteed pod with exclusive CPUs has one): name the CPUs instead",
                            wanted.given
                        ));
                    }
                }
            }
        };
        let request = request::resolve(
            &wanted.request(cpus),
            Chatter::Warnings,
            Naming::Annotations,
        )
        .map_err(|e| format!("{}: {e:#}", wanted.given))?;
        if let Request::Nothing(_) = request {
            // A `none` fallback, said already: nothing to hold.
            return Ok(None);
        }
        Ok(Some(Placement { wanted, request }))
    }

    /// The container's cpuset, `None` when it has none.
    fn cpuset(&self, wanted: &Wanted) -> Result<Option<CpuList>, String> {
        let given = &wanted.given;
        match self.cpuset {
            Cpuset::Known("") => Ok(None),
            Cpuset::Known(cpuset) => cpuset
                .parse()
                .map(Some)
                .map_err(|e| format!("{given}: its cpuset '{cpuset}': {e}")),
            Cpuset::Bundle(None) => Err(format!("{CPUS}=container: the state names no bundle")),
            Cpuset::Bundle(Some(bundle)) => bundle_cpuset(bundle).map_err(|e| format!("{e:#}")),
        }
    }
}

/// The most of `config.json` that is read: far more than it holds.
const MAX_CONFIG: u64 = 16 << 20;

/// The cpuset the container's `config.json` gives it (`linux.resources.cpu.cpus`): an error
/// when it gives none, as `lllqos.io/cpus=container` needs one.
fn bundle_cpuset(bundle: &Path) -> anyhow::Result<Option<CpuList>> {
    use anyhow::anyhow;
    use lllqos::internal::file::{self, Kind};
    use lllqos::internal::oserror::os_message;
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;

    let path = bundle.join("config.json");
    // As every file lllqos reads that others could replace: never blocking (a FIFO is refused at
    // once), never following a link, bounded.
    let text = file::open(None, &path, OFlag::O_RDONLY, Mode::empty(), Kind::Regular)
        .and_then(|fd| file::read_bounded(fd, MAX_CONFIG))
        .map_err(|e| anyhow!("{CPUS}=container: {}: {}", path.display(), os_message(&e)))?;
    let config: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
        anyhow!(
            "{CPUS}=container: {}: not a container configuration: {e}",
            path.display()
        )
    })?;
    let cpus = config
        .pointer("/linux/resources/cpu/cpus")
        .and_then(serde_json::Value::as_str)
        .filter(|cpus| !cpus.trim().is_empty())
        .ok_or_else(|| {
            anyhow!(
                "{CPUS}=container: {} gives the container no cpuset (linux.resources.cpu.cpus): name the CPUs instead",
                path.display()
            )
        })?;
    cpus.trim().parse().map(Some).map_err(|e| {
        anyhow!(
            "{CPUS}=container: {}: linux.resources.cpu.cpus '{cpus}': {e}",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        (pairs.iter())
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn in_pod<'a>(annotations: &'a BTreeMap<String, String>, cpuset: &'a str) -> Container<'a> {
        Container {
            id: "c",
            name: Some("app"),
            pod: Some(Pod {
                namespace: "default",
                name: "rt",
                annotations,
            }),
            annotations: None,
            cpuset: Cpuset::Known(cpuset),
        }
    }

    #[test]
    fn container_means_the_containers_cpuset() {
        let pod = pod_annotations(&[("lllqos.io/latency", "7"), ("lllqos.io/cpus", "container")]);
        let placement = in_pod(&pod, "1").placement().unwrap().unwrap();
        assert_eq!(placement.wanted.latency.as_micros(), 7);
        assert_eq!(placement.request.cpus(), Some(&"1".parse().unwrap()));
        let error = in_pod(&pod, "").placement().unwrap_err();
        assert!(
            error.starts_with(
                "lllqos.io/cpus=container lllqos.io/latency=7: the container has no cpuset"
            ),
            "{error}"
        );
        let error = in_pod(&pod, "x").placement().unwrap_err();
        assert!(error.contains("its cpuset 'x'"), "{error}");
    }

    #[test]
    fn crio_c_states_leaves_an_unpinned_container_alone() {
        let pod = pod_annotations(&[("cpu-c-states.crio.io", "disable")]);
        assert!(in_pod(&pod, "").placement().unwrap().is_none());
        let placement = in_pod(&pod, "0").placement().unwrap().unwrap();
        assert_eq!(placement.wanted.latency.as_micros(), 0);
        assert_eq!(placement.request.cpus(), Some(&"0".parse().unwrap()));
    }

    #[test]
    fn the_container_cpuset_comes_from_config_json() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| std::fs::write(dir.path().join("config.json"), text).unwrap();
        write(r#"{"linux":{"resources":{"cpu":{"cpus":"0-1"}}}}"#);
        assert_eq!(
            bundle_cpuset(dir.path()).unwrap(),
            Some("0-1".parse().unwrap())
        );
        write(r#"{"linux":{"resources":{}}}"#);
        let error = bundle_cpuset(dir.path()).unwrap_err().to_string();
        assert!(error.contains("no cpuset"), "{error}");
        write("{");
        assert!(bundle_cpuset(dir.path()).is_err());
    }
}
