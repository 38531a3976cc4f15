//! The shared source conformance suite (`sluice_testing::source`) run against PostgreSQL.

use async_trait::async_trait;
use sluice_core::Source;
use sluice_postgres::PostgresSource;
use sluice_testing::source::{
    SourceHarness, check_idempotent_replay, check_resume_from_checkpoint,
    check_snapshot_stream_handoff,
};

use crate::common::TestDb;

struct PgHarness {
    db: TestDb,
}

impl PgHarness {
    async fn new() -> Option<Self> {
        let db = TestDb::new().await?;
        db.exec("CREATE TABLE items (id int PRIMARY KEY, val text NOT NULL)")
            .await;
        Some(PgHarness { db })
    }

    async fn finish(self) {
        self.db.finish().await;
    }
}

#[async_trait]
impl SourceHarness for PgHarness {
    async fn make_source(&mut self) -> Box<dyn Source> {
        let mut config = self.db.config("app");
        // Small batches, so that the hand-off check writes while the snapshot is read.
        config.batch_size = 7;
        Box::new(PostgresSource::new("app", &config))
    }

    async fn insert(&mut self, id: i64, val: &str) {
        self.db
            .client
            .execute(
                "INSERT INTO items (id, val) VALUES ($1::int8::int4, $2)",
                &[&id, &val],
            )
            .await
            .unwrap();
    }

    async fn update(&mut self, id: i64, val: &str) {
        let n = self
            .db
            .client
            .execute(
                "UPDATE items SET val = $2 WHERE id = $1::int8",
                &[&id, &val],
            )
            .await
            .unwrap();
        assert_eq!(n, 1, "update of missing row {id}");
    }

    async fn delete(&mut self, id: i64) {
        let n = self
            .db
            .client
            .execute("DELETE FROM items WHERE id = $1::int8", &[&id])
            .await
            .unwrap();
        assert_eq!(n, 1, "delete of missing row {id}");
    }

    fn table(&self) -> &str {
        "public.items"
    }
}

#[tokio::test]
async fn conformance_resume_from_checkpoint() {
    let Some(mut h) = PgHarness::new().await else {
        return;
    };
    check_resume_from_checkpoint(&mut h).await;
    h.finish().await;
}

#[tokio::test]
async fn conformance_snapshot_stream_handoff() {
    let Some(mut h) = PgHarness::new().await else {
        return;
    };
    check_snapshot_stream_handoff(&mut h).await;
    h.finish().await;
}

#[tokio::test]
async fn conformance_idempotent_replay() {
    let Some(mut h) = PgHarness::new().await else {
        return;
    };
    check_idempotent_replay(&mut h).await;
    h.finish().await;
}
