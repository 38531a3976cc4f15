//! Table-driven tests: PostgreSQL's text output for each mapped type, and the fallbacks.

use proptest::prelude::*;
use serde_json::json;
use sluice_core::Value;

use super::oid::*;
use super::text_to_value;

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn arr(items: Vec<Value>) -> Value {
    Value::Array(items)
}

#[test]
fn scalars() {
    let cases: Vec<(u32, &str, Value)> = vec![
        (BOOL, "t", Value::Bool(true)),
        (BOOL, "f", Value::Bool(false)),
        (BOOL, "yes", text("yes")),
        (INT2, "-32768", Value::Int(-32768)),
        (INT4, "2147483647", Value::Int(2_147_483_647)),
        (INT8, "-9223372036854775808", Value::Int(i64::MIN)),
        (INT8, "9223372036854775808", text("9223372036854775808")),
        (INT4, "12abc", text("12abc")),
        (OID, "4294967295", Value::Int(4_294_967_295)),
        (OID, "-1", text("-1")),
        (FLOAT8, "1.5", Value::Float(1.5)),
        (FLOAT4, "-0.25", Value::Float(-0.25)),
        (FLOAT8, "1e+300", Value::Float(1e300)),
        (FLOAT8, "Infinity", Value::Float(f64::INFINITY)),
        (FLOAT4, "-Infinity", Value::Float(f64::NEG_INFINITY)),
        (FLOAT8, "inf", text("inf")),
        (FLOAT8, "", text("")),
        (NUMERIC, "12.50", Value::Decimal("12.50".into())),
        (
            NUMERIC,
            "-0.000000000000000000001",
            Value::Decimal("-0.000000000000000000001".into()),
        ),
        (
            NUMERIC,
            "123456789012345678901234567890",
            Value::Decimal("123456789012345678901234567890".into()),
        ),
        (NUMERIC, "NaN", Value::Decimal("NaN".into())),
        (NUMERIC, "Infinity", Value::Decimal("Infinity".into())),
        (NUMERIC, "-Infinity", Value::Decimal("-Infinity".into())),
        (NUMERIC, "1.2.3", text("1.2.3")),
        (NUMERIC, "-", text("-")),
        (TEXT, "héllo, wörld", text("héllo, wörld")),
        (VARCHAR, "", text("")),
        (BPCHAR, "ab   ", text("ab   ")),
        (NAME, "pg_class", text("pg_class")),
        (CHAR, "x", text("x")),
        (BYTEA, "\\x", Value::Bytes(vec![])),
        (
            BYTEA,
            "\\xdeadBEEF00",
            Value::Bytes(vec![0xde, 0xad, 0xbe, 0xef, 0]),
        ),
        (BYTEA, "\\xabc", text("\\xabc")),
        (BYTEA, "\\xzz", text("\\xzz")),
        (
            BYTEA,
            "ab\\\\c\\000\\377",
            Value::Bytes(b"ab\\c\x00\xff".to_vec()),
        ),
        (BYTEA, "bad\\9", text("bad\\9")),
        (
            JSON,
            "{\"a\": [1, null]}",
            Value::Json(json!({"a": [1, null]})),
        ),
        (JSONB, "\"s\"", Value::Json(json!("s"))),
        (JSONB, "{not json", text("{not json")),
        (
            UUID,
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            Value::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
        ),
        (
            UUID,
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"),
        ),
        (
            UUID,
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            text("a0eebc999c0b4ef8bb6d6bb9bd380a11"),
        ),
        // Not mapped: kept as text.
        (1186, "1 day 02:03:04", text("1 day 02:03:04")),
        (869, "192.168.0.1/24", text("192.168.0.1/24")),
        (790, "$1.00", text("$1.00")),
        (3904, "[1,10)", text("[1,10)")),
        (99_999, "whatever", text("whatever")),
    ];
    check(cases);
}

