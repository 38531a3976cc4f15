use sluice_core::{Op, Value};

use crate::common::{Driver, TestDb};

/// One row of many built-in types, read by the snapshot and then copied by an INSERT that
/// the stream delivers: both paths must give identical values.
#[tokio::test]
async fn type_fidelity_snapshot_equals_stream() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        r#"CREATE TYPE mood AS ENUM ('sad', 'happy');
        CREATE DOMAIN posint AS int CHECK (VALUE > 0);
        CREATE TABLE t (
            id int PRIMARY KEY,
            i2 smallint, i4 int, i8 bigint, n numeric(12,2), n_nan numeric, n_inf numeric,
            f4 real, f8 double precision, f8_nan float8, f8_inf float8,
            b bool, tx text, vc varchar(10), ch char(3), by bytea,
            d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval,
            u uuid, j json, jb jsonb,
            a_int int[], a_2d int[][], a_text text[], a_null text[],
            e mood, dom posint, r int4range, inet_ inet, cidr_ cidr, mac macaddr,
            m money, bt bit(4), vb varbit, x xml, nul text
        );
        INSERT INTO t VALUES (
            1, -32768, 2147483647, -9223372036854775808, 1234567890.12, 'NaN', 'Infinity',
            1.5, 0.1, 'NaN', '-Infinity',
            true, 'héllo "quoted"', 'short', 'ab', '\xdeadbeef',
            '2024-02-29', '23:59:59.999999', '12:00:00+05:30', '2024-01-02 03:04:05.123456',
            '2024-01-02 03:04:05.5+02', '1 year 2 mons 3 days 04:05:06',
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2.5, null]}', '{"k": "v", "n": 1, "big": 123456789012345678901234567890, "f": 1.10}',
            '{1,2,3}', '{{1,2},{3,4}}', '{"a b","c,d","e\"f"}', '{x,NULL}',
            'happy', 42, '[1,10)', '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03',
            12.34, B'1010', B'101', '<a>1</a>', NULL
        );"#,
    )
    .await;
    let mut d = Driver::start(&db.config("app"), None).await;
    d.until_count(1).await;
    db.exec("INSERT INTO t SELECT 2, i2, i4, i8, n, n_nan, n_inf, f4, f8, f8_nan, f8_inf, b, tx, vc, ch, by, d, tm, ttz, ts, tstz, iv, u, j, jb, a_int, a_2d, a_text, a_null, e, dom, r, inet_, cidr_, mac, m, bt, vb, x, nul FROM t WHERE id = 1")
        .await;
    d.until_count(2).await;
    let read = &d.changes[0];
    let insert = &d.changes[1];
    assert_eq!((read.op, insert.op), (Op::Read, Op::Insert));
    let a = read.after.as_ref().unwrap();
    let b = insert.after.as_ref().unwrap();
    assert_eq!(a.len(), b.len());
    for ((col, va), (_, vb)) in a.0.iter().zip(&b.0) {
        if &**col != "id" {
            // Compared as event JSON, where NaN equals NaN.
            assert_eq!(
                va.to_json(),
                vb.to_json(),
                "column {col}: snapshot and stream differ"
            );
        }
    }
    let get = |c: &str| a.get(c).cloned().unwrap();
    assert_eq!(get("i8"), Value::Int(i64::MIN));
    assert_eq!(get("n"), Value::Decimal("1234567890.12".into()));
    assert_eq!(get("n_nan"), Value::Decimal("NaN".into()));
    assert_eq!(get("n_inf"), Value::Decimal("Infinity".into()));
    assert_eq!(get("f8"), Value::Float(0.1));
    assert!(matches!(get("f8_nan"), Value::Float(f) if f.is_nan()));
    assert_eq!(get("f8_inf"), Value::Float(f64::NEG_INFINITY));
    assert_eq!(get("tx"), Value::Text("héllo \"quoted\"".into()));
    assert_eq!(get("by"), Value::Bytes(vec![0xde, 0xad, 0xbe, 0xef]));
    assert_eq!(get("d"), Value::Date("2024-02-29".into()));
    assert_eq!(
        get("tstz"),
        Value::TimestampTz("2024-01-02T01:04:05.5+00:00".into())
    );
    assert_eq!(
        get("u"),
        Value::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into())
    );
    // Numbers keep every digit (jsonb stores them as numeric).
    assert_eq!(
        serde_json::to_string(&get("jb").to_json()).unwrap(),
        r#"{"big":123456789012345678901234567890,"f":1.10,"k":"v","n":1}"#
    );
    assert_eq!(
        get("a_2d"),
        Value::Array(vec![
            Value::Array(vec![Value::Int(1), Value::Int(2)]),
            Value::Array(vec![Value::Int(3), Value::Int(4)]),
        ])
    );
    assert_eq!(
        get("a_null"),
        Value::Array(vec![Value::Text("x".into()), Value::Null])
    );
    assert_eq!(
        get("a_text"),
        Value::Array(vec![
            Value::Text("a b".into()),
            Value::Text("c,d".into()),
            Value::Text("e\"f".into())
        ])
    );
    assert_eq!(get("e"), Value::Text("happy".into()));
    assert_eq!(get("inet_"), Value::Text("192.168.0.1/24".into()));
    assert_eq!(
        get("iv"),
        Value::Text("1 year 2 mons 3 days 04:05:06".into())
    );
    assert_eq!(get("nul"), Value::Null);
    drop(d);
    db.finish().await;
}

