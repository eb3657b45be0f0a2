//! The shell completions: clap_complete's, and COMMAND completed as a command line of its own
//! (bash and fish), idle-state names after `--max-state`.

use clap_complete::Shell;

use crate::{built, cli};

/// The completion script for `shell`.
pub fn render(shell: Shell) -> Vec<u8> {
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
    out
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
