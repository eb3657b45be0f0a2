//! Renders lllqos's man pages and shell completions from its clap definition
//! ([`cli::command`]), so that they can never describe options the binary does not have.
//!
//! `cargo xtask gen` writes them into `man/` and `completions/`, where they are committed (users
//! and packagers get them without building anything); `xtask/tests/up_to_date.rs` fails when the
//! committed files differ from what this renders now. Nothing is generated at build time: build
//! scripts must not write into the source tree.
//!
//! The man page is clap_mangen's rendering of the options, plus the sections a command wrapper needs
//! and clap knows nothing about: exit status, signals, environment, files, examples.

use std::path::PathBuf;

/// The command line's one definition, which the `lllqos` binary parses (compiled once, in the
/// library, hidden from its documented API).
pub use lllqos::cli;

use lllqos::internal::sigset::{MAX_SIGNAL, NOT_RELAYED};

/// `every signal from 1 to 64, real-time signals included, except SIGKILL, SIGSTOP, SIGTTIN and
/// SIGTTOU`, from the list the binary relays by: the man page says it, and the README must.
pub fn relayed_signals() -> String {
    let names: Vec<&str> = NOT_RELAYED.iter().map(|&(_, name)| name).collect();
    let (last, rest) = names.split_last().map_or(("", &[][..]), |(l, r)| (*l, r));
    format!(
        "every signal from 1 to {MAX_SIGNAL}, real-time signals included, except {} and {last}",
        rest.join(", ")
    )
}

use clap_complete::{Generator, Shell};
use roff::{Roff, bold, italic, roman};

/// Every generated file: its path relative to the repository root, and its contents.
pub fn generate() -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = vec![(PathBuf::from("man/lllqos.1"), man_page()?)];
    for sub in built().get_subcommands() {
        let name = sub.get_name();
        files.push((
            PathBuf::from(format!("man/lllqos-{name}.1")),
            subcommand_page(name)?,
        ));
    }
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        let mut command = cli::command();
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut command, "lllqos", &mut out);
        match shell {
            Shell::Bash => out.extend(bash_command_position().as_bytes()),
            Shell::Fish => out.extend(fish_command_position().as_bytes()),
            // zsh completes COMMAND with _cmdambivalent, from ValueHint::CommandWithArguments.
            Shell::Zsh => out = zsh_state_names(&out),
            _ => {}
        }
        files.push((
            PathBuf::from("completions").join(shell.file_name("lllqos")),
            out,
        ));
    }
    Ok(files)
}

/// lllqos's options that take a value (`-l`, `--latency`, ...), from the clap definition.
fn options_with_values() -> Vec<String> {
    let command = built();
    let mut options = Vec::new();
    for arg in command
        .get_arguments()
        .filter(|a| !a.is_positional() && a.get_action().takes_values())
    {
        options.extend(arg.get_short().map(|c| format!("-{c}")));
        options.extend(arg.get_long().map(|l| format!("--{l}")));
    }
    options
}

/// clap_complete's bash script completes lllqos's options but not COMMAND. This wrapper finds where
/// COMMAND starts (the first word that is neither an option nor an option's value, or the word
/// after `--`) and completes from there as a command line of its own, the way bash-completion
/// does for sudo, nice and env (`_command_offset`), or with command names and files without it.
fn bash_command_position() -> String {
    let valued = options_with_values().join("|");
    let subcommands: Vec<String> = built()
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    let subcommands = subcommands.join("|");
    format!(
        r#"
# Added by `cargo xtask gen`: COMMAND and its arguments complete as a command line of their own.
_lllqos_idle_states() {{    # --max-state: the idle-state names this machine lists
    local IFS=$'\n'
    COMPREPLY=( $(compgen -W "$(sort -u {STATE_NAMES} 2>/dev/null)" -- "${{COMP_WORDS[COMP_CWORD]}}") )
    (( ${{#COMPREPLY[@]}} )) && COMPREPLY=( $(printf '%q\n' "${{COMPREPLY[@]}}") )
}}
_lllqos_with_command() {{
    if (( COMP_CWORD > 1 )) && [[ "${{COMP_WORDS[COMP_CWORD-1]}}" == --max-state ]]; then
        _lllqos_idle_states
        return
    fi
    local i=1
    while (( i < COMP_CWORD )); do
        case "${{COMP_WORDS[i]}}" in
            --) (( i++ )); break ;;
            {valued}) (( i += 2 )) ;;
            -*) (( i++ )) ;;
            *) break ;;
        esac
    done
    if (( i > COMP_CWORD )) || {{ (( i == COMP_CWORD )) && [[ "${{COMP_WORDS[i]}}" == -* && "${{COMP_WORDS[i-1]}}" != -- ]]; }}; then
        _lllqos "$@"    # an option, or an option's value
        return
    fi
    if (( i == 1 && COMP_CWORD > 1 )); then
        case "${{COMP_WORDS[1]}}" in
            {subcommands}) _lllqos "$@"; return ;;    # a subcommand's options
        esac
    fi
    if declare -F _command_offset >/dev/null; then
        _command_offset "$i"
    elif (( i == COMP_CWORD )); then
        COMPREPLY=( $(compgen -c -- "${{COMP_WORDS[COMP_CWORD]}}") )
        (( i == 1 )) && COMPREPLY+=( $(compgen -W "{subcommands_words}" -- "${{COMP_WORDS[1]}}") )
    else
        COMPREPLY=( $(compgen -f -- "${{COMP_WORDS[COMP_CWORD]}}") )
    fi
}}
complete -F _lllqos_with_command -o bashdefault -o default lllqos
"#,
        subcommands_words = subcommands.replace('|', " "),
    )
}

