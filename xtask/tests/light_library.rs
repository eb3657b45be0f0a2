//! The library is light to depend on: a program that uses it the README's way compiles none of the
//! command line's dependencies.

use std::collections::BTreeSet;
use std::process::Command;

/// The crates `cargo tree` lists for the library with `args` added (normal edges only: what a
/// dependent compiles and links).
fn tree(args: &[&str]) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--locked", "--edges", "normal"])
        .args(["--prefix", "none", "--format", "{p}", "--package", "lllqos"])
        .args(args)
        .current_dir(xtask::root())
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The command line's own dependencies, which the library must not bring.
const COMMAND_LINE: [&str; 6] = [
    "clap",
    "anyhow",
    "indicatif",
    "plotters",
    "signal-hook",
    "libm",
];

#[test]
fn the_library_without_default_features_has_none_of_the_command_line_crates() {
    let library = tree(&["--no-default-features"]);
    for name in COMMAND_LINE {
        assert!(!library.contains(name), "{name} in {library:?}");
    }
    // The binary's build has them: the test would notice a tree that lists nothing.
    let command = tree(&[]);
    assert!(
        command.contains("clap") && command.contains("anyhow"),
        "{command:?}"
    );
}

#[test]
fn the_readme_dependency_line_turns_the_default_features_off() {
    let readme = std::fs::read_to_string(xtask::root().join("README.md")).unwrap();
    let manifest = std::fs::read_to_string(xtask::root().join("Cargo.toml")).unwrap();
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("the package version");
    let major_minor: Vec<&str> = version.split('.').take(2).collect();
    let line = format!(
        "lllqos = {{ version = \"{}\", default-features = false }}",
        major_minor.join(".")
    );
    assert!(readme.contains(&line), "the README gives {line}");
}
