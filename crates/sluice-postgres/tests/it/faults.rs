use std::time::Duration;

use sluice_core::{Op, Source};
use sluice_postgres::PostgresSource;

use crate::common::{Driver, TestDb, folded_id_text, id_text};

#[tokio::test]
async fn resume_from_checkpoint_after_dropping_the_source_loses_nothing() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');")
        .await;
    let config = db.config("app");
    let mut d = Driver::start(&config, None).await;
    d.until_count(1).await;
    db.exec("INSERT INTO t VALUES (2, 'b'); UPDATE t SET v = 'a2' WHERE id = 1;")
        .await;
    d.until_count(3).await;
    let checkpoint = d.last_position.clone().unwrap();
    let mut all = std::mem::take(&mut d.changes);
    drop(d);
    // Written while no source runs, including one big transaction.
    db.exec("INSERT INTO t VALUES (3, 'c'); DELETE FROM t WHERE id = 2;")
        .await;
    db.exec("BEGIN; INSERT INTO t SELECT g, 'bulk' FROM generate_series(10, 2509) g; COMMIT;")
        .await;
    let mut d = Driver::start(&config, Some(checkpoint.clone())).await;
    // Nothing is confirmed from here on, as if the sinks were still writing.
    d.confirm = false;
    d.until_count(2502).await;
    d.drain().await;
    assert!(d.changes.iter().all(|c| c.position >= checkpoint));
    all.extend(d.changes.clone());
    assert_eq!(
        folded_id_text(&all, "public.t"),
        id_text(&db.client, "t").await
    );

    // A checkpoint taken in the middle of a transaction replays the whole transaction.
    let mid = d
        .changes
        .iter()
        .find(|c| c.tx.as_ref().is_some_and(|t| t.ordinal == 100))
        .unwrap()
        .position
        .clone();
    drop(d);
    let mut d = Driver::start(&config, Some(mid)).await;
    d.until_count(2500).await;
    assert_eq!(d.changes[0].tx.as_ref().unwrap().ordinal, 0);
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn slot_dropped_under_a_running_source_is_a_permanent_error_naming_the_slot() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text);")
        .await;
    let config = db.config("app");
    let mut d = Driver::start(&config, None).await;
    db.exec("INSERT INTO t VALUES (1, 'a')").await;
    d.until_count(1).await;
    let checkpoint = d.last_position.clone().unwrap();
    // Kill the walsender and drop the slot.
    db.exec(&format!(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{}'",
        config.slot
    ))
    .await;
    let mut dropped = false;
    for _ in 0..50 {
        if db
            .client
            .batch_execute(&format!(
                "SELECT pg_drop_replication_slot('{}')",
                config.slot
            ))
            .await
            .is_ok()
        {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped);
    let e = loop {
        match d.poll_once().await {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(e.is_transient(), "a lost connection is transient: {e}");
    // The engine restarts from its checkpoint: the slot is gone, which retrying cannot fix.
    let mut source = PostgresSource::new("app", &config);
    let e = source.start(Some(checkpoint)).await.unwrap_err();
    assert!(!e.is_transient(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "replication slot \"{}\" does not exist",
            config.slot
        )),
        "{text}"
    );
    assert!(text.contains("hint:"), "{text}");
    // `sluice status` (the source's lag) says the same instead of a lag that never ends.
    let e = source.lag(d.last_position.as_ref()).await.unwrap_err();
    assert!(
        e.to_string().contains(&format!(
            "replication slot \"{}\" does not exist",
            config.slot
        )),
        "{e}"
    );
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn idle_slot_is_confirmed_to_the_server_end() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE other (id int PRIMARY KEY);",
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec!["t".into()];
    config.heartbeat_interval_ms = 200;
    let mut d = Driver::start(&config, None).await;
    db.exec("INSERT INTO t VALUES (1, 'a')").await;
    d.until_count(1).await;
    // Traffic on a table we do not capture: the slot must still move past it.
    db.exec("INSERT INTO other SELECT generate_series(1, 1000)")
        .await;
    let target: String = db
        .client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let target: sluice_core::PgLsn = target.parse().unwrap();
    let mut confirmed = sluice_core::PgLsn(0);
    for _ in 0..100 {
        d.poll_once().await.unwrap();
        let row = db
            .client
            .query_one(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&config.slot],
            )
            .await
            .unwrap();
        confirmed = row.get::<_, String>(0).parse().unwrap();
        if confirmed >= target {
            break;
        }
    }
    assert!(
        confirmed >= target,
        "slot stuck at {confirmed}, server at {target}"
    );
    // ... and never past what the pipeline checkpointed: the idle position reached the
    // server through a checkpoint (an empty batch), so a slot ahead of a checkpoint at start
    // means something else moved it.
    let Some(sluice_core::Position::Pg {
        lsn: checkpoint, ..
    }) = d.last_position.clone()
    else {
        panic!("no checkpoint: {:?}", d.last_position)
    };
    assert!(
        confirmed <= checkpoint,
        "slot confirmed {confirmed}, past the checkpoint {checkpoint}"
    );
    assert!(
        d.changes
            .iter()
            .all(|c| c.op == Op::Insert && &*c.table == "public.t")
    );
    let lag = d
        .source
        .lag(d.last_position.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert!(lag.bytes.is_some());
    drop(d);
    db.finish().await;
}

/// `sluice run --resnapshot public.a`: from a streaming checkpoint, table `a` is read again
/// (and only `a`), then the stream resumes from the checkpoint with nothing lost.
#[tokio::test]
async fn resnapshot_reads_one_table_again_then_resumes_the_stream() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text); \
         INSERT INTO a VALUES (1, 'a1'), (2, 'a2'); INSERT INTO b VALUES (1, 'b1');",
    )
    .await;
    let config = db.config("app");
    let mut d = Driver::start(&config, None).await;
    d.until_count(3).await;
    d.drain().await;
    let checkpoint = d.last_position.clone().unwrap();
    drop(d);
    db.exec("UPDATE a SET v = 'a1x' WHERE id = 1; INSERT INTO b VALUES (2, 'b2');")
        .await;

    let mut unknown = config.clone();
    unknown.resnapshot = vec!["nope".to_owned()];
    let mut source = PostgresSource::new("app", &unknown);
    let err = source.start(Some(checkpoint.clone())).await.unwrap_err();
    assert!(err.to_string().contains("does not capture it"), "{err}");
    drop(source);

    let mut again = config.clone();
    again.resnapshot = vec!["a".to_owned()];
    let mut d = Driver::start(&again, Some(checkpoint)).await;
    // Two reads of `a` (already showing the update), then the two streamed changes.
    d.until_count(4).await;
    d.drain().await;
    let reads: Vec<_> = d.changes.iter().filter(|c| c.op == Op::Read).collect();
    assert_eq!(reads.len(), 2, "{:?}", d.changes);
    assert!(reads.iter().all(|c| &*c.table == "public.a"));
    let b = folded_id_text(&d.changes, "public.b");
    assert_eq!(b.get(&2), Some(&Some("b2".to_owned())));
    let a = folded_id_text(&d.changes, "public.a");
    assert_eq!(a.get(&1), Some(&Some("a1x".to_owned())));
    assert_eq!(a.len(), 2);
    drop(d);
    db.finish().await;
}
