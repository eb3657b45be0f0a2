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

/// Every page in the sections a man page of a command has (chrt(1), timeout(1)), with a NAME of
/// one line; lllqos(1)'s SYNOPSIS and SEE ALSO name every subcommand.
#[test]
fn every_man_page_is_complete() {
    let pages = xtask::generate().unwrap();
    let subcommands: Vec<String> = xtask::cli::command()
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for (path, page) in pages.iter().filter(|(p, _)| p.starts_with("man")) {
        let page = String::from_utf8_lossy(page);
        for section in [
            ".SH NAME\n",
            ".SH SYNOPSIS\n",
            ".SH DESCRIPTION\n",
            ".SH OPTIONS\n",
            ".SH \"EXIT STATUS\"\n",
            ".SH EXAMPLES\n",
            ".SH \"SEE ALSO\"\n",
        ] {
            assert!(page.contains(section), "{}: {section}", path.display());
        }
        let name = page.split(".SH NAME\n").nth(1).unwrap();
        assert!(
            name.split('\n').nth(1).unwrap().starts_with(".SH"),
            "{}: NAME",
            path.display()
        );
        assert!(
            page.lines()
                .any(|l| l.starts_with(".TH ") && l.contains(" 20")),
            "{}: a date in .TH",
            path.display()
        );
    }
    let (_, main) = &pages[0];
    let main = String::from_utf8_lossy(main);
    let synopsis = main
        .split(".SH SYNOPSIS")
        .nth(1)
        .unwrap()
        .split(".SH ")
        .next()
        .unwrap();
    let see_also = main.split(".SH \"SEE ALSO\"").nth(1).unwrap();
    for sub in &subcommands {
        let escaped = sub.replace('-', "\\-");
        assert!(
            synopsis.contains(&format!("lllqos {escaped}")),
            "SYNOPSIS lacks {sub}"
        );
        assert!(
            see_also.contains(&format!("lllqos\\-{escaped}")),
            "SEE ALSO lacks {sub}"
        );
    }
}
