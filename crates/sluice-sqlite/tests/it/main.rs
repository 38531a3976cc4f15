//! Integration tests of the SQLite source against real database files in temporary
//! directories (kept on failure: see `support::Db`).

mod conformance;
mod errors;
mod lifecycle;
mod schema;
mod snapshot;
mod stream;
mod support;
mod values;
