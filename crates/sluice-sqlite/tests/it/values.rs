//! Every SQLite storage class comes out the same from the snapshot and from the stream.

use sluice_core::{Op, Row, Source, Value};

use crate::support::{Db, changes, finish_snapshot, text};

const VALUES_TABLE: &str =
    "CREATE TABLE v (id INTEGER PRIMARY KEY, b BLOB, f REAL, i INTEGER, t TEXT, n TEXT, any_col);";

/// Rows of awkward values, inserted with bound parameters.
fn awkward() -> Vec<[rusqlite::types::Value; 6]> {
    use rusqlite::types::Value as V;
    vec![
        [
            V::Blob(vec![0, 1, 0xfe, 0xff]),
            V::Real(0.1 + 0.2),
            V::Integer(i64::MAX),
            V::Text("héllo wörld ✓ 🦀 \"q\" \\ \n\t".into()),
            V::Null,
            V::Blob(vec![]),
        ],
        [
            V::Blob(vec![]),
            V::Real(f64::INFINITY),
            V::Integer(i64::MIN),
            V::Text(String::new()),
            V::Null,
            V::Real(-0.0),
        ],
        [
            V::Null,
            V::Real(f64::NEG_INFINITY),
            V::Integer(0),
            V::Text("{\"$b\":\"00\"}".into()),
            V::Null,
            V::Text("12".into()),
        ],
        [
            V::Blob((0..=255).collect()),
            V::Real(5e-324),
            V::Integer(-1),
            V::Text("日本語".into()),
            V::Null,
            V::Integer(7),
        ],
        [
            V::Null,
            V::Real(f64::MAX),
            V::Null,
            V::Null,
            V::Null,
            V::Real(1.0 / 3.0),
        ],
    ]
}

fn insert(db: &Db, id: i64, values: &[rusqlite::types::Value; 6]) {
    let [b, f, i, t, n, a] = values;
    db.conn()
        .execute(
            "INSERT INTO v VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![id, b, f, i, t, n, a],
        )
        .unwrap();
}

fn without_id(row: &Row) -> Row {
    Row(row
        .0
        .iter()
        .filter(|(c, _)| &**c != "id")
        .cloned()
        .collect())
}

fn same_bits(a: &Row, b: &Row) {
    assert_eq!(a, b);
    for ((_, x), (_, y)) in a.0.iter().zip(&b.0) {
        // The sign of zero is not kept by the changelog (SQLite prints -0.0 as 0.0).
        if let (Value::Float(x), Value::Float(y)) = (x, y)
            && *x != 0.0
        {
            assert_eq!(x.to_bits(), y.to_bits(), "{x} vs {y}");
        }
    }
}

#[tokio::test]
async fn snapshot_and_stream_images_are_identical() {
    let db = Db::new(VALUES_TABLE);
    let rows = awkward();
    for (i, values) in rows.iter().enumerate() {
        insert(&db, i as i64 + 1, values);
    }
    let mut source = db.source(&["v"]);
    source.start(None).await.unwrap();
    let snap: Vec<_> = finish_snapshot(&mut source)
        .await
        .into_iter()
        .flat_map(|b| b.changes)
        .collect();
    assert_eq!(snap.len(), rows.len());

    // The same values again, through the triggers.
    for (i, values) in rows.iter().enumerate() {
        insert(&db, i as i64 + 101, values);
    }
    let streamed = changes(&mut source, rows.len()).await;
    for (read, inserted) in snap.iter().zip(&streamed) {
        assert_eq!(read.op, Op::Read);
        assert_eq!(inserted.op, Op::Insert);
        same_bits(
            &without_id(read.after.as_ref().unwrap()),
            &without_id(inserted.after.as_ref().unwrap()),
        );
    }
    let first = snap[0].after.as_ref().unwrap();
    assert_eq!(first.get("b"), Some(&Value::Bytes(vec![0, 1, 0xfe, 0xff])));
    assert_eq!(first.get("f"), Some(&Value::Float(0.1 + 0.2)));
    assert_eq!(first.get("i"), Some(&Value::Int(i64::MAX)));
    assert_eq!(first.get("n"), Some(&Value::Null));
    assert_eq!(
        snap[2].after.as_ref().unwrap().get("t"),
        Some(&text("{\"$b\":\"00\"}"))
    );
    assert_eq!(
        snap[1].after.as_ref().unwrap().get("f"),
        Some(&Value::Float(f64::INFINITY))
    );

    // A no-op update: its before image equals the snapshot row, id included.
    db.exec("UPDATE v SET t = t WHERE id BETWEEN 1 AND 5;");
    let updates = changes(&mut source, rows.len()).await;
    for (read, update) in snap.iter().zip(&updates) {
        assert_eq!(update.op, Op::Update);
        same_bits(
            read.after.as_ref().unwrap(),
            update.before.as_ref().unwrap(),
        );
        same_bits(read.after.as_ref().unwrap(), update.after.as_ref().unwrap());
    }
}

#[tokio::test]
async fn floats_round_trip_exactly_through_the_changelog() {
    let db = Db::new("CREATE TABLE f (id INTEGER PRIMARY KEY, x REAL);");
    let mut source = db.source(&[]);
    source.start(None).await.unwrap();
    finish_snapshot(&mut source).await;
    // A deterministic spread of bit patterns (finite, normal and subnormal).
    let mut bits: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut floats = Vec::new();
    while floats.len() < 300 {
        bits ^= bits << 13;
        bits ^= bits >> 7;
        bits ^= bits << 17;
        let x = f64::from_bits(bits);
        if x.is_finite() {
            floats.push(x);
        }
    }
    {
        let mut conn = db.conn();
        let tx = conn.transaction().unwrap();
        for (i, x) in floats.iter().enumerate() {
            tx.execute(
                "INSERT INTO f VALUES (?1, ?2)",
                rusqlite::params![i as i64, x],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let got = changes(&mut source, floats.len()).await;
    for (x, change) in floats.iter().zip(&got) {
        match change.after.as_ref().unwrap().get("x") {
            Some(Value::Float(y)) => {
                assert_eq!(x.to_bits(), y.to_bits(), "{x:e} came back as {y:e}")
            }
            other => panic!("{x:e} came back as {other:?}"),
        }
    }
}