/// Where the kernel names each CPU's idle states: `--max-state` completes from these files.
const STATE_NAMES: &str = "/sys/devices/system/cpu/cpu*/cpuidle/state*/name";

/// zsh: `--max-state` completes the idle-state names this machine lists.
fn zsh_state_names(generated: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(generated).replace(
        ":NAME[,NAME...]:_default'",
        ":NAME[,NAME...]:_lllqos_idle_states'",
    );
    let helper = format!(
        "(( $+functions[_lllqos_idle_states] )) ||\n\
         _lllqos_idle_states() {{\n    \
             local -a states\n    \
             states=(${{(f)\"$(sort -u {STATE_NAMES} 2>/dev/null)\"}})\n    \
             _describe -t idle-states 'idle state' states\n\
         }}\n\n"
    );
    let at = text.find("if [ \"$funcstack[1]\"").unwrap_or(text.len());
    let mut out = text[..at].to_owned();
    out.push_str(&helper);
    out.push_str(&text[at..]);
    out.into_bytes()
}

/// fish: after lllqos's options, complete COMMAND and its arguments as fish does for sudo and nice.
fn fish_command_position() -> String {
    let subcommands: Vec<String> = built()
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    format!(
        "\n# Added by `cargo xtask gen`: COMMAND and its arguments complete as a command line of their own.\n\
         complete -c lllqos -n \"not __fish_lllqos_using_subcommand {}\" -x -a \"(__fish_complete_subcommand -- {})\"\n\
         # --max-state: the idle-state names this machine lists.\n\
         complete -c lllqos -l max-state -x -a \"(sort -u {STATE_NAMES} 2>/dev/null)\"\n",
        subcommands.join(" "),
        options_with_values().join(" ")
    )
}

/// The repository root (the parent of this crate's directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn built() -> clap::Command {
    let mut command = cli::command();
    command.build();
    command
}

fn man_page() -> std::io::Result<Vec<u8>> {
    let command = built();
    let man = clap_mangen::Man::new(command.clone()).manual("User Commands");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    synopsis().to_writer(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    subcommands(&command).to_writer(&mut out)?;
    for sub in command.get_subcommands() {
        // The subcommands' options, under their own heading, on this page too.
        let heading = format!("lllqos {} options", sub.get_name());
        let sub = sub
            .clone()
            .mut_args(|arg| arg.help_heading(heading.clone()));
        clap_mangen::Man::new(sub).render_options_section(&mut out)?;
    }
    sections().to_writer(&mut out)?;
    Ok(out)
}

fn subcommand_page(name: &str) -> std::io::Result<Vec<u8>> {
    let command = built();
    // The text after the options is --help's; the page has its own sections (trace_output).
    let sub = (command.find_subcommand(name))
        .ok_or_else(|| std::io::Error::other(format!("no subcommand {name}")))?
        .clone()
        .after_long_help(None::<&str>)
        .after_help(None::<&str>);
    // The footer carries the package's version, as lllqos(1)'s does.
    let source = format!("lllqos {}", command.get_version().unwrap_or_default());
    let man = clap_mangen::Man::new(sub)
        .manual("User Commands")
        .source(source);
    let mut out = Vec::new();
    man.render(&mut out)?;
    if name == "trace" {
        trace_output().to_writer(&mut out)?;
    }
    let mut see_also = Roff::new();
    see_also
        .control("SH", ["SEE ALSO"])
        .text([bold("lllqos"), roman("(1)")]);
    see_also.to_writer(&mut out)?;
    Ok(out)
}

/// The three forms of the command line (clap_mangen's would list every flag on one line).
fn synopsis() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([
        bold("lllqos"),
        roman(" ["),
        italic("OPTIONS"),
        roman("] [--] ["),
        italic("COMMAND"),
        roman(" ["),
        italic("ARGS"),
        roman("]...]"),
    ]);
    roff.control("br", []);
    roff.text([bold("lllqos status"), roman(" [--json]")]);
    roff.control("br", []);
    roff.text([
        bold("lllqos measure"),
        roman(" ["),
        italic("OPTIONS"),
        roman("]"),
    ]);
    roff.control("br", []);
    roff.text([
        bold("lllqos trace"),
        roman(" ["),
        italic("OPTIONS"),
        roman("]"),
    ]);
    roff.control("br", []);
    roff.text([bold("lllqos recover")]);
    roff
}

