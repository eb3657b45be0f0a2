//! The README and docs/ against the code: every option lllqos (and each subcommand with a table)
//! has is in its table in docs/reference.md, and the table names no option lllqos lacks; the trace
//! keys of docs/json.md are the documented ones; the examples (README), the relayed signals
//! (docs/reference.md) and the Rust example (docs/library.md) are the code's.

use std::collections::BTreeSet;

/// A file of the repository (`README.md`, `docs/reference.md`).
fn read(path: &str) -> String {
    std::fs::read_to_string(xtask::root().join(path)).unwrap()
}

/// A section of a file, from its `## ` heading to the next.
fn section(path: &str, title: &str) -> String {
    let text = read(path);
    let found = text
        .split("\n## ")
        .find(|section| section.starts_with(title))
        .unwrap_or_else(|| panic!("a section {title} in {path}"));
    found.to_owned()
}

/// The first cell of each table row of a section (in backticks), split into its words.
fn first_cells(section: &str) -> Vec<String> {
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|cell| cell.split('`').next())
        .map(str::to_owned)
        .collect()
}

/// The long options of a docs/reference.md section's option table (rows starting with an
/// option in backticks).
fn documented_options(title: &str) -> BTreeSet<String> {
    first_cells(&section("docs/reference.md", title))
        .iter()
        .flat_map(|cell| {
            cell.split([',', ' '])
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|word| word.strip_prefix("--").map(str::to_owned))
        .collect()
}

/// The long options of a command (`help` and `version` aside).
fn options(command: &clap::Command) -> BTreeSet<String> {
    command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !matches!(*l, "help" | "version"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_option_tables_match_the_command_line() {
    let command = xtask::cli::command();
    assert_eq!(documented_options("Options"), options(&command));
    for sub in ["measure", "trace", "metrics"] {
        let found = command.find_subcommand(sub).unwrap();
        assert_eq!(
            documented_options(&format!("lllqos {sub}\n")),
            options(found),
            "lllqos {sub}"
        );
    }
}

/// docs/json.md's table of `lllqos trace --json` keys says what `cli::TRACE_JSON_KEYS` says (from
/// which --help and the man page render theirs), key for key.
#[test]
fn the_documented_trace_keys_are_the_codes() {
    let trace = section("docs/json.md", "lllqos trace --json");
    let rows: Vec<(String, String)> = trace
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|row| {
            let (key, rest) = row.split_once("` | ")?;
            Some((
                key.to_owned(),
                words(&rest.trim_end_matches(" |").replace('`', "")),
            ))
        })
        .filter(|(key, _)| !key.starts_with("--"))
        .collect();
    let documented: Vec<(String, String)> = xtask::cli::TRACE_JSON_KEYS
        .iter()
        .map(|(key, meaning)| ((*key).to_owned(), words(meaning)))
        .collect();
    assert_eq!(rows, documented);
}

/// docs/library.md's Rust example is the body of `readme()` in examples/library.rs, which
/// `cargo test` compiles and `tests/library.rs` runs: the docs cannot show code that does not
/// build.
#[test]
fn the_library_example_is_the_compiled_example() {
    let readme = read("docs/library.md");
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

/// The reference says which signals are relayed in the words the man page renders from the code.
#[test]
fn the_reference_names_the_relayed_signals_as_the_code_does() {
    let reference = read("docs/reference.md");
    let sentence = xtask::relayed_signals();
    assert!(
        words(&reference).contains(&sentence),
        "docs/reference.md must say: {sentence}"
    );
}

/// Every example of `lllqos --help` (and so of the man page) is in the README, word for word.
#[test]
fn the_readme_has_every_example_of_the_help() {
    let readme = words(&read("README.md"));
    for (example, _) in xtask::cli::EXAMPLES {
        assert!(readme.contains(example), "README.md lacks: {example}");
    }
}

/// Every man page names the package and its version in its footer (`.TH`).
#[test]
fn every_man_page_carries_the_version() {
    let version = xtask::cli::command().get_version().unwrap().to_owned();
    let pages = std::fs::read_dir(xtask::root().join("man")).unwrap();
    for page in pages {
        let path = page.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let th = text.lines().find(|l| l.starts_with(".TH ")).unwrap();
        assert!(
            th.contains(&format!("\"lllqos {version}\"")),
            "{}: {th}",
            path.display()
        );
    }
}
