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

/// The rows of docs/json.md's table in section `title`: key and meaning, words made one space.
fn json_rows(title: &str) -> Vec<(String, String)> {
    section("docs/json.md", title)
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
        .collect()
}

/// docs/json.md's tables of the keys of `status`, `trace` and `measure` say what `cli`'s say
/// (from which --help and the man pages render theirs), key for key.
#[test]
fn the_documented_json_keys_are_the_codes() {
    for (title, keys) in [
        ("lllqos status --json", xtask::cli::STATUS_JSON_KEYS),
        ("lllqos trace --json", xtask::cli::TRACE_JSON_KEYS),
        ("lllqos measure --json", xtask::cli::MEASURE_JSON_KEYS),
    ] {
        let documented: Vec<(String, String)> = keys
            .iter()
            .map(|(key, meaning)| ((*key).to_owned(), words(meaning)))
            .collect();
        assert_eq!(json_rows(title), documented, "{title}");
    }
}

/// docs/containers.md's table of what survives what is the one lllqos-nri(1) renders
/// (`cli::NRI_LIFETIME`).
#[test]
fn the_nri_lifetime_table_is_the_codes() {
    let section = section("docs/containers.md", "Kubernetes on containerd");
    let table = section
        .split("| what happens | the requests |\n|---|---|\n")
        .nth(1)
        .expect("the table of what survives what");
    let rows: Vec<(String, String)> = table
        .lines()
        .take_while(|line| line.starts_with("| "))
        .filter_map(|line| {
            let (event, outcome) = line.strip_prefix("| ")?.split_once(" | ")?;
            Some((event.to_owned(), outcome.trim_end_matches(" |").to_owned()))
        })
        .collect();
    let code: Vec<(String, String)> = (xtask::cli::NRI_LIFETIME.iter())
        .map(|(event, outcome)| ((*event).to_owned(), (*outcome).to_owned()))
        .collect();
    assert_eq!(rows, code);
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

/// The README and the reference quote the shipped udev rule line for line, and its trigger.
#[test]
fn the_docs_quote_the_shipped_udev_rule_and_its_trigger() {
    let rules = read("contrib/udev/70-lllqos.rules");
    let lines: Vec<&str> = rules
        .lines()
        .filter(|l| l.starts_with("KERNEL=="))
        .collect();
    assert!(!lines.is_empty());
    let trigger = rules
        .lines()
        .find_map(|l| l.strip_prefix("#   udevadm trigger "))
        .unwrap();
    for doc in ["README.md", "docs/reference.md"] {
        let text = read(doc);
        for line in &lines {
            assert!(
                text.contains(&format!("    {line}\n")),
                "{doc} lacks {line}"
            );
        }
        let flat = words(&text);
        assert!(
            flat.contains(&format!("udevadm trigger {trigger}")),
            "{doc}: the trigger"
        );
    }
}

/// Where the Debian package installs each file of the repository (`[package.metadata.deb]`
/// assets; a source ending in `*.md` stands for every such file of its directory).
fn installed() -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
    let manifest = read("Cargo.toml");
    let assets = manifest
        .split("assets = [")
        .nth(1)
        .unwrap()
        .split("\n]")
        .next()
        .unwrap();
    let mut files = Vec::new();
    for line in assets.lines().filter(|l| l.trim_start().starts_with("[\"")) {
        let fields: Vec<&str> = line.split('"').collect();
        let (source, dest) = (fields[1], std::path::Path::new("/").join(fields[3]));
        let sources: Vec<std::path::PathBuf> = match source.strip_suffix("*.md") {
            Some(dir) => std::fs::read_dir(xtask::root().join(dir))
                .unwrap()
                .flatten()
                .map(|e| std::path::Path::new(dir).join(e.file_name()))
                .filter(|p| p.extension().is_some_and(|e| e == "md"))
                .collect(),
            None => vec![source.into()],
        };
        for source in sources {
            let target = if fields[3].ends_with('/') {
                dest.join(source.file_name().unwrap())
            } else {
                dest.clone()
            };
            files.push((source, target));
        }
    }
    files
}

/// Every relative link of the README and docs/ leads, once the package is installed, to a file it
/// installs (in /usr/share/doc/lllqos: the README, docs/, the chart, the example), as it does in
/// the source tree.
#[test]
fn every_link_of_the_docs_resolves_where_the_package_installs_them() {
    let installed = installed();
    let targets: BTreeSet<std::path::PathBuf> = installed.iter().map(|(_, t)| t.clone()).collect();
    let mut checked = 0;
    for (source, target) in installed
        .iter()
        .filter(|(s, _)| s.extension().is_some_and(|e| e == "md"))
    {
        let text = read(source.to_str().unwrap());
        for link in text
            .split("](")
            .skip(1)
            .filter_map(|rest| rest.split(')').next())
        {
            let link = link.split('#').next().unwrap();
            if link.is_empty() || link.contains("://") {
                continue;
            }
            assert!(
                xtask::root()
                    .join(source.parent().unwrap())
                    .join(link)
                    .exists(),
                "{}: {link}",
                source.display()
            );
            let resolved = target.parent().unwrap().join(link);
            let resolved: std::path::PathBuf =
                resolved
                    .components()
                    .fold(std::path::PathBuf::new(), |mut path, c| {
                        match c {
                            std::path::Component::ParentDir => {
                                path.pop();
                            }
                            c => path.push(c),
                        }
                        path
                    });
            assert!(
                targets.contains(&resolved),
                "{}: {link} is {} once installed, which the package lacks",
                source.display(),
                resolved.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "{checked} links");
}

/// CHANGELOG.md and the Debian changelog date each release the same day.
#[test]
fn the_changelogs_agree_on_each_release_date() {
    let upstream = read("CHANGELOG.md");
    let debian = read("contrib/debian/changelog");
    let mut checked = 0;
    let lines: Vec<&str> = debian.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix("lllqos (") else {
            continue;
        };
        let version = rest.split(['-', ')']).next().unwrap();
        let trailer = lines[i..]
            .iter()
            .find_map(|l| l.strip_prefix(" -- "))
            .unwrap();
        let date = trailer.split("  ").nth(1).unwrap();
        let day = std::process::Command::new("date")
            .args(["-u", "-d", date, "+%Y-%m-%d"])
            .output()
            .unwrap();
        let day = String::from_utf8(day.stdout).unwrap();
        let heading = format!("## [{version}] - {}", day.trim());
        assert!(upstream.contains(&heading), "CHANGELOG.md lacks {heading}");
        checked += 1;
    }
    assert!(checked > 0);
}
