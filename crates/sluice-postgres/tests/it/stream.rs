use sluice_core::{Op, Value};

use crate::common::{Driver, TestDb, fold, folded_id_text, id_text, int, ops};

#[tokio::test]
async fn snapshot_then_stream_with_before_images_per_replica_identity() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE full_t (id int PRIMARY KEY, v text);
         ALTER TABLE full_t REPLICA IDENTITY FULL;
         CREATE TABLE dflt (id int PRIMARY KEY, v text);
         INSERT INTO full_t VALUES (1, 'a'), (2, 'b');
         INSERT INTO dflt VALUES (1, 'x');",
    )
    .await;
    let config = db.config("app");
    let mut d = Driver::start(&config, None).await;
    d.until_count(3).await;
    assert!(d.changes.iter().all(|c| c.op == Op::Read && c.tx.is_none()));
    let positions: Vec<String> = d.changes.iter().map(|c| c.position.to_string()).collect();
    assert!(
        positions.iter().all(|p| p.starts_with("snapshot@lsn ")),
        "{positions:?}"
    );

    db.exec(
        "UPDATE full_t SET v = 'a2' WHERE id = 1;
         DELETE FROM full_t WHERE id = 2;
         UPDATE dflt SET v = 'x2' WHERE id = 1;
         DELETE FROM dflt WHERE id = 1;
         INSERT INTO dflt VALUES (5, NULL);",
    )
    .await;
    d.until_count(8).await;
    let stream = &d.changes[3..];
    assert_eq!(
        ops(stream),
        [
            (Op::Update, "public.full_t".into()),
            (Op::Delete, "public.full_t".into()),
            (Op::Update, "public.dflt".into()),
            (Op::Delete, "public.dflt".into()),
            (Op::Insert, "public.dflt".into()),
        ]
    );
    // FULL: whole before-images.
    let before = stream[0].before.as_ref().unwrap();
    assert_eq!(before.get("v"), Some(&Value::Text("a".into())));
    assert_eq!(
        stream[0].after.as_ref().unwrap().get("v"),
        Some(&Value::Text("a2".into()))
    );
    assert_eq!(int(&stream[0].key, "id"), 1);
    assert_eq!(
        stream[1].before.as_ref().unwrap().get("v"),
        Some(&Value::Text("b".into()))
    );
    assert_eq!(int(&stream[1].key, "id"), 2);
    // DEFAULT: no before-image, but the key.
    assert_eq!(stream[2].before, None);
    assert_eq!(stream[3].before, None);
    assert_eq!(int(&stream[3].key, "id"), 1);
    assert_eq!(
        stream[4].after.as_ref().unwrap().get("v"),
        Some(&Value::Null)
    );
    // The five statements ran as one transaction.
    let tx: Vec<(u64, bool)> = stream
        .iter()
        .map(|c| {
            let t = c.tx.as_ref().unwrap();
            assert!(t.commit_ts.as_deref().unwrap().ends_with('Z'));
            (t.ordinal, t.last)
        })
        .collect();
    assert_eq!(
        tx,
        [(0, false), (1, false), (2, false), (3, false), (4, true)]
    );

    assert_eq!(
        folded_id_text(&d.changes, "public.full_t"),
        id_text(&db.client, "full_t").await
    );
    assert_eq!(
        folded_id_text(&d.changes, "public.dflt"),
        id_text(&db.client, "dflt").await
    );
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn unchanged_toast_arrives_as_unchanged() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE docs (id int PRIMARY KEY, n int, body text);
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;",
    )
    .await;
    let mut d = Driver::start(&db.config("app"), None).await;
    d.drain().await;
    let big: String = (0..5000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    db.exec(&format!("INSERT INTO docs VALUES (1, 0, '{big}')"))
        .await;
    db.exec("UPDATE docs SET n = 1 WHERE id = 1").await;
    d.until_count(2).await;
    assert_eq!(
        d.changes[0].after.as_ref().unwrap().get("body"),
        Some(&Value::Text(big.as_str().into()))
    );
    let after = d.changes[1].after.as_ref().unwrap();
    assert_eq!(after.get("n"), Some(&Value::Int(1)));
    assert_eq!(
        after.get("body"),
        Some(&Value::Unchanged),
        "unchanged TOAST must not be null"
    );
    // Folding keeps the old value.
    let rows = fold(&d.changes, "public.docs");
    assert_eq!(rows[&1].get("body"), Some(&Value::Text(big.into())));
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn truncate_empties_tables() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
         INSERT INTO a VALUES (1, 'x'); INSERT INTO b VALUES (1, 'y');",
    )
    .await;
    let mut d = Driver::start(&db.config("app"), None).await;
    d.until_count(2).await;
    db.exec("TRUNCATE a, b; INSERT INTO a VALUES (2, 'z');")
        .await;
    d.until_count(5).await;
    let tail = &d.changes[2..];
    let mut truncated: Vec<String> = tail
        .iter()
        .filter(|c| c.op == Op::Truncate)
        .map(|c| c.table.to_string())
        .collect();
    truncated.sort();
    assert_eq!(truncated, ["public.a", "public.b"]);
    assert!(
        tail.iter()
            .filter(|c| c.op == Op::Truncate)
            .all(|c| c.key.is_empty() && c.after.is_none())
    );
    assert_eq!(
        folded_id_text(&d.changes, "public.a"),
        id_text(&db.client, "a").await
    );
    assert!(fold(&d.changes, "public.b").is_empty());
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn multi_table_transaction_keeps_commit_order_and_tx_metadata() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);",
    )
    .await;
    let mut d = Driver::start(&db.config("app"), None).await;
    d.drain().await;
    // Two concurrent transactions: the one that commits first comes first, whole.
    let c2 = {
        let (c, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c
    };
    db.exec("BEGIN; INSERT INTO a VALUES (1, 'first-begun');")
        .await;
    c2.batch_execute(
        "BEGIN; INSERT INTO b VALUES (1, 'second'); INSERT INTO a VALUES (2, 'second'); COMMIT;",
    )
    .await
    .unwrap();
    db.exec("INSERT INTO b VALUES (2, 'first-begun'); UPDATE a SET v = 'u' WHERE id = 2; COMMIT;")
        .await;
    d.until_count(5).await;
    let got: Vec<(Op, String, u64, bool)> = d
        .changes
        .iter()
        .map(|c| {
            let tx = c.tx.as_ref().unwrap();
            (c.op, c.table.to_string(), tx.ordinal, tx.last)
        })
        .collect();
    assert_eq!(
        got,
        [
            (Op::Insert, "public.b".into(), 0, false),
            (Op::Insert, "public.a".into(), 1, true),
            (Op::Insert, "public.a".into(), 0, false),
            (Op::Insert, "public.b".into(), 1, false),
            (Op::Update, "public.a".into(), 2, true),
        ]
    );
    let ids: Vec<&str> = d
        .changes
        .iter()
        .map(|c| c.tx.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[2], ids[3]);
    assert_eq!(ids[3], ids[4]);
    assert_ne!(ids[0], ids[2]);
    // Positions: inside a transaction the previous commit's end; the last change its own end.
    let p: Vec<_> = d.changes.iter().map(|c| c.position.clone()).collect();
    assert!(p[0] < p[1], "{p:?}");
    assert_eq!(p[2], p[1]);
    assert_eq!(p[3], p[1]);
    assert!(p[4] > p[3]);
    // The batch ends at the last change's position, or later: the idle check's flush may
    // commit an empty heartbeat transaction that arrives in the same read (its position
    // carries no change, so resuming from it skips nothing).
    let last = d.last_position.as_ref().unwrap();
    assert!(*last >= p[4], "{last:?} before {:?}", p[4]);
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn primary_key_update_is_delete_then_insert() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');")
        .await;
    let mut d = Driver::start(&db.config("app"), None).await;
    d.until_count(1).await;
    db.exec("UPDATE t SET id = 2 WHERE id = 1").await;
    d.until_count(3).await;
    assert_eq!(d.changes[1].op, Op::Delete);
    assert_eq!(int(&d.changes[1].key, "id"), 1);
    assert_eq!(d.changes[2].op, Op::Insert);
    assert_eq!(int(&d.changes[2].key, "id"), 2);
    assert_eq!(
        folded_id_text(&d.changes, "public.t"),
        id_text(&db.client, "t").await
    );
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn truncate_of_several_tables_and_cascade_is_one_event_per_table_in_one_transaction() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
         CREATE TABLE parent (id int PRIMARY KEY, v text);
         CREATE TABLE child (id int PRIMARY KEY, v text, parent_id int REFERENCES parent);
         INSERT INTO a VALUES (1, 'a'); INSERT INTO b VALUES (1, 'b');
         INSERT INTO parent VALUES (1, 'p'); INSERT INTO child VALUES (1, 'c', 1);",
    )
    .await;
    let mut d = Driver::start(&db.config("app"), None).await;
    d.until_count(4).await;
    db.exec("TRUNCATE a, b").await;
    // CASCADE truncates the child, which the statement does not name.
    db.exec("TRUNCATE parent CASCADE").await;
    d.until_count(8).await;
    let truncates: Vec<(String, String, u64, bool)> = d.changes[4..]
        .iter()
        .map(|c| {
            assert_eq!(c.op, Op::Truncate, "{c:?}");
            assert!(c.key.is_empty() && c.before.is_none() && c.after.is_none());
            let tx = c.tx.as_ref().unwrap();
            (c.table.to_string(), tx.id.clone(), tx.ordinal, tx.last)
        })
        .collect();
    let tables: Vec<&str> = truncates.iter().map(|t| t.0.as_str()).collect();
    let (first, second) = tables.split_at(2);
    let mut first = first.to_vec();
    let mut second = second.to_vec();
    first.sort_unstable();
    second.sort_unstable();
    assert_eq!(first, ["public.a", "public.b"]);
    assert_eq!(second, ["public.child", "public.parent"]);
    // One transaction per statement, one event per table in it.
    for pair in truncates.chunks(2) {
        assert_eq!(pair[0].1, pair[1].1, "{truncates:?}");
        assert_eq!((pair[0].2, pair[0].3), (0, false), "{truncates:?}");
        assert_eq!((pair[1].2, pair[1].3), (1, true), "{truncates:?}");
    }
    assert_ne!(truncates[0].1, truncates[2].1);
    for table in ["a", "b", "parent", "child"] {
        assert!(fold(&d.changes, &format!("public.{table}")).is_empty());
    }
    drop(d);
    db.finish().await;
}

