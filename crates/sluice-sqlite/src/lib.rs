//! The SQLite source: change data capture for a SQLite database through triggers that copy
//! every change into a changelog table.
//!
//! # How it works
//!
//! - **Setup** ([`setup`], or automatically at [`Source::start`](sluice_core::Source::start))
//!   creates the changelog table (`_sluice_changelog` by default: `seq INTEGER PRIMARY KEY
//!   AUTOINCREMENT, tbl, op, before, after, ts_ms`) and three `AFTER INSERT/UPDATE/DELETE`
//!   triggers per captured table, all in one `BEGIN IMMEDIATE` transaction. The triggers write
//!   the row images as JSON text (format in the `value` module), so SQLite's own
//!   storage classes come through exactly: integers, floats (including ±infinity), text,
//!   blobs and NULL. It also switches the database to WAL so the snapshot does not block the
//!   application's writers.
//! - **Snapshot**: in one read transaction, read the changelog high-water mark `H` (from
//!   `sqlite_sequence`) and every row of every captured table in primary-key order, emitted
//!   as `read` changes at position `{seq: H, snapshot: true}`, then an empty batch at
//!   `{seq: H, snapshot: false}`.
//! - **Stream**: changelog rows with `seq > H`, in `seq` order, `batch_size` at a time; each
//!   change is at `{seq, snapshot: false}`. `confirm` deletes changelog rows up to a
//!   checkpointed position; `seq` is never reused (AUTOINCREMENT), so pruning is safe.
//!
//! # Why no row is missed or doubled at the hand-off
//!
//! A trigger writes its changelog row in the same transaction as the change, and SQLite
//! serialises writers, so `seq` order is commit order with no late-filling gaps. A read
//! transaction therefore sees the tables exactly as of the changelog rows `seq <= H`, where
//! `H` is read in that same transaction: every committed change is either reflected in the
//! snapshot (`seq <= H`) or streamed (`seq > H`), never both and never neither. The triggers
//! are committed before the snapshot's read transaction begins, so no change escapes both.
//!
//! # Restarts
//!
//! - From a streaming position `{seq}`: stream rows after `seq`. If the changelog table is
//!   gone, or its sequence is below `seq` (it was dropped and recreated), changes may have been
//!   lost and the source fails with a permanent error rather than guess. The changelog is
//!   never recreated mid-stream for the same reason.
//! - From a snapshot position `{seq: H1, snapshot: true}` (the snapshot was interrupted):
//!   the snapshot is read again from the start, in a new read transaction at `H2 >= H1`, and
//!   streaming then resumes after `H1`, not `H2`. Snapshot rows are idempotent upserts by key,
//!   so re-reading rows delivered by the first attempt is harmless; replaying the changes in
//!   `(H1, H2]` on top of the newer snapshot briefly shows older values for the keys they
//!   touch, but every such key ends at its state as of `H2`, and a row delivered by the
//!   first attempt and deleted since gets its delete. The snapshot's positions stay at `H1`
//!   so a second interruption resumes the same way. Changelog rows are never pruned while a
//!   snapshot position is checkpointed.
//!
//! # Events
//!
//! Tables are named `main.<table>`; `key` holds the primary-key columns. Inserts carry
//! `after`, deletes `before`, updates both. An update that changes the primary key is
//! emitted as a delete of the old key followed by an insert of the new one, so sinks that
//! write by key do not keep the old row. When the table's columns change mid-stream
//! (`ALTER TABLE`), its triggers are recreated and its schema version bumped; images written
//! before that keep the old column set.
//!
//! # Known limits
//!
//! - Changes written between an `ALTER TABLE` and the source noticing it (one poll interval)
//!   carry the old column set.
//! - Tables created while streaming are not captured until the next start, and a table added
//!   to `tables` after a checkpoint exists gets triggers but no snapshot (a warning is
//!   logged; delete the checkpoint to re-snapshot).
//! - A negative zero REAL is streamed as `0.0` (SQLite prints it without its sign).
//! - Row images are built with `||`, limited by `SQLITE_MAX_EXPR_DEPTH` (1000 by default) to
//!   tables of roughly 450 columns.
//! - While a slow consumer holds the snapshot's read transaction open, writers proceed (WAL)
//!   but the WAL file cannot be checkpointed past it and grows.

mod capture;
mod changelog;
mod connection;
mod introspect;
mod lifecycle;
mod snapshot;
mod source;
mod trigger;
mod value;

use std::path::Path;

use sluice_config::model::SqliteSourceConfig;
use sluice_core::{Error, Result};

pub use introspect::TableInfo;
pub use source::SqliteSource;

async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::permanent(format!("sqlite {what} task failed")).with_source(e))?
}

/// Create the changelog table and the triggers of every captured table, remove sluice
/// triggers from tables no longer captured, and switch to WAL. Idempotent; returns a line
/// per thing done (for example `created changelog table "_sluice_changelog"`).
pub async fn setup(config: &SqliteSourceConfig) -> Result<Vec<String>> {
    let config = config.clone();
    blocking("setup", move || lifecycle::setup(&config)).await
}

/// Drop every sluice trigger writing to the changelog, and the changelog table. Leaves
/// user tables and data alone. Idempotent; returns a line per thing done.
pub async fn teardown(config: &SqliteSourceConfig) -> Result<Vec<String>> {
    let config = config.clone();
    blocking("teardown", move || lifecycle::teardown(&config)).await
}

/// Check the database without changing it: it opens, the configured tables exist and have
/// primary keys, the changelog and triggers are present and current, and the journal mode.
/// Missing or outdated setup is reported as a line starting with `missing:` or `outdated:`;
/// only fatal problems (no file, not a database, unknown table, no primary key) are errors.
pub async fn check(config: &SqliteSourceConfig) -> Result<Vec<String>> {
    let config = config.clone();
    blocking("check", move || lifecycle::check(&config)).await
}

/// Every user table of the database at `path` (skipping SQLite's and sluice's own), with
/// columns, primary key and row count, for `sluice init`. Read-only.
pub fn introspect(path: &Path) -> Result<Vec<TableInfo>> {
    introspect::introspect(path)
}

/// The row-image decoder, for the fuzz target in `fuzz/` (see `docs/reliability.md`). Not part
/// of the API: nothing here is stable.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::value::decode_image;
}