/// lllqos-trace(1)'s description of its output, the JSON keys from `cli::TRACE_JSON_KEYS`.
fn trace_output() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["OUTPUT"]);
    para(
        &mut r,
        "The log starts with what is in force (action held), then one line per change of a request: time, pid and command of the task that made it, target, action, value, and the target's limit before and after. Per CPU, a value of 0 us is what the sysfs file shows as n/a, and no constraint is what it shows as 0. Events the kernel dropped when its ring buffer overflowed are counted on stderr, never silently. Ended by SIGINT, SIGTERM or SIGHUP (or --duration), lllqos trace exits 0; SIGINT and SIGTERM end it even when they were ignored when it started (a background job of a script, lllqos trace &, starts with SIGINT ignored), SIGHUP ignored at start (nohup) stays ignored; another signal whose default is to end a process ends it too, and it then dies of that signal. When its standard output is a pipe whose reader has gone (lllqos trace | head -n 1), it ends at once by SIGPIPE, as tail -f does, not at its next line. It removes its tracing instance on every way out but SIGKILL, and the next lllqos trace removes what a killed one left (it tells by a lock the trace holds on its instance, so a trace in another PID namespace is never taken for dead). Where tracefs is not mounted, lllqos trace mounts it in a mount namespace of its own: nobody else sees the mount. Not root, or a kernel without tracefs or the power:pm_qos_* events: exit status 125.",
    );
    para(
        &mut r,
        "PID namespaces: the kernel's events carry the pids of the host's namespace. The held lines name each per-CPU holder by the pid the lock on its holder file shows in lllqos trace's own namespace, so that a holder that is pid 1 of a container is named by its pid on the host. lllqos trace in a container of its own leaves its own reads out wherever it runs, but the pids of later lines are the host's, which its /proc does not show, and --pid compares them.",
    );
    para(
        &mut r,
        "With --json, one JSON object per line (JSON Lines), a stable interface, with these keys (others may be added):",
    );
    for (key, meaning) in cli::TRACE_JSON_KEYS {
        item(&mut r, key, meaning);
    }
    r
}

