//! The integration tests: one test binary (as ripgrep, fd and coreutils have), a module per area,
//! the helpers of [`common`] shared by all. They run the real binary against the real kernel: they
//! read `/dev/cpu_dma_latency` back to prove a request is in force, read sysfs to prove a per-CPU
//! value is set and restored, and drive real peers (tmux for a terminal, cyclictest, runc, a
//! booted systemd). See docs/development.md.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test's unwrap is its assertion

#[macro_use]
mod common;

mod containers;
mod contrib;
mod crash;
mod failures;
mod follow;
mod hostile_input;
mod json;
mod library;
mod linking;
mod max_state;
mod measure;
mod metrics;
mod musl;
mod nri;
mod oci_hook;
mod percpu;
mod podman;
mod privilege;
mod python;
mod status;
mod systemd;
mod terminal;
mod trace;
mod wrapper;
