//! The `lllqos` command: a wrapper that holds a CPU wake-up latency request while a command runs,
//! and the subcommands that show, trace and measure what is in force.
//!
//! The request types and guards are the library's (`lllqos::Lease`, `lllqos::CpuConstraint`), as is
//! the command line's one definition (`lllqos::cli`, which the xtask renders into the man
//! pages). Everything that makes a command wrapper is here, private to the binary, in layers that
//! only ever use the ones below them:
//!
//! ```text
//! main ─ app ─┬─ wrap/      the wrapper: place, spawn, relay and reap, hold, release
//!             └─ commands/  status, measure, trace, metrics, recover, oci-hook
//!                  │
//!  request/  machine  signals  process  output  exit  sched   (leaves: no module above)
//! ```
//!
//! - [`app`]: parses the command line and runs what it asks; every error is printed there, once.
//! - [`wrap`]: `lllqos [OPTIONS] [COMMAND...]`: starting the command as a direct exec would,
//!   relaying signals, reaping, holding (the reasoning is in its module documentation).
//! - [`commands`]: the subcommands, one module each.
//! - [`request`]: what to place, from options or a container's annotations.
//! - [`machine`]: what is in force on this machine (holders, per-CPU values, idle states, the
//!   registry): the library's model (`lllqos::status`), with what each lllqos holder asked for;
//!   `status`, `trace` and `metrics` view it.
//! - [`signals`], [`process`], [`output`], [`exit`], [`sched`]: blocked signals read from a
//!   signalfd; pidfds and process names; stdout and stderr; exit statuses; scheduling.
//!
//! `no_main`: Rust's runtime start-up would ignore SIGPIPE and open /dev/null on closed standard
//! descriptors before `main`, and the command lllqos runs must inherit neither change (a direct
//! exec would not make them). lllqos records what it inherited and protects itself instead, in
//! [`process::init_process`]. The unit tests build with the test harness's own `main`.
#![cfg_attr(not(test), no_main)]

/// Prints one message on stderr, on one line: control characters in it (an escape sequence or a
/// newline in an argument that an error message quotes) are shown escaped, so that nothing a user
/// typed reaches the terminal or the journal raw. A closed, full or broken stderr must not stop
/// lllqos: it may hold a request that it has yet to release, so a failed write is dropped, never
/// a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        crate::output::say(&format!($($arg)*));
    }};
}

mod app;
mod commands;
mod exit;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod libm;
mod machine;
mod output;
mod process;
mod request;
mod sched;
mod signals;
mod wrap;

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
