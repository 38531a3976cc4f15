//! A snapshot worker: one connection importing the exported snapshot, reading its share of
//! the chunks with `COPY (SELECT ...) TO STDOUT` and turning the rows into `read` changes,
//! `batch_size` at a time, into its own bounded channel.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;

use sluice_core::{Change, Name, Op, PgLsn, Position, Result, Row, Value};
use tokio::sync::mpsc;

use super::chunk::Chunk;
use crate::catalog::Table;
use crate::conn::ident;
use crate::copy_binary::{self, BinaryTuple, CopyBinaryRows};
use crate::copy_text::{self, CopyTextRows};
use crate::replication::{CopyOut, ReplicationConnection};
use crate::types::{text_to_value, text_to_value_owned};

/// Changes a batch reserves room for up front (a larger `batch_size` grows as it fills).
const PREALLOCATE: usize = 4096;

/// What a worker sends for one chunk: its rows in batches, then the end.
#[derive(Debug)]
pub(super) enum Piece {
    Batch(Vec<Change>),
    /// Every row of the chunk was sent; `rows` of them.
    End {
        rows: u64,
    },
}

/// What every worker shares.
#[derive(Debug)]
pub(super) struct Shared {
    pub source: Name,
    pub tables: Vec<TableShape>,
    pub lsn: PgLsn,
    pub batch_size: usize,
}

/// A table as the workers read it.
#[derive(Debug)]
pub(super) struct TableShape {
    pub name: Name,
    /// `COPY (SELECT <columns> FROM <table>` (the chunk adds its filter and `) TO STDOUT`).
    pub select: String,
    pub columns: Vec<(Name, u32)>,
    /// Indexes of the key columns in `columns`.
    pub key: Vec<usize>,
    /// The publication's row filter, if it has one for this table.
    pub row_filter: Option<String>,
    /// Read with `COPY ... (FORMAT binary)`: every column's type is
    /// [`copy_binary::readable`], so binary gives exactly the values text would, for less
    /// work on the server.
    pub binary: bool,
}

impl TableShape {
    pub fn new(table: &Table) -> Self {
        let select: Vec<String> = table.columns.iter().map(|c| ident(&c.name)).collect();
        let select = if select.is_empty() {
            "NULL".to_owned()
        } else {
            select.join(", ")
        };
        TableShape {
            name: Name::new(&table.qualified()),
            // `ONLY`: a table with inheritance children is read without their rows (they
            // are tables of their own). A partitioned table's rows are all in its
            // partitions, so it is read whole.
            select: format!(
                "COPY (SELECT {select} FROM {}{}",
                if table.partitioned { "" } else { "ONLY " },
                table.sql()
            ),
            columns: table.columns.iter().map(|c| (c.name, c.type_oid)).collect(),
            key: table
                .key
                .iter()
                .filter_map(|k| table.columns.iter().position(|c| c.name == *k))
                .collect(),
            row_filter: table.row_filter.clone(),
            binary: !table.columns.is_empty()
                && table
                    .columns
                    .iter()
                    .all(|c| copy_binary::readable(c.type_oid)),
        }
    }
}

/// The rows of one chunk's COPY, in the format it was asked for.
enum Rows {
    Text(CopyTextRows),
    Binary(CopyBinaryRows),
}

/// Read `chunks` in order on `client` (already inside the snapshot's transaction), sending
/// each chunk's pieces to `out`. Ends early, without error, when `out` is closed; an error
/// is sent to `out` as well as returned.
pub(super) async fn run(
    mut conn: ReplicationConnection,
    chunks: Vec<Chunk>,
    shared: Arc<Shared>,
    out: mpsc::Sender<Result<Piece>>,
) {
    for chunk in chunks {
        match read_chunk(&mut conn, &chunk, &shared, &out).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                let _ = out.send(Err(e)).await;
                return;
            }
        }
    }
}