#[test]
fn dates_and_times() {
    let cases: Vec<(u32, &str, Value)> = vec![
        (DATE, "2024-01-02", Value::Date("2024-01-02".into())),
        (DATE, "0044-03-15 BC", Value::Date("-0043-03-15".into())),
        (DATE, "0001-01-01 BC", Value::Date("0000-01-01".into())),
        (DATE, "12345-06-07", Value::Date("12345-06-07".into())),
        (DATE, "infinity", text("infinity")),
        (DATE, "-infinity", text("-infinity")),
        (DATE, "01/02/2024", text("01/02/2024")),
        (TIME, "03:04:05", Value::Time("03:04:05".into())),
        (
            TIME,
            "23:59:59.999999",
            Value::Time("23:59:59.999999".into()),
        ),
        (TIME, "24:00:00", Value::Time("24:00:00".into())),
        (TIME, "3:04", text("3:04")),
        (TIMETZ, "03:04:05+00", Value::Time("03:04:05+00:00".into())),
        (
            TIMETZ,
            "03:04:05.5-05:30",
            Value::Time("03:04:05.5-05:30".into()),
        ),
        (
            TIMESTAMP,
            "2024-01-02 03:04:05",
            Value::Timestamp("2024-01-02T03:04:05".into()),
        ),
        (
            TIMESTAMP,
            "2024-01-02 03:04:05.123456",
            Value::Timestamp("2024-01-02T03:04:05.123456".into()),
        ),
        (
            TIMESTAMP,
            "0044-03-15 12:00:00 BC",
            Value::Timestamp("-0043-03-15T12:00:00".into()),
        ),
        (TIMESTAMP, "infinity", text("infinity")),
        (
            TIMESTAMP,
            "2024-01-02T03:04:05",
            text("2024-01-02T03:04:05"),
        ),
        (
            TIMESTAMPTZ,
            "2024-01-02 03:04:05.123+00",
            Value::TimestampTz("2024-01-02T03:04:05.123+00:00".into()),
        ),
        (
            TIMESTAMPTZ,
            "2024-01-02 03:04:05+05:30",
            Value::TimestampTz("2024-01-02T03:04:05+05:30".into()),
        ),
        (
            TIMESTAMPTZ,
            "2024-01-02 03:04:05-08",
            Value::TimestampTz("2024-01-02T03:04:05-08:00".into()),
        ),
        // Local mean time offsets have seconds, which ISO 8601 cannot write: kept.
        (
            TIMESTAMPTZ,
            "1850-01-01 00:00:00+00:53:28",
            Value::TimestampTz("1850-01-01T00:00:00+00:53:28".into()),
        ),
        (
            TIMESTAMPTZ,
            "0100-01-01 00:00:00+00 BC",
            Value::TimestampTz("-0099-01-01T00:00:00+00:00".into()),
        ),
        (TIMESTAMPTZ, "infinity", text("infinity")),
        (TIMESTAMPTZ, "-infinity", text("-infinity")),
        (
            TIMESTAMPTZ,
            "Tue Jan 02 03:04:05 2024 UTC",
            text("Tue Jan 02 03:04:05 2024 UTC"),
        ),
        (
            TIMESTAMPTZ,
            "2024-01-02 03:04:05",
            text("2024-01-02 03:04:05"),
        ),
    ];
    check(cases);
}

