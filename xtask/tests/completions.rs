//! The generated bash completion, run in a real bash: lllqos's options before COMMAND, command
//! names at COMMAND, and the subcommands' options after them.

use std::process::Command;

/// Runs the completion function for `words` (the cursor on the last word) and returns COMPREPLY.
fn complete(words: &[&str]) -> Vec<String> {
    let script = xtask::root().join("completions/lllqos.bash");
    let array: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
         _lllqos_with_command lllqos \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        array.join(" "),
        words.len() - 1
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn bash_completes_lllqos_options_before_the_command() {
    assert!(complete(&["lllqos", "--lat"]).contains(&"--latency".to_owned()));
    assert!(complete(&["lllqos", "-l", "0", "--st"]).contains(&"--strict".to_owned()));
}

#[test]
fn bash_completes_a_command_name_at_the_command_position() {
    for words in [
        &["lllqos", "trunc"][..],
        &["lllqos", "-l", "0", "trunc"],
        &["lllqos", "--cpu", "1", "--", "trunc"],
    ] {
        assert!(
            complete(words).contains(&"truncate".to_owned()),
            "{words:?}"
        );
    }
    assert!(complete(&["lllqos", "stat"]).contains(&"status".to_owned()));
}

#[test]
fn bash_completes_subcommand_options() {
    assert!(complete(&["lllqos", "measure", "--hist"]).contains(&"--histogram".to_owned()));
    assert!(complete(&["lllqos", "status", "--j"]).contains(&"--json".to_owned()));
}

#[test]
fn bash_completes_idle_state_names_after_max_state() {
    let names: Vec<String> = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cpuidle")
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("name")).ok())
        .map(|n| n.trim().to_owned())
        .collect();
    let Some(name) = names.iter().max_by_key(|n| n.len()) else {
        println!("SKIPPED: bash_completes_idle_state_names_after_max_state: no cpuidle states");
        return;
    };
    let prefix = &name[..1];
    // A name with a space completes escaped, as one word.
    let escaped = name.replace(' ', "\\ ");
    let offered = complete(&["lllqos", "--max-state", prefix]);
    assert!(offered.contains(&escaped), "{offered:?} lacks {escaped}");
    let offered = complete(&["lllqos", "measure", "--max-state", prefix]);
    assert!(offered.contains(&escaped), "{offered:?} lacks {escaped}");
}
