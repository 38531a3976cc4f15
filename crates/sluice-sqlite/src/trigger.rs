//! The three triggers per captured table that copy every change into the changelog.
//!
//! Triggers are named `_sluice_<table>_ins`, `_upd` and `_del`. Each writes one changelog row
//! with the table name, the op, and the row images (see [`crate::value`]) in the same
//! transaction as the change, so a change is in the changelog if and only if it committed.
//! Their SQL is generated from the table's current columns, and "current" means the SQL stored
//! in `sqlite_master` equals what sluice would generate now.

use rusqlite::{Connection, OptionalExtension};

use crate::connection::{ident, literal};
use crate::introspect::Table;
use crate::value::image_sql;

/// The operations captured, with the suffix of their trigger name.
const OPS: [(&str, &str); 3] = [("ins", "INSERT"), ("upd", "UPDATE"), ("del", "DELETE")];

/// Whether a table's triggers are installed as sluice would install them now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TriggerState {
    /// All three exist with the expected SQL.
    Current,
    /// None exists.
    Missing,
    /// Some exist, or their SQL differs (the table's columns changed).
    Outdated,
}

/// Name of the trigger of `table` (bare name) for the op suffix `ins`/`upd`/`del`.
fn trigger_name(table: &str, suffix: &str) -> String {
    format!("_sluice_{table}_{suffix}")
}

/// `(name, CREATE TRIGGER sql)` for each op.
fn definitions(table: &Table, changelog: &str) -> Vec<(String, String)> {
    let qualified = literal(table.qualified());
    OPS.iter()
        .map(|(suffix, event)| {
            let name = trigger_name(&table.name, suffix);
            let (op, before, after) = match *event {
                "INSERT" => ("insert", "NULL".to_owned(), image_sql("NEW", &table.columns)),
                "UPDATE" => ("update", image_sql("OLD", &table.columns), image_sql("NEW", &table.columns)),
                _ => ("delete", image_sql("OLD", &table.columns), "NULL".to_owned()),
            };
            let sql = format!(
                "CREATE TRIGGER {} AFTER {event} ON {} FOR EACH ROW BEGIN \
                 INSERT INTO {} (tbl, op, before, after) VALUES ({qualified}, '{op}', {before}, {after}); \
                 END",
                ident(&name),
                ident(&table.name),
                ident(changelog),
            );
            (name, sql)
        })
        .collect()
}

fn stored_sql(conn: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT sql FROM main.sqlite_master WHERE type = 'trigger' AND name = ?1",
        [name],
        |r| r.get(0),
    )
    .optional()
}

/// How the triggers of `table` stand.
pub(crate) fn state(
    conn: &Connection,
    table: &Table,
    changelog: &str,
) -> rusqlite::Result<TriggerState> {
    let mut present = 0;
    let mut current = 0;
    for (name, sql) in definitions(table, changelog) {
        if let Some(stored) = stored_sql(conn, &name)? {
            present += 1;
            if stored == sql {
                current += 1;
            }
        }
    }
    Ok(match (present, current) {
        (0, _) => TriggerState::Missing,
        (3, 3) => TriggerState::Current,
        _ => TriggerState::Outdated,
    })
}

/// Make the triggers of `table` current; returns the state they were in. The caller holds a
/// write transaction.
pub(crate) fn install(
    conn: &Connection,
    table: &Table,
    changelog: &str,
) -> rusqlite::Result<TriggerState> {
    let before = state(conn, table, changelog)?;
    if before == TriggerState::Current {
        return Ok(before);
    }
    for (name, sql) in definitions(table, changelog) {
        conn.execute(&format!("DROP TRIGGER IF EXISTS main.{}", ident(&name)), [])?;
        conn.execute(&sql, [])?;
    }
    Ok(before)
}

/// Every installed sluice trigger writing to `changelog`: `(trigger name, bare table name)`.
pub(crate) fn installed(
    conn: &Connection,
    changelog: &str,
) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare(
        "SELECT name, tbl_name, sql FROM main.sqlite_master WHERE type = 'trigger' ORDER BY tbl_name, name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let target = format!("INSERT INTO {} (tbl, op, before, after)", ident(changelog));
    let mut out = Vec::new();
    for row in rows {
        let (name, table, sql) = row?;
        let ours = OPS
            .iter()
            .any(|(suffix, _)| name == trigger_name(&table, suffix));
        if ours && sql.contains(&target) {
            out.push((name, table));
        }
    }
    Ok(out)
}

/// Drop one trigger by name.
pub(crate) fn drop_trigger(conn: &Connection, name: &str) -> rusqlite::Result<()> {
    conn.execute(&format!("DROP TRIGGER IF EXISTS main.{}", ident(name)), [])
        .map(|_| ())
}
