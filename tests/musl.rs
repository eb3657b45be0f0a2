//! The static build for machines without a matching glibc (the musl target), against the real
//! kernel: it is static, and wraps a command as the glibc build does (request in force, exit
//! status, a signal death, status). `.ci/run` builds it first:
//! `cargo build --release --target $(uname -m)-unknown-linux-musl`.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Command;

use crate::common::read_node;

/// The musl build of this checkout, where `cargo build --release --target ...-musl` puts it.
fn musl_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join(format!(
        "{}-unknown-linux-musl/release/lllqos",
        std::env::consts::ARCH
    ))
}

#[test]
fn the_musl_build_is_static_and_wraps_a_command_like_the_glibc_build() {
    let kernel = kernel!();
    let musl = musl_binary();
    require!(
        musl.is_file(),
        "needs the musl build: rustup target add {arch}-unknown-linux-musl && cargo build --release --target {arch}-unknown-linux-musl",
        arch = std::env::consts::ARCH
    );
    assert!(
        crate::common::is_static(&musl),
        "no program interpreter, no shared library"
    );

    let run = |args: &[&str]| Command::new(&musl).args(args).output().unwrap();
    let out = run(&[
        "-l",
        "33",
        "--",
        "od",
        "-An",
        "-td4",
        "-N4",
        crate::common::NODE,
    ]);
    assert!(out.status.success(), "{out:?}");
    let seen: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(seen, kernel.expect(33));
    assert_eq!(read_node(), kernel.baseline, "released");

    assert_eq!(run(&["--", "sh", "-c", "exit 3"]).status.code(), Some(3));
    assert_eq!(
        run(&["--", "no-such-command-here"]).status.code(),
        Some(127)
    );
    let killed = run(&["--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(killed.status.signal(), Some(libc::SIGTERM));
    let env = run(&["-l", "12", "--", "sh", "-c", "echo $LLLQOS_LATENCY_US"]);
    assert_eq!(String::from_utf8_lossy(&env.stdout), "12\n");
    let status = run(&["status"]);
    assert!(status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).starts_with("CPU latency limit"));
}
