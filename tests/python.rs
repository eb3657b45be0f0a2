//! The Python package (`python/`), as its users get it: `pip install ./python` into a virtual
//! environment (not the source tree), then its pytest suite (`python/tests/`) run there against the
//! real kernel, under the lock every test that places a request takes. Beside it, a second
//! environment holds the seed, lllqos 1.0.0, and abs-sleep 1.0.0 from the package index, for the
//! side-by-side tests; the suite also gets the command (its `status --json` must list a Python
//! holder) and a laid-out idle-state tree (for `max_state`).
//!
//! The environments are made once under the target directory and reused; the package is built and
//! installed again on every run, so that what is tested is the code as it is now.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::Missing;
use crate::common::idle::{IdleTree, State};

/// Where the environments live: under the target directory, nothing outside it.
fn environments() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("python")
}

/// Runs `command`; what is missing when it fails (the network for pip, Debian's python3-venv).
fn run(command: &mut Command, what: &str) -> Result<(), Missing> {
    let output = command
        .output()
        .map_err(|e| Missing::Setup(format!("{what}: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(Missing::Setup(format!(
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}

/// A virtual environment named `name` with `packages` from the package index (made once); its
/// interpreter.
fn environment(name: &str, packages: &[&str]) -> Result<PathBuf, Missing> {
    let dir = environments().join(name);
    let python = dir.join("bin/python");
    let ready = dir.join("ready");
    if !ready.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&dir),
            "python3 -m venv (Debian package python3-venv)",
        )?;
        run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(packages),
            &format!("pip install {} from the package index", packages.join(" ")),
        )?;
        std::fs::write(&ready, packages.join("\n")).unwrap();
    }
    Ok(python)
}

/// The environment of this package: pytest and abs-sleep 1.0.0, and the package itself, built
/// from `python/` and installed again each time.
fn this_package() -> Result<PathBuf, Missing> {
    let python = environment("package", &["pytest", "abs-sleep==1.0.0"])?;
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--force-reinstall",
                "--no-deps",
            ])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("python")),
        "pip install ./python",
    )?;
    Ok(python)
}

#[test]
fn the_python_package_passes_its_suite_against_the_kernel_and_the_seed() {
    require_program!("python3", "python3");
    let python = given!(this_package());
    let seed = given!(environment("seed", &["lllqos==1.0.0", "abs-sleep==1.0.0"]));
    let tree = IdleTree::lay_out(|cpu| {
        vec![
            State::new("POLL", 0),
            State::new("C1", 2),
            State::new("C1E", 10),
            State::new("C6", 100 + 33 * cpu),
        ]
    });
    let _kernel = kernel!();
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/tests");
    // Not from python/: there the source tree's lllqos/ would shadow the installed package.
    let output = Command::new(&python)
        .args(["-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs"])
        // Its temporary files here, not in /tmp/pytest-of-root (pytest empties it at each run).
        .arg("--basetemp")
        .arg(environments().join("pytest"))
        .arg(&suite)
        .current_dir(environments())
        .env("LLLQOS_BIN", crate::common::bin())
        .env("LLLQOS_SEED_PYTHON", &seed)
        .env("LLLQOS_TEST_IDLE_TREE", tree.path())
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    // The suite ran, and (under LLLQOS_TEST_REQUIRE=1) skipped nothing.
    assert!(report.contains(" passed"), "{report}");
    if crate::common::required() {
        assert!(!report.contains("skipped"), "{report}");
    }
}
