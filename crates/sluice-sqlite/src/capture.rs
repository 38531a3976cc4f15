//! The capture thread: owns the read-write connection, prepares the database, reads the
//! snapshot, then polls the changelog, sending [`SourcePoll`]s through a small bounded
//! channel (so a slow consumer stops the thread instead of growing memory).

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use sluice_config::model::{SnapshotMode, SqliteSourceConfig};
use sluice_core::{Error, Name, Position, Result, SourceBatch, SourcePoll, SqlitePosition};
use tokio::sync::{mpsc, oneshot};

use crate::changelog;
use crate::connection::{Access, db_error, enable_wal, open, schema_version};
use crate::introspect::{Table, captured};
use crate::lifecycle::install;
use crate::snapshot;
use crate::trigger::{self, TriggerState};

/// Batches (or `Idle`) waiting for `poll`. Small: the thread blocks when it is full.
pub(crate) const CHANNEL_CAPACITY: usize = 2;

/// Where streaming begins once the database is prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Snapshot, then stream after the snapshot's high-water mark, or after `floor`, the
    /// high-water mark of an interrupted earlier attempt (see [`snapshot::read`]).
    Snapshot { floor: Option<i64> },
    /// Stream after the current high-water mark (`snapshot = "never"`, fresh start).
    Head,
    /// Resume after this sequence number.
    After(i64),
}

/// The thread's state.
pub(crate) struct Capture {
    config: SqliteSourceConfig,
    source: Name,
    conn: Connection,
    /// Captured tables by qualified name (snapshot order).
    tables: BTreeMap<Name, Table>,
    /// Tables dropped while streaming: still decodable, no longer watched.
    dropped: BTreeMap<Name, Table>,
    schema_version: i64,
    plan: Plan,
    out: mpsc::Sender<Result<SourcePoll>>,
    stop: Receiver<()>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("source", &self.source)
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// Open and prepare the database for a start from `from`: check the changelog when
    /// resuming, then install the changelog and triggers (idempotent) and switch to WAL.
    pub(crate) fn prepare(
        source: Name,
        config: SqliteSourceConfig,
        from: Option<&Position>,
        out: mpsc::Sender<Result<SourcePoll>>,
        stop: Receiver<()>,
    ) -> Result<Capture> {
        let path = config.path.clone();
        let plan = match from {
            None if config.snapshot == SnapshotMode::Never => Plan::Head,
            None => Plan::Snapshot { floor: None },
            // An interrupted snapshot is read again from the start: snapshot rows are
            // idempotent upserts by key, so re-reading what was delivered is harmless, and
            // the changes made since the first attempt are replayed after it.
            Some(Position::Sqlite(p)) if p.snapshot => Plan::Snapshot { floor: Some(p.seq) },
            Some(Position::Sqlite(p)) => Plan::After(p.seq),
            Some(other) => {
                return Err(Error::permanent(format!(
                    "sqlite source \"{source}\" cannot resume from {other}, a position of another kind of source (hint: delete the checkpoint of this source)"
                )));
            }
        };
        let mut conn = open(&path, Access::ReadWrite)?;
        let tables = captured(&conn, &config)?;
        if let Plan::Snapshot { floor: Some(seq) } = plan {
            changelog::verify(&conn, &path, &config.changelog_table, seq)?;
        }
        if let Plan::After(seq) = plan {
            changelog::verify(&conn, &path, &config.changelog_table, seq)?;
            let fail = |e| db_error(&path, "checking the triggers of", e);
            for table in &tables {
                if trigger::state(&conn, table, &config.changelog_table).map_err(fail)?
                    == TriggerState::Missing
                {
                    tracing::warn!(
                        table = %table.qualified(),
                        "resuming, but the table had no sluice triggers; changes made to it before now were not captured (delete the checkpoint to re-snapshot)"
                    );
                }
            }
        }
        for line in install(&mut conn, &config, &tables)? {
            tracing::info!(source = %source, "{line}");
        }
        enable_wal(&conn, &path);
        let schema_version = schema_version(&conn).map_err(|e| db_error(&path, "reading", e))?;
        let tables = tables.into_iter().map(|t| (*t.qualified(), t)).collect();
        Ok(Capture {
            config,
            source,
            conn,
            tables,
            dropped: BTreeMap::new(),
            schema_version,
            plan,
            out,
            stop,
        })
    }

    /// Snapshot if planned, then stream until the receiver goes away or an error occurs;
    /// an error is sent to the receiver.
    pub(crate) fn run(mut self) {
        if let Err(e) = self.run_inner() {
            tracing::debug!(source = %self.source, error = %e, "capture stopped");
            let _ = self.out.blocking_send(Err(e));
        }
    }

