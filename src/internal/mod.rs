//! Not part of the library's API: small helpers the library and the `lllqos` command both need,
//! compiled once, here. A leaf: nothing in it uses the rest of the library. It is public only so that the command (`src/bin/lllqos/`), its man-page generator
//! (`xtask/`) and the tests can reach it; it is hidden from the documentation and may change in any
//! release. A program that uses the library has no reason to touch it.
//!
//! - [`decimal`]: the one scanner of numbers with a unit (latencies, durations).
//! - [`file`]: opening files others could replace (never blocking, never following a link,
//!   bounded), for /run, /proc and sysfs.
//! - [`procfs`]: the one reader of `/proc`: processes, their state, commands, users, descriptors.
//! - [`oserror`]: operating-system errors as C tools print them.
//! - [`privilege`]: whether this process has more privilege than its real user, and what it may
//!   use it for.
//! - [`sigset`]: signal sets 1 to 64 as the kernel sees them, the signals that end a process, and
//!   those the command never relays.

pub mod decimal;

#[cfg(target_os = "linux")]
pub mod file;
#[cfg(target_os = "linux")]
pub mod oserror;
#[cfg(target_os = "linux")]
pub mod privilege;
#[cfg(target_os = "linux")]
pub mod procfs;
#[cfg(target_os = "linux")]
pub mod sigset;
