//! The library's errors as Python's exceptions, in one place.
//!
//! The seed's contract is kept: a node that is missing, or that this user may not open, makes
//! `acquire()` return False, silently ([`Failure::Unavailable`]); so does a platform without PM
//! QoS. Every other failure is an exception that says what failed: a value that cannot be asked
//! for is a `ValueError` before anything is touched, and what the system refused is an `OSError`
//! with its errno and the file's path where there is one.

use std::path::PathBuf;

use pyo3::PyErr;
use pyo3::exceptions::{PyOSError, PyValueError};

use lllqos::LeaseError;

/// Why a request was not placed.
#[derive(Debug)]
pub enum Failure {
    /// Missing, not permitted, or no PM QoS on this platform: `acquire()` is False.
    Unavailable,
    /// A value or a name this machine cannot take.
    Value(String),
    /// What the system refused: errno (where there is one), what, and the file.
    Os {
        errno: Option<i32>,
        message: String,
        path: Option<PathBuf>,
    },
}

impl Failure {
    /// The exception to raise (for anything but [`Failure::Unavailable`], which is not raised
    /// but returned as False; were it raised, an `OSError` that says so).
    pub fn into_pyerr(self) -> PyErr {
        match self {
            Failure::Value(message) => PyValueError::new_err(message),
            Failure::Os {
                errno: Some(errno),
                message,
                path: Some(path),
            } => PyOSError::new_err((errno, message, path.to_string_lossy().into_owned())),
            Failure::Os {
                errno: Some(errno),
                message,
                path: None,
            } => PyOSError::new_err((errno, message)),
            Failure::Os {
                errno: None,
                message,
                ..
            } => PyOSError::new_err(message),
            Failure::Unavailable => {
                PyOSError::new_err("the PM QoS interface is missing or not permitted here")
            }
        }
    }
}

impl From<LeaseError> for Failure {
    fn from(error: LeaseError) -> Failure {
        if error.is_missing() || error.is_permission() || error.is_unsupported() {
            return Failure::Unavailable;
        }
        let source = error.io_error();
        // The cause alone: the path is the exception's `filename`, shown after it.
        let message = match source.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
            None => source.to_string(),
        };
        let message = message
            .split(" (os error")
            .next()
            .unwrap_or_default()
            .to_owned();
        Failure::Os {
            // A file that is not a PM QoS node is no device of the kind asked for: ENODEV.
            errno: Some(source.raw_os_error().unwrap_or(libc::ENODEV)),
            message,
            path: Some(error.path().to_owned()),
        }
    }
}

#[cfg(target_os = "linux")]
impl From<lllqos::CpuError> for Failure {
    fn from(error: lllqos::CpuError) -> Failure {
        use lllqos::CpuErrorKind;
        match error.kind() {
            CpuErrorKind::Permission | CpuErrorKind::ReadOnlySysfs => Failure::Unavailable,
            CpuErrorKind::NoSuchCpu | CpuErrorKind::OutOfRange => Failure::Value(error.to_string()),
            _ => Failure::Os {
                errno: None,
                message: error.to_string(),
                path: None,
            },
        }
    }
}
