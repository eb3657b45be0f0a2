//! `LowLatencyLease`: lllqos 1.0.0's class, name for name and behaviour for behaviour, on the
//! library's guards, with what 1.0.0 never had.
//!
//! The state is behind a mutex, taken only with the interpreter's lock released (placing can wait
//! for another holder of the registry), so that a lease may be made in one thread and released
//! in another, and a thread that waits never blocks the others. A lease that is garbage-collected
//! while held is released: the guard it holds is dropped with it.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::PyRuntimeWarning;
use pyo3::prelude::*;
use pyo3::types::PyType;

use lllqos::Latency;

use crate::args;
use crate::errors::Failure;
use crate::place::{self, Held, Request};

/// A lease on the kernel's CPU wake-up latency (PM QoS): while it is held, the CPUs stay out of
/// idle states whose exit latency exceeds target_value microseconds.
///
/// As in lllqos 1.0.0: construct it, then acquire() (or use it in a with statement), and
/// release() when done. acquire() returns False, silently, when /dev/cpu_dma_latency (or
/// dev_path) is missing or this user may not open it, or off Linux. Unlike 1.0.0, a target_value
/// outside 0..2147483647 raises ValueError (TypeError for what is not an int) here, before
/// anything is touched, and any other failure raises OSError naming the file.
///
/// New: set(value) changes the request while it is held; cpus="2-3" (or an iterable of CPU
/// numbers, or "auto") constrains only those CPUs, through their resume latency, in the registry
/// the lllqos command keeps (`lllqos status` lists this process), restored within a moment even
/// if the interpreter is killed; max_state="C1E,C1" asks for the exit latency of the first of these
/// idle states this machine has (a last entry such as "20us" or "none" is what applies when none
/// is there).
#[pyclass(module = "lllqos", subclass)]
pub struct LowLatencyLease {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    request: Request,
    held: Option<Held>,
}

