//! What the binary loads at each start: the C library and nothing else (build.rs links GCC's
//! unwinder statically, src/bin/lllqos/libm.rs keeps glibc's libm out), or nothing at all for a
//! static build.

use std::process::Command;

/// The shared libraries the binary under test names (`NEEDED`), the dynamic loader left out.
fn needed() -> Vec<String> {
    let out = Command::new("readelf")
        .arg("-dW")
        .arg(crate::common::bin())
        .output()
        .expect("readelf (Debian package binutils)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| Some(line.split_once('[')?.1.trim_end_matches(']').to_owned()))
        .filter(|name| !name.starts_with("ld-linux"))
        .collect()
}

#[test]
fn the_binary_loads_the_c_library_and_nothing_else() {
    require_program!("readelf", "binutils");
    let needed = needed();
    if crate::common::is_static(&crate::common::bin()) {
        assert_eq!(needed, Vec::<String>::new());
    } else {
        assert_eq!(needed, ["libc.so.6"], "no libm, no libgcc_s");
    }
}
