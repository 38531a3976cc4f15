//! The PostgreSQL source: change data capture through a logical replication slot and the
//! built-in `pgoutput` plugin, over a streaming replication connection of our own.
//!
//! # How it works
//!
//! - **Setup** ([`setup`], or automatically at [`Source::start`](sluice_core::Source::start))
//!   creates the publication (`CREATE PUBLICATION "sluice_<source>" FOR TABLE ...`, or adds
//!   missing tables to an existing one) and then the slot. The publication must exist before
//!   the slot's consistent point, or decoding WAL from before it fails, so it always comes
//!   first. Tables default to every table with a primary key; a configured table without one
//!   needs `REPLICA IDENTITY FULL` (or an index identity), else the server would reject the
//!   application's own updates once the table is published.
//! - **Snapshot** (no checkpoint, `snapshot = "initial"`): a walsender connection runs
//!   `CREATE_REPLICATION_SLOT "slot" LOGICAL pgoutput (SNAPSHOT 'export')`, which returns the
//!   slot's consistent point `C` and the name of a snapshot that lives until the next command
//!   on that connection. `snapshot_parallelism` ordinary connections import it (`BEGIN
//!   ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT ...`); the first reads the
//!   catalog and each table's size in pages and file node. Every table is cut into chunks of
//!   `snapshot_chunk_pages` pages (`WHERE ctid >= '(a,0)' AND ctid < '(b,0)'`, a TID range
//!   scan; the last chunk of a table is open-ended, so pages added since its size was read
//!   are read too), chunk `i` is read by connection `i % parallelism` with `COPY (SELECT
//!   ...) TO STDOUT` (binary when every column's type is one `copy_binary` decodes, else
//!   text, decoded by the pure `copy_text` module), and the
//!   chunks are emitted in order (tables in order, pages ascending) as `read` changes at
//!   `{lsn: C, snapshot: true, progress}`; an empty batch at `{lsn: C}` marks the end. Each
//!   connection feeds its own bounded channel, drained in chunk order, so memory holds a few
//!   batches per connection, never a table. A slot that already exists when there is no
//!   checkpoint (e.g. made by `sluice setup`) is dropped and recreated, since only a slot
//!   created together with the snapshot can be consistent with it and nothing relies on its
//!   position yet.
//! - **Snapshot only** (`snapshot = "only"`): no publication and no slot. An ordinary
//!   connection opens a repeatable-read transaction and exports its snapshot
//!   (`pg_export_snapshot()`), keeps it open while the chunks are read as above, and the
//!   source then reports [`SourcePoll::Done`](sluice_core::SourcePoll::Done). The LSN in the
//!   positions is the WAL insert position at the export, for reference; the final
//!   `{lsn}` checkpoint means done (a restart finishes at once: delete the checkpoint to
//!   export again). An interrupted one is read again from the first chunk under a fresh
//!   snapshot: with no stream from the first snapshot's point to replay what changed since,
//!   skipping delivered chunks would miss rows whose new version moved into them. The
//!   second read is complete as of its own snapshot; rows the first attempt delivered and
//!   that were deleted since stay delivered (at-least-once).
//! - **Stream**: `START_REPLICATION SLOT "slot" LOGICAL <lsn> (proto_version '1',
//!   publication_names '"pub"', messages 'true')` on the same walsender connection; XLogData
//!   payloads go through the pure [`pgoutput::decode`] and become changes. A task owns the
//!   connection and feeds a bounded channel (the backpressure); `poll` waits for it, and
//!   reports the source idle (what `run --once` stops at) only after `status_interval_ms`
//!   without a batch *and* once the stream has caught up: the server's last message was a
//!   keepalive outside a transaction whose position is at or past the server's WAL flush
//!   position (read then, on a side connection). A keepalive alone is not enough: the
//!   walsender also sends one whenever it reaches the flush position it last looked at.
//!
//! # Why no row is missed or doubled at the hand-off
//!
//! The exported snapshot and the consistent point `C` are made by the same command: the
//! snapshot sees exactly the transactions that committed before `C`, and logical decoding
//! from `C` sends exactly the transactions that commit after it. Every committed change is
//! therefore in the snapshot or in the stream, never both and never neither.
//!
//! # Positions and restarts
//!
//! A change inside a transaction carries the end LSN of the last transaction committed
//! before it; the last change of a transaction carries its own commit end LSN; a batch
//! carries the position of its last change. The server resends every transaction whose
//! commit lies after the start position, so resuming from any checkpoint replays a partial
//! transaction whole instead of skipping its rest (at-least-once, duplicates bounded to it).
//!
//! - From `{lsn}`: stream from `lsn`. A missing slot is a permanent error naming it, with
//!   the commands to start over; an invalidated slot (`wal_status = 'lost'`) too.
//! - From `{lsn: C, snapshot: true, progress}` (the snapshot was interrupted): the old
//!   exported snapshot `S1` is gone, so a `TEMPORARY` slot exports a new one `S2` at
//!   `C2 >= C`, the chunks `progress` does not cover are read under it (positions stay at
//!   `{lsn: C, snapshot: true, progress}`), and the stream resumes from `C` on the persistent
//!   slot. Progress `{table, page, filenode}` means: every table before `table` (in the
//!   snapshot's order: the `tables` list, or all keyed tables sorted by name) and pages
//!   `0..page` of `table` were delivered whole. A chunk's rows carry the progress before it
//!   and its last batch (empty for an empty chunk) the progress after it, so a checkpoint at
//!   the end of a chunk skips that chunk. Chunk boundaries need not repeat across attempts:
//!   the resumed table starts at `page` and is cut afresh from there, its last chunk again
//!   open-ended.
//!
//! ## Why a resumed snapshot misses and doubles nothing
//!
//! A row version stays at its `ctid` until it is updated or deleted, except when the table
//! is rewritten (`VACUUM FULL`, `CLUSTER`, `TRUNCATE`, a rewriting `ALTER TABLE`), which
//! gives it a new file node; a resumed table whose file node differs from the recorded one
//! is read from page 0. Otherwise, for a row visible in `S1` (committed before `C`):
//!
//! - in pages `0..page` of `table`, or in an earlier table: delivered by the first attempt;
//! - elsewhere, and not changed since: still visible in `S2` at the same `ctid`, read now;
//! - elsewhere, and updated or deleted in `(C, C2]`: the stream from `C` replays that change
//!   (and `S2` may also read its newer version, wherever it landed: a key briefly showing its
//!   newer value, then the replay ending it at its current state).
//!
//! A row committed after `C` comes from the stream, as in an uninterrupted snapshot;
//! rows `S2` also reads are doubled only with their own later state, as before. Tables that
//! grew between attempts are read to their new end (open-ended last chunk); a table added to
//! `tables` between attempts shifts the table indexes, so change `tables` only once a
//! snapshot has finished. One gap remains: a row of an unread chunk updated in `(C, C2]`
//! whose new version lands in a page already delivered reaches the sink only through the
//! replayed update, and under the default replica identity an unchanged TOAST column of it
//! then arrives as `Unchanged` with no earlier image to fill it from.
//!
//! # Bounded WAL
//!
//! [`Source::confirm`](sluice_core::Source::confirm) hands the checkpointed position to the
//! task, which sends it as the flush LSN of a standby status update (at once, and every
//! `status_interval_ms`, and whenever the server asks). When a keepalive finds nothing in
//! flight (no open transaction, nothing unsent) and the engine has confirmed everything
//! emitted before it, the flush LSN follows the keepalive's WAL end: transactions not yet
//! sent commit after it, so nothing is skipped, and an idle slot retains no WAL. Heartbeats
//! (`pg_logical_emit_message(false, 'sluice_heartbeat', '')` every `heartbeat_interval_ms`)
//! make WAL move on a quiet database so that this happens there too; they are not emitted
//! as changes.
//!
//! # Events
//!
//! Tables are `schema.name`; `key` holds the replica identity index's columns under
//! `REPLICA IDENTITY USING INDEX` (the only columns a delete then carries, even when there
//! is a primary key), else the primary key, else every column. Inserts carry `after`;
//! updates `after`, and `before` under `REPLICA IDENTITY FULL`; deletes `before` under FULL
//! and only `key` otherwise. A table with `REPLICA IDENTITY NOTHING` is refused: once
//! published, PostgreSQL would reject its updates and deletes. An update
//! that changes the key is emitted as a delete of the old key and an insert of the new one.
//! Unchanged TOAST values are [`sluice_core::Value::Unchanged`], never null. Every streamed
//! change has transaction metadata: xid, commit time, ordinal, last-in-transaction (found
//! with a one-change lookahead). Values are converted by [`types::text_to_value`] from the
//! same text output on both paths (session settings are pinned: ISO dates, UTC, hex bytea,
//! `extra_float_digits = 3`), so the snapshot and the stream give identical values.
//!
//! # Known limits
//!
//! - pgoutput protocol 1 only: a transaction is sent after it commits, and the server spills
//!   big transactions to disk; sluice hands them over `batch_size` changes at a time, so its
//!   memory stays bounded, but streaming of in-progress transactions (v2+) is not used yet.
//! - No TLS on either connection; no GSSAPI.
//! - A column added or dropped mid-stream changes the row images from the next Relation
//!   message on, but no schema event is emitted yet.
//! - Chunks are `ctid` page ranges: PostgreSQL 14 or later scans them directly; older
//!   servers filter a full scan per chunk (correct, slower: set `snapshot_chunk_pages` high).
//!   A partitioned table is one chunk.
//! - The unchanged-TOAST gap of a resumed snapshot described above.
//! - Truncate of tables outside the capture set is ignored; `TRUNCATE ... CASCADE` emits one
//!   truncate per captured table the server reports.
//!
//! # The pure half
//!
//! - [`pgoutput`]: decodes the messages of PostgreSQL's built-in `pgoutput` logical
//!   replication plugin (protocol versions 1 to 4) from the payload of an XLogData message.
//!   It is a pure function over bytes: no I/O, no hidden state, and it never panics, indexes
//!   out of bounds or allocates from an untrusted length. Every malformed input is a
//!   [`pgoutput::DecodeError`] that names the message, the field and the byte offset.
//! - [`types::text_to_value`]: turns a column in PostgreSQL's text output format into a
//!   [`sluice_core::Value`], by type OID. It never fails: a value it cannot interpret is kept as
//!   text, unchanged.
//! - `copy_text`: splits `COPY ... TO STDOUT` text output (arriving in chunks that need not
//!   end at rows) into rows and fields and unescapes them; never panics (property-tested on
//!   arbitrary bytes, and against an encoder of the server's escapes).
//! - `copy_binary`: splits `COPY ... (FORMAT binary)` output into tuples and turns each value
//!   into exactly the [`sluice_core::Value`] its text output would give (the stream sends
//!   text, and a snapshot row must equal a streamed one); never panics (fuzzed).
//! - [`PgTimestamp`]: the server's timestamps (microseconds since 2000-01-01 UTC) and their
//!   RFC 3339 form.

