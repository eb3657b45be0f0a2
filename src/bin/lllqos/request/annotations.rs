//! Requests asked for by annotations: `lllqos.io/latency`, `lllqos.io/max-state` and
//! `lllqos.io/cpus`, which a container carries (the OCI hook reads them). Each is read
//! with the syntax of the option it stands for, and every bad value is an error naming the
//! annotation and the value, before anything is placed.

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
    /// The container's own cpuset, from the bundle's `config.json`.
    Container,
}

/// Reads the `lllqos.io/` annotations: `None` when there is none (a hook configured for every
/// container leaves the others alone); an error names the annotation and its value.
pub fn wanted(annotations: &BTreeMap<String, String>) -> Result<Option<Wanted>, String> {
    let ours: Vec<(&str, &str)> = (annotations.iter())
        .filter(|(key, _)| key.starts_with(PREFIX))
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    if ours.is_empty() {
        return Ok(None);
    }
    let mut wanted = Wanted {
        latency: Latency::ZERO,
        max_state: None,
        cpus: None,
        given: (ours.iter())
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(" "),
    };
    for (key, value) in ours {
        let bad = |why: &dyn std::fmt::Display| format!("{key}={value}: {why}");
        match key {
            LATENCY => wanted.latency = value.parse().map_err(|e| bad(&e))?,
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
    if annotations.contains_key(LATENCY) && wanted.max_state.is_some() {
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
            Some(Cpus::Container) => cpuset.map(CpuSpec::List),
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
}
