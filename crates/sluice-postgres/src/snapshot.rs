//! The initial snapshot: every captured table read under the snapshot exported by the
//! replication slot, through a cursor, `batch_size` rows at a time, never a whole table in
//! memory. Values come in text form, through the same conversion as the stream.

use std::sync::Arc;

use sluice_config::model::PostgresSourceConfig;
use sluice_core::{Change, Op, PgLsn, Position, Result, Row, SourceBatch, SourcePoll};
use tokio::sync::mpsc;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::catalog::{self, Table};
use crate::conn::{ident, literal, pg_error};
use crate::types::text_to_value;

/// Read every captured table as of `snapshot_name` and send the rows as `read` changes at
/// `{lsn: at, snapshot: true}`. Returns the tables as the snapshot saw them, or `None` when
/// the receiver went away.
pub(crate) async fn read(
    client: &Client,
    config: &PostgresSourceConfig,
    source: &Arc<str>,
    snapshot_name: &str,
    at: PgLsn,
    out: &mpsc::Sender<Result<SourcePoll>>,
) -> Result<Option<Vec<Table>>> {
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            literal(snapshot_name)
        ))
        .await
        .map_err(|e| pg_error(e, &format!("importing snapshot \"{snapshot_name}\"")))?;
    let tables = catalog::captured(client, config).await?;
    let position = Position::Pg {
        lsn: at,
        snapshot: true,
    };
    for table in &tables {
        let started = std::time::Instant::now();
        let rows = read_table(client, config, source, table, &position, out).await?;
        let Some(rows) = rows else {
            return Ok(None);
        };
        tracing::info!(source = %source, table = %table.qualified(), rows, elapsed_ms = started.elapsed().as_millis() as u64, "snapshot of table done");
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| pg_error(e, "ending the snapshot transaction"))?;
    Ok(Some(tables))
}

async fn read_table(
    client: &Client,
    config: &PostgresSourceConfig,
    source: &Arc<str>,
    table: &Table,
    position: &Position,
    out: &mpsc::Sender<Result<SourcePoll>>,
) -> Result<Option<u64>> {
    let what = format!("reading table \"{}\" for the snapshot", table.qualified());
    let select: Vec<String> = table.columns.iter().map(|c| ident(&c.name)).collect();
    let select = if select.is_empty() {
        "NULL".to_owned()
    } else {
        select.join(", ")
    };
    client
        .batch_execute(&format!(
            "DECLARE sluice_snapshot NO SCROLL CURSOR FOR SELECT {select} FROM {}",
            table.sql()
        ))
        .await
        .map_err(|e| pg_error(e, &what))?;
    let table_name: Arc<str> = Arc::from(table.qualified());
    let key_index: Vec<usize> = table
        .key
        .iter()
        .filter_map(|k| table.columns.iter().position(|c| c.name == *k))
        .collect();
    let fetch = format!("FETCH {} FROM sluice_snapshot", config.batch_size.max(1));
    let mut total = 0u64;
    loop {
        let messages = client
            .simple_query(&fetch)
            .await
            .map_err(|e| pg_error(e, &what))?;
        let mut changes = Vec::with_capacity(config.batch_size);
        for message in &messages {
            let SimpleQueryMessage::Row(r) = message else {
                continue;
            };
            let after: Row = table
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let value = match r.get(i) {
                        Some(text) => text_to_value(c.type_oid, text),
                        None => sluice_core::Value::Null,
                    };
                    (c.name.clone(), value)
                })
                .collect();
            let key: Row = key_index
                .iter()
                .filter_map(|&i| after.0.get(i).cloned())
                .collect();
            changes.push(Change {
                op: Op::Read,
                source: source.clone(),
                table: table_name.clone(),
                key,
                before: None,
                after: Some(after),
                position: position.clone(),
                tx: None,
            });
        }
        let n = changes.len();
        total += n as u64;
        if n > 0 {
            let batch = SourcePoll::Batch(SourceBatch {
                changes,
                position: position.clone(),
            });
            if out.send(Ok(batch)).await.is_err() {
                return Ok(None);
            }
        }
        if n < config.batch_size.max(1) {
            break;
        }
    }
    client
        .batch_execute("CLOSE sluice_snapshot")
        .await
        .map_err(|e| pg_error(e, &what))?;
    Ok(Some(total))
}
