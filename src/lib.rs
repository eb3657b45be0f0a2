//! lllqos: hold a CPU wake-up latency request for exactly as long as some work runs.
//!
//! Linux lets a process ask that CPUs stay out of idle states whose exit latency is larger than a
//! limit, through the PM QoS interface. The global request is a file descriptor on
//! `/dev/cpu_dma_latency`: it is in force while the descriptor is open. A per-CPU request is a
//! CPU's `pm_qos_resume_latency_us` file, which persists until someone restores it. This library
//! holds either as an RAII guard; the `lllqos` command wraps a command with the same guards the
//! way `chrt` or `nice` do.
//!
//! It is the Rust form of the Python package `lllqos` (1.0.0 on the Python Package Index,
//! py-linux-low-latency-qos by B. Brandenburg), `with low_wakeup_latency(0) as lease:
//! lease.acquired()`, and of the periodic activations of its companion `abs-sleep`:
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use lllqos::{Latency, Lease, Periodic};
//!
//! // Ask Linux to minimize wake-up latency (best effort: no error without the node or rights).
//! let lease = Lease::best_effort(Latency::ZERO);
//! println!("lease acquired: {}", lease.acquired());
//! // Periodic activations every 500 ms, the first on a whole second of the monotonic clock.
//! for deadline in Periodic::new(Duration::from_millis(500)).aligned(Duration::from_secs(1)).take(4) {
//!     let late = Instant::now().saturating_duration_since(deadline);
//!     println!("activation {:.2} us late", late.as_secs_f64() * 1e6);
//! }
//! drop(lease); // the request is gone
//! ```
//!
//! The modules, in the order a reader needs them:
//!
//! - [`latency`]: the value type and its parser (`50us`, `0.5ms`).
//! - [`lease`]: the global request as an RAII [`Lease`], whose value can be changed while held.
//! - [`periodic`]: [`Periodic`], deadlines on the monotonic clock slept to with absolute sleeps.
//! - [`cpulist`] and [`percpu`]: per-CPU resume-latency constraints as an RAII [`CpuConstraint`],
//!   restored on every exit path and shared safely between overlapping holders.
//! - [`idle`]: the idle states each CPU has, and limits named by state (`--max-state C1E,C1`).
//!
//! Off Linux the library still builds, so that a portable program can use it unconditionally, as
//! it can the Python package: [`Lease::best_effort`] is then a lease that is not acquired,
//! [`Lease::acquire`] an error that says there is no PM QoS here, and [`Periodic`] sleeps to each
//! deadline with the platform's own sleep. The per-CPU and idle-state modules are Linux's only.
//!
//! The command line, spawning and signal relay, the privilege drop of the command and the
//! measurement loop belong to the `lllqos` binary (the `cli` feature, on by default), not to this
//! library: a program that uses the library alone depends on it with `default-features = false`
//! and compiles none of the command's dependencies.
#![warn(missing_docs)]

pub mod latency;
pub mod lease;
pub mod periodic;

#[cfg(target_os = "linux")]
pub mod cpulist;
#[cfg(target_os = "linux")]
pub mod idle;
#[cfg(target_os = "linux")]
pub mod percpu;

#[doc(hidden)]
pub mod internal;

/// Not part of the library's API: the `lllqos` command's command line, its one definition, which
/// the binary parses, the xtask renders into the man pages and completions, and the tests fuzz.
/// Compiled here (with the `cli` feature) so that all three share one copy.
#[doc(hidden)]
#[cfg(all(feature = "cli", target_os = "linux"))]
pub mod cli;

/// Not part of the library's API: what is in force on this machine and who holds it, the model
/// `lllqos status` prints and the Python package's `lllqos.status()` returns. Its JSON document is
/// the stable interface (docs/json.md), not these types.
#[doc(hidden)]
#[cfg(target_os = "linux")]
pub mod status;

/// This crate's version, which the `lllqos` command reports (its command line is also compiled
/// into the xtask, whose own version is not lllqos's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub use latency::Latency;
pub use lease::{Lease, LeaseError};
pub use periodic::Periodic;

#[cfg(target_os = "linux")]
pub use cpulist::CpuList;
#[cfg(target_os = "linux")]
pub use percpu::{CpuConstraint, CpuError, CpuErrorKind, CpuLimits};

/// The guards may move to another thread (a worker that holds the request while it runs).
const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<Lease>();
    #[cfg(target_os = "linux")]
    is_send::<CpuConstraint>();
};
