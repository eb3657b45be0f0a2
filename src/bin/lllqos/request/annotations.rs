//! Requests asked for by annotations: `lllqos.io/latency`, `lllqos.io/max-state` and
//! `lllqos.io/cpus`, which a container carries (the OCI hook reads them) or a pod (the NRI plugin
//! reads them, with a per-container form), and CRI-O's `cpu-c-states.crio.io`. Each is read with
//! the syntax of the option it stands for, and every bad value is an error naming the annotation
//! and the value, before anything is placed.

use std::collections::BTreeMap;

use lllqos::cli::{CpuSpec, RequestArgs};
use lllqos::idle::StateNames;
use lllqos::{CpuList, Latency};

/// The annotation that asks for a latency (`--latency` syntax).
pub const LATENCY: &str = "lllqos.io/latency";
/// The annotation that names the limit by idle state (`--max-state` syntax).
pub const MAX_STATE: &str = "lllqos.io/max-state";
/// The annotation that makes the request per CPU: a cpulist, or `container`.
pub const CPUS: &str = "lllqos.io/cpus";
/// The prefix every annotation of lllqos's has (the `hooks.d` file selects containers by it).
pub const PREFIX: &str = "lllqos.io/";
/// The annotations lllqos reads.
const OURS: [&str; 3] = [LATENCY, MAX_STATE, CPUS];
/// CRI-O's annotation for the C-states of a container's CPUs: `enable`, `disable` or
/// `max_latency:N` (microseconds), applied per CPU on the container's cpuset.
pub const CRIO_C_STATES: &str = "cpu-c-states.crio.io";

/// What the annotations ask for.
#[derive(Debug, PartialEq, Eq)]
pub struct Wanted {
    pub latency: Latency,
    pub max_state: Option<StateNames>,
    pub cpus: Option<Cpus>,
    /// The annotations as given (`lllqos.io/latency=0 lllqos.io/cpus=container`), for messages.
    pub given: String,
}

/// `lllqos.io/cpus`.
#[derive(Debug, PartialEq, Eq)]
pub enum Cpus {
    /// A cpulist.
    List(CpuList),
    /// The container's own cpuset (from the bundle's `config.json`, or from NRI).
    Container,
    /// The container's own cpuset, and no request for a container without one: how CRI-O applies
    /// `cpu-c-states.crio.io`.
    ContainerIfPinned,
}

/// Reads a container's `lllqos.io/` annotations: `None` when there is none (a hook configured
/// for every container leaves the others alone); an error names the annotation and its value.
pub fn wanted(annotations: &BTreeMap<String, String>) -> Result<Option<Wanted>, String> {
    let ours: Vec<(&str, &str, &str)> = (annotations.iter())
        .filter(|(key, _)| key.starts_with(PREFIX))
        .map(|(key, value)| (key.as_str(), key.as_str(), value.as_str()))
        .collect();
    read(&ours)
}

/// Reads a pod's annotations for its container `container`: `lllqos.io/latency` (and the others)
/// ask for every container of the pod, `lllqos.io/latency.NAME` for the container NAME alone. A
/// container with annotations of its own takes those and none of the pod's. Without either,
/// CRI-O's `cpu-c-states.crio.io`. Every `lllqos.io/` annotation of the pod must be one of these
/// forms, whichever container it names: a typo is an error, not a container left without its
/// request.
pub fn wanted_by_pod(
    annotations: &BTreeMap<String, String>,
    container: &str,
) -> Result<Option<Wanted>, String> {
    let mut pod = Vec::new();
    let mut own = Vec::new();
    for (key, value) in annotations.range(PREFIX.to_owned()..) {
        if !key.starts_with(PREFIX) {
            break;
        }
        let base = OURS.iter().find(|base| {
            key.strip_prefix(**base)
                .is_some_and(|rest| rest.is_empty() || rest.len() > 1 && rest.starts_with('.'))
        });
        match base.map(|base| (base, &key[base.len()..])) {
            Some((base, "")) => pod.push((key.as_str(), *base, value.as_str())),
            Some((base, name)) if &name[1..] == container => {
                own.push((key.as_str(), *base, value.as_str()));
            }
            Some(_) => {}
            None => pod.push((key.as_str(), key.as_str(), value.as_str())),
        }
    }
    let crio = annotations.get(CRIO_C_STATES);
    match (read(if own.is_empty() { &pod } else { &own })?, crio) {
        (Some(_), Some(_)) => Err(format!(
            "{CRIO_C_STATES} and lllqos.io/ annotations both ask for container {container}: give one"
        )),
        (Some(wanted), None) => Ok(Some(wanted)),
        (None, Some(value)) => crio_c_states(value),
        (None, None) => Ok(None),
    }
}

