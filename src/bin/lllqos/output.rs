//! What lllqos writes: one-line messages on stderr (through the `say!` macro), a command's output on
//! stdout, and the few phrases every part says the same way.
//!
//! Errors carry the prefix `lllqos: `, warnings `lllqos: warning: `; [`crate::app`] prints errors,
//! once. A message quotes what the user typed, which may hold control characters: they are shown
//! escaped ([`printable`]), so that nothing typed reaches the terminal or the journal raw.

use std::io::Write;

use lllqos::Latency;
use lllqos::internal::oserror::os_message;

use crate::exit::ExitStatus;

/// Writes `message` and a newline on stderr, made [`printable`]. A closed, full or broken stderr
/// must not stop lllqos: it may hold a request that it has yet to release, so a failed write is
/// dropped, never a panic.
pub fn say(message: &str) {
    let line = printable(message);
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// `text` made safe for a terminal and a log: each control character is written as an escape
/// (`\n`, `\t`, `\r`, `\xHH`), the way quoting tools show them, and a backslash stays itself.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// Writes a command's output to stdout. A reader that went away (`lllqos status | head -1`) ends
/// lllqos quietly by SIGPIPE, as any filter ends; another write error (a full disk) is one line on
/// stderr and status 125. Called only once nothing is held.
pub fn emit(text: &str) -> ExitStatus {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitStatus::Exited(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitStatus::Signaled(libc::SIGPIPE),
        Err(e) => {
            say!("lllqos: write error: {}", os_message(&e));
            ExitStatus::Failure
        }
    }
}

/// An error and its causes on one line, `what: why: why`, each operating-system error as C tools
/// print it (`Permission denied`, never `(os error 13)` nor `EACCES`).
pub fn describe_error(error: &anyhow::Error) -> String {
    let parts: Vec<String> = (error.chain())
        .map(|cause| {
            if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                os_message(io)
            } else if let Some(errno) = cause.downcast_ref::<nix::errno::Errno>() {
                errno.desc().to_owned()
            } else {
                cause.to_string()
            }
        })
        .collect();
    parts.join(": ")
}

/// A limit in force for people: `20 us`, or `no constraint`.
pub fn describe_limit(limit: Option<Latency>) -> String {
    limit.map_or_else(|| "no constraint".to_owned(), |l| l.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            printable("a\nb\x1b[31m\u{7f}c\u{9b}"),
            "a\\nb\\x1b[31m\\x7fc\\x9b"
        );
        assert_eq!(printable("µs 'x' \\"), "µs 'x' \\");
    }

    #[test]
    fn errors_name_the_cause_as_c_tools_do() {
        let io = std::io::Error::from_raw_os_error(libc::EACCES);
        let error = anyhow::Error::new(io).context("cannot block signals");
        assert_eq!(
            describe_error(&error),
            "cannot block signals: Permission denied"
        );
        let errno = anyhow::Error::new(nix::errno::Errno::ENOENT).context("--plot x");
        assert_eq!(
            describe_error(&error.context("outer")),
            "outer: cannot block signals: Permission denied"
        );
        assert_eq!(
            describe_error(&errno),
            "--plot x: No such file or directory"
        );
    }

    #[test]
    fn limits_read_as_people_say_them() {
        assert_eq!(describe_limit(None), "no constraint");
        assert_eq!(describe_limit(Latency::from_micros(20)), "20 us");
    }

    proptest::proptest! {
        #[test]
        fn a_printable_text_has_no_control_character(text in ".*") {
            proptest::prop_assert!(!printable(&text).chars().any(char::is_control));
        }
    }
}
