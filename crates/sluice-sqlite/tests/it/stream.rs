//! Streaming: keys, primary-key updates, resuming, pruning, lag, and a vanished changelog.

use sluice_core::{ErrorClass, Op, Position, Source, SourcePoll, SqlitePosition, Value};

use crate::support::{Db, Image, apply, changes, converge, finish_snapshot, row, seq, text};

#[tokio::test]
async fn resume_after_drop_replays_from_checkpoint_only() {
    let db = Db::new("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);");
    let mut source = db.source(&[]);
    source.start(None).await.unwrap();
    let mut image = Image::new();
    finish_snapshot(&mut source).await;
    db.exec("INSERT INTO t VALUES (1, 'a'), (2, 'b');");
    let got = changes(&mut source, 2).await;
    got.iter().for_each(|c| apply(&mut image, c));
    let checkpoint = got.last().unwrap().position.clone();
    assert_eq!(seq(&checkpoint), 2);
    db.exec("INSERT INTO t VALUES (3, 'c');");
    changes(&mut source, 1).await; // delivered, never checkpointed
    drop(source);
    db.exec("UPDATE t SET v = 'B' WHERE id = 2; DELETE FROM t WHERE id = 1;");

    let mut source = db.source(&[]);
    source.start(Some(checkpoint)).await.unwrap();
    let replay = changes(&mut source, 3).await;
    let ops: Vec<(Op, i64)> = replay.iter().map(|c| (c.op, seq(&c.position))).collect();
    assert_eq!(ops, [(Op::Insert, 3), (Op::Update, 4), (Op::Delete, 5)]);
    replay.iter().for_each(|c| apply(&mut image, c));
    converge(&mut source, &mut image, &db, "t", &["id"]).await;
}

#[tokio::test]
async fn confirm_prunes_the_changelog_up_to_the_position() {
    let db = Db::new("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);");
    let mut source = db.source(&[]);
    source.start(None).await.unwrap();
    let snapshot = finish_snapshot(&mut source).await;
    db.exec("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');");
    let got = changes(&mut source, 3).await;
    assert_eq!(db.changelog_rows(), 3);
    // A snapshot position never prunes.
    source
        .confirm(&Position::Sqlite(SqlitePosition {
            seq: 3,
            snapshot: true,
        }))
        .await
        .unwrap();
    assert_eq!(db.changelog_rows(), 3);
    source
        .confirm(&snapshot.last().unwrap().position)
        .await
        .unwrap();
    assert_eq!(db.changelog_rows(), 3);
    source.confirm(&got[1].position).await.unwrap();
    assert_eq!(db.changelog_rows(), 1);

    let lag = source.lag(Some(&got[1].position)).await.unwrap().unwrap();
    assert_eq!(lag.events, Some(1));
    assert!(lag.seconds.unwrap() >= 0.0);

    // Pruned seqs are never reused: new changes continue after 3.
    source.confirm(&got[2].position).await.unwrap();
    assert_eq!(db.changelog_rows(), 0);
    db.exec("INSERT INTO t VALUES (4, 'd');");
    let more = changes(&mut source, 1).await;
    assert_eq!(seq(&more[0].position), 4);
}

#[tokio::test]
async fn primary_key_update_is_delete_then_insert() {
    let db = Db::new("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);");
    db.exec("INSERT INTO t VALUES (1, 'a');");
    let mut source = db.source(&[]);
    source.start(None).await.unwrap();
    let mut image = Image::new();
    finish_snapshot(&mut source)
        .await
        .iter()
        .flat_map(|b| &b.changes)
        .for_each(|c| apply(&mut image, c));
    db.exec("UPDATE t SET id = 10, v = 'moved' WHERE id = 1;");
    let got = changes(&mut source, 2).await;
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].op, &got[0].key),
        (Op::Delete, &row(&[("id", Value::Int(1))]))
    );
    assert_eq!(
        got[0].before,
        Some(row(&[("id", Value::Int(1)), ("v", text("a"))]))
    );
    assert_eq!(
        (got[1].op, &got[1].key),
        (Op::Insert, &row(&[("id", Value::Int(10))]))
    );
    assert_eq!(
        got[1].after,
        Some(row(&[("id", Value::Int(10)), ("v", text("moved"))]))
    );
    assert_eq!(got[0].position, got[1].position);
    got.iter().for_each(|c| apply(&mut image, c));
    converge(&mut source, &mut image, &db, "t", &["id"]).await;
}

