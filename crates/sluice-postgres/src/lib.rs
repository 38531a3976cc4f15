//! The PostgreSQL source for sluice.
//!
//! - [`pgoutput`]: decodes the messages of PostgreSQL's built-in `pgoutput` logical
//!   replication plugin (protocol versions 1 to 4) from the payload of an XLogData message.
//!   It is a pure function over bytes: no I/O, no hidden state, and it never panics, indexes
//!   out of bounds or allocates from an untrusted length. Every malformed input is a
//!   [`pgoutput::DecodeError`] that names the message, the field and the byte offset.
//! - [`types::text_to_value`]: turns a column in PostgreSQL's text output format into a
//!   [`sluice_core::Value`], by type OID. It never fails: a value it cannot interpret is kept as
//!   text, unchanged.
//! - [`PgTimestamp`]: the server's timestamps (microseconds since 2000-01-01 UTC) and their
//!   RFC 3339 form.
//!
//! Invariant carried from the wire to [`sluice_core::Value`]: an unchanged TOAST column (`'u'`
//! in a tuple) is [`pgoutput::Cell::Unchanged`], never null, so sinks keep the old value
//! instead of overwriting it with null.

mod capture;
mod catalog;
mod conn;
mod lifecycle;
pub mod pgoutput;
mod replication;
mod snapshot;
mod source;
mod stream;
mod timestamp;
pub mod types;

use sluice_config::model::PostgresSourceConfig;
use sluice_core::Result;

pub use source::PostgresSource;
pub use timestamp::PgTimestamp;

/// Create the publication (or add missing tables to it) and the logical replication slot.
/// Idempotent; returns a line per thing done (for example `created publication "sluice_app"
/// for "public.users"`).
pub async fn setup(config: &PostgresSourceConfig) -> Result<Vec<String>> {
    lifecycle::setup(config).await
}

/// Drop the replication slot and the publication. User tables and data are untouched.
/// Idempotent; returns a line per thing done.
pub async fn teardown(config: &PostgresSourceConfig) -> Result<Vec<String>> {
    lifecycle::teardown(config).await
}

/// Check the server without changing it: wal_level, free slots and WAL senders, the
/// REPLICATION privilege, the tables and their keys, the publication and the slot.
/// What `setup` would create is reported as a line starting with `missing:`; problems setup
/// cannot fix are one permanent error listing them all, each with a hint.
pub async fn check(config: &PostgresSourceConfig) -> Result<Vec<String>> {
    lifecycle::check(config).await
}