/// A primary-key change under the default replica identity: the server resends an untouched
/// TOAST column with neither image. In `update` mode the event names the old key in `before`
/// so a consumer can move the row and keep the value.
#[tokio::test]
async fn primary_key_change_as_update_names_the_old_key() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, doc text); \
         ALTER TABLE t ALTER COLUMN doc SET STORAGE EXTERNAL; \
         INSERT INTO t VALUES (1, repeat('x', 5000));",
    )
    .await;
    let mut config = db.config("app");
    config.primary_key_change = sluice_config::PrimaryKeyChange::Update;
    let mut d = Driver::start(&config, None).await;
    d.until_count(1).await;
    db.exec("UPDATE t SET id = 2 WHERE id = 1").await;
    d.until_count(2).await;
    let c = &d.changes[1];
    assert_eq!(c.op, Op::Update);
    assert_eq!(int(&c.key, "id"), 2);
    assert_eq!(int(c.before.as_ref().unwrap(), "id"), 1);
    assert_eq!(
        c.after.as_ref().unwrap().get("doc"),
        Some(&Value::Unchanged)
    );
    drop(d);
    db.finish().await;
}

/// Under REPLICA IDENTITY FULL the old row carries the untouched TOAST value, so the insert
/// of a delete+insert primary-key change gets the real value, never `Unchanged`.
#[tokio::test]
async fn primary_key_change_under_full_identity_fills_unchanged_toast() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, doc text); \
         ALTER TABLE t REPLICA IDENTITY FULL; \
         ALTER TABLE t ALTER COLUMN doc SET STORAGE EXTERNAL; \
         INSERT INTO t VALUES (1, repeat('y', 5000));",
    )
    .await;
    let mut d = Driver::start(&db.config("app"), None).await;
    d.until_count(1).await;
    db.exec("UPDATE t SET id = 2 WHERE id = 1").await;
    d.until_count(3).await;
    assert_eq!(d.changes[1].op, Op::Delete);
    assert_eq!(d.changes[2].op, Op::Insert);
    assert_eq!(
        d.changes[2].after.as_ref().unwrap().get("doc"),
        Some(&Value::Text("y".repeat(5000).into()))
    );
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn partitioned_table_changes_arrive_under_the_table_name() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
         CREATE TABLE m_low PARTITION OF m FOR VALUES FROM (0) TO (100);
         CREATE TABLE m_high PARTITION OF m FOR VALUES FROM (100) TO (200);
         INSERT INTO m VALUES (1, 'a'), (150, 'b');",
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec!["public.m".into()];
    // A publication made without `publish_via_partition_root` (the server would publish the
    // changes as m_low and m_high): sluice sets it.
    db.exec(&format!(
        "CREATE PUBLICATION {} FOR TABLE m",
        config.publication
    ))
    .await;
    let mut d = Driver::start(&config, None).await;
    d.until_count(2).await;
    // Inserts into both partitions, an update that moves a row across them, a delete.
    db.exec(
        "INSERT INTO m VALUES (2, 'c'), (160, 'd');
         UPDATE m SET v = 'a2' WHERE id = 1;
         UPDATE m SET id = 120 WHERE id = 2;
         DELETE FROM m WHERE id = 150;",
    )
    .await;
    d.until("the delete", |c| {
        c.iter()
            .any(|c| c.op == Op::Delete && int(&c.key, "id") == 150)
    })
    .await;
    d.drain().await;
    assert!(
        d.changes.iter().all(|c| &*c.table == "public.m"),
        "{:?}",
        ops(&d.changes)
    );
    assert_eq!(
        folded_id_text(&d.changes, "public.m"),
        id_text(&db.client, "m").await
    );
    drop(d);
    db.finish().await;
}

