//! The README's option table against the clap definition: every option lllqos has is in the
//! table, and the table names no option lllqos lacks.

use std::collections::BTreeSet;

/// The long options of the README's "Usage" table (rows starting with an option in backticks).
fn readme_options() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(xtask::root().join("README.md")).unwrap();
    let usage = readme
        .split("\n## ")
        .find(|section| section.starts_with("Usage"))
        .expect("a Usage section");
    usage
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|cell| cell.split('`').next())
        .flat_map(|cell| cell.split([',', ' ']))
        .filter_map(|word| word.strip_prefix("--"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_option_table_matches_the_command_line() {
    let command = xtask::cli::command();
    let options: BTreeSet<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !matches!(*l, "help" | "version"))
        .map(str::to_owned)
        .collect();
    assert_eq!(readme_options(), options);
}

/// The README's Rust example is the body of `readme()` in examples/library.rs, which `cargo test`
/// compiles and `tests/library.rs` runs: the README cannot show code that does not build.
#[test]
fn the_readme_rust_example_is_the_compiled_example() {
    let readme = std::fs::read_to_string(xtask::root().join("README.md")).unwrap();
    let block = readme
        .split("```rust,no_run\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a Rust example in the README");
    let example = std::fs::read_to_string(xtask::root().join("examples/library.rs")).unwrap();
    let body: Vec<&str> = example
        .split("fn readme()")
        .nth(1)
        .expect("fn readme() in examples/library.rs")
        .lines()
        .skip(1)
        .take_while(|line| *line != "}")
        .map(|line| line.strip_prefix("    ").unwrap_or(line))
        .filter(|line| *line != "Ok(())")
        .collect();
    let shown: Vec<&str> = block
        .lines()
        .filter(|line| !line.starts_with("# "))
        .collect();
    assert_eq!(shown, body);
}

/// `text` with every run of whitespace (line breaks included) made one space.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The README says which signals are relayed in the words the man page renders from the code.
#[test]
fn the_readme_names_the_relayed_signals_as_the_code_does() {
    let readme = std::fs::read_to_string(xtask::root().join("README.md")).unwrap();
    let sentence = xtask::relayed_signals();
    assert!(
        words(&readme).contains(&sentence),
        "README.md must say: {sentence}"
    );
}

/// Every example of `lllqos --help` (and so of the man page) is in the README, word for word.
#[test]
fn the_readme_has_every_example_of_the_help() {
    let readme = words(&std::fs::read_to_string(xtask::root().join("README.md")).unwrap());
    for (example, _) in xtask::cli::EXAMPLES {
        assert!(readme.contains(example), "README.md lacks: {example}");
    }
}
