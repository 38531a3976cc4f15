//! Opening the database, quoting names, and turning SQLite errors into classed sluice errors.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use sluice_core::{Error, Result};

/// How long a statement waits for another connection's lock before failing with
/// `SQLITE_BUSY` (which sluice reports as a transient error).
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a connection may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Install triggers, write the changelog, prune it.
    ReadWrite,
    /// `sluice check` and `sluice init`: change nothing.
    ReadOnly,
}

/// Open an existing database. Never creates the file: a missing file is a configuration
/// mistake, and creating an empty database there would hide it.
pub(crate) fn open(path: &Path, access: Access) -> Result<Connection> {
    if !path.exists() {
        return Err(Error::permanent(format!(
            "sqlite database \"{}\" does not exist (hint: check \"path\" in the source config, or create it first)",
            path.display()
        )));
    }
    let mode = match access {
        Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
        Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
    };
    let flags = mode | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| db_error(path, "opening", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| db_error(path, "setting busy_timeout on", e))?;
    // SQLite opens lazily; touch the schema so that a file that is not a database fails here.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| db_error(path, "reading the schema of", e))?;
    Ok(conn)
}

/// Class an SQLite error: a lock held by another connection is transient, everything else
/// (not a database, read-only file, missing table, corrupt file...) is permanent.
pub(crate) fn db_error(path: &Path, doing: &str, e: rusqlite::Error) -> Error {
    let p = path.display();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::transient(format!(
            "sqlite database \"{p}\" is locked by another connection while {doing} it (sluice retries)"
        )),
        Some(ErrorCode::NotADatabase) => Error::permanent(format!(
            "file \"{p}\" is not a sqlite database (hint: check \"path\" in the source config)"
        )),
        Some(ErrorCode::CannotOpen) => Error::permanent(format!(
            "cannot open sqlite database \"{p}\" (hint: check that the file and its directory are readable and writable)"
        ))
        .with_source(e),
        Some(ErrorCode::ReadOnly) => Error::permanent(format!(
            "sqlite database \"{p}\" is read-only (hint: sluice needs write access to install triggers and prune its changelog)"
        ))
        .with_source(e),
        _ => Error::permanent(format!("{doing} sqlite database \"{p}\" failed")).with_source(e),
    }
}

/// `name` as an SQL identifier: `"na""me"`.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as an SQL string literal: `'it''s'`.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Try to switch to WAL so that the snapshot's long read transaction does not block the
/// application's writers. Returns the journal mode in effect; never fails the caller.
pub(crate) fn enable_wal(conn: &Connection, path: &Path) -> String {
    match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
        Ok(mode) => {
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(
                    database = %path.display(),
                    journal_mode = %mode,
                    "could not switch sqlite database to WAL; the snapshot will block writers while it runs"
                );
            }
            mode.to_lowercase()
        }
        Err(e) => {
            tracing::warn!(
                database = %path.display(),
                error = %e,
                "could not switch sqlite database to WAL; the snapshot will block writers while it runs"
            );
            journal_mode(conn).unwrap_or_else(|_| "unknown".to_owned())
        }
    }
}

/// The current journal mode (read-only).
pub(crate) fn journal_mode(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
        .map(|m| m.to_lowercase())
}

/// `PRAGMA schema_version`: changes whenever any table, index or trigger is created,
/// altered or dropped.
pub(crate) fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA schema_version", [], |r| r.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident("a\"b c"), "\"a\"\"b c\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
