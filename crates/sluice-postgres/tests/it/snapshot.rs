use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sluice_core::{Op, PgSnapshotProgress, Position};

use sluice_postgres::PostgresSource;

use crate::common::{Driver, TestDb, fold, folded_id_text, id_text, int};

#[tokio::test]
async fn table_written_during_snapshot_ends_equal_to_the_source() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20000) g;",
    )
    .await;
    let mut config = db.config("app");
    config.batch_size = 500;
    let mut d = Driver::start(&config, None).await;
    // Write while the snapshot is being read (the driver reads slowly).
    let writer = {
        let (c, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        tokio::spawn(async move {
            for i in 0..60 {
                c.batch_execute(&format!(
                    "UPDATE t SET v = 'w{i}' WHERE id % 997 = {i};
                     DELETE FROM t WHERE id = {};
                     INSERT INTO t VALUES ({}, 'new{i}');",
                    i * 300 + 1,
                    100_000 + i
                ))
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    for _ in 0..10 {
        d.poll_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.await.unwrap();
    d.until("the snapshot and all writes", |c| {
        c.iter().filter(|c| c.op == Op::Insert).count() >= 60
    })
    .await;
    d.drain().await;
    let reads = d.changes.iter().filter(|c| c.op == Op::Read).count();
    assert!(reads >= 19_000, "{reads} reads");
    // Snapshot reads all come before any streamed change.
    let first_stream = d.changes.iter().position(|c| c.op != Op::Read).unwrap();
    assert!(d.changes[first_stream..].iter().all(|c| c.op != Op::Read));
    assert_eq!(
        folded_id_text(&d.changes, "public.t"),
        id_text(&db.client, "t").await
    );
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn interrupted_snapshot_resumes_and_ends_equal() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3000) g;",
    )
    .await;
    let mut config = db.config("app");
    config.batch_size = 100;
    let mut d = Driver::start(&config, None).await;
    d.until_count(300).await;
    let checkpoint = d.last_position.clone().unwrap();
    assert!(
        checkpoint.to_string().starts_with("snapshot@"),
        "{checkpoint}"
    );
    let delivered = std::mem::take(&mut d.changes);
    drop(d);
    // Changes while the pipeline is down, including deletes of rows already delivered.
    db.exec("DELETE FROM t WHERE id <= 50; UPDATE t SET v = 'late' WHERE id = 2000; INSERT INTO t VALUES (5000, 'n');")
        .await;
    let mut d = Driver::start(&config, Some(checkpoint)).await;
    d.until("a resumed snapshot and the stream", |c| {
        c.iter().any(|c| c.op == Op::Insert)
    })
    .await;
    d.drain().await;
    let mut all = delivered;
    all.extend(d.changes.clone());
    assert_eq!(
        folded_id_text(&all, "public.t"),
        id_text(&db.client, "t").await
    );
    drop(d);
    db.finish().await;
}

/// Reads of `table` per key (`id`).
fn reads_per_id(changes: &[sluice_core::Change], table: &str) -> BTreeMap<i64, usize> {
    let mut n = BTreeMap::new();
    for c in changes
        .iter()
        .filter(|c| c.op == Op::Read && &*c.table == table)
    {
        *n.entry(int(&c.key, "id")).or_insert(0) += 1;
    }
    n
}

fn progress(p: &Position) -> Option<PgSnapshotProgress> {
    match p {
        Position::Pg { progress, .. } => *progress,
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn parallel_chunks_written_during_snapshot_end_equal_to_the_source() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, repeat('v', 80) || g FROM generate_series(1, 20000) g;
         CREATE TABLE u (id int PRIMARY KEY, v text);
         INSERT INTO u SELECT g, 'u' || g FROM generate_series(1, 3000) g;
         CREATE TABLE empty (id int PRIMARY KEY, v text);",
    )
    .await;
    let mut config = db.config("app");
    config.batch_size = 200;
    config.snapshot_chunk_pages = 16;
    config.snapshot_parallelism = 3;
    let mut d = Driver::start(&config, None).await;
    let writer = {
        let (c, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        tokio::spawn(async move {
            for i in 0..40 {
                c.batch_execute(&format!(
                    "UPDATE t SET v = 'w{i}' WHERE id % 499 = {i};
                     DELETE FROM t WHERE id = {};
                     INSERT INTO t VALUES ({}, 'new{i}');
                     UPDATE u SET v = 'w{i}' WHERE id = {};",
                    i * 400 + 1,
                    100_000 + i,
                    i * 70 + 1
                ))
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    for _ in 0..10 {
        d.poll_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.await.unwrap();
    d.until("the snapshot and all writes", |c| {
        c.iter().filter(|c| c.op == Op::Insert).count() >= 40
    })
    .await;
    d.drain().await;
    // Many chunks, each row read once, positions never going back.
    let chunks: BTreeSet<_> = d
        .changes
        .iter()
        .filter(|c| c.op == Op::Read)
        .filter_map(|c| progress(&c.position))
        .collect();
    assert!(chunks.len() > 10, "{} chunk positions", chunks.len());
    for table in ["public.t", "public.u"] {
        let reads = reads_per_id(&d.changes, table);
        assert!(reads.values().all(|&n| n == 1), "{table} read twice");
    }
    for pair in d.changes.windows(2) {
        assert!(
            pair[0].position <= pair[1].position,
            "{} then {}",
            pair[0].position,
            pair[1].position
        );
    }
    for table in ["t", "u", "empty"] {
        assert_eq!(
            folded_id_text(&d.changes, &format!("public.{table}")),
            id_text(&db.client, table).await,
            "{table}"
        );
    }
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn interrupted_chunked_snapshot_resumes_after_the_last_chunk_delivered() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 1000) g;
         CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 5000) g;",
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec!["a".into(), "t".into()];
    config.batch_size = 100;
    config.snapshot_chunk_pages = 4;
    let mut d = Driver::start(&config, None).await;
    // Table `a` done and at least two chunks of `t`.
    d.until("two chunks of t", |c| {
        c.last()
            .and_then(|c| progress(&c.position))
            .is_some_and(|p| p.table == 1 && p.page >= 8)
    })
    .await;
    let checkpoint = d.last_position.clone().unwrap();
    let at = progress(&checkpoint).unwrap();
    assert!(
        checkpoint.to_string().starts_with("snapshot@"),
        "{checkpoint}"
    );
    let delivered = std::mem::take(&mut d.changes);
    drop(d);
    // Changes while the pipeline is down, to rows already delivered and not.
    db.exec(
        "DELETE FROM t WHERE id <= 50; UPDATE t SET v = 'late' WHERE id IN (60, 4000);
         INSERT INTO t VALUES (9000, 'n'); DELETE FROM t WHERE id = 4500;",
    )
    .await;
    let mut d = Driver::start(&config, Some(checkpoint.clone())).await;
    d.until("a resumed snapshot and the stream", |c| {
        c.iter().any(|c| c.op == Op::Insert)
    })
    .await;
    d.drain().await;
    // Nothing of `a`, and no row of a finished chunk of `t`, is read again.
    assert!(reads_per_id(&d.changes, "public.a").is_empty());
    let touched = [60, 4000];
    let again = reads_per_id(&d.changes, "public.t");
    for c in delivered.iter().filter(|c| &*c.table == "public.t") {
        let id = int(&c.key, "id");
        if c.position < checkpoint && !touched.contains(&id) {
            assert!(
                !again.contains_key(&id),
                "id {id} at {} (before {checkpoint}) read again",
                c.position
            );
        }
    }
    assert!(
        again.len() < 5000 - 500,
        "{} rows of t read again after {at}",
        again.len()
    );
    let mut all = delivered;
    all.extend(d.changes.clone());
    for table in ["a", "t"] {
        assert_eq!(
            folded_id_text(&all, &format!("public.{table}")),
            id_text(&db.client, table).await,
            "{table}"
        );
    }
    drop(d);
    db.finish().await;
}

/// Values that COPY's text format escapes (tab, newline, backslash, `\N`) or that look like
/// its NULL arrive as they are in the table, by snapshot and by stream alike.
#[tokio::test]
async fn copy_escapes_survive_the_snapshot() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        r#"CREATE TABLE t (id int PRIMARY KEY, v text, b bytea, a text[]);
        INSERT INTO t VALUES
            (1, E'tab\there', E'\\x00095c0a', '{"x\ty","a\\\\b"}'),
            (2, E'line\nbreak\r\nand cr', NULL, NULL),
            (3, E'back\\slash \\N \\t', E'\\x5c4e', '{NULL,"NULL"}'),
            (4, 'NULL', '', '{}'),
            (5, NULL, NULL, NULL),
            (6, E'\\N', NULL, NULL),
            (7, '', NULL, NULL),
            (8, 'héllo ✓ 😀 中文', NULL, NULL),
            (9, E'\b\f\v\x01 ctl', NULL, NULL),
            (10, E'\\', NULL, NULL);"#,
    )
    .await;
    let mut config = db.config("app");
    config.snapshot_chunk_pages = 1;
    let mut d = Driver::start(&config, None).await;
    d.until_count(10).await;
    assert!(d.changes.iter().all(|c| c.op == Op::Read));
    assert_eq!(
        folded_id_text(&d.changes, "public.t"),
        id_text(&db.client, "t").await
    );
    db.exec("INSERT INTO t SELECT id + 100, v, b, a FROM t")
        .await;
    d.until_count(20).await;
    let rows = fold(&d.changes, "public.t");
    for id in 1..=10 {
        let (read, streamed) = (&rows[&id], &rows[&(id + 100)]);
        for ((col, a), (_, b)) in read.0.iter().zip(&streamed.0).skip(1) {
            assert_eq!(a.to_json(), b.to_json(), "id {id} column {col}");
        }
    }
    drop(d);
    db.finish().await;
}

/// `snapshot = "only"`: the rows, then `Done`; no slot or publication is left behind, and a
/// restart from the final checkpoint has nothing to do.
#[tokio::test]
async fn snapshot_only_reads_then_finishes_without_a_slot() {
    use sluice_core::{Source, SourcePoll};
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3000) g;",
    )
    .await;
    let mut config = db.config("app");
    config.snapshot = sluice_config::model::SnapshotMode::Only;
    config.snapshot_chunk_pages = 2;
    let mut d = Driver::start(&config, None).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(std::time::Instant::now() < deadline, "no Done");
        match d.source.poll().await.unwrap() {
            SourcePoll::Batch(b) => {
                d.changes.extend(b.changes);
                d.last_position = Some(b.position);
            }
            SourcePoll::Idle | SourcePoll::Pending => {}
            SourcePoll::Done => break,
        }
    }
    assert!(d.changes.iter().all(|c| c.op == Op::Read));
    assert_eq!(
        folded_id_text(&d.changes, "public.t"),
        id_text(&db.client, "t").await
    );
    let last = d.last_position.clone().unwrap();
    assert!(!last.to_string().starts_with("snapshot@"), "{last}");
    let left: i64 = db
        .client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_replication_slots WHERE database = current_database()) \
             + (SELECT count(*) FROM pg_publication)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    drop(d);
    let mut again = PostgresSource::new("app", &config);
    again.start(Some(last)).await.unwrap();
    assert!(matches!(again.poll().await.unwrap(), SourcePoll::Done));
    drop(again);
    db.finish().await;
}

/// A publication made beforehand with a PostgreSQL 15 column list and row filter: the
/// snapshot reads only the published columns and rows, so it agrees with the stream (no
/// `secret` column, no rows the filter excludes, no schema event from the narrower shape).
#[tokio::test]
async fn a_publication_column_list_and_row_filter_shape_the_snapshot_too() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, a int, secret text, v text);
         INSERT INTO t SELECT g, g, 's' || g, 'v' || g FROM generate_series(1, 3000) g;",
    )
    .await;
    let mut config = db.config("app");
    config.snapshot_chunk_pages = 4; // several chunks: the filter joins the ctid ranges
    db.exec(&format!(
        "CREATE PUBLICATION {} FOR TABLE t (id, a, v) WHERE (id % 3 = 0)",
        config.publication
    ))
    .await;
    let mut d = Driver::start(&config, None).await;
    d.until_count(1000).await;
    // (The filter may only use replica identity columns, so it cannot move rows in or out.)
    db.exec(
        "UPDATE t SET a = -a, secret = 'changed' WHERE id IN (3, 4);
         DELETE FROM t WHERE id IN (9, 10);
         INSERT INTO t VALUES (4000, 1, 'x', 'no'), (4002, 2, 'y', 'yes');
         UPDATE t SET v = 'changed' WHERE id = 6;",
    )
    .await;
    d.until("the last update", |c| {
        c.iter()
            .any(|c| c.op == Op::Update && int(&c.key, "id") == 6)
    })
    .await;
    d.drain().await;
    assert!(
        d.changes.iter().all(|c| c.op != Op::Schema),
        "no schema event expected"
    );
    for c in d.changes.iter().filter(|c| c.op != Op::Delete) {
        let columns: Vec<&str> = c
            .after
            .as_ref()
            .unwrap()
            .0
            .iter()
            .map(|(n, _)| &**n)
            .collect();
        assert_eq!(columns, ["id", "a", "v"], "{:?} {:?}", c.op, c.key);
    }
    let reads = d.changes.iter().filter(|c| c.op == Op::Read).count();
    assert_eq!(reads, 1000, "the snapshot reads only rows with id % 3 = 0");
    assert_eq!(
        folded_id_text(&d.changes, "public.t"),
        id_text(&db.client, "(SELECT id, v FROM t WHERE id % 3 = 0) s").await
    );
    let streamed: Vec<(Op, i64)> = d
        .changes
        .iter()
        .filter(|c| c.op != Op::Read)
        .map(|c| (c.op, int(&c.key, "id")))
        .collect();
    assert_eq!(
        streamed,
        [
            (Op::Update, 3),
            (Op::Delete, 9),
            (Op::Insert, 4002),
            (Op::Update, 6)
        ]
    );
    drop(d);
    db.finish().await;
}
