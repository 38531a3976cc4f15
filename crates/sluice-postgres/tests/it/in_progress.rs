//! Streamed in-progress transactions (protocol 2+, `streaming 'on'`): the database's
//! `logical_decoding_work_mem` is lowered to its 64 kB minimum so that the server streams
//! every transaction of more than a few hundred rows while it runs. Each test checks
//! `pg_stat_replication_slots` to prove the server did stream, so none can pass on the
//! non-streaming path.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sluice_config::model::{PostgresSourceConfig, SnapshotMode};
use sluice_core::{Change, Op};
use tokio_postgres::Client;

use crate::common::{Driver, TestDb, int};

async fn streaming_db() -> Option<(TestDb, Client)> {
    let db = TestDb::new().await?;
    db.exec(&format!(
        "ALTER DATABASE {} SET logical_decoding_work_mem = '64kB'",
        db.name
    ))
    .await;
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)")
        .await;
    let (other, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    Some((db, other))
}

/// (streamed transactions, streamed bytes) of the test's slot.
async fn streamed(db: &TestDb, slot: &str) -> (i64, i64) {
    let row = db
        .client
        .query_opt(
            "SELECT stream_txns, stream_bytes FROM pg_stat_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap();
    row.map_or((0, 0), |r| (r.get(0), r.get(1)))
}

/// A source streaming from a new slot (no snapshot), drained; `stream_in_progress` as given.
async fn start(db: &TestDb, stream_in_progress: bool) -> (PostgresSourceConfig, Driver) {
    let mut config = db.config("app");
    config.snapshot = SnapshotMode::Never;
    config.stream_in_progress = stream_in_progress;
    let mut d = Driver::start(&config, None).await;
    d.drain().await;
    (config, d)
}

/// Poll until the server has streamed part of an open transaction.
async fn until_streamed(db: &TestDb, slot: &str, d: &mut Driver) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while streamed(db, slot).await.1 == 0 {
        assert!(Instant::now() < deadline, "the server streamed nothing");
        d.poll_once().await.unwrap();
    }
}

fn ids(changes: &[Change]) -> Vec<i64> {
    changes
        .iter()
        .filter(|c| c.op == Op::Insert)
        .map(|c| int(&c.key, "id"))
        .collect()
}

