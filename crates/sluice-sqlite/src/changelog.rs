//! The changelog table the triggers append to, and turning its rows into [`Change`]s.
//!
//! `seq` is `INTEGER PRIMARY KEY AUTOINCREMENT`, so it is never reused after pruning, and the
//! high-water mark lives in `sqlite_sequence`, where it survives pruning too. SQLite has one
//! writer at a time and a trigger writes its changelog row in the same transaction as the
//! change itself, so `seq` order is commit order and there are no gaps that fill in later: a
//! reader that sees row `n` has already seen every row below `n`.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};
use sluice_core::{Change, Error, Name, Op, Position, Result, Row, SqlitePosition};

use crate::connection::{db_error, ident};
use crate::introspect::Table;
use crate::value::decode_image;

/// `CREATE TABLE` for the changelog. `ts_ms` uses `julianday` rather than `unixepoch` so the
/// default works with SQLite versions older than 3.38 that the application may link.
pub(crate) fn create_sql(changelog: &str) -> String {
    format!(
        "CREATE TABLE {} (\
         seq INTEGER PRIMARY KEY AUTOINCREMENT, \
         tbl TEXT NOT NULL, \
         op TEXT NOT NULL, \
         before TEXT, \
         after TEXT, \
         ts_ms INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)))",
        ident(changelog)
    )
}

/// True when the changelog table exists.
pub(crate) fn exists(conn: &Connection, changelog: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = ?1",
        [changelog],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Create the changelog table if missing; true when it was created.
pub(crate) fn ensure(conn: &Connection, changelog: &str) -> rusqlite::Result<bool> {
    if exists(conn, changelog)? {
        return Ok(false);
    }
    conn.execute(&create_sql(changelog), [])?;
    Ok(true)
}

/// The highest `seq` ever assigned (0 when none has been, or the table does not exist).
pub(crate) fn high_water(conn: &Connection, changelog: &str) -> rusqlite::Result<i64> {
    let has_sequence: i64 = conn.query_row(
        "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'",
        [],
        |r| r.get(0),
    )?;
    if has_sequence == 0 {
        return Ok(0);
    }
    let seq = conn
        .query_row(
            "SELECT seq FROM main.sqlite_sequence WHERE name = ?1",
            [changelog],
            |r| r.get(0),
        )
        .optional()?;
    Ok(seq.unwrap_or(0))
}

fn lost(path: &Path, changelog: &str, what: &str, seq: i64) -> Error {
    Error::permanent(format!(
        "changelog table \"{changelog}\" in sqlite database \"{}\" {what} after seq {seq}; changes may have been lost (hint: run `sluice setup`, then delete the checkpoint of this source to re-snapshot)",
        path.display()
    ))
}

/// Check that the changelog still holds everything after `seq`: it exists and its
/// high-water mark has not gone backwards (which means it was dropped and recreated).
pub(crate) fn verify(conn: &Connection, path: &Path, changelog: &str, seq: i64) -> Result<()> {
    let read = |e| db_error(path, "reading the changelog of", e);
    if !exists(conn, changelog).map_err(read)? {
        return Err(lost(path, changelog, "is missing", seq));
    }
    let head = high_water(conn, changelog).map_err(read)?;
    if head < seq {
        return Err(lost(
            path,
            changelog,
            &format!("was recreated (its sequence is at {head})"),
            seq,
        ));
    }
    Ok(())
}

/// One changelog row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub seq: i64,
    pub table: String,
    pub op: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Up to `limit` rows with `seq > after`, in `seq` order.
pub(crate) fn read_after(
    conn: &Connection,
    changelog: &str,
    after: i64,
    limit: usize,
) -> rusqlite::Result<Vec<Entry>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT seq, tbl, op, before, after FROM main.{} WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        ident(changelog)
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(rusqlite::params![after, limit], |r| {
        Ok(Entry {
            seq: r.get(0)?,
            table: r.get(1)?,
            op: r.get(2)?,
            before: r.get(3)?,
            after: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Delete rows with `seq <= through`; returns how many.
pub(crate) fn prune(conn: &Connection, changelog: &str, through: i64) -> rusqlite::Result<usize> {
    conn.execute(
        &format!("DELETE FROM main.{} WHERE seq <= ?1", ident(changelog)),
        [through],
    )
}

/// Rows after `after`, and the `ts_ms` of the oldest of them.
pub(crate) fn pending(
    conn: &Connection,
    changelog: &str,
    after: i64,
) -> rusqlite::Result<(u64, Option<i64>)> {
    conn.query_row(
        &format!(
            "SELECT count(*), min(ts_ms) FROM main.{} WHERE seq > ?1",
            ident(changelog)
        ),
        [after],
        |r| Ok((u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0), r.get(1)?)),
    )
}

/// The changes one changelog row stands for. An update that changes the primary key becomes
/// a delete of the old key followed by an insert of the new one, so that sinks writing by key
/// do not keep a row under the old key.
pub(crate) fn decode(entry: Entry, table: &Table, source: &Name) -> Result<Vec<Change>> {
    let bad = |reason: String| {
        Error::permanent(format!(
            "changelog row {} for table \"{}\" is malformed: {reason} (hint: only sluice's triggers should write to the changelog)",
            entry.seq,
            table.qualified()
        ))
    };
    let image = |text: &Option<String>, which: &str| -> Result<Row> {
        match text {
            Some(t) => {
                decode_image(t, &table.columns).map_err(|e| bad(format!("{which} image: {e}")))
            }
            None => Err(bad(format!("{which} image is missing"))),
        }
    };
    let position = Position::Sqlite(SqlitePosition {
        seq: entry.seq,
        snapshot: false,
    });
    let change = |op: Op, key: Row, before: Option<Row>, after: Option<Row>| Change {
        op,
        source: *source,
        table: *table.qualified(),
        key,
        before,
        after,
        position: position.clone(),
        tx: None,
        schema: None,
    };
    match entry.op.as_str() {
        "insert" => {
            let after = image(&entry.after, "after")?;
            Ok(vec![change(
                Op::Insert,
                table.key_of(&after),
                None,
                Some(after),
            )])
        }
        "delete" => {
            let before = image(&entry.before, "before")?;
            Ok(vec![change(
                Op::Delete,
                table.key_of(&before),
                Some(before),
                None,
            )])
        }
        "update" => {
            let before = image(&entry.before, "before")?;
            let after = image(&entry.after, "after")?;
            let old_key = table.key_of(&before);
            let new_key = table.key_of(&after);
            if old_key == new_key {
                Ok(vec![change(Op::Update, new_key, Some(before), Some(after))])
            } else {
                Ok(vec![
                    change(Op::Delete, old_key, Some(before), None),
                    change(Op::Insert, new_key, None, Some(after)),
                ])
            }
        }
        other => Err(bad(format!("unknown op {other:?}"))),
    }
}
