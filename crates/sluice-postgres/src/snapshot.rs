//! The initial snapshot: every captured table read under the snapshot exported by the
//! replication slot, in chunks of `snapshot_chunk_pages` pages (`ctid` ranges), up to
//! `snapshot_parallelism` chunks at once, each worker on its own connection importing the
//! same snapshot and streaming `COPY (SELECT ...) TO STDOUT` in text format, read straight
//! from the socket buffer by our own wire client (no per-row message objects).
//!
//! Chunks are emitted in their order (tables in order, pages ascending) whatever order they
//! are read in: chunk `i` goes to worker `i % parallelism`, every worker feeds its own
//! bounded channel, and the emitter drains the channels in chunk order. A worker that runs
//! ahead waits on its full channel, so memory holds at most a few batches per worker, never
//! a table. Positions carry [`PgSnapshotProgress`]: the rows of a chunk carry the progress
//! before it, except its last batch, which carries the progress after it, so a checkpoint
//! taken at the end of a chunk resumes after it. Values come in text form, through the same
//! conversion as the stream.

mod chunk;
mod worker;

use std::sync::Arc;
use std::time::Instant;

use sluice_config::model::PostgresSourceConfig;
use sluice_core::{
    Change, Error, Name, PgLsn, PgSnapshotProgress, Position, Result, SourceBatch, SourcePoll,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_postgres::Client;

use crate::catalog::{self, Table};
use crate::conn::{connect, literal, pg_error};
use crate::replication::ReplicationConnection;
use chunk::{Chunk, Extent};
use worker::{Piece, Shared, TableShape};

/// Batches each worker may have ready ahead of the emitter.
const WORKER_CHANNEL_CAPACITY: usize = 2;

/// Read every captured table as of `snapshot_name` (skipping what `resume` says was
/// delivered) and send the rows as `read` changes at `{lsn: at, snapshot: true, progress}`.
/// Returns the tables as the snapshot saw them, or `None` when the receiver went away.
pub(crate) async fn read(
    config: &PostgresSourceConfig,
    source: &Name,
    snapshot_name: &str,
    at: PgLsn,
    resume: Option<PgSnapshotProgress>,
    out: &mpsc::Sender<Result<SourcePoll>>,
) -> Result<Option<Vec<Table>>> {
    let client = connect(config).await?;
    import(&client, snapshot_name).await?;
    let tables = catalog::captured(&client, config).await?;
    let mut extents = Vec::with_capacity(tables.len());
    for table in &tables {
        extents.push(extent(&client, table).await?);
    }
    let chunks = chunk::plan(&extents, resume, config.snapshot_chunk_pages);
    let shared = Arc::new(Shared {
        source: *source,
        tables: tables.iter().map(TableShape::new).collect(),
        lsn: at,
        batch_size: config.batch_size.max(1),
    });
    let parallelism = config.snapshot_parallelism.clamp(1, chunks.len().max(1));
    tracing::info!(source = %source, lsn = %at, chunks = chunks.len(), parallelism, resume = ?resume.map(|r| r.to_string()), "reading the snapshot");
    // Dropping the set (on return, or when the source is dropped) stops the workers.
    let mut workers = JoinSet::new();
    let mut receivers = Vec::with_capacity(parallelism);
    drop(client);
    for w in 0..parallelism {
        let mut conn = ReplicationConnection::connect_plain(config).await?;
        let what = format!("importing snapshot \"{snapshot_name}\"");
        conn.simple_query(&import_sql(snapshot_name), &what).await?;
        let mine: Vec<Chunk> = chunks
            .iter()
            .skip(w)
            .step_by(parallelism)
            .copied()
            .collect();
        let (tx, rx) = mpsc::channel(WORKER_CHANNEL_CAPACITY);
        workers.spawn(worker::run(conn, mine, shared.clone(), tx));
        receivers.push(rx);
    }
    let position = |progress| Position::Pg {
        lsn: at,
        snapshot: true,
        progress: Some(progress),
    };
    let mut table_rows = 0u64;
    let mut table_started = Instant::now();
    for (i, chunk) in chunks.iter().enumerate() {
        let rx = &mut receivers[i % parallelism];
        let before = position(chunk.before());
        let mut pending: Option<Vec<Change>> = None;
        loop {
            match rx.recv().await {
                Some(Ok(Piece::Batch(changes))) => {
                    if let Some(ready) = pending.replace(changes)
                        && !send(out, ready, &before).await
                    {
                        return Ok(None);
                    }
                }
                Some(Ok(Piece::End { rows })) => {
                    // The chunk's last batch (empty if it had no rows) records it as done.
                    let mut last = pending.take().unwrap_or_default();
                    let after = position(chunk.after());
                    for change in &mut last {
                        change.position = after.clone();
                    }
                    if !send(out, last, &after).await {
                        return Ok(None);
                    }
                    table_rows += rows;
                    break;
                }
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(Error::transient(format!(
                        "a snapshot worker stopped while reading chunk {i} (table \"{}\" from page {})",
                        tables[chunk.table as usize].qualified(),
                        chunk.start
                    )));
                }
            }
        }
        if chunk.end.is_none() {
            tracing::info!(source = %source, table = %tables[chunk.table as usize].qualified(), rows = table_rows, elapsed_ms = table_started.elapsed().as_millis() as u64, "snapshot of table done");
            table_rows = 0;
            table_started = Instant::now();
        }
    }
    workers.shutdown().await;
    Ok(Some(tables))
}

async fn send(out: &mpsc::Sender<Result<SourcePoll>>, changes: Vec<Change>, at: &Position) -> bool {
    let batch = SourcePoll::Batch(SourceBatch {
        changes,
        position: at.clone(),
    });
    out.send(Ok(batch)).await.is_ok()
}

/// The statements that enter a read-only transaction seeing exactly the exported snapshot.
fn import_sql(snapshot_name: &str) -> String {
    format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
        literal(snapshot_name)
    )
}

/// Enter a read-only transaction seeing exactly the exported snapshot.
async fn import(client: &Client, snapshot_name: &str) -> Result<()> {
    client
        .batch_execute(&import_sql(snapshot_name))
        .await
        .map_err(|e| pg_error(e, &format!("importing snapshot \"{snapshot_name}\"")))
}

/// The table's size in pages and its file node, now.
async fn extent(client: &Client, table: &Table) -> Result<Extent> {
    let row = client
        .query_one(
            "SELECT (pg_relation_size($1::oid) / current_setting('block_size')::bigint)::bigint, \
             coalesce(pg_relation_filenode($1::oid), 0)::oid",
            &[&table.oid],
        )
        .await
        .map_err(|e| {
            pg_error(
                e,
                &format!("reading the size of table \"{}\"", table.qualified()),
            )
        })?;
    let pages: i64 = row.get(0);
    Ok(Extent {
        pages: pages.max(0) as u64,
        filenode: row.get(1),
    })
}
