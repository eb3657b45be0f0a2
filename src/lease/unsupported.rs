//! The PM QoS nodes where there are none: every platform but Linux. Every operation fails with
//! an error that says so, and a best-effort lease is simply not acquired.

use std::fs::File;
use std::io;
use std::path::Path;

use super::LeaseError;
use crate::latency::Latency;

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "this platform has no PM QoS interface (CPU latency requests are Linux's)",
    )
}

pub(super) fn open(path: &Path, _write: bool) -> Result<File, LeaseError> {
    Err(LeaseError::new(path, "open", unsupported()))
}

pub(super) fn write(_file: &File, _latency: Latency) -> io::Result<()> {
    Err(unsupported())
}

pub(super) fn read(_file: &File) -> io::Result<Option<Latency>> {
    Err(unsupported())
}
