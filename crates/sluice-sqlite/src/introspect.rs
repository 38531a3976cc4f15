//! What tables a database has, which of them are captured, and their shapes.

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;
use sluice_config::model::{SqliteSourceConfig, table_matches};
use sluice_core::{Column, Error, Name, Result, Row, TableSchema};

use crate::connection::{Access, db_error, ident, open};

/// The only SQLite schema sluice captures; events name tables `main.<name>`.
pub(crate) const SCHEMA: &str = "main";

/// Tables whose names start with this are sluice's own and never captured.
pub(crate) const RESERVED_PREFIX: &str = "_sluice";

/// A table found by [`crate::introspect`], for `sluice init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Qualified name, `main.users`.
    pub name: String,
    /// Primary-key columns in key order; empty when the table has none.
    pub primary_key: Vec<String>,
    /// `(name, declared type)` in table order.
    pub columns: Vec<(String, String)>,
    /// Number of rows.
    pub rows: u64,
}

/// A captured table: its current schema and its name inside the `main` schema.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    /// Bare name, as written in SQL (`users`).
    pub name: String,
    /// Current schema; `schema.table` is `main.users`.
    pub schema: Arc<TableSchema>,
    /// Column names in table order (shared with every row produced).
    pub columns: Vec<Name>,
}

impl Table {
    fn new(name: String, schema: TableSchema) -> Self {
        let columns = schema.columns.iter().map(|c| c.name).collect();
        Table {
            name,
            schema: Arc::new(schema),
            columns,
        }
    }

    /// Qualified name, `main.users`.
    pub fn qualified(&self) -> &Name {
        &self.schema.table
    }

    /// The primary-key part of `row`, in key order.
    pub fn key_of(&self, row: &Row) -> Row {
        self.schema
            .primary_key
            .iter()
            .map(|k| (*k, row.get(k).cloned().unwrap_or(sluice_core::Value::Null)))
            .collect()
    }

    /// Re-read the table's shape. `Ok(None)` when it no longer exists; `Ok(Some(changed))`
    /// otherwise, where `changed` says whether the columns or key changed (version bumped).
    pub fn refresh(&mut self, conn: &Connection) -> rusqlite::Result<Option<bool>> {
        let Some((columns, primary_key)) = shape(conn, &self.name)? else {
            return Ok(None);
        };
        match self.schema.evolve(columns, primary_key) {
            Some(next) => {
                *self = Table::new(self.name.clone(), next);
                Ok(Some(true))
            }
            None => Ok(Some(false)),
        }
    }
}

/// `main.<name>`.
pub(crate) fn qualify(name: &str) -> String {
    format!("{SCHEMA}.{name}")
}

/// Ordinary tables of the `main` schema, by name, leaving out SQLite's own tables, virtual
/// and shadow tables (FTS internals), and sluice's own tables.
pub(crate) fn user_tables(conn: &Connection, changelog: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' ORDER BY name",
    )?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names
        .into_iter()
        .filter(|n| !n.starts_with("sqlite_") && n != changelog && !n.starts_with(RESERVED_PREFIX))
        .collect())
}

type Shape = (Vec<Column>, Vec<Name>);

/// Columns in table order and primary-key columns in key order; `None` if no such table.
fn shape(conn: &Connection, name: &str) -> rusqlite::Result<Option<Shape>> {
    let mut stmt = conn.prepare(
        "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1, 'main') ORDER BY cid",
    )?;
    let mut columns = Vec::new();
    let mut keyed = Vec::new();
    let mut rows = stmt.query([name])?;
    while let Some(r) = rows.next()? {
        let column = Name::new(&r.get::<_, String>(0)?);
        let pk: i64 = r.get(3)?;
        if pk > 0 {
            keyed.push((pk, column));
        }
        columns.push(Column {
            name: column,
            type_name: r.get(1)?,
            nullable: r.get::<_, i64>(2)? == 0,
        });
    }
    if columns.is_empty() {
        return Ok(None);
    }
    keyed.sort_by_key(|(pk, _)| *pk);
    Ok(Some((columns, keyed.into_iter().map(|(_, c)| c).collect())))
}

fn no_primary_key(qualified: &str) -> Error {
    Error::permanent(format!(
        "table \"{qualified}\" has no primary key; sluice keys every change by primary key (hint: add a PRIMARY KEY, or leave the table out of \"tables\")"
    ))
}

/// The tables `config` captures, with their schemas (version 1).
///
/// Empty `tables` means every table with a primary key (others are skipped with a warning).
/// A pattern that matches nothing, or an explicitly listed table without a primary key, is
/// a permanent error.
pub(crate) fn captured(conn: &Connection, config: &SqliteSourceConfig) -> Result<Vec<Table>> {
    let path = config.path.as_path();
    let read = |e| db_error(path, "reading the tables of", e);
    let all = user_tables(conn, &config.changelog_table).map_err(read)?;
    let mut names: Vec<&String> = Vec::new();
    if config.tables.is_empty() {
        names.extend(all.iter());
    } else {
        for pattern in &config.tables {
            let matched: Vec<&String> = all
                .iter()
                .filter(|n| table_matches(pattern, &qualify(n)))
                .collect();
            if matched.is_empty() {
                let available: Vec<String> =
                    all.iter().map(|n| format!("\"{}\"", qualify(n))).collect();
                let available = if available.is_empty() {
                    "none".to_owned()
                } else {
                    available.join(", ")
                };
                return Err(Error::permanent(format!(
                    "table \"{pattern}\" in \"tables\" does not exist in sqlite database \"{}\" (available tables: {available})",
                    path.display()
                )));
            }
            for name in matched {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    let mut tables = Vec::new();
    for name in names {
        let qualified = qualify(name);
        let Some((columns, primary_key)) = shape(conn, name).map_err(read)? else {
            continue;
        };
        if primary_key.is_empty() {
            if config.tables.is_empty() {
                tracing::warn!(table = %qualified, "skipping table without a primary key; sluice keys every change by primary key");
                continue;
            }
            return Err(no_primary_key(&qualified));
        }
        let schema = TableSchema {
            table: Name::new(&qualified),
            version: 1,
            columns,
            primary_key,
        };
        tables.push(Table::new(name.clone(), schema));
    }
    if tables.is_empty() {
        return Err(Error::permanent(format!(
            "sqlite database \"{}\" has no table with a primary key to capture (hint: create one, or list tables in \"tables\")",
            path.display()
        )));
    }
    Ok(tables)
}

/// Every user table of the database at `path`, for `sluice init`. Read-only.
pub(crate) fn introspect(path: &Path) -> Result<Vec<TableInfo>> {
    let conn = open(path, Access::ReadOnly)?;
    let read = |e| db_error(path, "reading the tables of", e);
    let mut out = Vec::new();
    for name in user_tables(&conn, RESERVED_PREFIX).map_err(read)? {
        let Some((columns, primary_key)) = shape(&conn, &name).map_err(read)? else {
            continue;
        };
        let rows: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM main.{}", ident(&name)),
                [],
                |r| r.get(0),
            )
            .map_err(read)?;
        out.push(TableInfo {
            name: qualify(&name),
            primary_key: primary_key.iter().map(|k| k.to_string()).collect(),
            columns: columns
                .into_iter()
                .map(|c| (c.name.to_string(), c.type_name))
                .collect(),
            rows: u64::try_from(rows).unwrap_or(0),
        });
    }
    Ok(out)
}