/// After a burst big enough to raise the socket's receive low-water mark, a lone change
/// (far fewer bytes than the mark) still arrives at once: the mark is lowered when the
/// burst ends instead of waiting for bytes that never come.
#[tokio::test]
async fn a_lone_change_after_a_burst_arrives_promptly() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec("CREATE TABLE b (id int PRIMARY KEY, v text)").await;
    let mut config = db.config("app");
    // No heartbeats: their messages must not be what ends the wait.
    config.heartbeat_interval_ms = 0;
    let mut d = Driver::start(&config, None).await;
    d.drain().await;
    for round in 0..3 {
        let base = round * 100_000;
        db.exec(&format!(
            "INSERT INTO b SELECT {base} + g, repeat(md5(g::text), 6) FROM generate_series(1, 20000) g"
        ))
        .await;
        let burst_end = d.changes.len() + 20_000;
        d.until_count(burst_end).await;
        db.exec(&format!("INSERT INTO b VALUES ({base} + 50000, 'lone')"))
            .await;
        let started = std::time::Instant::now();
        d.until_count(burst_end + 1).await;
        let waited = started.elapsed();
        assert!(
            waited < std::time::Duration::from_secs(5),
            "round {round}: the lone change took {waited:?}"
        );
        let last = d.changes.last().unwrap();
        assert_eq!(int(&last.key, "id"), base + 50_000);
    }
    drop(d);
    db.finish().await;
}

