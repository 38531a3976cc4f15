//! Which tables a pipeline's checkpoint covers: `<state_dir>/<source>.tables.json`.
//!
//! A table captured now that the checkpoint did not cover (added to `tables`, published
//! since with `tables` unset, or dropped and created again: a new OID) has rows the stream
//! never carried, so it is read before the stream resumes. The file is replaced only once a
//! streamed position after those rows is confirmed (the engine confirms what it
//! checkpointed): a crash before then reads them again rather than losing them.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};
use sluice_core::{Error, PgLsn, Result};

use crate::catalog::Table;

/// A captured table: its name and the OID that tells a table made again from the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CapturedTable {
    pub table: String,
    pub oid: u32,
}

impl CapturedTable {
    pub fn of(tables: &[Table]) -> Vec<CapturedTable> {
        tables
            .iter()
            .map(|t| CapturedTable {
                table: t.qualified(),
                oid: t.oid,
            })
            .collect()
    }
}

/// The record to write once a streamed position after `after` is confirmed.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub after: PgLsn,
    /// The start resumed a stream at `after` and read tables first: their rows are
    /// positioned before the checkpoint at `after` (which they do not move), so only a
    /// confirmed position past `after` shows they were delivered. Otherwise (a snapshot at
    /// `after`, or nothing to read) the position `after` itself, streaming, shows it.
    pub strict: bool,
    pub tables: Vec<CapturedTable>,
}

impl Pending {
    /// Whether a confirmed streamed position `confirmed` covers every row this start read.
    pub fn covered_by(&self, confirmed: PgLsn) -> bool {
        self.after.0 != 0 && (confirmed > self.after || (!self.strict && confirmed == self.after))
    }
}

pub(crate) fn path(state_dir: &Path, source: &str) -> PathBuf {
    state_dir.join(format!("{source}.tables.json"))
}

/// The recorded tables; `None` when there is no record (a data directory from before
/// sluice kept one, or a source run without a state directory).
pub(crate) fn load(path: &Path) -> Result<Option<Vec<CapturedTable>>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::permanent(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let bad = |why: &str| {
        Error::permanent(format!(
            "{} is not a record of captured tables ({why}) (hint: delete it; sluice then reads only tables newly added to the publication before streaming)",
            path.display()
        ))
    };
    let parsed: Json = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let Some(list) = parsed.get("tables").and_then(Json::as_array) else {
        return Err(bad("no \"tables\" list"));
    };
    let mut tables = Vec::with_capacity(list.len());
    for entry in list {
        let table = entry.get("table").and_then(Json::as_str);
        let oid = entry
            .get("oid")
            .and_then(Json::as_u64)
            .and_then(|o| u32::try_from(o).ok());
        let (Some(table), Some(oid)) = (table, oid) else {
            return Err(bad(&format!(
                "entry {entry} needs \"table\" and a 32-bit \"oid\""
            )));
        };
        tables.push(CapturedTable {
            table: table.to_owned(),
            oid,
        });
    }
    Ok(Some(tables))
}

/// Replace the record atomically and durably.
pub(crate) fn save(path: &Path, tables: &[CapturedTable]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let body = json!({
        "tables": tables
            .iter()
            .map(|t| json!({"table": t.table, "oid": t.oid}))
            .collect::<Vec<_>>()
    });
    let tmp = path.with_extension("json.tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(format!("{body:#}\n").as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// The captured tables the record does not have (by OID).
pub(crate) fn new_since<'t>(known: &[CapturedTable], now: &'t [Table]) -> Vec<&'t Table> {
    now.iter()
        .filter(|t| !known.iter().any(|k| k.oid == t.oid))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn saved_records_load_back_and_bad_ones_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "app");
        assert_eq!(load(&p).unwrap(), None);
        let tables = vec![
            CapturedTable {
                table: "public.a".into(),
                oid: 16_384,
            },
            CapturedTable {
                table: "s.\"odd\".t".into(),
                oid: u32::MAX,
            },
        ];
        save(&p, &tables).unwrap();
        assert_eq!(load(&p).unwrap(), Some(tables));
        for bad in [
            "{",
            "{\"tables\": 3}",
            "{\"tables\": [{\"table\": \"a\", \"oid\": -1}]}",
        ] {
            fs::write(&p, bad).unwrap();
            let e = load(&p).unwrap_err().to_string();
            assert!(e.contains("app.tables.json") && e.contains("hint"), "{e}");
        }
    }
}
