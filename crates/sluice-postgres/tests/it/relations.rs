//! Tables that change identity under a running or stopped pipeline: renamed, dropped, their
//! key replaced; and keys built from unchanged TOAST values.

use sluice_core::{Op, Source, Value};

use crate::common::{Driver, TestDb, int};

fn ops_with_ids(changes: &[sluice_core::Change], table: &str) -> Vec<(Op, i64)> {
    changes
        .iter()
        .filter(|c| &*c.table == table && c.op != Op::Schema)
        .map(|c| (c.op, int(&c.key, "id")))
        .collect()
}

#[tokio::test]
async fn a_table_renamed_while_streaming_keeps_being_captured() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'snap')")
        .await;
    let config = db.config("app");
    let mut d = Driver::start(&config, None).await;
    d.until_count(1).await;
    db.exec(
        "INSERT INTO t VALUES (2, 'before');
         ALTER TABLE t RENAME TO t_renamed;
         INSERT INTO t_renamed VALUES (3, 'after');
         UPDATE t_renamed SET v = 'updated' WHERE id = 1;",
    )
    .await;
    d.until("the update after the rename", |c| {
        c.iter()
            .any(|c| c.op == Op::Update && int(&c.key, "id") == 1)
    })
    .await;
    assert_eq!(ops_with_ids(&d.changes, "public.t")[1..], [(Op::Insert, 2)]);
    assert_eq!(
        ops_with_ids(&d.changes, "public.t_renamed"),
        [(Op::Insert, 3), (Op::Update, 1)]
    );
    // The new name is announced with its shape before its first change.
    let first_renamed = d
        .changes
        .iter()
        .position(|c| &*c.table == "public.t_renamed")
        .unwrap();
    assert_eq!(d.changes[first_renamed].op, Op::Schema);
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn changes_to_a_table_dropped_while_stopped_are_replayed() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
         INSERT INTO a VALUES (1, 'a1'); INSERT INTO b VALUES (1, 'b1');",
    )
    .await;
    let config = db.config("app");
    let mut d = Driver::start(&config, None).await;
    d.until_count(2).await;
    d.drain().await;
    let resume = d.last_position.clone();
    d.source.stop().await.unwrap();
    drop(d);

    db.exec(
        "INSERT INTO a VALUES (2, 'a2'); DELETE FROM a WHERE id = 1; DROP TABLE a;
         INSERT INTO b VALUES (3, 'b3');",
    )
    .await;
    let mut d = Driver::start(&config, resume).await;
    d.until("b's insert", |c| {
        c.iter()
            .any(|c| &*c.table == "public.b" && c.op == Op::Insert)
    })
    .await;
    assert_eq!(
        ops_with_ids(&d.changes, "public.a"),
        [(Op::Insert, 2), (Op::Delete, 1)]
    );
    assert_eq!(ops_with_ids(&d.changes, "public.b"), [(Op::Insert, 3)]);
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn a_primary_key_replaced_mid_stream_is_followed() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, code text NOT NULL, v int);
         INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3);",
    )
    .await;
    let config = db.config("app");
    let mut d = Driver::start(&config, None).await;
    d.until_count(3).await;
    db.exec(
        "ALTER TABLE t DROP CONSTRAINT t_pkey; ALTER TABLE t ADD PRIMARY KEY (code);
         UPDATE t SET v = 20 WHERE code = 'b'; DELETE FROM t WHERE code = 'a';",
    )
    .await;
    d.until("the delete", |c| c.iter().any(|c| c.op == Op::Delete))
        .await;
    let schema = d
        .changes
        .iter()
        .find(|c| c.op == Op::Schema)
        .expect("a schema event for the new key");
    let keys: Vec<&str> = schema
        .schema
        .as_ref()
        .unwrap()
        .columns
        .iter()
        .filter(|c| c.key)
        .map(|c| &*c.name)
        .collect();
    assert_eq!(keys, ["code"]);
    let delete = d.changes.iter().find(|c| c.op == Op::Delete).unwrap();
    assert_eq!(delete.key.get("code"), Some(&Value::Text("a".into())));
    assert_eq!(delete.key.0.len(), 1);
    drop(d);
    db.finish().await;
}

