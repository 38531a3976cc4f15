//! Columns added, dropped and retyped mid-stream: a schema event before the first change
//! that uses the new shape, and the stream goes on.

use sluice_core::{Change, Op, Value};

use crate::common::{Driver, TestDb, int};

/// `(name, type, key)` of each column of a schema event.
fn columns(change: &Change) -> Vec<(String, String, bool)> {
    change
        .schema
        .as_ref()
        .unwrap_or_else(|| panic!("schema event without a schema: {change:?}"))
        .columns
        .iter()
        .map(|c| (c.name.to_string(), c.type_name.to_string(), c.key))
        .collect()
}

fn col(name: &str, type_name: &str, key: bool) -> (String, String, bool) {
    (name.to_owned(), type_name.to_owned(), key)
}

/// The table's columns as the server's `format_type` names them.
async fn catalog_columns(db: &TestDb, table: &str) -> Vec<(String, String)> {
    db.client
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn column_add_drop_and_retype_yield_schema_events_and_the_stream_goes_on() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');")
        .await;
    let config = db.config("app");
    let mut d = Driver::start(&config, None).await;
    d.until_count(1).await;

    // A row change with the starting shape: no schema event.
    db.exec("UPDATE t SET v = 'a1' WHERE id = 1").await;
    d.until_count(2).await;
    assert_eq!(d.changes[1].op, Op::Update);

    db.exec("ALTER TABLE t ADD COLUMN n numeric(12,2); INSERT INTO t VALUES (2, 'b', 1.50);")
        .await;
    db.exec("ALTER TABLE t DROP COLUMN v; INSERT INTO t VALUES (3, 2.25);")
        .await;
    db.exec("ALTER TABLE t ALTER COLUMN n TYPE text; INSERT INTO t VALUES (4, 'x');")
        .await;
    // Types no column had when the stream started: named without the catalog (a user type
    // by the Type message the server sends before the relation).
    db.exec(
        "CREATE TYPE mood AS ENUM ('ok', 'sad'); \
         ALTER TABLE t ADD COLUMN tags varchar(20)[], ADD COLUMN at timestamp(3) with time zone, \
         ADD COLUMN m mood; \
         INSERT INTO t VALUES (5, 'y', '{p,q}', '2024-01-02 03:04:05.678+00', 'sad');",
    )
    .await;
    // The same shape again: a plain update, no schema event.
    db.exec("UPDATE t SET n = 'z' WHERE id = 5").await;
    d.until("the last update", |c| {
        c.iter().any(|c| {
            c.op == Op::Update
                && c.after.as_ref().unwrap().get("n") == Some(&Value::Text("z".into()))
        })
    })
    .await;

    let stream = &d.changes[2..];
    let shape: Vec<Op> = stream.iter().map(|c| c.op).collect();
    assert_eq!(
        shape,
        [
            Op::Schema,
            Op::Insert,
            Op::Schema,
            Op::Insert,
            Op::Schema,
            Op::Insert,
            Op::Schema,
            Op::Insert,
            Op::Update
        ]
    );
    assert_eq!(
        columns(&stream[0]),
        [
            col("id", "integer", true),
            col("v", "text", false),
            col("n", "numeric(12,2)", false)
        ]
    );
    assert_eq!(
        columns(&stream[2]),
        [col("id", "integer", true), col("n", "numeric(12,2)", false)]
    );
    assert_eq!(
        columns(&stream[4]),
        [col("id", "integer", true), col("n", "text", false)]
    );
    let last = columns(&stream[6]);
    let catalog: Vec<(String, String)> = last
        .iter()
        .map(|(n, t, _)| (n.clone(), t.clone()))
        .collect();
    assert_eq!(catalog, catalog_columns(&db, "t").await);
    assert_eq!(last[2], col("tags", "character varying(20)[]", false));
    assert_eq!(last[3], col("at", "timestamp(3) with time zone", false));
    assert_eq!(last[4], col("m", "mood", false));

    // Schema events: the table, no key or rows, in the DDL's transaction, before its insert.
    let schema = &stream[0];
    assert_eq!(&*schema.table, "public.t");
    assert!(schema.key.is_empty() && schema.before.is_none() && schema.after.is_none());
    let (s_tx, i_tx) = (schema.tx.as_ref().unwrap(), stream[1].tx.as_ref().unwrap());
    assert_eq!(s_tx.id, i_tx.id);
    assert_eq!((s_tx.ordinal, s_tx.last), (0, false));
    assert_eq!((i_tx.ordinal, i_tx.last), (1, true));
    let json = serde_json::to_value(schema).unwrap();
    assert_eq!(json["op"], "schema");
    assert_eq!(json["key"], serde_json::Value::Null);
    assert_eq!(
        json["schema"]["columns"][2],
        serde_json::json!({"name": "n", "type": "numeric(12,2)", "key": false})
    );

    // The rows follow their shapes.
    let after = |i: usize| stream[i].after.clone().unwrap();
    assert_eq!(after(1).get("n"), Some(&Value::Decimal("1.50".into())));
    assert_eq!(after(3).get("v"), None);
    assert_eq!(after(3).get("n"), Some(&Value::Decimal("2.25".into())));
    assert_eq!(after(5).get("n"), Some(&Value::Text("x".into())));
    assert_eq!(
        after(7).get("tags"),
        Some(&Value::Array(vec![
            Value::Text("p".into()),
            Value::Text("q".into())
        ]))
    );
    assert_eq!(int(&stream[7].key, "id"), 5);

    // Resumed from a checkpoint with the shape unchanged since: no schema event.
    let checkpoint = d.last_position.clone().unwrap();
    drop(d);
    db.exec("INSERT INTO t VALUES (6, 'w')").await;
    let mut d = Driver::start(&config, Some(checkpoint)).await;
    d.until_count(1).await;
    d.drain().await;
    assert_eq!(
        d.changes.iter().map(|c| c.op).collect::<Vec<_>>(),
        [Op::Insert]
    );
    drop(d);
    db.finish().await;
}
