//! Hostile input at the command line: whatever the arguments, parsing never panics, and the binary
//! answers a bad value with one line naming it and status 125. (Each parser has its own property
//! tests next to it: latency values, CPU lists, durations, sysfs and /proc text, the registry.)

use clap::Parser;
use lllqos::cli::Cli;
use proptest::prelude::*;

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-l".to_owned()),
        Just("--latency".to_owned()),
        Just("--cpu".to_owned()),
        Just("--pid".to_owned()),
        Just("--device".to_owned()),
        Just("--strict".to_owned()),
        Just("-q".to_owned()),
        Just("-v".to_owned()),
        Just("--".to_owned()),
        Just("status".to_owned()),
        Just("measure".to_owned()),
        Just("--json".to_owned()),
        Just("--duration".to_owned()),
        Just("--interval".to_owned()),
        Just("--priority".to_owned()),
        "[-0-9a-z.,:/µ]{0,12}",
        ".{0,12}",
    ]
}

proptest! {
    /// Parsing never panics; what parses has its COMMAND exactly as given, at the end of the line
    /// (never read as lllqos's own options); what does not is a usage error that says something.
    #[test]
    fn any_command_line_parses_or_is_a_usage_error(args in proptest::collection::vec(word(), 0..8)) {
        match Cli::try_parse_from(std::iter::once("lllqos".to_owned()).chain(args.clone())) {
            Ok(cli) => {
                let command: Vec<String> = (cli.hold.command.iter())
                    .map(|word| word.to_string_lossy().into_owned())
                    .collect();
                prop_assert!(args.ends_with(&command), "{args:?} gave COMMAND {command:?}");
            }
            Err(error) => prop_assert!(!error.to_string().trim().is_empty(), "{args:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_binary_refuses_bad_latencies_and_pids_with_one_line(value in "[-+0-9a-zµ. ]{0,14}") {
        let out = crate::common::lllqos(["-q", "--device", "/nonexistent/node", "-l", &value, "true"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => prop_assert!(value.parse::<lllqos::Latency>().is_ok()),
            Some(125) => {
                prop_assert_eq!(stderr.lines().count(), 1);
                prop_assert!(stderr.starts_with("lllqos: "));
                let named = stderr.contains(&format!("'{}'", value));
                prop_assert!(named, "{}", stderr);
            }
            other => prop_assert!(false, "status {:?}: {}", other, stderr),
        }
        // (A valid pid of a live process would hold until it exits: only invalid ones here.)
        if !value.parse::<i64>().is_ok_and(|pid| pid > 0) {
            let out = crate::common::lllqos(["--pid", &value]).output().unwrap();
            prop_assert_eq!(out.status.code(), Some(125));
            prop_assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
        }
    }
}

/// Control characters in an argument (an escape sequence, a newline) never reach the terminal raw:
/// the error is still one line, with them escaped.
#[test]
fn control_characters_in_arguments_are_escaped_in_the_one_line_error() {
    for args in [
        &["--cpu", "1\u{1b}[31m", "true"][..],
        &["-l", "5\nx", "true"],
        &["--max-state", "C1,\u{7}", "true"],
        &["--pid", "12\r34"],
    ] {
        let out = crate::common::lllqos(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(
            !stderr.trim_end_matches('\n').chars().any(char::is_control),
            "{args:?}: {stderr:?}"
        );
    }
}

/// Values clap would misname: an empty --device is not "a value is required"; a duration shorter
/// than the millisecond durations are counted in is not "must be more than zero".
#[test]
fn empty_device_and_too_short_duration_are_named_for_what_they_are() {
    crate::common::lllqos(["--device", "", "true"])
        .assert()
        .code(125)
        .stderr(
            "lllqos: invalid value '' for '--device <PATH>': an empty path is not a PM QoS node \
             (try 'lllqos --help')\n",
        );
    crate::common::lllqos(["measure", "--duration", "0.0001"])
        .assert()
        .code(125)
        .stderr(predicates::str::contains("less than a millisecond"));
}
