//! The man pages: lllqos(1) and one page per subcommand, each in the sections chrt(1) and
//! timeout(1) have: NAME, SYNOPSIS, DESCRIPTION, OPTIONS, EXIT STATUS, then what the page is about
//! (signals, environment, files, security for lllqos(1); the JSON keys or the output for a
//! subcommand), EXAMPLES, SEE ALSO. Everything comes from the one command-line definition
//! (`lllqos::cli`): the options, the descriptions, the examples, the JSON keys.

mod pages;
mod sections;

use roff::{Inline, Roff, bold, italic, roman};

use crate::{built, cli, root};

/// The date of the release the pages describe: the newest dated version heading of CHANGELOG.md
/// (`## [0.1.0] - 2026-11-30`), so that the pages change only with a release.
pub fn release_date() -> std::io::Result<String> {
    let changelog = std::fs::read_to_string(root().join("CHANGELOG.md"))?;
    changelog
        .lines()
        .filter_map(|line| line.strip_prefix("## ["))
        .find_map(|line| Some(line.split_once("] - ")?.1.trim().to_owned()))
        .ok_or_else(|| std::io::Error::other("CHANGELOG.md has no dated version heading"))
}

/// `lllqos 0.1.0`: the footer's source.
fn source() -> String {
    format!("lllqos {}", built().get_version().unwrap_or_default())
}

/// `.TH NAME 1 DATE SOURCE "User Commands"`.
fn title(roff: &mut Roff, name: &str, date: &str) {
    roff.control("TH", [name, "1", date, &source(), "User Commands"]);
}

/// lllqos(1).
pub fn main_page(date: &str) -> std::io::Result<Vec<u8>> {
    let command = built();
    let mut r = Roff::new();
    title(&mut r, "lllqos", date);
    r.control("SH", ["NAME"]);
    r.text([roman(format!("lllqos - {}", about(&command)))]);
    r.control("SH", ["SYNOPSIS"]);
    r.text([
        bold("lllqos"),
        roman(" ["),
        italic("OPTIONS"),
        roman("] [--] ["),
        italic("COMMAND"),
        roman(" ["),
        italic("ARGS"),
        roman("]...]"),
    ]);
    for sub in command.get_subcommands() {
        r.control("br", []);
        r.text(synopsis(sub, &format!("lllqos {}", sub.get_name())));
    }
    description(&mut r, &command);
    let mut out = r.render().into_bytes();
    let man = clap_mangen::Man::new(command.clone());
    man.render_options_section(&mut out)?;
    out.extend(subcommands(&command).render().into_bytes());
    for sub in command.get_subcommands() {
        // The subcommands' options, under their own heading, on this page too.
        let heading = format!("lllqos {} options", sub.get_name());
        let sub = sub
            .clone()
            .mut_args(|arg| arg.help_heading(heading.clone()));
        clap_mangen::Man::new(sub).render_options_section(&mut out)?;
    }
    out.extend(sections::sections().render().into_bytes());
    Ok(one_preamble(out))
}

/// lllqos-NAME(1).
pub fn subcommand_page(name: &str, date: &str) -> std::io::Result<Vec<u8>> {
    let command = built();
    let sub = command
        .find_subcommand(name)
        .ok_or_else(|| std::io::Error::other(format!("no subcommand {name}")))?;
    let mut r = Roff::new();
    title(&mut r, &format!("lllqos-{name}"), date);
    r.control("SH", ["NAME"]);
    r.text([roman(format!("lllqos-{name} - {}", about(sub)))]);
    r.control("SH", ["SYNOPSIS"]);
    r.text(synopsis(sub, &format!("lllqos {name}")));
    description(&mut r, sub);
    let mut out = r.render().into_bytes();
    clap_mangen::Man::new(sub.clone()).render_options_section(&mut out)?;
    let mut r = Roff::new();
    pages::exit_status(&mut r, name);
    pages::about(&mut r, name);
    examples(&mut r, cli::subcommand_examples(name));
    r.control("SH", ["SEE ALSO"]);
    let mut see_also = vec![bold("lllqos"), roman("(1)")];
    for other in command.get_subcommands().filter(|s| s.get_name() != name) {
        see_also.push(roman(", "));
        see_also.push(bold(format!("lllqos-{}", other.get_name())));
        see_also.push(roman("(1)"));
    }
    see_also.push(roman(". "));
    r.control("PP", []).text(see_also);
    documentation(&mut r);
    out.extend(r.render().into_bytes());
    Ok(one_preamble(out))
}

