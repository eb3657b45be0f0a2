//! An operating-system error as C tools print it.
//!
//! Shared by the library and the `lllqos` binary: both crates declare this module from this one
//! file, so that their messages read alike.

use std::io;

/// An I/O error's text without Rust's " (os error N)" suffix, as C tools print it: `No such file
/// or directory`.
pub fn os_message(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => error.to_string(),
    }
}
