//! Integration tests of the SQLite source against real database files in temporary
//! directories (kept on failure: see `support::Db`).

// Helpers outside `#[test]` functions are not covered by `allow-unwrap-in-tests`; in test
// support a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod conformance;
mod errors;
mod lifecycle;
mod schema;
mod snapshot;
mod stream;
mod support;
mod values;
