//! The PostgreSQL source for sluice. For now: the pure, I/O-free half.
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

pub mod pgoutput;
mod timestamp;
pub mod types;

pub use timestamp::PgTimestamp;