#[tokio::test]
async fn composite_text_and_uuid_primary_keys() {
    let db = Db::new(
        "CREATE TABLE pairs (b INTEGER, a TEXT, v TEXT, PRIMARY KEY (a, b));
         CREATE TABLE tags (name TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;
         CREATE TABLE docs (id TEXT PRIMARY KEY NOT NULL, body TEXT);
         INSERT INTO pairs VALUES (1, 'x', 'p1');
         INSERT INTO tags VALUES ('rust', 1);",
    );
    let mut source = db.source(&[]);
    source.start(None).await.unwrap();
    let snap: Vec<_> = finish_snapshot(&mut source)
        .await
        .into_iter()
        .flat_map(|b| b.changes)
        .collect();
    let pair = snap.iter().find(|c| &*c.table == "main.pairs").unwrap();
    // Key columns in key order (a, b), not table order.
    assert_eq!(pair.key, row(&[("a", text("x")), ("b", Value::Int(1))]));
    let tag = snap.iter().find(|c| &*c.table == "main.tags").unwrap();
    assert_eq!(tag.key, row(&[("name", text("rust"))]));

    let uuid = "7f1c2d9e-3b4a-4c5d-8e6f-0a1b2c3d4e5f";
    db.exec(&format!(
        "INSERT INTO docs VALUES ('{uuid}', 'hello');
         UPDATE pairs SET b = 2 WHERE a = 'x';
         UPDATE tags SET n = 2 WHERE name = 'rust';"
    ));
    let got = changes(&mut source, 4).await;
    assert_eq!(got[0].key, row(&[("id", text(uuid))]));
    assert_eq!(
        (got[1].op, &got[1].key),
        (Op::Delete, &row(&[("a", text("x")), ("b", Value::Int(1))]))
    );
    assert_eq!(
        (got[2].op, &got[2].key),
        (Op::Insert, &row(&[("a", text("x")), ("b", Value::Int(2))]))
    );
    assert_eq!(
        (got[3].op, &got[3].key),
        (Op::Update, &row(&[("name", text("rust"))]))
    );
}

#[tokio::test]
async fn changelog_dropped_mid_stream_is_a_permanent_error() {
    let db = Db::new("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);");
    let mut source = db.source(&[]);
    source.start(None).await.unwrap();
    finish_snapshot(&mut source).await;
    db.exec("INSERT INTO t VALUES (1, 'a');");
    let got = changes(&mut source, 1).await;
    db.exec("DROP TABLE _sluice_changelog;");
    let err = loop {
        match source.poll().await {
            Ok(SourcePoll::Batch(b)) => assert!(b.changes.is_empty(), "{b:?}"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(err.class(), ErrorClass::Permanent);
    let msg = err.to_string();
    assert!(
        msg.starts_with("changelog table \"_sluice_changelog\" in sqlite database \""),
        "{msg}"
    );
    assert!(
        msg.contains("is missing after seq 1; changes may have been lost"),
        "{msg}"
    );
    assert!(
        msg.contains("run `sluice setup`, then delete the checkpoint"),
        "{msg}"
    );
    assert_eq!(
        db.master()
            .iter()
            .filter(|(_, n, _)| n == "_sluice_changelog")
            .count(),
        0,
        "recreated mid-stream"
    );

    // Resuming from the checkpoint after the changelog was recreated (setup) fails too.
    sluice_sqlite::setup(&db.config(&[])).await.unwrap();
    let mut source = db.source(&[]);
    let err = source
        .start(Some(got[0].position.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(
        err.to_string()
            .contains("was recreated (its sequence is at 0) after seq 1"),
        "{err}"
    );
}