/// A table whose every column type the snapshot reads in binary (`COPY ... (FORMAT
/// binary)`), with edge values, read by the snapshot and then copied by an INSERT that the
/// stream delivers in text: both must give identical values.
#[tokio::test]
async fn binary_snapshot_equals_text_stream_at_the_edges() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        r#"CREATE TABLE b (
            id int PRIMARY KEY, i2 smallint, i4 int, i8 bigint, o oid, f8 float8,
            n numeric, n2 numeric(20,6), bo bool, tx text, vc varchar(20), ch char(5), nm name,
            by bytea, u uuid, j json, jb jsonb, d date, ts timestamp, tstz timestamptz
        );
        INSERT INTO b VALUES
        (1, 1, 2, 3, 4, 1.5, 1234567890.12, 1.5, true, 'plain', 'v', 'ab', 'nm', '\xdeadbeef',
         'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2.50, null]}', '{"k": "v", "f": 1.10}',
         '2024-02-29', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.5+02'),
        (2, 32767, -2147483648, 9223372036854775807, 4294967295, '-0', '-0.000001234', 0, false,
         E'tab\there\nnew line \\ back é 😀', '', 'a', repeat('n', 63), '\x00ff',
         'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '[1,   "x" ]', '{"big": 123456789012345678901234567890, "e": 1e3}',
         '0044-03-15 BC', '0044-03-15 12:00:00.000001 BC', '294276-12-31 23:59:59.999999+00'),
        (3, -32768, 0, -9223372036854775808, 0, 'NaN', 'NaN', '-12345678901234.123456', true,
         '', 'x', '     ', '', '', '00000000-0000-0000-0000-000000000000', 'null', '[]',
         'infinity', '-infinity', 'infinity'),
        (4, 0, 7, 0, 1, 'Infinity', '-Infinity', 0.000001, false, 'x', 'y', 'z', 'w', '\x',
         'ffffffff-ffff-ffff-ffff-ffffffffffff', '"s"', '"s"',
         '4713-11-24 BC', '4713-11-24 00:00:00 BC', '2000-01-01 00:00:00+14'),
        (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, NULL),
        (6, 0, 0, 0, 0, 4.9e-324, '123456789012345678901234567890.000000000000000000001',
         99999999999999.999999, true, 'x', 'x', 'x', 'x', '\x00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
         '1e400', '{"n": -0.0}', '5874897-12-31', '1999-12-31 23:59:59.999999',
         '1970-01-01 00:00:00.000001+00'),
        (7, 0, 0, 0, 0, 1.7976931348623157e308, 1e-20, -0.5, false, 'x', 'x', 'x', 'x', '\x00',
         'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{}', '{}', '2000-01-01', '2000-01-01',
         '1900-02-28 23:00:00-01:30');"#,
    )
    .await;
    let rows = 7;
    let mut d = Driver::start(&db.config("app"), None).await;
    d.until_count(rows).await;
    db.exec("INSERT INTO b SELECT id + 100, i2, i4, i8, o, f8, n, n2, bo, tx, vc, ch, nm, by, u, j, jb, d, ts, tstz FROM b")
        .await;
    d.until_count(2 * rows).await;
    let id = |c: &sluice_core::Change| match c.key.get("id") {
        Some(Value::Int(i)) => *i,
        other => panic!("id {other:?}"),
    };
    for read in d.changes.iter().filter(|c| c.op == Op::Read) {
        let insert = d
            .changes
            .iter()
            .find(|c| c.op == Op::Insert && id(c) == id(read) + 100)
            .unwrap();
        let a = read.after.as_ref().unwrap();
        let b = insert.after.as_ref().unwrap();
        for ((col, va), (_, vb)) in a.0.iter().zip(&b.0) {
            if &**col != "id" {
                assert_eq!(
                    va.to_json(),
                    vb.to_json(),
                    "row {}, column {col}: snapshot (binary) and stream (text) differ",
                    id(read)
                );
            }
        }
    }
    let row = |i: i64| {
        d.changes
            .iter()
            .find(|c| c.op == Op::Read && id(c) == i)
            .unwrap()
            .after
            .clone()
            .unwrap()
    };
    assert_eq!(
        row(2).get("ts"),
        Some(&Value::Timestamp("-0043-03-15T12:00:00.000001".into()))
    );
    assert_eq!(
        row(2).get("u"),
        Some(&Value::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()))
    );
    assert_eq!(
        row(3).get("n2"),
        Some(&Value::Decimal("-12345678901234.123456".into()))
    );
    assert_eq!(row(3).get("d"), Some(&Value::Text("infinity".into())));
    assert_eq!(
        row(4).get("tstz"),
        Some(&Value::TimestampTz("1999-12-31T10:00:00+00:00".into()))
    );
    assert_eq!(row(5).get("n"), Some(&Value::Null));
    drop(d);
    db.finish().await;
}

/// A stored generated column is not published by pgoutput (PostgreSQL 12–17): the snapshot
/// leaves it out too, so snapshot and stream rows have the same columns.
#[tokio::test]
async fn generated_columns_are_left_out_of_snapshot_and_stream_alike() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE g (id int PRIMARY KEY, price int, doubled int GENERATED ALWAYS AS (price * 2) STORED);
         INSERT INTO g (id, price) VALUES (1, 10);",
    )
    .await;
    let mut d = Driver::start(&db.config("app"), None).await;
    d.until_count(1).await;
    db.exec("INSERT INTO g (id, price) VALUES (2, 20)").await;
    d.until_count(2).await;
    let columns = |i: usize| -> Vec<String> {
        d.changes[i]
            .after
            .as_ref()
            .unwrap()
            .0
            .iter()
            .map(|(c, _)| c.to_string())
            .collect()
    };
    assert_eq!(d.changes[0].op, Op::Read);
    assert_eq!(columns(0), ["id", "price"]);
    assert_eq!(columns(1), columns(0));
    drop(d);
    db.finish().await;
}