fn subcommands(command: &clap::Command) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["SUBCOMMANDS"]);
    for sub in command.get_subcommands() {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        roff.control("TP", [])
            .text([bold(format!("lllqos {}", sub.get_name()))])
            .text([roman(format!("{about}. "))]);
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

/// Adds a paragraph (`.PP` then text) to `roff`.
fn para(roff: &mut Roff, text: &str) {
    roff.control("PP", []).text([roman(text)]);
}

/// Adds a tagged paragraph: `tag` in bold, then `text`.
fn item(roff: &mut Roff, tag: &str, text: &str) {
    roff.control("TP", []).text([bold(tag)]).text([roman(text)]);
}

/// The sections clap does not know: how lllqos behaves as a wrapper and where it keeps state.
fn sections() -> Roff {
    let mut r = Roff::new();

    r.control("SH", ["EXIT STATUS"]);
    para(
        &mut r,
        "lllqos exits with the status of COMMAND. Its own statuses follow env(1), nice(1) and timeout(1):",
    );
    item(
        &mut r,
        "125",
        "lllqos itself failed: a usage error, a bad value or CPU list, no such --pid, or --strict and the request could not be placed; nothing was run and nothing was changed (a per-CPU change that failed half-way is undone first; where it cannot be, the message names each CPU that stays changed, its value, and its value before). Also: a per-CPU value could not be restored after COMMAND exited 0 (the message names each CPU that stays changed, its value and its value before lllqos, and lllqos recover restores them once the cause is fixed); when COMMAND failed, its own status is kept.",
    );
    item(
        &mut r,
        "126",
        "COMMAND was found but could not be executed.",
    );
    item(&mut r, "127", "COMMAND was not found.");
    item(
        &mut r,
        "0",
        "A hold (no COMMAND) ended: a release signal arrived, or every --pid process exited.",
    );
    para(
        &mut r,
        "When COMMAND is killed by a signal, lllqos releases the request, restores what it changed, disables its own core dump and dies of the same signal, so that the caller sees a signal death, not 128+N.",
    );
    para(
        &mut r,
        "A per-CPU holder that waits for another lllqos to finish with the registry says so after a second (waiting for /run/lllqos/lock held by pid N). SIGHUP, SIGINT, SIGQUIT or SIGTERM end the wait at once, with nothing placed: a hold exits 0 (SIGQUIT: dies of it), and a wrapper dies of the signal without running COMMAND, as COMMAND would have.",
    );

    r.control("SH", ["SIGNALS"]);
    para(
        &mut r,
        "COMMAND runs in lllqos's process group and session, so signals generated by the terminal (Ctrl-C, Ctrl-\\, Ctrl-Z, window size changes, hang-up) reach it directly and are not relayed a second time.",
    );
    para(
        &mut r,
        &format!(
            "A signal sent to lllqos with kill(2) is relayed to COMMAND exactly once: {}. A signal sent by COMMAND, or by a process in a group led by COMMAND or by lllqos, is not relayed back; nor is a signal sent to lllqos's whole process group (kill 0 in a script, timeout(1), kill -TERM -PGID), which COMMAND received already. lllqos tells the two apart with a witness in its group: a sleeping process named qos-sentinel that blocks every signal and dies with lllqos.",
            relayed_signals()
        ),
    );
    para(
        &mut r,
        "While COMMAND runs, lllqos does not die of SIGINT, SIGQUIT or SIGHUP: it ends when COMMAND ends, with its status. When COMMAND stops (Ctrl-Z), lllqos stops itself with the same signal, so the shell sees the job stopped; fg continues both. SIGTTIN and SIGTTOU are never relayed.",
    );
    para(
        &mut r,
        "A signal ignored when lllqos starts (nohup, a background job of a script, SIGPIPE under systemd) stays ignored for COMMAND, and every other signal has its default, as after a direct exec. COMMAND starts with an empty signal mask, closed standard descriptors closed, the environment as lllqos got it, and lllqos's scheduling policy, priority and nice value (even under SCHED_RESET_ON_FORK). Signals are blocked before the request is placed, so one that arrives while COMMAND is being started is relayed once it exists.",
    );
    para(
        &mut r,
        "As PID 1 of a PID namespace, lllqos also reaps the orphaned processes reparented to it.",
    );
    para(
        &mut r,
        "With --descendants, lllqos is the child subreaper of COMMAND: the processes COMMAND leaves running are reparented to lllqos as their parents exit, and lllqos reaps them. While COMMAND runs, signals are relayed to it alone, and one that ends a process (SIGTERM, SIGINT, SIGHUP...) also reaches, once COMMAND has exited, every process still below lllqos (one that ignores it keeps the request held); once COMMAND has exited, a relayed signal goes to every process below lllqos (through a pidfd each, so a reused pid is never signalled), and lllqos exits with COMMAND's status when the last of them has exited. Under systemd, a forking daemon runs as Type=exec with lllqos --descendants as the main process: systemd would wait for a Type=forking start process to exit.",
    );
    para(
        &mut r,
        "Without COMMAND, SIGTERM, SIGINT and SIGHUP end the hold (status 0); any other signal whose default is to end a process (real-time signals included) ends it too, and lllqos then dies of that signal after releasing the request. SIGINT and SIGTERM end a hold even when they were ignored when lllqos started (lllqos -l 0 & in a script starts with SIGINT ignored, and kill -INT $! must still end it): there is no command to inherit their disposition. SIGHUP ignored at start (nohup) stays ignored, and other ignored signals too. lllqos measure and lllqos trace do the same.",
    );

    r.control("SH", ["ENVIRONMENT"]);
    item(
        &mut r,
        "LLLQOS_LATENCY_US",
        "Set in COMMAND's environment to the requested value in microseconds when the request is in force (with --max-state, the exit latency it resolved to; with limits that differ per CPU, the strictest); removed when it is not (the node is missing or not permitted and --strict was not given).",
    );
    item(
        &mut r,
        "LLLQOS_CPUS",
        "With --cpu: the CPUs constrained, as a cpulist. Removed otherwise.",
    );
    item(
        &mut r,
        "NOTIFY_SOCKET",
        "Without COMMAND: once the request is in force, lllqos sends READY=1 there (the sd_notify protocol), so that a Type=notify unit becomes active only then. With COMMAND it is left to COMMAND.",
    );
    item(
        &mut r,
        "LLLQOS_FD",
        "With --pass-fd, while a global request is in force: the number of the request's descriptor, which COMMAND inherits. Writing a 4-byte native-endian s32 to it changes the value in force; closing it in every process that has it ends the request. Removed otherwise, and the descriptor is not inherited.",
    );
    item(
        &mut r,
        "LLLQOS_CONTAINER",
        "Set by lllqos oci-hook (and lllqos nri) in the environment of the lllqos that holds a container's request: the container's id, which status and metrics name the request after. lllqos reads it from other processes, never from its own environment.",
    );
    item(
        &mut r,
        "LLLQOS_SYSFS_CPU",
        "For tests: a directory laid out as /sys/devices/system/cpu from which lllqos reads idle states (names, exit latencies, counters, the cpuidle driver) instead of the kernel's; CPUs, their resume latency and the node are always the kernel's. Ignored when lllqos is privileged.",
    );

    r.control("SH", ["FILES"]);
    item(
        &mut r,
        "/dev/cpu_dma_latency",
        "The global CPU latency request. A request lives as long as the open file: lllqos opens it close-on-exec and writes the value as one 4-byte integer. Reading it gives the limit in force, the minimum over all holders (2000000000 means no constraint).",
    );
    item(
        &mut r,
        "/dev/cpu_wakeup_latency",
        "The system wake-up latency request of Linux 6.19 and later, usable with --device.",
    );
    item(
        &mut r,
        "/sys/devices/system/cpu/cpuN/power/pm_qos_resume_latency_us",
        "A CPU's own resume latency, written by --cpu. 0 in this file means no constraint and n/a means zero tolerance, so --latency 0 is written as n/a. The value persists until someone changes it: lllqos restores it.",
    );
    item(
        &mut r,
        "/sys/devices/system/cpu/cpuN/cpuidle/stateK/",
        "The idle states a CPU may enter (name, exit latency, disable), shown by lllqos status. --max-state names a state by its name file and requests its latency file.",
    );
    item(
        &mut r,
        "/run/lllqos/registry.json",
        "The per-CPU registry: per CPU the value to restore and the value lllqos wrote (and, during a change, the value it is about to write, so that a change cut short by SIGKILL is finished or undone by the next lllqos); per holder its pid, CPUs, latency and holder file. Guarded by /run/lllqos/lock; removed when nothing is held. A holder killed by SIGKILL leaves its CPUs constrained until the next lllqos that changes the registry restores them; lllqos recover does it when no other lllqos comes (ExecStopPost= of the units in the package).",
    );

    r.control("SH", ["SECURITY"]);
    para(
        &mut r,
        "lllqos may be installed setuid root or with the file capability cap_dac_override so that ordinary users can place requests. It then uses that privilege to open the PM QoS node, to write the per-CPU files of the request it places, and to restore what the registry (/run/lllqos) records, and for nothing else. Everything else runs with the real user's rights, or is refused with one line and status 125 before anything is changed: lllqos gives the privilege up as it starts and takes it back only around those operations; measure --plot creates or replaces only a file the user could, measure --priority gets only the scheduling the user could get, status sees what the user may see; trace, oci-hook and recover are refused; no environment variable changes a path lllqos uses. Before COMMAND is executed, the child takes the real uid and gid (real, effective and saved) and empties every capability set, so COMMAND cannot open the node itself; --device must resolve with the real user's rights and be a genuine PM QoS device node, identified by device number. A udev rule that gives a group the node needs no privileged binary at all.",
    );

    r.control("SH", ["EXAMPLES"]);
    for (example, what) in cli::EXAMPLES {
        r.control("TP", [])
            .text([roman(format!("{what}:"))])
            .text([bold(*example)]);
    }

    r.control("SH", ["SEE ALSO"]);
    let see_also = [
        ("chrt", "1"),
        ("taskset", "1"),
        ("cyclictest", "8"),
        ("cpupower", "1"),
        ("cpupower-idle-set", "1"),
        ("tuned", "8"),
        ("systemd.exec", "5"),
    ];
    let mut inlines = Vec::new();
    for (i, (page, section)) in see_also.iter().enumerate() {
        if i > 0 {
            inlines.push(roman(", "));
        }
        inlines.push(bold(*page));
        inlines.push(roman(format!("({section})")));
    }
    r.control("PP", []).text(inlines);
    r.text([
        roman(". The kernel's documentation: "),
        italic("Documentation/power/pm_qos_interface.rst"),
        roman("."),
    ]);
    r
}
