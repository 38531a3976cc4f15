//! Schema changes mid-stream, and names that need quoting.

use std::time::{Duration, Instant};

use sluice_core::{Op, Source, Value};

use crate::support::{Db, changes, finish_snapshot, row, text};

#[tokio::test]
async fn add_column_mid_stream_appears_in_later_events() {
    let db =
        Db::new("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a');");
    let mut source = db.source(&[]);
    source.start(None).await.unwrap();
    finish_snapshot(&mut source).await;
    db.exec("ALTER TABLE t ADD COLUMN extra TEXT DEFAULT 'd';");
    // Wait until the source has recreated the triggers with the new column.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !db.master().iter().any(|(ty, name, sql)| {
        ty == "trigger"
            && name == "_sluice_t_ins"
            && sql.as_deref().is_some_and(|s| s.contains("extra"))
    }) {
        assert!(Instant::now() < deadline, "triggers were not recreated");
        std::thread::sleep(Duration::from_millis(10));
    }
    db.exec("INSERT INTO t VALUES (2, 'b', 'x'); UPDATE t SET v = 'A' WHERE id = 1;");
    let got = changes(&mut source, 2).await;
    assert_eq!(got[0].op, Op::Insert);
    assert_eq!(
        got[0].after,
        Some(row(&[
            ("id", Value::Int(2)),
            ("v", text("b")),
            ("extra", text("x"))
        ]))
    );
    assert_eq!(
        got[1].before,
        Some(row(&[
            ("id", Value::Int(1)),
            ("v", text("a")),
            ("extra", text("d"))
        ]))
    );
    assert_eq!(
        got[1].after.as_ref().unwrap().get("extra"),
        Some(&text("d"))
    );
}

#[tokio::test]
async fn table_and_column_names_with_quotes_and_spaces() {
    let db = Db::new(
        r#"CREATE TABLE "odd ""table"" 'x'" ("the id" INTEGER PRIMARY KEY, "va""l 'ue" TEXT, "ünï" BLOB);
           INSERT INTO "odd ""table"" 'x'" VALUES (1, 'a', x'00');"#,
    );
    let mut source = db.source(&[]);
    source.start(None).await.unwrap();
    let snap: Vec<_> = finish_snapshot(&mut source)
        .await
        .into_iter()
        .flat_map(|b| b.changes)
        .collect();
    assert_eq!(&*snap[0].table, r#"main.odd "table" 'x'"#);
    db.exec(r#"UPDATE "odd ""table"" 'x'" SET "va""l 'ue" = 'b' WHERE "the id" = 1;"#);
    let got = changes(&mut source, 1).await;
    assert_eq!(got[0].key, row(&[("the id", Value::Int(1))]));
    assert_eq!(
        got[0].after,
        Some(row(&[
            ("the id", Value::Int(1)),
            ("va\"l 'ue", text("b")),
            ("ünï", Value::Bytes(vec![0]))
        ]))
    );
    assert_eq!(got[0].before, snap[0].after);
}
