//! `sluice setup`, `teardown` and `check`: install, remove and inspect the changelog table
//! and triggers. All of them are idempotent and say what they did.

use std::collections::BTreeSet;

use rusqlite::{Connection, TransactionBehavior};
use sluice_config::model::SqliteSourceConfig;
use sluice_core::Result;

use crate::changelog;
use crate::connection::{Access, db_error, enable_wal, journal_mode, open};
use crate::introspect::{Table, captured, qualify};
use crate::trigger::{self, TriggerState};

/// Create the changelog if missing, make the triggers of `tables` current and remove sluice
/// triggers from tables no longer captured, in one `BEGIN IMMEDIATE` transaction. Returns a
/// line per thing done.
pub(crate) fn install(
    conn: &mut Connection,
    config: &SqliteSourceConfig,
    tables: &[Table],
) -> Result<Vec<String>> {
    let path = config.path.as_path();
    let name = &config.changelog_table;
    let fail = |e| db_error(path, "installing the changelog and triggers in", e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail)?;
    let mut lines = Vec::new();
    if changelog::ensure(&tx, name).map_err(fail)? {
        lines.push(format!("created changelog table \"{name}\""));
    }
    for table in tables {
        let q = table.qualified();
        match trigger::install(&tx, table, name).map_err(fail)? {
            TriggerState::Current => {}
            TriggerState::Missing => lines.push(format!("installed triggers on \"{q}\"")),
            TriggerState::Outdated => lines.push(format!("updated triggers on \"{q}\"")),
        }
    }
    let keep: BTreeSet<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let mut removed = BTreeSet::new();
    for (trigger, table) in trigger::installed(&tx, name).map_err(fail)? {
        if !keep.contains(table.as_str()) {
            trigger::drop_trigger(&tx, &trigger).map_err(fail)?;
            removed.insert(table);
        }
    }
    for table in removed {
        lines.push(format!(
            "removed triggers on \"{}\" (not in \"tables\")",
            qualify(&table)
        ));
    }
    tx.commit().map_err(fail)?;
    Ok(lines)
}

pub(crate) fn setup(config: &SqliteSourceConfig) -> Result<Vec<String>> {
    let mut conn = open(&config.path, Access::ReadWrite)?;
    let tables = captured(&conn, config)?;
    let mut lines = install(&mut conn, config, &tables)?;
    if lines.is_empty() {
        lines.push(format!(
            "changelog table \"{}\" and triggers on {} are already current",
            config.changelog_table,
            list(&tables)
        ));
    }
    let before = journal_mode(&conn).unwrap_or_default();
    let after = enable_wal(&conn, &config.path);
    if before != after {
        lines.push(format!("set journal mode to {after} (was {before})"));
    }
    Ok(lines)
}

pub(crate) fn teardown(config: &SqliteSourceConfig) -> Result<Vec<String>> {
    let path = config.path.as_path();
    let name = &config.changelog_table;
    let mut conn = open(path, Access::ReadWrite)?;
    let fail = |e| db_error(path, "removing the changelog and triggers from", e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail)?;
    let mut tables = BTreeSet::new();
    for (trigger, table) in trigger::installed(&tx, name).map_err(fail)? {
        trigger::drop_trigger(&tx, &trigger).map_err(fail)?;
        tables.insert(table);
    }
    let mut lines: Vec<String> = tables
        .iter()
        .map(|t| format!("dropped triggers on \"{}\"", qualify(t)))
        .collect();
    if changelog::exists(&tx, name).map_err(fail)? {
        tx.execute(
            &format!("DROP TABLE main.{}", crate::connection::ident(name)),
            [],
        )
        .map_err(fail)?;
        lines.push(format!("dropped changelog table \"{name}\""));
    }
    tx.commit().map_err(fail)?;
    if lines.is_empty() {
        lines.push(format!(
            "nothing to remove: no changelog table \"{name}\" and no sluice triggers"
        ));
    }
    Ok(lines)
}

pub(crate) fn check(config: &SqliteSourceConfig) -> Result<Vec<String>> {
    let path = config.path.as_path();
    let name = &config.changelog_table;
    let conn = open(path, Access::ReadOnly)?;
    let read = |e| db_error(path, "checking", e);
    let mode = journal_mode(&conn).map_err(read)?;
    let mut lines = vec![format!(
        "opened sqlite database \"{}\" (sqlite {}, journal mode {mode})",
        path.display(),
        rusqlite::version()
    )];
    let tables = captured(&conn, config)?;
    for table in &tables {
        let key: Vec<&str> = table.schema.primary_key.iter().map(|k| &**k).collect();
        lines.push(format!(
            "table \"{}\": {} columns, primary key ({})",
            table.qualified(),
            table.columns.len(),
            key.join(", ")
        ));
    }
    if changelog::exists(&conn, name).map_err(read)? {
        let (pending, _) = changelog::pending(&conn, name, 0).map_err(read)?;
        lines.push(format!(
            "changelog table \"{name}\": {pending} changes not yet pruned"
        ));
    } else {
        lines.push(format!(
            "missing: changelog table \"{name}\" (run `sluice setup`)"
        ));
    }
    for table in &tables {
        let q = table.qualified();
        lines.push(match trigger::state(&conn, table, name).map_err(read)? {
            TriggerState::Current => format!("triggers on \"{q}\" are current"),
            TriggerState::Missing => format!("missing: triggers on \"{q}\" (run `sluice setup`)"),
            TriggerState::Outdated => format!("outdated: triggers on \"{q}\" (run `sluice setup`)"),
        });
    }
    if mode != "wal" {
        lines.push(format!(
            "journal mode is {mode}; sluice switches it to wal at start so the snapshot does not block writers"
        ));
    }
    Ok(lines)
}

fn list(tables: &[Table]) -> String {
    tables
        .iter()
        .map(|t| format!("\"{}\"", t.qualified()))
        .collect::<Vec<_>>()
        .join(", ")
}
