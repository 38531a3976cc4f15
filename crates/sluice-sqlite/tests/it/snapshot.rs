//! Snapshot, the hand-off to the stream, and restarting an interrupted snapshot.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sluice_core::{Op, Position, Source, SqlitePosition, Value};

use crate::support::{
    Db, Image, apply, changes, converge, finish_snapshot, is_snapshot, row, seq, table_image, text,
};

const USERS: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL);";

#[tokio::test]
async fn snapshot_then_stream_insert_update_delete() {
    let db = Db::new(USERS);
    db.exec("INSERT INTO users VALUES (1, 'ada', 1.5), (2, 'bob', NULL);");
    let mut source = db.source(&["users"]);
    source.start(None).await.unwrap();

    let batches = finish_snapshot(&mut source).await;
    let reads: Vec<_> = batches.iter().flat_map(|b| &b.changes).collect();
    assert_eq!(reads.len(), 2);
    assert!(
        reads
            .iter()
            .all(|c| c.op == Op::Read && c.before.is_none() && &*c.table == "main.users")
    );
    assert_eq!(reads[0].key, row(&[("id", Value::Int(1))]));
    assert_eq!(
        reads[0].after,
        Some(row(&[
            ("id", Value::Int(1)),
            ("name", text("ada")),
            ("score", Value::Float(1.5))
        ]))
    );
    let last = batches.last().unwrap();
    assert!(last.changes.is_empty());
    assert_eq!(
        last.position,
        Position::Sqlite(SqlitePosition {
            seq: 0,
            snapshot: false
        })
    );

    db.exec(
        "INSERT INTO users VALUES (3, 'cy', 2.0);
         UPDATE users SET name = 'ada l' WHERE id = 1;
         DELETE FROM users WHERE id = 2;",
    );
    let got = changes(&mut source, 3).await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].op, Op::Insert);
    assert_eq!(got[0].before, None);
    assert_eq!(
        got[0].after,
        Some(row(&[
            ("id", Value::Int(3)),
            ("name", text("cy")),
            ("score", Value::Float(2.0))
        ]))
    );
    assert_eq!(got[1].op, Op::Update);
    assert_eq!(got[1].key, row(&[("id", Value::Int(1))]));
    assert_eq!(
        got[1].before.as_ref().unwrap().get("name"),
        Some(&text("ada"))
    );
    assert_eq!(
        got[1].after.as_ref().unwrap().get("name"),
        Some(&text("ada l"))
    );
    assert_eq!(got[2].op, Op::Delete);
    assert_eq!(got[2].after, None);
    assert_eq!(
        got[2].before,
        Some(row(&[
            ("id", Value::Int(2)),
            ("name", text("bob")),
            ("score", Value::Null)
        ]))
    );
    let seqs: Vec<i64> = got.iter().map(|c| seq(&c.position)).collect();
    assert_eq!(seqs, [1, 2, 3]);
}

/// A writer thread inserts, updates and deletes while the snapshot is read in small batches;
/// folding every event by key must give exactly the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_with_concurrent_writer_loses_and_resurrects_nothing() {
    let db = Db::new(USERS);
    {
        let mut conn = db.conn();
        let tx = conn.transaction().unwrap();
        for id in 1..=3000 {
            tx.execute(
                "INSERT INTO users VALUES (?1, ?2, ?3)",
                rusqlite::params![id, format!("u{id}"), id as f64],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let mut config = db.config(&["users"]);
    config.batch_size = 50;
    let mut source = sluice_sqlite::SqliteSource::new("app", &config);
    source.start(None).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let conn = db.conn();
        std::thread::spawn(move || {
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) && n < 3000 {
                n += 1;
                let id = (n * 7919) % 3000 + 1;
                match n % 3 {
                    0 => conn
                        .execute("DELETE FROM users WHERE id = ?1", [id])
                        .unwrap(),
                    1 => conn
                        .execute("UPDATE users SET name = name || '+' WHERE id = ?1", [id])
                        .unwrap(),
                    _ => conn
                        .execute("INSERT INTO users VALUES (?1, 'new', NULL)", [10_000 + n])
                        .unwrap(),
                };
            }
            n
        })
    };

    let mut image = Image::new();
    let mut snapshot_batches = 0;
    loop {
        let sluice_core::SourcePoll::Batch(b) = source.poll().await.unwrap() else {
            continue;
        };
        for c in &b.changes {
            apply(&mut image, c);
        }
        if !is_snapshot(&b.position) {
            break;
        }
        snapshot_batches += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(
        snapshot_batches > 10,
        "snapshot too small to overlap with the writer"
    );
    assert!(written > 0);
    converge(&mut source, &mut image, &db, "users", &["id"]).await;
}

/// The snapshot is interrupted after two batches, rows are changed (one already delivered
/// row is deleted), and the restart from the snapshot position re-reads the snapshot and
/// replays the changes since the first attempt.
#[tokio::test]
async fn interrupted_snapshot_restarts_and_replays_changes_since() {
    let db = Db::new(USERS);
    for id in 1..=50 {
        db.exec(&format!("INSERT INTO users VALUES ({id}, 'u{id}', NULL);"));
    }
    let mut source = db.source(&["users"]);
    source.start(None).await.unwrap();
    let mut image = Image::new();
    let mut position = None;
    for _ in 0..2 {
        let sluice_core::SourcePoll::Batch(b) = source.poll().await.unwrap() else {
            panic!("expected a batch")
        };
        assert!(is_snapshot(&b.position));
        b.changes.iter().for_each(|c| apply(&mut image, c));
        position = Some(b.position);
    }
    drop(source);
    assert!(image.contains_key("{\"id\":1}"));
    // Delete a row already delivered, change one delivered and one not yet delivered.
    db.exec("DELETE FROM users WHERE id = 1; UPDATE users SET name = 'x' WHERE id IN (2, 40); INSERT INTO users VALUES (51, 'n', NULL);");

    let position = position.unwrap();
    let mut source = db.source(&["users"]);
    source.start(Some(position.clone())).await.unwrap();
    let batches = finish_snapshot(&mut source).await;
    for b in &batches {
        assert!(
            b.position >= position,
            "{} went back before {position}",
            b.position
        );
        b.changes.iter().for_each(|c| apply(&mut image, c));
    }
    assert_eq!(
        batches.last().unwrap().position,
        Position::Sqlite(SqlitePosition {
            seq: seq(&position),
            snapshot: false
        })
    );
    converge(&mut source, &mut image, &db, "users", &["id"]).await;
    assert!(!image.contains_key("{\"id\":1}"));
}

#[tokio::test]
async fn snapshot_never_streams_only_new_changes() {
    let db = Db::new(USERS);
    db.exec("INSERT INTO users VALUES (1, 'old', NULL);");
    let mut config = db.config(&[]);
    config.snapshot = sluice_config::model::SnapshotMode::Never;
    let mut source = sluice_sqlite::SqliteSource::new("app", &config);
    source.start(None).await.unwrap();
    let first = finish_snapshot(&mut source).await;
    assert!(first.iter().all(|b| b.changes.is_empty()));
    db.exec("INSERT INTO users VALUES (2, 'new', NULL);");
    let got = changes(&mut source, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].op, Op::Insert);
    assert_eq!(got[0].key, row(&[("id", Value::Int(2))]));
    assert_eq!(table_image(&db, "users", &["id"]).len(), 2);
}
