//! Shared test helpers: what a test requires, the kernel-state lock and guard ([`kernel`]), the
//! binary and its processes ([`process`]), a real terminal ([`tmux`]), idle states laid out as
//! sysfs has them ([`idle`]).
//!
//! # Tests that cannot pass by skipping
//!
//! A helper that needs something this machine may lack returns `Result<T, Missing>`, and a test
//! takes what it needs with [`given!`] (or [`kernel!`], [`require!`], [`require_program!`] and
//! [`applicable!`], which say the same thing shorter). What is missing is of one of two kinds:
//!
//! - **Set-up** ([`Missing::Setup`]): root, the kernel's node, a program from Debian's packages.
//!   CI has all of it, and runs with `LLLQOS_TEST_REQUIRE=1`: there such a test fails instead of
//!   skipping. A developer without root still gets skips, each named once in one summary line on
//!   stderr when the test binary exits (`cargo test` shows it even though it captures the tests'
//!   output).
//! - **Hardware** ([`Missing::Hardware`]): no cpuidle driver, a single CPU. Machines differ in
//!   these and CI's may lack them; such a test is skipped with its reason wherever it cannot apply.
//!
//! # The kernel's state
//!
//! The kernel's PM QoS state is global. Every test that places or observes a request takes
//! [`kernel::Kernel::take`] (through `kernel!()`): a file lock shared by every test process and
//! thread (so `cargo test` and `cargo nextest` both serialize them), plus a guard that records the
//! per-CPU values and restores them when the test ends, even by panic.

pub mod idle;
pub mod kernel;
pub mod process;
pub mod tmux;

use std::path::Path;
use std::sync::Mutex;

pub use kernel::*;
pub use process::*;

/// The name of the test function it is expanded in (closures included), for skip messages.
macro_rules! test_name {
    () => {{
        fn here() {}
        let path = std::any::type_name_of_val(&here);
        let path = path.strip_suffix("::here").unwrap_or(path);
        path.rsplit("::")
            .find(|part| *part != "{{closure}}")
            .unwrap_or(path)
    }};
}

/// `let value = given!(setup);`: the value of a `Result<T, Missing>`, or the calling test returns,
/// skipped (failed under `LLLQOS_TEST_REQUIRE=1` when what is missing is set-up).
macro_rules! given {
    ($setup:expr) => {
        match $setup {
            Ok(value) => value,
            Err(missing) => {
                crate::common::missing(test_name!(), missing);
                return;
            }
        }
    };
}

/// `let kernel = kernel!();`: the kernel lock and guard, or the calling test returns, skipped.
macro_rules! kernel {
    () => {
        given!(crate::common::Kernel::take())
    };
}

/// `require!(condition, "why {}", ...)`: the calling test returns, skipped (failed under
/// `LLLQOS_TEST_REQUIRE=1`), unless the condition holds.
macro_rules! require {
    ($condition:expr, $($why:tt)+) => {
        if !$condition {
            given!(Err(crate::common::Missing::Setup(format!($($why)+))));
        }
    };
}

/// `require_program!("tmux", "tmux")`: the calling test returns, skipped (failed under
/// `LLLQOS_TEST_REQUIRE=1`), unless the program (from that Debian package) is on PATH.
macro_rules! require_program {
    ($program:expr, $package:expr) => {
        given!(crate::common::program($program, $package))
    };
}

/// `applicable!(condition, "why {}", ...)`: the calling test returns, skipped everywhere, unless
/// this machine's hardware is what the test is about (idle states, a second CPU).
macro_rules! applicable {
    ($condition:expr, $($why:tt)+) => {
        if !$condition {
            given!(Err(crate::common::Missing::Hardware(format!($($why)+))));
        }
    };
}

/// What a test needs and this machine lacks.
#[derive(Debug)]
pub enum Missing {
    /// Set-up: root, the node, a program. Fails the test under `LLLQOS_TEST_REQUIRE=1`.
    Setup(String),
    /// Hardware this machine does not have (idle states, a second CPU): skipped everywhere.
    Hardware(String),
}

/// Whether a test that cannot run must fail instead of skipping (CI sets it).
pub fn required() -> bool {
    std::env::var_os("LLLQOS_TEST_REQUIRE").is_some_and(|v| v == "1")
}

/// `test` cannot run here: it fails when what is missing is set-up and `LLLQOS_TEST_REQUIRE=1`,
/// and is otherwise skipped and named in the summary line.
pub fn missing(test: &str, missing: Missing) {
    let why = match missing {
        Missing::Setup(why) => {
            assert!(
                !required(),
                "{test} cannot run here: {why} (LLLQOS_TEST_REQUIRE=1: a test that would skip fails)"
            );
            why
        }
        Missing::Hardware(why) => why,
    };
    println!("SKIPPED: {test}: {why}");
    let mut skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    if skipped.is_empty() {
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe { libc::atexit(print_skipped) };
    }
    skipped.push((why, test.to_owned()));
}

/// `Ok` when `program` is on PATH, else what is missing (naming its Debian package).
pub fn program(program: &str, package: &str) -> Result<(), Missing> {
    if have(program) {
        Ok(())
    } else {
        Err(Missing::Setup(format!(
            "needs {program} (Debian package {package})"
        )))
    }
}

/// Lays out a container's root file system at `rootfs`: Debian's static busybox in `/bin`, with
/// `tools` as links to it; or what is missing.
pub fn busybox_rootfs(rootfs: &Path, tools: &[&str]) -> Result<(), Missing> {
    const BUSYBOX: &str = "/bin/busybox";
    if !Path::new(BUSYBOX).exists() || !is_static(Path::new(BUSYBOX)) {
        return Err(Missing::Setup(
            "needs a static /bin/busybox (Debian package busybox-static)".into(),
        ));
    }
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    for tool in tools {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(tool)).unwrap();
    }
    Ok(())
}

/// The tests skipped, and why: printed in one line when the test binary exits.
static SKIPPED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// At exit: one line naming every skipped test, straight to stderr (past the harness's capture).
extern "C" fn print_skipped() {
    let skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    let binary = std::env::args().next().unwrap_or_default();
    let binary = Path::new(&binary)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // By reason: `needs root ...: a, b; needs tmux ...: c`.
    let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
    for (why, test) in skipped.iter() {
        match reasons.iter_mut().find(|(w, _)| w == why) {
            Some((_, tests)) => tests.push(test),
            None => reasons.push((why, vec![test])),
        }
    }
    let reasons: Vec<String> = reasons
        .iter()
        .map(|(why, tests)| format!("{why}: {}", tests.join(", ")))
        .collect();
    let line = format!(
        "SKIPPED {} test(s) of {binary} (LLLQOS_TEST_REQUIRE=1 fails a test that lacks its set-up) -- {}\n",
        skipped.len(),
        reasons.join("; ")
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}
