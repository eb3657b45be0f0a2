//! `lllqos._lllqos`: the Python face of the lllqos library, a thin binding.
//!
//! The Python package `lllqos` (python/lllqos/__init__.py) re-exports what is here and adds the
//! names that need no Rust (`QOS_FILE`, `low_wakeup_latency`, `status`). Everything that touches
//! the kernel is the library's: the global request is a `lllqos::Lease`, a per-CPU one a
//! `lllqos::CpuConstraint` in the same registry as the `lllqos` command's, guarded by a watchdog;
//! `periodic` is `lllqos::Periodic`. This crate only turns Python's arguments into the library's
//! types ([`args`]), the library's errors into Python's exceptions ([`errors`]), and releases the
//! interpreter's lock around anything that can wait.

mod args;
mod errors;
mod lease;
mod periodic;
mod place;

use pyo3::prelude::*;

/// What is in force on this machine and who holds it: the document `lllqos status --json` prints
/// (docs/json.md), as JSON text. `lllqos.status()` returns it parsed.
#[pyfunction]
fn _status_json(py: Python<'_>) -> PyResult<String> {
    py.detach(place::status_json)
        .map_err(errors::Failure::into_pyerr)
}

/// The Rust half of the Python package lllqos: `LowLatencyLease`, `periodic` and the status
/// document. Import `lllqos`, not this module.
#[pymodule]
#[pyo3(name = "_lllqos")]
fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<lease::LowLatencyLease>()?;
    m.add_class::<periodic::Periodic>()?;
    m.add_function(wrap_pyfunction!(periodic::periodic, m)?)?;
    m.add_function(wrap_pyfunction!(_status_json, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
