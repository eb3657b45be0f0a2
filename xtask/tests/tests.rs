//! The generated files and the documentation against the code: one test binary, a module per
//! kind of file (the man pages and completions, the README and docs/, the Debian copyright, the
//! library's dependency tree).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test's unwrap is its assertion

mod completions;
mod copyright;
mod light_library;
mod readme;
mod up_to_date;
