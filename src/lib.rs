//! lllqos: hold a CPU wake-up latency request for exactly as long as some work runs.
//!
//! Linux lets a process ask that CPUs stay out of idle states whose exit latency is larger than a
//! limit, through the PM QoS interface. The global request is a file descriptor on
//! `/dev/cpu_dma_latency`: it is in force while the descriptor is open. The `lllqos` command wraps a
//! command the way `chrt` or `nice` do; this library is the same machinery for Rust programs.
//!
//! The modules, in the order a reader needs them:
//!
//! - [`latency`]: the value type and its parser (`50us`, `0.5ms`).
//! - [`lease`]: the global request as an RAII [`Lease`] (the Rust form of the Python package's
//!   `with low_wakeup_latency(0) as lease: lease.acquired()`).
//! - [`cpulist`] and [`percpu`]: per-CPU resume-latency constraints as an RAII [`CpuConstraint`],
//!   restored on every exit path and shared safely between overlapping holders.
//! - [`idle`]: idle states by name, and limits named by state (`--max-state C1E,C1`).
//! - [`status`]: inspection: the limit in force, its holders, idle states, the registry.
//! - [`measure`]: wake-up latency without and with the request (a cyclictest-style loop).
//! - [`spawn`] and [`run`]: running a command under the request: starting it as a direct exec
//!   would, relaying signals, reaping, holding.
//! - [`exit`]: the wrapper's exit statuses (125, 126, 127, the child's, the child's signal).
//! - [`privilege`]: what a setuid or file-capability install may use its privilege for.
//! - [`cli`] and [`app`]: the command line and what it does.
//!
//! ```no_run
//! use lllqos::{Latency, Lease};
//!
//! let lease = Lease::best_effort(Latency::ZERO);
//! println!("acquired: {}", lease.acquired());
//! // ... latency-critical work ...
//! drop(lease);
//! ```

pub mod app;
pub mod cli;
pub mod cpulist;
pub mod exit;
pub mod idle;
pub mod latency;
pub mod lease;
pub mod measure;
pub mod percpu;
pub mod privilege;
pub mod run;
mod sentinel;
mod sigset;
pub mod spawn;
pub mod status;

pub use cpulist::CpuList;
pub use exit::ExitStatus;
pub use latency::Latency;
pub use lease::{Lease, LeaseError};
pub use percpu::{CpuConstraint, CpuLimits};
