//! What each subcommand's page says besides its options: how it exits, and what it prints.

use roff::Roff;

use super::{item, para};
use crate::cli;

/// EXIT STATUS of `lllqos NAME`.
pub fn exit_status(r: &mut Roff, name: &str) {
    r.control("SH", ["EXIT STATUS"]);
    let statuses: &[(&str, &str)] = match name {
        "status" => &[
            (
                "0",
                "Always, also when something cannot be read: that is said in place of the value.",
            ),
            ("125", "A usage error, or its output could not be written."),
        ],
        "measure" => &[
            ("0", "Both phases were measured and reported."),
            (
                "125",
                "A usage error, a bad value, no permission for phase two's request or for --priority, a --plot file that cannot be written: before anything is measured.",
            ),
        ],
        "trace" => &[
            ("0", "Ended by SIGINT, SIGTERM or SIGHUP, or --duration."),
            (
                "125",
                "A usage error, not root, a privileged install, or a kernel without tracefs or the power:pm_qos_* events.",
            ),
        ],
        "metrics" => &[
            (
                "0",
                "The metrics were written; what could not be read is left out and said by lllqos_scrape_error.",
            ),
            (
                "125",
                "A usage error, or --output could not be written (no temporary file is left).",
            ),
        ],
        "recover" => &[
            (
                "0",
                "Whatever it restored, also when there was nothing to restore.",
            ),
            (
                "125",
                "The registry or a CPU's file could not be read or written (the message names it), or a privileged install.",
            ),
        ],
        "oci-hook" => &[
            (
                "0",
                "The request is in force (a detached holder keeps it while the container's init lives), or the container asked for none.",
            ),
            (
                "125",
                "A bad annotation, a state that is not one, or a request that cannot be placed: the runtime does not start the container.",
            ),
        ],
        "nri" => &[
            (
                "0",
                "Ended by SIGTERM, SIGINT or SIGHUP, or, started by containerd, containerd closed the connection: the containers' requests stay in force, held by their holders.",
            ),
            (
                "125",
                "A usage error, a privileged install, an NRI socket whose directory does not exist (NRI not enabled), another lllqos nri on the same runtime, or a runtime that refused the registration.",
            ),
        ],
        _ => &[],
    };
    for (status, meaning) in statuses {
        item(r, status, meaning);
    }
    if matches!(name, "measure" | "trace") {
        para(
            r,
            "Ended by another signal whose default is to end a process, it restores what it changed and dies of that signal.",
        );
    }
    if name == "nri" {
        para(
            r,
            "Ended by another signal whose default is to end a process, it dies of that signal; the containers' requests stay in force.",
        );
    }
}

/// The section about what `lllqos NAME` prints, where it has one.
pub fn about(r: &mut Roff, name: &str) {
    match name {
        "status" => json(
            r,
            "lllqos status --json prints one object",
            cli::STATUS_JSON_KEYS,
        ),
        "measure" => json(
            r,
            "lllqos measure --json prints one object",
            cli::MEASURE_JSON_KEYS,
        ),
        "trace" => super::sections::trace_output(r),
        "nri" => {
            r.control("SH", ["WHAT SURVIVES WHAT"]);
            para(
                r,
                "Each container's request is held by a process of its own (lllqos, named after the container), which lasts as long as the container, not as long as the plugin or containerd:",
            );
            for (event, outcome) in cli::NRI_LIFETIME {
                item(r, event, outcome);
            }
        }
        _ => {}
    }
}

/// JSON: every key path and what it holds.
fn json(r: &mut Roff, what: &str, keys: &[(&str, &str)]) {
    r.control("SH", ["JSON"]);
    para(
        r,
        &format!(
            "{what}, a stable interface (keys may be added; none will change meaning or disappear). A key inside an object is written after a dot, inside an array after [], <cpu> stands for a CPU number used as a key, <phase> for without or with:"
        ),
    );
    for (key, meaning) in keys {
        item(r, key, meaning);
    }
}