/// A stream from a server on this host is read paced through a small receive buffer
/// (`SAME_HOST_RCVBUF`, 256 KB once the kernel doubles it): rows many times bigger than that
/// window, between bursts of small ones, all arrive whole and in order; nothing stalls
/// behind the closed window.
#[tokio::test]
async fn rows_far_bigger_than_the_paced_window_arrive_whole() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    // Values that do not compress: 3 MB of md5 digests of random numbers each.
    db.exec(
        "CREATE TABLE big (id int PRIMARY KEY, v text);
         ALTER TABLE big ALTER COLUMN v SET STORAGE EXTERNAL;",
    )
    .await;
    let mut config = db.config("app");
    config.heartbeat_interval_ms = 0;
    let mut d = Driver::start(&config, None).await;
    d.drain().await;
    db.exec(
        "BEGIN;
         INSERT INTO big SELECT g, 'small' FROM generate_series(1, 20000) g;
         INSERT INTO big SELECT 100000 + i,
             (SELECT string_agg(md5(random()::text || i || g), '') FROM generate_series(1, 100000) g)
           FROM generate_series(1, 4) i;
         INSERT INTO big SELECT g, 'small' FROM generate_series(20001, 40000) g;
         COMMIT;",
    )
    .await;
    d.until("40,004 inserts", |c| c.len() >= 40_004).await;
    let ids: Vec<i64> = d.changes.iter().map(|c| int(&c.key, "id")).collect();
    let expected: Vec<i64> = (1..=20_000)
        .chain(100_001..=100_004)
        .chain(20_001..=40_000)
        .collect();
    assert!(ids == expected, "changes out of order or missing");
    for c in &d.changes[20_000..20_004] {
        match c.after.as_ref().and_then(|a| a.get("v")) {
            Some(Value::Text(t)) => assert_eq!(t.len(), 3_200_000, "row {}", int(&c.key, "id")),
            other => panic!("row {}: {other:?}", int(&c.key, "id")),
        }
    }
    drop(d);
    db.finish().await;
}

