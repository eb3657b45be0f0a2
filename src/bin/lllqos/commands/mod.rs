//! The subcommands, one module each: what `lllqos SUBCOMMAND` does, from its parsed options to its
//! exit status. (Without a subcommand lllqos is the wrapper: [`crate::wrap`].)

pub mod container;
pub mod measure;
pub mod metrics;
pub mod nri;
pub mod oci_hook;
pub mod recover;
pub mod status;
pub mod trace;
