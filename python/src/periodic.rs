//! `periodic(period, align_secs=None)`: abs-sleep's periodic activations, from the library's
//! `Periodic`: deadlines on the monotonic clock, slept to with absolute sleeps, with the
//! interpreter's lock released while sleeping (other threads run meanwhile), and signals handled
//! as Python's own sleeps handle them (a handler runs, and an exception it raises ends the sleep).

use std::sync::Mutex;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

use crate::args;

/// An iterator of periodic activations: each next() sleeps until the next deadline and returns
/// it, in seconds on the monotonic clock (what time.monotonic() reads), as abs-sleep's periodic()
/// does. The deadlines do not drift; a stall of a whole period or more skips the activations it
/// missed (keeping the phase) instead of returning them all at once.
#[pyclass(module = "lllqos")]
pub struct Periodic {
    inner: Mutex<lllqos::Periodic>,
}

/// Periodic activations every `period` seconds, the first one `period` from now (with align_secs,
/// moved to the first multiple of align_secs on the monotonic clock at or after it, so that loops
/// started apart activate together). Iterate over it: each step sleeps until the next deadline,
/// with an absolute sleep (clock_nanosleep, TIMER_ABSTIME), and returns that deadline in seconds
/// on the monotonic clock; `time.monotonic() - t` is how late the wake-up was.
#[pyfunction]
#[pyo3(signature = (period, align_secs=None))]
pub fn periodic(
    period: &Bound<'_, PyAny>,
    align_secs: Option<&Bound<'_, PyAny>>,
) -> PyResult<Periodic> {
    let mut periodic = lllqos::Periodic::new(args::seconds(period, "period")?);
    // As abs-sleep: a zero (or absent) alignment aligns nothing.
    if let Some(align) = align_secs
        && align.is_truthy()?
    {
        periodic = periodic.aligned(args::seconds(align, "align_secs")?);
    }
    Ok(Periodic {
        inner: Mutex::new(periodic),
    })
}

#[pymethods]
impl Periodic {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<f64> {
        loop {
            let slept = py.detach(|| {
                let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                inner.try_wait().map(|deadline| inner.on_clock(deadline))
            });
            match slept {
                Ok(deadline) => return Ok(deadline.as_nanos() as f64 / 1e9),
                // A signal's handler runs now; an exception from it (KeyboardInterrupt) ends the
                // sleep, and the next step sleeps to the same deadline.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => py.check_signals()?,
                Err(e) => return Err(PyOSError::new_err(format!("clock_nanosleep: {e}"))),
            }
        }
    }
}