impl LowLatencyLease {
    /// The state, with the interpreter's lock released by the caller.
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while it was held left it as it was then: still a state to go on from.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Shows each warning as Python's `warnings` module does (a `RuntimeWarning`).
fn warn(py: Python<'_>, warnings: &[String]) -> PyResult<()> {
    for warning in warnings {
        let text = std::ffi::CString::new(warning.replace('\0', " "))?;
        PyErr::warn(py, &py.get_type::<PyRuntimeWarning>(), &text, 1)?;
    }
    Ok(())
}

#[pymethods]
impl LowLatencyLease {
    #[new]
    #[pyo3(
        signature = (target_value=None, dev_path=None, *, cpus=None, max_state=None),
        text_signature = "(target_value=0, dev_path=None, *, cpus=None, max_state=None)"
    )]
    fn new(
        target_value: Option<&Bound<'_, PyAny>>,
        dev_path: Option<PathBuf>,
        cpus: Option<&Bound<'_, PyAny>>,
        max_state: Option<String>,
    ) -> PyResult<LowLatencyLease> {
        let latency = match target_value {
            Some(value) => Some(args::latency(value, "target_value")?),
            None => None,
        };
        if latency.is_some_and(|l| l != Latency::ZERO) && max_state.is_some() {
            return Err(Failure::Value(
                "give target_value or max_state, not both: max_state names the limit".into(),
            )
            .into_pyerr());
        }
        let request = Request {
            latency: latency.unwrap_or(Latency::ZERO),
            max_state,
            dev_path,
            cpus: cpus.map(args::cpus).transpose()?,
        };
        place::check(&request).map_err(Failure::into_pyerr)?;
        Ok(LowLatencyLease {
            state: Mutex::new(State {
                request,
                held: None,
            }),
        })
    }

    /// Places the request; True when it is in force. False, silently, when the node is missing
    /// or not permitted (or off Linux, or when max_state's fallback is "none": nothing to place,
    /// said as a RuntimeWarning). A lease already held stays as it is (True).
    fn acquire(&self, py: Python<'_>) -> PyResult<bool> {
        let outcome = py.detach(|| {
            let mut state = self.state();
            if state.held.is_some() {
                return Ok((true, Vec::new()));
            }
            let placed = place::place(&state.request)?;
            state.held = placed.held;
            Ok((state.held.is_some(), placed.warnings))
        });
        match outcome {
            Ok((acquired, warnings)) => {
                warn(py, &warnings)?;
                Ok(acquired)
            }
            Err(Failure::Unavailable) => Ok(false),
            Err(failure) => Err(failure.into_pyerr()),
        }
    }

    /// Whether the request is in force now.
    fn acquired(&self, py: Python<'_>) -> bool {
        py.detach(|| self.state().held.is_some())
    }

    /// Removes the request (nothing when none is held; calling it again does nothing). A per-CPU
    /// constraint's CPUs get back what they had, unless another holder needs them constrained.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let outcome = py.detach(|| match self.state().held.take() {
            Some(held) => place::release(held),
            None => Ok(Vec::new()),
        });
        warn(py, &outcome.map_err(Failure::into_pyerr)?)
    }

    /// Changes the limit to value microseconds. While the lease is held the same request takes
    /// the new value, so that no moment is without one; otherwise it is what the next acquire()
    /// asks for. Replaces max_state.
    fn set(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let latency = args::latency(value, "value")?;
        let outcome = py.detach(|| {
            let mut state = self.state();
            let warnings = match &mut state.held {
                Some(held) => place::set(held, latency)?,
                None => Vec::new(),
            };
            state.request.latency = latency;
            state.request.max_state = None;
            Ok(warnings)
        });
        warn(py, &outcome.map_err(Failure::into_pyerr)?)
    }

    /// The limit asked for, in microseconds (as 1.0.0's attribute); None when max_state names it.
    #[getter]
    fn target(&self, py: Python<'_>) -> Option<u32> {
        py.detach(|| {
            let state = self.state();
            (state.request.max_state.is_none()).then_some(state.request.latency.as_micros())
        })
    }

    /// The global node given (as 1.0.0's attribute); None for /dev/cpu_dma_latency.
    #[getter]
    fn dev_path(&self, py: Python<'_>) -> Option<PathBuf> {
        py.detach(|| self.state().request.dev_path.clone())
    }

    /// The CPUs of a per-CPU request, as given; None for the global request.
    #[getter]
    fn cpus(&self, py: Python<'_>) -> Option<String> {
        py.detach(|| self.state().request.cpus.clone())
    }

    /// The idle states that name the limit, as given; None when target_value does.
    #[getter]
    fn max_state(&self, py: Python<'_>) -> Option<String> {
        py.detach(|| self.state().request.max_state.clone())
    }

    /// Acquires the lease (whether or not that succeeds, as 1.0.0) and returns it.
    fn __enter__<'py>(slf: &Bound<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, Self>> {
        slf.borrow().acquire(py)?;
        Ok(slf.clone())
    }

    /// Releases the lease, however the block ends (an exception in it goes on).
    #[pyo3(signature = (_exc_type=None, _exc_value=None, _traceback=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyType>>,
        _exc_value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.release(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let (request, acquired) = py.detach(|| {
            let state = self.state();
            (state.request.clone(), state.held.is_some())
        });
        let mut parts = vec![match &request.max_state {
            Some(names) => format!("max_state={names:?}"),
            None => format!("target_value={}", request.latency.as_micros()),
        }];
        if let Some(path) = &request.dev_path {
            parts.push(format!("dev_path={:?}", path.display().to_string()));
        }
        if let Some(cpus) = &request.cpus {
            parts.push(format!("cpus={cpus:?}"));
        }
        parts.push(format!(
            "acquired={}",
            if acquired { "True" } else { "False" }
        ));
        format!("<LowLatencyLease {}>", parts.join(", "))
    }
}
