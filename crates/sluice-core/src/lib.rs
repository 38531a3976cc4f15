//! The sluice vocabulary: what flows through a pipeline and the contracts of the things that
//! produce, consume and remember it.
//!
//! This crate does no I/O. Everything else in sluice depends on it:
//!
//! - [`Change`]: one row-level change (or a snapshot read) with its [`Position`] and
//!   transaction metadata; serialised as the native event JSON (see `docs/event-format.md`).
//! - [`Name`]: an interned column name, copied into every row without touching shared
//!   memory.
//! - [`Value`]: a column value, including [`Value::Unchanged`] for a value the source did not
//!   resend (PostgreSQL's unchanged TOAST). Sinks keep the old value instead of writing null.
//! - [`Position`]: typed, totally ordered source positions (per source kind).
//! - [`TableSchema`]: versioned table schemas; [`Schema`]: the shape an [`Op::Schema`] event
//!   carries when a table's columns change mid-stream.
//! - [`Source`], [`Sink`], [`CheckpointStore`]: the contracts the engine relies on. The
//!   central invariant is that a position is checkpointed, and confirmed to the source, only
//!   after every sink fed by the source has durably accepted every change up to it.
//! - [`Error`]: every error is [`ErrorClass::Transient`] or [`ErrorClass::Permanent`]; only
//!   that class decides whether the engine retries.

mod change;
mod checkpoint;
mod error;
mod name;
mod position;
mod schema;
mod sink;
mod source;
mod value;

pub use change::{Change, Op, Row, TxMeta};
pub use checkpoint::{Checkpoint, CheckpointStore, MemoryCheckpointStore};
/// The text of [`Value`]'s string variants: inline up to 24 bytes, so most numbers, dates,
/// times and short text cost no allocation.
pub use compact_str::{CompactString, ToCompactString, format_compact};
pub use error::{Error, ErrorClass, Result};
pub use name::Name;
pub use position::{PgLsn, PgSnapshotProgress, Position, SqlitePosition};
pub use schema::{Column, Schema, SchemaColumn, TableSchema};
pub use sink::Sink;
pub use source::{Lag, Source, SourceBatch, SourcePoll};
pub use value::Value;
