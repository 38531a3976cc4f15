use std::time::Duration;

use sluice_core::Op;

use crate::common::{Driver, TestDb, folded_id_text, id_text};

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
