//! The initial snapshot: every row of every captured table, read in one read transaction
//! together with the changelog high-water mark.
//!
//! Because the triggers write the changelog in the same transaction as the change, the rows
//! seen by a read transaction reflect exactly the changelog rows with `seq <= H`, where `H` is
//! the high-water mark read in that same transaction. Streaming then starts after `H`: every
//! change is either in the snapshot (`seq <= H`) or in the stream (`seq > H`), never both and
//! never neither.

use rusqlite::{Connection, TransactionBehavior};
use sluice_config::model::SqliteSourceConfig;
use sluice_core::{Change, Name, Op, Position, Result, Row, SourceBatch, SqlitePosition};

use crate::changelog;
use crate::connection::{db_error, ident};
use crate::introspect::Table;
use crate::value::from_sql;

/// Where to send batches; returns false when nobody listens any more.
pub(crate) type Emit<'a> = dyn FnMut(SourceBatch) -> bool + 'a;

/// Read the snapshot, emitting `Op::Read` batches of at most `batch_size` rows at
/// `{seq: F, snapshot: true}`, then an empty batch at `{seq: F, snapshot: false}` once the
/// read transaction has ended, where `F` is `floor` or, on a fresh start, the high-water mark
/// `H` read with the snapshot. Rows are streamed table by table in primary-key order, never
/// loaded whole. Returns `F` (streaming continues after it), or `None` if the receiver went
/// away.
///
/// `floor` is the high-water mark of an earlier, interrupted snapshot attempt. Streaming
/// after it rather than after the new `H` replays the changes made between the two attempts
/// on top of the new snapshot; each key ends at its state as of `H`, and a row delivered by
/// the first attempt and deleted since gets its delete.
pub(crate) fn read<'t>(
    conn: &mut Connection,
    config: &SqliteSourceConfig,
    tables: impl IntoIterator<Item = &'t Table>,
    source: &Name,
    floor: Option<i64>,
    emit: &mut Emit<'_>,
) -> Result<Option<i64>> {
    let path = config.path.as_path();
    let changelog_table = config.changelog_table.as_str();
    let fail = |e| db_error(path, "reading the snapshot of", e);
    let batch_size = config.batch_size.max(1);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Deferred)
        .map_err(fail)?;
    // The first read starts the read transaction: the high-water mark and every table below
    // come from the same database state.
    let high = changelog::high_water(&tx, changelog_table).map_err(fail)?;
    let resume = floor.map_or(high, |f| f.min(high));
    let in_snapshot = Position::Sqlite(SqlitePosition {
        seq: resume,
        snapshot: true,
    });
    // Capped: `batch_size` comes from the config and may be huge.
    let mut changes = Vec::with_capacity(batch_size.min(4096));
    for table in tables {
        let columns: Vec<String> = table.columns.iter().map(|c| ident(c)).collect();
        let order: Vec<String> = table.schema.primary_key.iter().map(|c| ident(c)).collect();
        let sql = format!(
            "SELECT {} FROM main.{} ORDER BY {}",
            columns.join(", "),
            ident(&table.name),
            order.join(", ")
        );
        let mut stmt = tx.prepare(&sql).map_err(fail)?;
        let mut rows = stmt.query([]).map_err(fail)?;
        let mut count: u64 = 0;
        while let Some(r) = rows.next().map_err(fail)? {
            let mut row = Vec::with_capacity(table.columns.len());
            for (i, column) in table.columns.iter().enumerate() {
                row.push((*column, from_sql(r.get_ref(i).map_err(fail)?)));
            }
            let row = Row(row);
            changes.push(Change {
                op: Op::Read,
                source: *source,
                table: *table.qualified(),
                key: table.key_of(&row),
                before: None,
                after: Some(row),
                position: in_snapshot.clone(),
                tx: None,
                schema: None,
            });
            count += 1;
            if changes.len() >= batch_size {
                let batch = SourceBatch {
                    changes: std::mem::take(&mut changes),
                    position: in_snapshot.clone(),
                };
                if !emit(batch) {
                    return Ok(None);
                }
                changes.reserve(batch_size);
            }
        }
        tracing::info!(table = %table.qualified(), rows = count, high_water = high, "snapshot of table read");
    }
    if !changes.is_empty()
        && !emit(SourceBatch {
            changes,
            position: in_snapshot,
        })
    {
        return Ok(None);
    }
    tx.commit().map_err(fail)?;
    let done = Position::Sqlite(SqlitePosition {
        seq: resume,
        snapshot: false,
    });
    if !emit(SourceBatch {
        changes: Vec::new(),
        position: done,
    }) {
        return Ok(None);
    }
    Ok(Some(resume))
}
