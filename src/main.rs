//! The `lllqos` binary: everything it does is in the library (see `lllqos::app`).
//!
//! `no_main`: Rust's runtime start-up would ignore SIGPIPE and open /dev/null on closed standard
//! descriptors before `main`, and the command lllqos runs must inherit neither change (a direct
//! exec would not make them). lllqos records what it inherited and protects itself instead, in
//! `lllqos::spawn::init_process`.
#![no_main]

use std::ffi::{c_char, c_int};

#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    lllqos::app::main(std::env::args_os()).exit()
}
