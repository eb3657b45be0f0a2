//! lllqos: hold a CPU wake-up latency request for exactly as long as some work runs.
//!
//! Linux lets a process ask that CPUs stay out of idle states whose exit latency is larger than a
//! limit, through the PM QoS interface. The global request is a file descriptor on
//! `/dev/cpu_dma_latency`: it is in force while the descriptor is open. A per-CPU request is a
//! CPU's `pm_qos_resume_latency_us` file, which persists until someone restores it. This library
//! holds either as an RAII guard; the `lllqos` command wraps a command with the same guards the
//! way `chrt` or `nice` do.
//!
//! The modules, in the order a reader needs them:
//!
//! - [`latency`]: the value type and its parser (`50us`, `0.5ms`).
//! - [`lease`]: the global request as an RAII [`Lease`] (the Rust form of the Python package's
//!   `with low_wakeup_latency(0) as lease: lease.acquired()`).
//! - [`cpulist`] and [`percpu`]: per-CPU resume-latency constraints as an RAII [`CpuConstraint`],
//!   restored on every exit path and shared safely between overlapping holders.
//! - [`idle`]: idle states by name, and limits named by state (`--max-state C1E,C1`).
//! - [`privilege`]: whether this process is privileged (setuid or file capabilities), which makes
//!   the library stricter about the paths it opens.
//!
//! The command line, spawning and signal relay, the privilege drop of the command and the
//! measurement loop belong to the `lllqos` binary, not to this library.
//!
//! ```no_run
//! use lllqos::{Latency, Lease};
//!
//! let lease = Lease::best_effort(Latency::ZERO);
//! println!("acquired: {}", lease.acquired());
//! // ... latency-critical work ...
//! drop(lease);
//! ```
#![warn(missing_docs)]

pub mod cpulist;
#[doc(hidden)]
pub mod file;
pub mod idle;
pub mod latency;
pub mod lease;
pub mod percpu;
pub mod privilege;

/// This crate's version, which the `lllqos` command reports (its command line is also compiled
/// into the xtask, whose own version is not lllqos's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub use cpulist::CpuList;
pub use latency::Latency;
pub use lease::{Lease, LeaseError};
pub use percpu::{CpuConstraint, CpuError, CpuErrorKind, CpuLimits};