/// CRI-O's `cpu-c-states.crio.io`, as CRI-O reads it: `enable` places nothing, `disable` only
/// polling (0 us), `max_latency:N` N microseconds (0, which CRI-O writes as the resume latency
/// "0", places nothing); each per CPU on the container's cpuset.
fn crio_c_states(value: &str) -> Result<Option<Wanted>, String> {
    let latency = match value {
        "enable" => return Ok(None),
        "disable" => Latency::ZERO,
        _ => {
            let micros = (value.strip_prefix("max_latency:"))
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| {
                    format!(
                        "{CRIO_C_STATES}={value}: not enable, disable or max_latency:N (microseconds)"
                    )
                })?;
            if micros == 0 {
                return Ok(None);
            }
            Latency::from_micros(micros).ok_or_else(|| {
                format!(
                    "{CRIO_C_STATES}={value}: at most {} us",
                    Latency::MAX.as_micros()
                )
            })?
        }
    };
    Ok(Some(Wanted {
        latency,
        max_state: None,
        cpus: Some(Cpus::ContainerIfPinned),
        given: format!("{CRIO_C_STATES}={value}"),
    }))
}

/// Reads `(key as given, which annotation it is, value)` triples.
fn read(ours: &[(&str, &str, &str)]) -> Result<Option<Wanted>, String> {
    if ours.is_empty() {
        return Ok(None);
    }
    let mut wanted = Wanted {
        latency: Latency::ZERO,
        max_state: None,
        cpus: None,
        given: (ours.iter())
            .map(|(key, _, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let mut latency_given = false;
    for &(key, base, value) in ours {
        let bad = |why: &dyn std::fmt::Display| format!("{key}={value}: {why}");
        match base {
            LATENCY => {
                wanted.latency = value.parse().map_err(|e| bad(&e))?;
                latency_given = true;
            }
            MAX_STATE => wanted.max_state = Some(value.parse().map_err(|e| bad(&e))?),
            CPUS if value == "container" => wanted.cpus = Some(Cpus::Container),
            CPUS => wanted.cpus = Some(Cpus::List(value.parse().map_err(|e| bad(&e))?)),
            _ => {
                return Err(bad(&format_args!(
                    "unknown annotation (lllqos reads {LATENCY}, {MAX_STATE} and {CPUS})"
                )));
            }
        }
    }
    if latency_given && wanted.max_state.is_some() {
        return Err(format!(
            "{LATENCY} and {MAX_STATE} both name the limit: give one"
        ));
    }
    Ok(Some(wanted))
}

impl Wanted {
    /// The request in the command line's terms, `container` resolved to `cpuset` (the caller reads
    /// it from where the runtime keeps it, once it knows it is needed).
    pub fn request(&self, cpuset: Option<CpuList>) -> RequestArgs {
        let cpu = match &self.cpus {
            None => None,
            Some(Cpus::List(list)) => Some(CpuSpec::List(list.clone())),
            Some(Cpus::Container | Cpus::ContainerIfPinned) => cpuset.map(CpuSpec::List),
        };
        RequestArgs {
            latency: self.latency,
            max_state: self.max_state.clone(),
            cpu,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        (pairs.iter())
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn no_annotation_of_ours_asks_for_nothing() {
        let others = annotations(&[("io.kubernetes.pod.name", "x"), ("lllqos.iox", "1")]);
        assert_eq!(wanted(&others), Ok(None));
    }

    #[test]
    fn each_annotation_is_read_with_the_options_syntax() {
        let got = wanted(&annotations(&[(LATENCY, "50us"), (CPUS, "2-3")]))
            .unwrap()
            .unwrap();
        assert_eq!(got.latency, Latency::from_micros(50).unwrap());
        assert_eq!(got.cpus, Some(Cpus::List("2-3".parse().unwrap())));
        assert_eq!(got.given, "lllqos.io/cpus=2-3 lllqos.io/latency=50us");
        let got = wanted(&annotations(&[
            (MAX_STATE, "C6,C1,none"),
            (CPUS, "container"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(got.max_state, Some("C6,C1,none".parse().unwrap()));
        assert_eq!(got.cpus, Some(Cpus::Container));
        // Only the CPUs: 0 us, as lllqos's own default.
        let got = wanted(&annotations(&[(CPUS, "1")])).unwrap().unwrap();
        assert_eq!(got.latency, Latency::ZERO);
    }

    #[test]
    fn a_bad_value_is_named_with_its_annotation() {
        for (key, value) in [
            (LATENCY, "fast"),
            (LATENCY, "-1"),
            (MAX_STATE, "none,C1"),
            (CPUS, "2-"),
            (CPUS, "auto"),
            ("lllqos.io/latncy", "0"),
        ] {
            let error = wanted(&annotations(&[(key, value)])).unwrap_err();
            assert!(error.starts_with(&format!("{key}={value}: ")), "{error}");
        }
        let error = wanted(&annotations(&[(LATENCY, "0"), (MAX_STATE, "C1")])).unwrap_err();
        assert!(error.contains("give one"), "{error}");
    }

    #[test]
    fn a_pods_annotations_ask_for_each_container_unless_it_has_its_own() {
        let pod = annotations(&[
            (LATENCY, "20"),
            ("lllqos.io/latency.worker", "5"),
            ("lllqos.io/cpus.worker", "container"),
        ]);
        let shared = wanted_by_pod(&pod, "sidecar").unwrap().unwrap();
        assert_eq!(shared.latency, Latency::micros(20));
        assert_eq!(shared.cpus, None);
        let own = wanted_by_pod(&pod, "worker").unwrap().unwrap();
        assert_eq!(own.latency, Latency::micros(5));
        assert_eq!(own.cpus, Some(Cpus::Container));
        assert_eq!(
            own.given,
            "lllqos.io/cpus.worker=container lllqos.io/latency.worker=5"
        );
        let only_own = annotations(&[("lllqos.io/latency.worker", "5")]);
        assert_eq!(wanted_by_pod(&only_own, "sidecar"), Ok(None));
    }

    #[test]
    fn a_pods_bad_annotation_is_named_as_given() {
        let error = wanted_by_pod(
            &annotations(&[("lllqos.io/latency.worker", "fast")]),
            "worker",
        )
        .unwrap_err();
        assert!(
            error.starts_with("lllqos.io/latency.worker=fast: "),
            "{error}"
        );
        // A typo is refused whichever container it would name.
        for key in [
            "lllqos.io/latncy.worker",
            "lllqos.io/latency.",
            "lllqos.io/latencyx",
        ] {
            let error = wanted_by_pod(&annotations(&[(key, "1")]), "other").unwrap_err();
            assert!(error.contains("unknown annotation"), "{key}: {error}");
        }
    }

    #[test]
    fn crio_c_states_reads_as_crio_does() {
        let crio = |value: &str| wanted_by_pod(&annotations(&[(CRIO_C_STATES, value)]), "c");
        assert_eq!(crio("enable"), Ok(None));
        assert_eq!(crio("max_latency:0"), Ok(None));
        let disable = crio("disable").unwrap().unwrap();
        assert_eq!(disable.latency, Latency::ZERO);
        assert_eq!(disable.cpus, Some(Cpus::ContainerIfPinned));
        assert_eq!(disable.given, "cpu-c-states.crio.io=disable");
        let some = crio("max_latency:10").unwrap().unwrap();
        assert_eq!(some.latency, Latency::micros(10));
        assert_eq!(some.cpus, Some(Cpus::ContainerIfPinned));
        for bad in ["off", "max_latency:", "max_latency:-1", "max_latency:1us"] {
            let error = crio(bad).unwrap_err();
            assert!(
                error.starts_with(&format!("{CRIO_C_STATES}={bad}: ")),
                "{error}"
            );
        }
        let both = annotations(&[(CRIO_C_STATES, "disable"), (LATENCY, "1")]);
        assert!(wanted_by_pod(&both, "c").unwrap_err().contains("give one"));
    }
}
