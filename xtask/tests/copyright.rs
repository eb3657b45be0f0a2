//! The Debian copyright file names every crate linked into the binary: each normal dependency of
//! the package (proc-macros are compile-time only), as `cargo tree` lists it.

use std::process::Command;

#[test]
fn the_debian_copyright_names_every_linked_crate() {
    let root = xtask::root();
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "--edges",
            "normal,no-proc-macro",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--package",
            "lllqos",
        ])
        .current_dir(&root)
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copyright = std::fs::read_to_string(root.join("contrib/debian/copyright")).unwrap();
    // Words of the Comment, as the crates are named there.
    let named: Vec<&str> = copyright
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .collect();
    let mut missing: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "lllqos" && !named.contains(name))
        .map(str::to_owned)
        .collect();
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "contrib/debian/copyright does not name: {missing:?}"
    );
}