mod capture;
mod captured;
mod catalog;
mod conn;
mod copy_binary;
mod copy_text;
mod introspect;
mod lifecycle;
pub mod pgoutput;
mod replication;
mod snapshot;
mod source;
mod spill;
mod stream;
mod timestamp;
mod tls;
pub mod types;

use sluice_config::model::PostgresSourceConfig;
use sluice_core::Result;

pub use introspect::{TableInfo, introspect};
pub use source::PostgresSource;
pub use timestamp::PgTimestamp;

/// Check what can be checked of a source's config without connecting: that its `url`
/// parses, with known options and valid values (`sslmode`, the port, ...).
pub fn validate(config: &PostgresSourceConfig) -> Result<()> {
    conn::parse_url(config).map(|_| ())
}

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

/// The pure parsers' crate-private entry points, for the fuzz targets in `fuzz/` (see
/// `docs/reliability.md`). Not part of the API: nothing here is stable.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::copy_binary::{
        BinaryCopyError, BinaryTuple, CopyBinaryRows, binary_to_value, readable as binary_readable,
    };
    pub use crate::copy_text::{CopyTextRows, field, fields};
    pub use crate::replication::protocol::{
        MAX_MESSAGE_BYTES, ProtocolError, ReplicationMessage, ServerError, frame_len,
        parse_error_fields, parse_replication_message,
    };

    /// The bytes the server would send for a message: the test encoder, for the
    /// decode-encode-decode round trip. Only with `--cfg fuzzing`.
    #[cfg(fuzzing)]
    pub use crate::pgoutput::builder::encode as encode_pgoutput;
}