    fn run_inner(&mut self) -> Result<()> {
        let path = self.config.path.clone();
        let changelog_table = self.config.changelog_table.clone();
        let start = match self.plan {
            Plan::Snapshot { floor } => {
                let out = &self.out;
                let mut emit =
                    |batch: SourceBatch| out.blocking_send(Ok(SourcePoll::Batch(batch))).is_ok();
                let high = snapshot::read(
                    &mut self.conn,
                    &self.config,
                    self.tables.values(),
                    &self.source,
                    floor,
                    &mut emit,
                )?;
                match high {
                    Some(high) => high,
                    None => return Ok(()),
                }
            }
            Plan::Head => {
                let high = changelog::high_water(&self.conn, &changelog_table)
                    .map_err(|e| db_error(&path, "reading the changelog of", e))?;
                let position = Position::Sqlite(SqlitePosition {
                    seq: high,
                    snapshot: false,
                });
                if !self.send(SourceBatch {
                    changes: Vec::new(),
                    position,
                }) {
                    return Ok(());
                }
                high
            }
            Plan::After(seq) => seq,
        };
        self.stream(start)
    }

    /// False when the receiver is gone.
    fn send(&self, batch: SourceBatch) -> bool {
        self.out.blocking_send(Ok(SourcePoll::Batch(batch))).is_ok()
    }

    /// Sleep for `d` unless told to stop; false means stop.
    fn sleep(&self, d: Duration) -> bool {
        matches!(self.stop.recv_timeout(d), Err(RecvTimeoutError::Timeout))
    }

    fn stream(&mut self, mut cursor: i64) -> Result<()> {
        let path = self.config.path.clone();
        let poll_interval = Duration::from_millis(self.config.poll_interval_ms.max(1));
        let max_idle = Duration::from_millis(self.config.max_idle_interval_ms).max(poll_interval);
        let batch_size = self.config.batch_size.max(1);
        let mut idle = poll_interval;
        loop {
            self.follow_schema(cursor)?;
            let entries =
                changelog::read_after(&self.conn, &self.config.changelog_table, cursor, batch_size)
                    .map_err(|e| db_error(&path, "reading the changelog of", e))?;
            let Some(last) = entries.last().map(|e| e.seq) else {
                if !self.sleep(idle) {
                    return Ok(());
                }
                idle = (idle * 2).min(max_idle);
                if let Err(mpsc::error::TrySendError::Closed(_)) =
                    self.out.try_send(Ok(SourcePoll::Idle))
                {
                    return Ok(());
                }
                continue;
            };
            idle = poll_interval;
            let full = entries.len() >= batch_size;
            let mut changes = Vec::with_capacity(entries.len());
            for entry in entries {
                let table = self
                    .tables
                    .get(entry.table.as_str())
                    .or_else(|| self.dropped.get(entry.table.as_str()));
                match table {
                    Some(table) => changes.extend(changelog::decode(entry, table, &self.source)?),
                    None => {
                        tracing::debug!(table = %entry.table, seq = entry.seq, "skipping changelog row of a table not captured")
                    }
                }
            }
            let position = Position::Sqlite(SqlitePosition {
                seq: last,
                snapshot: false,
            });
            if !self.send(SourceBatch { changes, position }) {
                return Ok(());
            }
            cursor = last;
            if !full && !self.sleep(poll_interval) {
                return Ok(());
            }
        }
    }

    /// When `PRAGMA schema_version` moved: check the changelog is still there (never
    /// recreate it mid-stream: changes would be lost silently), re-read the captured
    /// tables, and recreate the triggers of tables whose columns changed.
    fn follow_schema(&mut self, cursor: i64) -> Result<()> {
        let path = self.config.path.clone();
        let changelog_table = self.config.changelog_table.clone();
        let fail = |e| db_error(&path, "following schema changes of", e);
        let version = schema_version(&self.conn).map_err(fail)?;
        if version == self.schema_version {
            return Ok(());
        }
        changelog::verify(&self.conn, &path, &changelog_table, cursor)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let mut gone = Vec::new();
        for (name, table) in &mut self.tables {
            match table.refresh(&tx).map_err(fail)? {
                None => gone.push(*name),
                Some(changed) => {
                    let previous = trigger::install(&tx, table, &changelog_table).map_err(fail)?;
                    if changed || previous != TriggerState::Current {
                        tracing::info!(
                            table = %name,
                            schema_version = table.schema.version,
                            columns = table.columns.len(),
                            "table changed; recreated its triggers"
                        );
                    }
                }
            }
        }
        tx.commit().map_err(fail)?;
        for name in gone {
            tracing::warn!(table = %name, "captured table was dropped; no longer capturing it");
            if let Some(table) = self.tables.remove(&name) {
                self.dropped.insert(name, table);
            }
        }
        self.schema_version = schema_version(&self.conn).map_err(fail)?;
        Ok(())
    }
}

/// Start the capture thread. `ready` receives the outcome of preparing the database; after
/// that, batches (or an error) arrive on `out`.
pub(crate) fn spawn(
    source: Name,
    config: SqliteSourceConfig,
    from: Option<Position>,
    out: mpsc::Sender<Result<SourcePoll>>,
    stop: Receiver<()>,
    ready: oneshot::Sender<Result<()>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("sluice-sqlite-{source}"))
        .spawn(
            move || match Capture::prepare(source, config, from.as_ref(), out, stop) {
                Ok(capture) => {
                    if ready.send(Ok(())).is_ok() {
                        capture.run();
                    }
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            },
        )
}
