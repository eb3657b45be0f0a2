//! The committed man pages and completions must be what the clap definition renders now.

#[test]
fn committed_man_pages_and_completions_are_up_to_date() {
    let root = xtask::root();
    let mut stale = Vec::new();
    for (path, expected) in xtask::generate().unwrap() {
        match std::fs::read(root.join(&path)) {
            Ok(committed) if committed == expected => {}
            _ => stale.push(path.display().to_string()),
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files: {}\nregenerate them with: cargo xtask gen",
        stale.join(", ")
    );
}

#[test]
fn every_option_is_in_the_man_page() {
    let (_, page) = xtask::generate().unwrap().into_iter().next().unwrap();
    let page = String::from_utf8(page).unwrap();
    let command = xtask::cli::command();
    let subcommands = command.get_subcommands().cloned().collect::<Vec<_>>();
    for cmd in std::iter::once(&command).chain(&subcommands) {
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                // roff escapes the dashes: \-\-latency
                let escaped = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(
                    page.contains(&escaped),
                    "--{long} of {} is missing",
                    cmd.get_name()
                );
            }
        }
    }
    for section in [
        "EXIT STATUS",
        "SIGNALS",
        "ENVIRONMENT",
        "FILES",
        "EXAMPLES",
        "SEE ALSO",
        "LLLQOS_LATENCY_US",
    ] {
        assert!(page.contains(section), "{section} is missing");
    }
}