/// False when the receiver went away.
async fn read_chunk(
    conn: &mut ReplicationConnection,
    chunk: &Chunk,
    shared: &Shared,
    out: &mpsc::Sender<Result<Piece>>,
) -> Result<bool> {
    let Some(table) = shared.tables.get(chunk.table as usize) else {
        return Ok(out.send(Ok(Piece::End { rows: 0 })).await.is_ok());
    };
    let what = match chunk.end {
        _ if chunk.start == 0 && chunk.end.is_none() => {
            format!("reading table \"{}\" for the snapshot", table.name)
        }
        Some(end) => format!(
            "reading pages {}..{end} of table \"{}\" for the snapshot",
            chunk.start, table.name
        ),
        None => format!(
            "reading pages {}.. of table \"{}\" for the snapshot",
            chunk.start, table.name
        ),
    };
    let sql = format!(
        "{}{}) TO STDOUT{}",
        table.select,
        chunk.filter(table.row_filter.as_deref()),
        if table.binary { " (FORMAT binary)" } else { "" }
    );
    conn.copy_out_start(&sql, &what).await?;
    let position = Position::Pg {
        lsn: shared.lsn,
        snapshot: true,
        progress: Some(chunk.before()),
    };
    let batch_size = shared.batch_size.max(1);
    let mut rows = if table.binary {
        Rows::Binary(CopyBinaryRows::default())
    } else {
        Rows::Text(CopyTextRows::default())
    };
    // Capped: `batch_size` comes from the config and may be huge.
    let mut batch = Vec::with_capacity(batch_size.min(PREALLOCATE));
    let mut total = 0u64;
    let mut failed = None;
    loop {
        // Rows straight from the socket buffer (one CopyData message per row), none copied,
        // until a batch is full.
        let state = conn.copy_out_data(&what, |data| {
            match &mut rows {
                Rows::Text(r) => {
                    let Ok(()) = r.feed(data, |line| {
                        batch.push(text_change(shared, table, line, &position));
                        Ok::<(), Infallible>(())
                    });
                }
                Rows::Binary(r) => {
                    let fed = r.feed(data, |tuple| {
                        batch.push(binary_change(shared, table, tuple, &position)?);
                        Ok::<(), sluice_core::Error>(())
                    });
                    if let Err(e) = fed {
                        failed = Some(e);
                        return false;
                    }
                }
            }
            batch.len() < batch_size
        })?;
        if let Some(e) = failed.take() {
            return Err(e.context(&what));
        }
        if batch.len() >= batch_size || (state == CopyOut::Done && !batch.is_empty()) {
            total += batch.len() as u64;
            let full =
                std::mem::replace(&mut batch, Vec::with_capacity(batch_size.min(PREALLOCATE)));
            if out.send(Ok(Piece::Batch(full))).await.is_err() {
                return Ok(false);
            }
        }
        match state {
            CopyOut::Done => break,
            CopyOut::Paused => {}
            CopyOut::NeedMore => conn.fill().await?,
        }
    }
    match rows {
        Rows::Text(r) => {
            let Ok(()) = r.finish(|line| {
                batch.push(text_change(shared, table, line, &position));
                Ok::<(), Infallible>(())
            });
        }
        Rows::Binary(r) => r
            .finish()
            .map_err(|e| sluice_core::Error::permanent(e.to_string()).context(&what))?,
    }
    total += batch.len() as u64;
    if !batch.is_empty() && out.send(Ok(Piece::Batch(batch))).await.is_err() {
        return Ok(false);
    }
    Ok(out.send(Ok(Piece::End { rows: total })).await.is_ok())
}

/// One row of COPY text output as a `read` change.
fn text_change(shared: &Shared, table: &TableShape, line: &[u8], position: &Position) -> Change {
    let mut fields = copy_text::fields(line);
    let after: Row = table
        .columns
        .iter()
        .map(|(name, type_oid)| {
            let value = match fields.next().flatten() {
                Some(Cow::Borrowed(text)) => text_to_value(*type_oid, text),
                Some(Cow::Owned(text)) => text_to_value_owned(*type_oid, text),
                None => Value::Null,
            };
            (*name, value)
        })
        .collect();
    read_change(shared, table, after, position)
}

/// One tuple of binary COPY output as a `read` change.
fn binary_change(
    shared: &Shared,
    table: &TableShape,
    tuple: BinaryTuple<'_>,
    position: &Position,
) -> Result<Change> {
    if tuple.field_count() != table.columns.len() {
        return Err(sluice_core::Error::permanent(format!(
            "COPY sent {} columns for table \"{}\", which has {}",
            tuple.field_count(),
            table.name,
            table.columns.len()
        )));
    }
    // Every column null, then each decoded in place (see `copy_binary::binary_into`):
    // pushing values one by one copied each through the stack, a stalled reload each.
    let mut after: Vec<(Name, Value)> = table
        .columns
        .iter()
        .map(|(name, _)| (*name, Value::Null))
        .collect();
    for (((name, value), (_, type_oid)), field) in
        after.iter_mut().zip(&table.columns).zip(tuple.fields())
    {
        if let Some(bytes) = field
            && !copy_binary::binary_into(*type_oid, bytes, value)
        {
            return Err(undecodable(table, *name, *type_oid, bytes));
        }
    }
    let after = Row(after);
    Ok(read_change(shared, table, after, position))
}

#[cold]
fn undecodable(table: &TableShape, name: Name, type_oid: u32, bytes: &[u8]) -> sluice_core::Error {
    sluice_core::Error::permanent(format!(
        "cannot decode the binary value ({} bytes) of column \"{name}\" (type OID {type_oid}) of table \"{}\"",
        bytes.len(),
        table.name
    ))
}

fn read_change(shared: &Shared, table: &TableShape, after: Row, position: &Position) -> Change {
    let mut key = Vec::with_capacity(table.key.len());
    key.extend(table.key.iter().filter_map(|&i| after.0.get(i).cloned()));
    let key = Row(key);
    Change {
        op: Op::Read,
        source: shared.source,
        table: table.name,
        key,
        before: None,
        after: Some(after),
        position: position.clone(),
        tx: None,
        schema: None,
    }
}