/// Names that need quoting (mixed case, spaces, a double quote, a reserved word) in the
/// schema, the table and the columns: captured by snapshot and stream alike, named as they
/// are.
#[tokio::test]
async fn names_that_need_quoting_are_captured_as_they_are() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        r#"CREATE SCHEMA "Odd Schema";
        CREATE TABLE "Odd Schema"."Mixed ""Case"" Table" ("Id" int PRIMARY KEY, "col a" text, "select" int);
        INSERT INTO "Odd Schema"."Mixed ""Case"" Table" VALUES (1, 'one', 1);"#,
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec![r#"Odd Schema.Mixed "Case" Table"#.into()];
    let mut d = Driver::start(&config, None).await;
    d.until_count(1).await;
    db.exec(r#"INSERT INTO "Odd Schema"."Mixed ""Case"" Table" VALUES (2, 'two', 2); UPDATE "Odd Schema"."Mixed ""Case"" Table" SET "col a" = 'uno' WHERE "Id" = 1;"#)
        .await;
    d.until_count(3).await;
    for c in &d.changes {
        assert_eq!(&*c.table, r#"Odd Schema.Mixed "Case" Table"#);
        let cols: Vec<&str> = c
            .after
            .as_ref()
            .unwrap()
            .0
            .iter()
            .map(|(n, _)| &**n)
            .collect();
        assert_eq!(cols, ["Id", "col a", "select"]);
        assert!(c.key.get("Id").is_some(), "{:?}", c.key);
    }
    assert_eq!(
        ops(&d.changes).iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        [Op::Read, Op::Insert, Op::Update]
    );
    drop(d);
    db.finish().await;
}
