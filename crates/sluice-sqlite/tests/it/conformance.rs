//! The shared source conformance suite (`sluice_testing::source`) run against SQLite.

use async_trait::async_trait;
use sluice_core::Source;
use sluice_testing::source::{
    SourceHarness, check_idempotent_replay, check_resume_from_checkpoint,
    check_snapshot_stream_handoff,
};

use crate::support::Db;

struct SqliteHarness {
    db: Db,
}

impl SqliteHarness {
    fn new() -> Self {
        SqliteHarness {
            db: Db::new("CREATE TABLE items (id INTEGER PRIMARY KEY, val TEXT);"),
        }
    }
}

#[async_trait]
impl SourceHarness for SqliteHarness {
    async fn make_source(&mut self) -> Box<dyn Source> {
        Box::new(self.db.source(&["items"]))
    }

    async fn insert(&mut self, id: i64, val: &str) {
        self.db
            .conn()
            .execute(
                "INSERT INTO items (id, val) VALUES (?1, ?2)",
                rusqlite::params![id, val],
            )
            .unwrap();
    }

    async fn update(&mut self, id: i64, val: &str) {
        let n = self
            .db
            .conn()
            .execute(
                "UPDATE items SET val = ?2 WHERE id = ?1",
                rusqlite::params![id, val],
            )
            .unwrap();
        assert_eq!(n, 1, "update of missing row {id}");
    }

    async fn delete(&mut self, id: i64) {
        let n = self
            .db
            .conn()
            .execute("DELETE FROM items WHERE id = ?1", [id])
            .unwrap();
        assert_eq!(n, 1, "delete of missing row {id}");
    }

    fn table(&self) -> &str {
        "main.items"
    }
}

#[tokio::test]
async fn conformance_resume_from_checkpoint() {
    check_resume_from_checkpoint(&mut SqliteHarness::new()).await;
}

#[tokio::test]
async fn conformance_snapshot_stream_handoff() {
    check_snapshot_stream_handoff(&mut SqliteHarness::new()).await;
}

#[tokio::test]
async fn conformance_idempotent_replay() {
    check_idempotent_replay(&mut SqliteHarness::new()).await;
}
