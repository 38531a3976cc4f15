//! Integration tests against a real PostgreSQL: `SLUICE_TEST_PG_URL` names a server with
//! `wal_level=logical` (scripts/test starts one). Every test gets a fresh database, dropped
//! when the test passes and kept (named in the output) when it fails.

#![allow(clippy::unwrap_used)]

mod common;
mod conformance;
mod faults;
mod huge_transaction;
mod identity;
mod in_progress;
mod lifecycle;
mod publication;
mod relations;
mod schema;
mod snapshot;
mod stream;
mod tls;
mod types;
