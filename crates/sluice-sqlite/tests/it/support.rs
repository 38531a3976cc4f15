//! Fixtures: a fresh database per test, source configs, and folding events into table state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::types::ValueRef;
use sluice_config::model::{DEFAULT_CHANGELOG_TABLE, SnapshotMode, SqliteSourceConfig};
use sluice_core::{Change, Name, Op, Position, Row, Source, SourceBatch, SourcePoll, Value};
use sluice_sqlite::SqliteSource;

/// A database file in its own temporary directory. The directory is kept when the test
/// panics so the file can be inspected.
pub struct Db {
    dir: Option<tempfile::TempDir>,
    pub path: PathBuf,
}

impl Db {
    /// A new database created by `schema` (any SQL).
    pub fn new(schema: &str) -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(schema).unwrap();
        Db {
            dir: Some(dir),
            path,
        }
    }

    pub fn conn(&self) -> Connection {
        let conn = Connection::open(&self.path).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn
    }

    pub fn exec(&self, sql: &str) {
        self.conn().execute_batch(sql).unwrap();
    }

    /// A config capturing `tables` (empty: all) with small batches and fast polling.
    pub fn config(&self, tables: &[&str]) -> SqliteSourceConfig {
        SqliteSourceConfig {
            path: self.path.clone(),
            tables: tables.iter().map(|t| t.to_string()).collect(),
            snapshot: SnapshotMode::Initial,
            poll_interval_ms: 5,
            max_idle_interval_ms: 20,
            batch_size: 7,
            changelog_table: DEFAULT_CHANGELOG_TABLE.to_owned(),
        }
    }

    pub fn source(&self, tables: &[&str]) -> SqliteSource {
        SqliteSource::new("app", &self.config(tables))
    }

    /// Rows in the changelog.
    pub fn changelog_rows(&self) -> i64 {
        self.conn()
            .query_row("SELECT count(*) FROM _sluice_changelog", [], |r| r.get(0))
            .unwrap()
    }

    /// `sqlite_master` as text, to compare before/after.
    pub fn master(&self) -> Vec<(String, String, Option<String>)> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!(
                "keeping test database {}",
                dir.keep().join("app.db").display()
            );
        }
    }
}

/// A value as read directly from SQLite.
pub fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into()),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

/// Table state keyed by the JSON of the key: what a key-idempotent sink would hold.
pub type Image = BTreeMap<String, Row>;

pub fn key_text(key: &Row) -> String {
    serde_json::to_string(key).unwrap()
}

/// Apply a change as a sink writing by key would.
pub fn apply(image: &mut Image, change: &Change) {
    let key = key_text(&change.key);
    match change.op {
        Op::Read | Op::Insert | Op::Update => {
            image.insert(key, change.after.clone().expect("after image"));
        }
        Op::Delete => {
            image.remove(&key);
        }
        Op::Truncate => image.clear(),
        Op::Schema => {}
    }
}

/// The current contents of `table` (bare name) keyed by `key` columns.
pub fn table_image(db: &Db, table: &str, key: &[&str]) -> Image {
    let conn = db.conn();
    let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
    let names: Vec<Name> = stmt.column_names().map(Name::new).collect();
    let mut rows = stmt.query([]).unwrap();
    let mut image = Image::new();
    while let Some(r) = rows.next().unwrap() {
        let row: Row = names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, from_sql(r.get_ref(i).unwrap())))
            .collect();
        let key_row: Row = key
            .iter()
            .map(|k| (Name::new(k), row.get(k).unwrap().clone()))
            .collect();
        image.insert(key_text(&key_row), row);
    }
    image
}

/// Poll until `done` holds over everything received so far; panics after 30 s.
pub async fn poll_until(
    source: &mut dyn Source,
    mut done: impl FnMut(&[SourceBatch]) -> bool,
) -> Vec<SourceBatch> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut batches = Vec::new();
    while !done(&batches) {
        assert!(
            Instant::now() < deadline,
            "timed out; received {batches:#?}"
        );
        match source.poll().await.expect("poll") {
            SourcePoll::Batch(b) => batches.push(b),
            SourcePoll::Idle | SourcePoll::Pending => {}
            SourcePoll::Done => panic!("source finished"),
        }
    }
    batches
}

/// Poll until the snapshot is over (a batch at a streaming position).
pub async fn finish_snapshot(source: &mut dyn Source) -> Vec<SourceBatch> {
    poll_until(source, |b| {
        b.last().is_some_and(|b| !is_snapshot(&b.position))
    })
    .await
}

/// Poll until at least `n` changes arrived.
pub async fn changes(source: &mut dyn Source, n: usize) -> Vec<Change> {
    let batches = poll_until(source, |b| {
        b.iter().map(|b| b.changes.len()).sum::<usize>() >= n
    })
    .await;
    batches.into_iter().flat_map(|b| b.changes).collect()
}

/// Poll until folding events into `image` yields the table's contents.
pub async fn converge(
    source: &mut dyn Source,
    image: &mut Image,
    db: &Db,
    table: &str,
    key: &[&str],
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let expected = table_image(db, table, key);
        if *image == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "did not converge:\n got {image:#?}\nwant {expected:#?}"
        );
        if let SourcePoll::Batch(b) = source.poll().await.expect("poll") {
            for c in &b.changes {
                apply(image, c);
            }
        }
    }
}

pub fn is_snapshot(p: &Position) -> bool {
    matches!(p, Position::Sqlite(s) if s.snapshot)
}

pub fn seq(p: &Position) -> i64 {
    match p {
        Position::Sqlite(s) => s.seq,
        other => panic!("not a sqlite position: {other}"),
    }
}

pub fn row(pairs: &[(&str, Value)]) -> Row {
    pairs
        .iter()
        .map(|(c, v)| (Name::new(c), v.clone()))
        .collect()
}

pub fn text(s: &str) -> Value {
    Value::Text(s.into())
}
