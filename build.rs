//! Links the `lllqos` binary so that it loads no shared library but the C library.
//!
//! A wrapper's start-up is part of every command it runs (README, "Performance"). On glibc, Rust's
//! standard library links the unwinder as a shared library, `libgcc_s.so.1`, which a process that
//! aborts on panic uses only to print a backtrace; loading it costs about 0.1 ms at each start.
//! GCC's static unwinder, `libgcc_eh.a`, is linked into the binary instead, as `gcc
//! -static-libgcc` does for C programs, and the linker (which rustc runs with `--as-needed`) then
//! leaves `libgcc_s` out. Where the C compiler cannot name the archive, nothing changes.
//! (`libm` is kept out by `src/bin/lllqos/libm.rs`.)

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let gnu_linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if !gnu_linux {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let Some(archive) = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .filter(|path| path.is_absolute() && path.is_file())
    else {
        return;
    };
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--push-state,--whole-archive,{},--pop-state",
        archive.display()
    );
}
