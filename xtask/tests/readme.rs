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
    let command = lllqos::cli::command();
    let options: BTreeSet<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !matches!(*l, "help" | "version"))
        .map(str::to_owned)
        .collect();
    assert_eq!(readme_options(), options);
}