/// REPLICA IDENTITY FULL without a primary key: every column is the key, and a TOASTed one
/// left unchanged by an update must appear in the key with its value, so the key of the
/// next change to that row matches.
#[tokio::test]
async fn full_identity_keys_carry_unchanged_toast_values() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE f (a int, big text, c int);
         ALTER TABLE f REPLICA IDENTITY FULL;
         INSERT INTO f SELECT 1, string_agg(md5(g::text), ''), 1 FROM generate_series(1, 10000) g;",
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec!["public.f".into()];
    let mut d = Driver::start(&config, None).await;
    d.until_count(1).await;
    db.exec("UPDATE f SET c = 2; UPDATE f SET a = 5; DELETE FROM f;")
        .await;
    d.until("the final delete", |c| {
        c.iter().filter(|c| c.op == Op::Delete).count() == 3
    })
    .await;
    // Each update is a delete of the old key and an insert of the new one; every insert's
    // key is the next delete's key.
    let stream: Vec<_> = d.changes.iter().filter(|c| c.op != Op::Read).collect();
    let ops: Vec<Op> = stream.iter().map(|c| c.op).collect();
    assert_eq!(
        ops,
        [Op::Delete, Op::Insert, Op::Delete, Op::Insert, Op::Delete]
    );
    for c in &stream {
        assert!(
            c.key.0.iter().all(|(_, v)| *v != Value::Unchanged),
            "{:?} key has an unchanged value",
            c.op
        );
    }
    assert_eq!(stream[1].key, stream[2].key);
    assert_eq!(stream[3].key, stream[4].key);
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn a_full_identity_key_column_renamed_mid_stream_stays_the_key() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE f (id int PRIMARY KEY, v text); ALTER TABLE f REPLICA IDENTITY FULL;
         INSERT INTO f VALUES (1, 'a1'), (2, 'b');",
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec!["public.f".into()];
    let mut d = Driver::start(&config, None).await;
    d.until_count(2).await;
    db.exec("INSERT INTO f VALUES (3, 'c');").await;
    d.until_count(3).await;
    db.exec(
        "ALTER TABLE f RENAME COLUMN id TO fid; UPDATE f SET v = 'a2' WHERE fid = 1;
         DELETE FROM f WHERE fid = 2;",
    )
    .await;
    d.until("the delete", |c| c.iter().any(|c| c.op == Op::Delete))
        .await;
    let after: Vec<_> = d.changes.iter().skip(3).collect();
    let schema = after
        .iter()
        .find(|c| c.op == Op::Schema)
        .and_then(|c| c.schema.clone())
        .unwrap();
    let keys: Vec<&str> = schema
        .columns
        .iter()
        .filter(|c| c.key)
        .map(|c| &*c.name)
        .collect();
    assert_eq!(keys, ["fid"]);
    let ops: Vec<Op> = after.iter().map(|c| c.op).collect();
    assert_eq!(ops, [Op::Schema, Op::Update, Op::Delete]);
    assert_eq!(after[1].key.0, [("fid".into(), Value::Int(1))]);
    assert_eq!(after[2].key.0, [("fid".into(), Value::Int(2))]);
    drop(d);
    db.finish().await;
}

/// The same rename, while sluice is stopped: the changes replayed from the checkpoint (before
/// the rename) describe the old name, which the catalog read at start no longer has; the key
/// is found by its position, not taken as every column.
#[tokio::test]
async fn a_full_identity_key_column_renamed_while_stopped_stays_the_key_on_replay() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE f (id int PRIMARY KEY, v text); ALTER TABLE f REPLICA IDENTITY FULL;
         INSERT INTO f VALUES (1, 'a1'), (2, 'b');",
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec!["public.f".into()];
    let mut d = Driver::start(&config, None).await;
    d.until_count(2).await;
    d.drain().await;
    let resume = d.last_position.clone();
    d.source.stop().await.unwrap();
    drop(d);
    db.exec(
        "UPDATE f SET v = 'a2' WHERE id = 1;
         ALTER TABLE f RENAME COLUMN id TO fid; DELETE FROM f WHERE fid = 2;",
    )
    .await;
    let mut d = Driver::start(&config, resume).await;
    d.until("the delete", |c| c.iter().any(|c| c.op == Op::Delete))
        .await;
    let rows: Vec<_> = d.changes.iter().filter(|c| c.op != Op::Schema).collect();
    let ops: Vec<Op> = rows.iter().map(|c| c.op).collect();
    assert_eq!(ops, [Op::Update, Op::Delete], "{:#?}", d.changes);
    assert_eq!(rows[0].key.0, [("id".into(), Value::Int(1))]);
    assert_eq!(rows[1].key.0, [("fid".into(), Value::Int(2))]);
    drop(d);
    db.finish().await;
}