/// The page with roff's apostrophe preamble once, at the top: each part rendered on its own (by
/// roff and clap_mangen) brings its own copy.
fn one_preamble(page: Vec<u8>) -> Vec<u8> {
    const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    let text = String::from_utf8_lossy(&page);
    let body = text.replace(PREAMBLE, "");
    format!("{PREAMBLE}{body}").into_bytes()
}

/// The one-line summary of a command, without its final period (NAME's form).
fn about(command: &clap::Command) -> String {
    let about = command
        .get_about()
        .map(ToString::to_string)
        .unwrap_or_default();
    about.trim_end_matches('.').to_owned()
}

/// DESCRIPTION: the long description, paragraph by paragraph.
fn description(r: &mut Roff, command: &clap::Command) {
    r.control("SH", ["DESCRIPTION"]);
    let long = (command.get_long_about())
        .or(command.get_about())
        .map(ToString::to_string)
        .unwrap_or_default();
    for paragraph in long.split("\n\n") {
        para(r, &paragraph.replace('\n', " "));
    }
}

/// A synopsis line: `PROGRAM` and every option with its value (`[-l|--latency VALUE]`).
fn synopsis(command: &clap::Command, program: &str) -> Vec<Inline> {
    let mut line = vec![bold(program.to_owned())];
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version") || arg.is_hide_set() {
            continue;
        }
        let names: Vec<String> = (arg.get_short().map(|s| format!("-{s}")).into_iter())
            .chain(arg.get_long().map(|l| format!("--{l}")))
            .collect();
        let value = (arg.get_value_names())
            .and_then(|names| names.first())
            .map(ToString::to_string)
            .unwrap_or_else(|| id.to_uppercase());
        line.push(roman(" ["));
        if arg.is_positional() {
            line.push(italic(value));
        } else {
            line.push(bold(names.join("|")));
            if arg.get_action().takes_values() {
                line.push(roman(" "));
                line.push(italic(value));
            }
        }
        line.push(roman("]"));
    }
    line
}

/// lllqos(1)'s list of the subcommands, each with its page.
fn subcommands(command: &clap::Command) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["SUBCOMMANDS"]);
    for sub in command.get_subcommands() {
        roff.control("TP", [])
            .text([bold(format!("lllqos {}", sub.get_name()))])
            .text([roman(format!("{}. ", about(sub)))]);
        roff.text([
            roman("Its options are listed below and in "),
            bold(format!("lllqos-{}", sub.get_name())),
            roman("(1)."),
        ]);
    }
    roff.control("PP", []).text([roman(
        "A command whose name is also a subcommand's runs after --, as in lllqos -- status.",
    )]);
    roff
}

/// EXAMPLES: what each does, then the command line.
fn examples(r: &mut Roff, examples: &[(&str, &str)]) {
    r.control("SH", ["EXAMPLES"]);
    for (example, what) in examples {
        r.control("TP", [])
            .text([roman(format!("{what}:"))])
            .text([bold(*example)]);
    }
}

/// Where the rest of the documentation is, installed and in the source.
fn documentation(r: &mut Roff) {
    r.text([
        roman("The documentation, with the JSON keys and every metric: "),
        italic("/usr/share/doc/lllqos/README.md"),
        roman(" and "),
        italic("/usr/share/doc/lllqos/docs/"),
        roman(" (README.md and docs/ of the source)."),
    ]);
}

/// Adds a paragraph (`.PP` then text) to `roff`.
fn para(roff: &mut Roff, text: &str) {
    roff.control("PP", []).text([roman(text)]);
}

/// Adds a tagged paragraph: `tag` in bold, then `text`.
fn item(roff: &mut Roff, tag: &str, text: &str) {
    roff.control("TP", []).text([bold(tag)]).text([roman(text)]);
}
