//! The `lllqos` command: a wrapper that holds a CPU wake-up latency request while a command runs.
//!
//! The request types and guards are the library's (`lllqos::Lease`, `lllqos::CpuConstraint`);
//! everything that makes a command wrapper is here, private to the binary:
//!
//! - [`cli`]: the command line, the one definition that the man page and completions are rendered
//!   from (the xtask includes this file).
//! - [`app`]: what a command line does, and where errors are printed (`trace` also warns of lost
//!   events as they happen).
//! - [`spawn`], [`run`], [`sentinel`] and [`sigset`]: starting the command as a direct exec would,
//!   relaying signals, reaping, holding; [`relayed`]: which signals are relayed (the xtask includes
//!   it too, for the man page).
//! - [`exit`]: the wrapper's exit statuses (125, 126, 127, the child's, the child's signal).
//! - [`status`], [`measure`], [`trace`] and [`ocihook`]: the subcommands; [`plot`]: `measure
//!   --plot`'s chart; [`request`]: what to place, from options or a container's annotations.
//!
//! `no_main`: Rust's runtime start-up would ignore SIGPIPE and open /dev/null on closed standard
//! descriptors before `main`, and the command lllqos runs must inherit neither change (a direct
//! exec would not make them). lllqos records what it inherited and protects itself instead, in
//! [`spawn::init_process`]. The unit tests build with the test harness's own `main`.
#![cfg_attr(not(test), no_main)]

/// Prints one message on stderr, on one line: control characters in it (an escape sequence or a
/// newline in an argument that an error message quotes) are shown escaped, so that nothing a user
/// typed reaches the terminal or the journal raw. A closed, full or broken stderr must not stop
/// lllqos: it may hold a request that it has yet to release, so a failed write is dropped, never
/// a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        let line = crate::printable(&format!($($arg)*));
        let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
    }};
}

mod app;
mod cli;
// Shared with the library, from the same files: the library keeps them private, so the binary
// compiles its own copy (each crate uses a part of them).
#[allow(dead_code)]
mod decimal;
mod exit;
#[allow(dead_code)]
mod file;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod libm;
mod measure;
mod ocihook;
mod oserror;
mod plot;
mod privilege;
mod relayed;
mod request;
mod run;
mod sched;
mod sentinel;
mod sigset;
mod spawn;
mod status;
mod trace;

/// `text` made safe for a terminal and a log: each control character is written as an escape
/// (`\n`, `\t`, `\r`, `\xHH`), the way quoting tools show them, and a backslash stays itself.
fn printable(text: &str) -> String {
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

/// The C `main` the program starts at. Under `cargo test` the harness has its own `main`, and this
/// one is compiled (so that what it reaches counts as used) but not exported.
#[cfg_attr(not(test), unsafe(export_name = "main"))]
#[cfg_attr(test, allow(dead_code))]
extern "C" fn lllqos_main(
    argc: std::ffi::c_int,
    argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    // From the C start-up's own arguments: Rust's `std::env::args` is filled by its own `main`
    // (on musl; glibc also hands them to an initializer), which this program does not have.
    let args = (0..usize::try_from(argc).unwrap_or(0)).map(|i| {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: the C runtime passes argc valid, NUL-terminated strings in argv.
        let arg = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
        std::ffi::OsStr::from_bytes(arg.to_bytes()).to_owned()
    });
    app::main(args).exit()
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            printable("a\nb\x1b[31m\u{7f}c\u{9b}"),
            "a\\nb\\x1b[31m\\x7fc\\x9b"
        );
        assert_eq!(printable("µs 'x' \\"), "µs 'x' \\");
    }

    proptest::proptest! {
        #[test]
        fn a_printable_text_has_no_control_character(text in ".*") {
            proptest::prop_assert!(!printable(&text).chars().any(char::is_control));
        }
    }
}
