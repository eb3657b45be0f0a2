//! The C math functions lllqos's chart (`measure --plot`, drawn by plotters) calls, from the
//! pure-Rust `libm` crate, so that the binary does not load glibc's `libm.so.6` at every start
//! for a chart few runs draw: about 0.05 ms of each wrapper's start-up (docs/benchmarks.md;
//! `build.rs` keeps out `libgcc_s` the same way). Defined here, they are what the linker binds
//! plotters' calls to, and `libm.so.6` is left out (rustc links with `--as-needed`);
//! `tests/linking.rs` fails when a new math function brings it back.
//!
//! Only on glibc: musl's static C library has them, and nothing is loaded there.

#[unsafe(no_mangle)]
extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

#[unsafe(no_mangle)]
extern "C" fn log(x: f64) -> f64 {
    libm::log(x)
}

#[unsafe(no_mangle)]
extern "C" fn hypotf(x: f32, y: f32) -> f32 {
    libm::hypotf(x, y)
}