#[test]
fn arrays() {
    let cases: Vec<(u32, &str, Value)> = vec![
        (INT4_ARRAY, "{}", arr(vec![])),
        (
            INT4_ARRAY,
            "{1,2,NULL}",
            arr(vec![Value::Int(1), Value::Int(2), Value::Null]),
        ),
        (
            INT8_ARRAY,
            "{{1,2},{3,4}}",
            arr(vec![
                arr(vec![Value::Int(1), Value::Int(2)]),
                arr(vec![Value::Int(3), Value::Int(4)]),
            ]),
        ),
        (
            INT2_ARRAY,
            "{{{1},{2}},{{3},{4}}}",
            arr(vec![
                arr(vec![arr(vec![Value::Int(1)]), arr(vec![Value::Int(2)])]),
                arr(vec![arr(vec![Value::Int(3)]), arr(vec![Value::Int(4)])]),
            ]),
        ),
        (
            TEXT_ARRAY,
            r#"{"a,b","c\"d",NULL,"NULL",null,"",plain,"back\\slash"}"#,
            arr(vec![
                text("a,b"),
                text("c\"d"),
                Value::Null,
                text("NULL"),
                Value::Null,
                text(""),
                text("plain"),
                text("back\\slash"),
            ]),
        ),
        (
            VARCHAR_ARRAY,
            r#"{"with space","{braces}",é}"#,
            arr(vec![text("with space"), text("{braces}"), text("é")]),
        ),
        (
            BOOL_ARRAY,
            "{t,f,NULL}",
            arr(vec![Value::Bool(true), Value::Bool(false), Value::Null]),
        ),
        (
            FLOAT8_ARRAY,
            "{1.5,NaN,Infinity,-Infinity}",
            arr(vec![
                Value::Float(1.5),
                Value::Float(f64::NAN),
                Value::Float(f64::INFINITY),
                Value::Float(f64::NEG_INFINITY),
            ]),
        ),
        (FLOAT4_ARRAY, "{0.5}", arr(vec![Value::Float(0.5)])),
        (
            NUMERIC_ARRAY,
            "{1.10,NaN,NULL}",
            arr(vec![
                Value::Decimal("1.10".into()),
                Value::Decimal("NaN".into()),
                Value::Null,
            ]),
        ),
        (
            UUID_ARRAY,
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            arr(vec![Value::Uuid(
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into(),
            )]),
        ),
        (
            JSONB_ARRAY,
            r#"{"{\"a\": 1}","[1, 2]",NULL}"#,
            arr(vec![
                Value::Json(json!({"a": 1})),
                Value::Json(json!([1, 2])),
                Value::Null,
            ]),
        ),
        (
            JSON_ARRAY,
            r#"{"\"s\"",3}"#,
            arr(vec![Value::Json(json!("s")), Value::Json(json!(3))]),
        ),
        (
            DATE_ARRAY,
            "{2024-01-02,infinity}",
            arr(vec![Value::Date("2024-01-02".into()), text("infinity")]),
        ),
        (
            TIMESTAMP_ARRAY,
            r#"{"2024-01-02 03:04:05"}"#,
            arr(vec![Value::Timestamp("2024-01-02T03:04:05".into())]),
        ),
        (
            TIMESTAMPTZ_ARRAY,
            r#"{"2024-01-02 03:04:05+00",NULL}"#,
            arr(vec![
                Value::TimestampTz("2024-01-02T03:04:05+00:00".into()),
                Value::Null,
            ]),
        ),
        (
            BYTEA_ARRAY,
            r#"{"\\x0102",NULL,"\\x"}"#,
            arr(vec![
                Value::Bytes(vec![1, 2]),
                Value::Null,
                Value::Bytes(vec![]),
            ]),
        ),
        // Lower bounds are dropped.
        (
            INT4_ARRAY,
            "[0:1]={7,8}",
            arr(vec![Value::Int(7), Value::Int(8)]),
        ),
        (
            INT4_ARRAY,
            "[0:1][1:1]={{7},{8}}",
            arr(vec![arr(vec![Value::Int(7)]), arr(vec![Value::Int(8)])]),
        ),
        // A malformed element of a known type is text; the array survives.
        (INT4_ARRAY, "{1,x}", arr(vec![Value::Int(1), text("x")])),
        // Malformed literals are text.
        (INT4_ARRAY, "{1,2", text("{1,2")),
        (INT4_ARRAY, "{1,,2}", text("{1,,2}")),
        (INT4_ARRAY, "{1,{2}}", text("{1,{2}}")),
        (INT4_ARRAY, "{{1},2}", text("{{1},2}")),
        (INT4_ARRAY, "{{1,2},{3}}", text("{{1,2},{3}}")),
        (INT4_ARRAY, "{{1},{{2}}}", text("{{1},{{2}}}")),
        (INT4_ARRAY, "{1} x", text("{1} x")),
        (TEXT_ARRAY, r#"{"unterminated}"#, text(r#"{"unterminated}"#)),
        (INT4_ARRAY, "{{{{{{{1}}}}}}}", text("{{{{{{{1}}}}}}}")),
        (INT4_ARRAY, "[x]={1}", text("[x]={1}")),
        // Arrays of unmapped types are text.
        (1187, "{\"1 day\"}", text("{\"1 day\"}")),
    ];
    check(cases);
    assert_eq!(
        text_to_value(INT4_ARRAY, "{{{{{{1}}}}}}"),
        arr(vec![arr(vec![arr(vec![arr(vec![arr(vec![arr(vec![
            Value::Int(1)
        ])])])])])]),
        "six dimensions are allowed"
    );
}

fn check(cases: Vec<(u32, &str, Value)>) {
    for (oid, input, expected) in cases {
        let got = text_to_value(oid, input);
        // NaN != NaN: compare the JSON forms, which spell NaN out, and the variants.
        assert_eq!(
            got.to_json(),
            expected.to_json(),
            "type {oid} {input:?}: {got:?}"
        );
        assert_eq!(
            std::mem::discriminant(&got),
            std::mem::discriminant(&expected),
            "type {oid} {input:?}: {got:?}"
        );
        if let (Value::Array(g), Value::Array(e)) = (&got, &expected) {
            assert_eq!(
                format!("{g:?}").replace("NaN", ""),
                format!("{e:?}").replace("NaN", "")
            );
        }
    }
}

/// Every mapped type, plus interval and an invalid OID (both stay text).
fn oids() -> Vec<u32> {
    MAPPED.iter().copied().chain([1186, 0]).collect()
}

proptest! {
    #[test]
    fn never_panics(oid in prop::sample::select(oids()), s in "\\PC{0,40}") {
        let _ = text_to_value(oid, &s);
    }

    #[test]
    fn array_syntax_never_panics(oid in prop::sample::select(oids()), s in "[{}\",\\\\ NULnul0-9a-x:\\[\\]=.+-]{0,40}") {
        let _ = text_to_value(oid, &s);
    }

    #[test]
    fn quoted_text_arrays_round_trip(items in proptest::collection::vec(prop::option::of("\\PC{0,8}"), 0..6)) {
        let literal = format!("{{{}}}", items.iter().map(|item| match item {
            None => "NULL".to_owned(),
            Some(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        }).collect::<Vec<_>>().join(","));
        let expected = Value::Array(items.iter().map(|item| match item {
            None => Value::Null,
            Some(s) => Value::Text(s.into()),
        }).collect());
        prop_assert_eq!(text_to_value(TEXT_ARRAY, &literal), expected);
    }

    #[test]
    fn ints_round_trip(v in any::<i64>()) {
        prop_assert_eq!(text_to_value(INT8, &v.to_string()), Value::Int(v));
    }
}

proptest! {
    /// The fast path for common timestamps agrees with the general one wherever it answers.
    #[test]
    fn timestamp_fast_path_agrees_with_general(
        y in 0u32..10000, mo in 1u32..13, d in 1u32..29, h in 0u32..24, mi in 0u32..60, sec in 0u32..60,
        frac in proptest::option::of("[0-9]{1,7}"), tz in proptest::option::of(("[+-]", 0u32..15)),
        junk in proptest::option::of("[ :.+a-z0-9]{1,4}"),
    ) {
        let mut text = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{sec:02}");
        if let Some(f) = frac { text.push('.'); text.push_str(&f); }
        if let Some((sign, hh)) = &tz { text.push_str(&format!("{sign}{hh:02}")); }
        if let Some(j) = junk { text.push_str(&j); }
        for with_tz in [false, true] {
            if let Some(fast) = super::iso_timestamp_common(&text, with_tz) {
                prop_assert_eq!(Some(fast), super::iso_timestamp_general(&text, with_tz), "{}", text);
            }
        }
    }
}

#[test]
fn timestamp_fast_path_takes_the_common_shapes() {
    use super::iso_timestamp_common as fast;
    assert_eq!(
        fast("2024-01-02 03:04:05.123456+00", true).as_deref(),
        Some("2024-01-02T03:04:05.123456+00:00")
    );
    assert_eq!(
        fast("2024-01-02 03:04:05", false).as_deref(),
        Some("2024-01-02T03:04:05")
    );
    assert_eq!(
        fast("2024-01-02 03:04:05+05:30", true),
        None,
        "minutes in the offset: general path"
    );
    assert_eq!(fast("2024-01-02 03:04:05 BC", false), None);
    assert_eq!(fast("12024-01-02 03:04:05", false), None);
}

proptest! {
    /// The owned-string path gives the same value as the borrowed one, for every type.
    #[test]
    fn owned_conversion_agrees_with_borrowed(
        oid in proptest::sample::select(vec![BOOL, INT4, INT8, FLOAT8, NUMERIC, TEXT, VARCHAR, BPCHAR, NAME, BYTEA, JSONB, DATE, TIME, TIMESTAMPTZ, UUID, 1007, 1009, 0]),
        text in "[-+0-9a-zA-Z.:{}\",\\\\ NaIfty]{0,24}",
    ) {
        // Compared as JSON: NaN is not equal to itself as a float.
        prop_assert_eq!(super::text_to_value_owned(oid, text.clone()).to_json(), text_to_value(oid, &text).to_json());
    }
}
