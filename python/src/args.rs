//! Python's arguments as the library's types, each checked before anything is touched: a value
//! the kernel would ignore or misread is an exception here, never a request.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt, PyString};

use lllqos::Latency;

/// A latency in microseconds: an `int` from 0 to 2147483647 (`ValueError` outside, `TypeError`
/// for what is not an int). lllqos 1.0.0 wrote any value: -5, which Linux 6.6+ silently ignores,
/// or died with `struct.error` on 2**40.
pub fn latency(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Latency> {
    if !value.is_instance_of::<PyInt>() {
        let kind = value.get_type().name()?;
        return Err(PyTypeError::new_err(format!(
            "{name} must be an int (microseconds), not {kind}"
        )));
    }
    value
        .extract::<i64>()
        .ok()
        .and_then(|us| u32::try_from(us).ok())
        .and_then(Latency::from_micros)
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "{name} {value} is out of range: a latency is 0 to {} microseconds",
                Latency::MAX.as_micros()
            ))
        })
}

/// A CPU list: the kernel's syntax (`"2-3"`, `"0,4-7"`), `"auto"` (the CPUs this process may run
/// on), or an iterable of CPU numbers (sorted). Returned as the syntax, which the caller parses.
pub fn cpus(value: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(text.extract::<String>()?.trim().to_owned());
    }
    let mut numbers: Vec<u32> = value
        .try_iter()
        .map_err(|_| {
            PyTypeError::new_err("cpus must be a CPU list such as \"2-3\", or an iterable of ints")
        })?
        .map(|item| {
            let item = item?;
            if !item.is_instance_of::<PyInt>() {
                let kind = item.get_type().name()?;
                return Err(PyTypeError::new_err(format!(
                    "cpus: a CPU number must be an int, not {kind}"
                )));
            }
            let cpu: i64 = item.extract()?;
            u32::try_from(cpu)
                .map_err(|_| PyValueError::new_err(format!("cpus: {cpu} is not a CPU number")))
        })
        .collect::<PyResult<_>>()?;
    if numbers.is_empty() {
        return Err(PyValueError::new_err("cpus: no CPU given"));
    }
    numbers.sort_unstable();
    numbers.dedup();
    let numbers: Vec<String> = numbers.iter().map(u32::to_string).collect();
    Ok(numbers.join(","))
}

/// A duration in seconds (`period`, `align_secs`): an int or a float, finite and above zero, at
/// least a nanosecond.
pub fn seconds(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Duration> {
    if !(value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>()) {
        let kind = value.get_type().name()?;
        return Err(PyTypeError::new_err(format!(
            "{name} must be a number of seconds, not {kind}"
        )));
    }
    let secs: f64 = value.extract()?;
    let nanos = (secs * 1e9).round();
    if !nanos.is_finite() || nanos < 1.0 || nanos > u64::MAX as f64 {
        return Err(PyValueError::new_err(format!(
            "{name} must be a positive number of seconds (at least a nanosecond), not {secs}"
        )));
    }
    // Rounded to the nanosecond, as abs-sleep rounds its period.
    Ok(Duration::from_nanos(nanos as u64))
}