#[tokio::test]
async fn a_streamed_transaction_arrives_at_its_commit_without_its_rolled_back_parts() {
    let Some((db, other)) = streaming_db().await else {
        return;
    };
    let (config, mut d) = start(&db, true).await;

    // A big transaction with a savepoint rolled back after its rows were streamed, and one
    // released; a small transaction commits while it is open; then a big one aborts.
    other
        .batch_execute(
            "BEGIN;
             INSERT INTO t SELECT g, repeat('a', 50) FROM generate_series(1, 5000) g;
             SAVEPOINT s1;
             INSERT INTO t SELECT g, repeat('b', 50) FROM generate_series(5001, 8000) g;
             SAVEPOINT s1a;
             INSERT INTO t SELECT g, repeat('c', 50) FROM generate_series(8001, 9000) g;
             ROLLBACK TO s1;
             SAVEPOINT s2;
             INSERT INTO t SELECT g, repeat('d', 50) FROM generate_series(9001, 10000) g;
             RELEASE s2;
             INSERT INTO t VALUES (10001, 'last of the big one');",
        )
        .await
        .unwrap();
    db.exec("INSERT INTO t VALUES (100000, 'small, committed first')")
        .await;
    // Let the server stream the open transaction before it commits.
    until_streamed(&db, &config.slot, &mut d).await;
    d.until_count(1).await;
    d.drain().await;
    assert_eq!(
        ids(&d.changes),
        [100_000],
        "nothing of the open transaction before its commit"
    );
    other.batch_execute("COMMIT").await.unwrap();
    other
        .batch_execute(
            "BEGIN;
             INSERT INTO t SELECT g, 'aborted' FROM generate_series(20001, 30000) g;
             ROLLBACK;",
        )
        .await
        .unwrap();
    db.exec("INSERT INTO t VALUES (200000, 'after')").await;
    d.until("the marker after the aborted transaction", |c| {
        ids(c).contains(&200_000)
    })
    .await;

    let got = ids(&d.changes);
    let expected: Vec<i64> = std::iter::once(100_000)
        .chain(1..=5000)
        .chain(9001..=10_001)
        .chain(std::iter::once(200_000))
        .collect();
    assert_eq!(got.len(), expected.len(), "events: {}", got.len());
    assert_eq!(got, expected, "commit order, and only what committed");
    // The big transaction is one transaction: one id, ordinals 0.., the last one marked.
    let big: Vec<&Change> = d
        .changes
        .iter()
        .filter(|c| (1..=10_001).contains(&int(&c.key, "id")))
        .collect();
    let txid = &big[0].tx.as_ref().unwrap().id;
    for (i, c) in big.iter().enumerate() {
        let tx = c.tx.as_ref().unwrap();
        assert_eq!((&tx.id, tx.ordinal), (txid, i as u64));
        assert_eq!(tx.last, i + 1 == big.len());
    }
    let (txns, bytes) = streamed(&db, &config.slot).await;
    eprintln!("server streamed {txns} transactions, {bytes} bytes");
    assert!(
        txns >= 2,
        "both big transactions were streamed (stream_txns = {txns})"
    );
    // What the database holds is what arrived.
    let in_db: BTreeSet<i64> = db
        .client
        .query("SELECT id FROM t", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| i64::from(r.get::<_, i32>(0)))
        .collect();
    assert_eq!(in_db, got.iter().copied().collect::<BTreeSet<_>>());
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn a_restart_while_a_transaction_streams_gets_it_whole_once() {
    let Some((db, other)) = streaming_db().await else {
        return;
    };
    let (config, mut d) = start(&db, true).await;
    db.exec("INSERT INTO t VALUES (0, 'before')").await;
    d.until_count(1).await;
    let checkpoint = d.last_position.clone();

    other
        .batch_execute(
            "BEGIN; INSERT INTO t SELECT g, repeat('x', 50) FROM generate_series(1, 20000) g;",
        )
        .await
        .unwrap();
    until_streamed(&db, &config.slot, &mut d).await;
    // Stop with part of the transaction spilled, as a crash would.
    drop(d);
    let mut d = Driver::start(&config, checkpoint).await;
    other
        .batch_execute("INSERT INTO t VALUES (20001, 'end'); COMMIT;")
        .await
        .unwrap();
    d.until_count(20_001).await;
    d.drain().await;
    let got = ids(&d.changes);
    assert_eq!(got, (1..=20_001).collect::<Vec<i64>>());
    assert!(streamed(&db, &config.slot).await.0 >= 1);
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn with_streaming_off_the_server_sends_big_transactions_at_commit() {
    let Some((db, other)) = streaming_db().await else {
        return;
    };
    let (config, mut d) = start(&db, false).await;
    other
        .batch_execute(
            "BEGIN;
             INSERT INTO t SELECT g, repeat('a', 50) FROM generate_series(1, 5000) g;
             SAVEPOINT s; INSERT INTO t VALUES (5001, 'rolled back'); ROLLBACK TO s;
             COMMIT;",
        )
        .await
        .unwrap();
    d.until_count(5000).await;
    d.drain().await;
    assert_eq!(ids(&d.changes), (1..=5000).collect::<Vec<i64>>());
    assert_eq!(streamed(&db, &config.slot).await.0, 0, "nothing streamed");
    drop(d);
    db.finish().await;
}

/// On a new connection the table's description (Relation message) is sent inside the
/// savepoint that first touched it; rolling that savepoint back after it was streamed must
/// not take the description with it (PostgreSQL 15.18 sends it again after the rollback;
/// sluice keeps the streamed one anyway, see `spill::Spilled::truncate`).
#[tokio::test]
async fn a_rolled_back_savepoint_that_carried_the_tables_description() {
    let Some((db, other)) = streaming_db().await else {
        return;
    };
    db.exec("CREATE TABLE u (id int PRIMARY KEY)").await;
    let (config, mut d) = start(&db, true).await;
    other
        .batch_execute(
            "BEGIN;
             INSERT INTO u VALUES (1);
             SAVEPOINT s;
             INSERT INTO t SELECT g, repeat('r', 50) FROM generate_series(1, 50000) g;
             ROLLBACK TO s;
             INSERT INTO t VALUES (7, 'kept');
             COMMIT;",
        )
        .await
        .unwrap();
    db.exec("INSERT INTO t VALUES (8, 'after')").await;
    d.until("the committed rows", |c| ids(c).len() >= 3).await;
    let t: Vec<Change> = d
        .changes
        .iter()
        .filter(|c| &*c.table == "public.t")
        .cloned()
        .collect();
    assert_eq!(ids(&t), [7, 8]);
    assert!(streamed(&db, &config.slot).await.0 >= 1, "nothing streamed");
    drop(d);
    db.finish().await;
}

/// A column added inside a streamed transaction: the schema event comes between the rows of
/// the old shape and those of the new, all in the one transaction; a truncate in it too.
#[tokio::test]
async fn ddl_and_truncate_inside_a_streamed_transaction_keep_their_place() {
    let Some((db, other)) = streaming_db().await else {
        return;
    };
    let (config, mut d) = start(&db, true).await;
    other
        .batch_execute(
            "BEGIN;
             INSERT INTO t SELECT g, repeat('a', 50) FROM generate_series(1, 3000) g;
             TRUNCATE t;
             INSERT INTO t SELECT g, repeat('b', 50) FROM generate_series(3001, 6000) g;
             ALTER TABLE t ADD COLUMN extra int;
             INSERT INTO t SELECT g, 'c', g FROM generate_series(6001, 9000) g;
             COMMIT;",
        )
        .await
        .unwrap();
    d.until("the last row", |c| ids(c).contains(&9000)).await;
    assert!(streamed(&db, &config.slot).await.0 >= 1, "nothing streamed");
    let ops: Vec<Op> = d.changes.iter().map(|c| c.op).collect();
    let truncate = ops.iter().position(|o| *o == Op::Truncate).unwrap();
    let schema = ops.iter().rposition(|o| *o == Op::Schema).unwrap();
    let inserted = ids(&d.changes);
    assert_eq!(inserted, (1..=9000).collect::<Vec<i64>>());
    let index_of = |id: i64| {
        d.changes
            .iter()
            .position(|c| c.op == Op::Insert && int(&c.key, "id") == id)
            .unwrap()
    };
    assert!(index_of(3000) < truncate && truncate < index_of(3001));
    assert!(index_of(6000) < schema && schema < index_of(6001));
    let last = d.changes.iter().rfind(|c| c.op == Op::Insert).unwrap();
    assert_eq!(
        last.after.as_ref().unwrap().get("extra"),
        Some(&sluice_core::Value::Int(9000))
    );
    let tx: std::collections::BTreeSet<&str> = d
        .changes
        .iter()
        .filter(|c| c.op != Op::Schema)
        .map(|c| c.tx.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(tx.len(), 1, "one transaction");
    drop(d);
    db.finish().await;
}
