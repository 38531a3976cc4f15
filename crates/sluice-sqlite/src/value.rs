//! SQLite values as sluice [`Value`]s, and the row-image format the triggers write.
//!
//! SQLite has five storage classes and sluice maps them the same way whether a row is read
//! by the snapshot or decoded from a changelog image: INTEGER → [`Value::Int`], REAL →
//! [`Value::Float`], TEXT → [`Value::Text`], BLOB → [`Value::Bytes`], NULL → [`Value::Null`].
//! The declared column type does not matter (SQLite does not enforce it).
//!
//! A row image is a JSON object built by string concatenation inside the trigger, one member
//! per column:
//!
//! | storage class | image |
//! |---|---|
//! | INTEGER | `42` (decimal text of the 64-bit integer, exact) |
//! | REAL | `{"$f":"0.30000000000000004"}` (17 significant digits, round-trips; `Inf`/`-Inf`) |
//! | TEXT | `"text"` (`json_quote`) |
//! | BLOB | `{"$b":"DEADBEEF"}` (`hex`) |
//! | NULL | `null` |
//!
//! Why not `json_object()`: it fails on BLOB arguments, renders REAL with 15 significant
//! digits in older SQLite versions (so `0.1 + 0.2` came back as `0.3`) and `±Inf` as `9e999`,
//! which JSON parsers reject; it is limited to `SQLITE_MAX_FUNCTION_ARG / 2` columns; and
//! nesting a tagged object depends on the JSON subtype surviving `CASE`. Concatenation has
//! none of those problems and works with any SQLite the application links (3.38+, for
//! `json_quote`). A TEXT value is always a JSON string, so a text that happens to look like
//! `{"$b":"00"}` cannot be mistaken for a tag.
//!
//! One loss: SQLite prints `-0.0` as `0.0`, so a negative zero (which SQLite only keeps in
//! columns without REAL affinity anyway) is streamed as `0.0`, while the snapshot reads
//! `-0.0`. The two compare equal.

use rusqlite::types::ValueRef;
use sluice_core::{Name, Row, Value};

/// A value read directly from SQLite (snapshot).
pub(crate) fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => Value::Text(sluice_core::CompactString::from_utf8_lossy(t)),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

/// SQL that renders `expr` (such as `NEW."price"`) as JSON text in the image format.
fn member_sql(expr: &str) -> String {
    format!(
        "(CASE typeof({expr}) \
         WHEN 'integer' THEN CAST({expr} AS TEXT) \
         WHEN 'real' THEN '{{\"$f\":\"' || printf('%!.17g', {expr}) || '\"}}' \
         WHEN 'text' THEN json_quote({expr}) \
         WHEN 'blob' THEN '{{\"$b\":\"' || hex({expr}) || '\"}}' \
         ELSE 'null' END)"
    )
}

/// SQL that renders the row `alias` (`NEW` or `OLD`) with `columns` as a JSON object text.
pub(crate) fn image_sql(alias: &str, columns: &[Name]) -> String {
    let mut parts = Vec::with_capacity(columns.len() * 2 + 1);
    for (i, column) in columns.iter().enumerate() {
        let open = if i == 0 { "{" } else { "," };
        parts.push(crate::connection::literal(&format!(
            "{open}{}:",
            json_string(column)
        )));
        parts.push(member_sql(&format!(
            "{alias}.{}",
            crate::connection::ident(column)
        )));
    }
    if columns.is_empty() {
        parts.push("'{'".to_owned());
    }
    parts.push("'}'".to_owned());
    parts.join(" || ")
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Decode a row image written by the triggers. Columns come out in `columns` order; members
/// that are not in `columns` (a column dropped since the image was written) follow, by name.
pub fn decode_image(text: &str, columns: &[Name]) -> Result<Row, String> {
    let parsed: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let serde_json::Value::Object(mut members) = parsed else {
        return Err("not a JSON object".to_owned());
    };
    let mut row = Vec::with_capacity(members.len());
    for column in columns {
        if let Some(v) = members.remove(&**column) {
            row.push((
                *column,
                decode_member(v).map_err(|e| format!("column {column:?}: {e}"))?,
            ));
        }
    }
    for (name, v) in members {
        let value = decode_member(v).map_err(|e| format!("column {name:?}: {e}"))?;
        row.push((Name::new(&name), value));
    }
    Ok(Row(row))
}

fn decode_member(v: serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    match v {
        J::Null => Ok(Value::Null),
        J::String(s) => Ok(Value::Text(s.into())),
        J::Number(n) => match n.as_i64() {
            Some(i) => Ok(Value::Int(i)),
            None => n
                .as_f64()
                .map(Value::Float)
                .ok_or_else(|| format!("number {n} out of range")),
        },
        J::Object(m) if m.len() == 1 => match m.into_iter().next() {
            Some((tag, J::String(s))) if tag == "$b" => decode_hex(&s).map(Value::Bytes),
            Some((tag, J::String(s))) if tag == "$f" => parse_float(&s).map(Value::Float),
            _ => Err("unknown tagged value".to_owned()),
        },
        other => Err(format!("unexpected JSON {other}")),
    }
}

fn parse_float(s: &str) -> Result<f64, String> {
    match s {
        "Inf" | "inf" | "Infinity" => Ok(f64::INFINITY),
        "-Inf" | "-inf" | "-Infinity" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("invalid float {s:?}")),
    }
}

fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => Err(format!("invalid hex digit {:?}", b as char)),
    };
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err("odd-length hex".to_owned());
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Ok(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn cols(names: &[&str]) -> Vec<Name> {
        names.iter().map(|n| Name::new(n)).collect()
    }

    /// Every storage class survives the image round trip exactly, through the bundled SQLite.
    #[test]
    fn image_round_trips_every_storage_class() {
        let conn = Connection::open_in_memory().unwrap();
        let columns = cols(&["a", "we\"ird 'name'", "c"]);
        conn.execute_batch("CREATE TABLE t(a, \"we\"\"ird 'name'\", c)")
            .unwrap();
        let values: Vec<rusqlite::types::Value> = {
            use rusqlite::types::Value as V;
            vec![
                V::Integer(i64::MAX),
                V::Integer(i64::MIN),
                V::Real(0.1 + 0.2),
                V::Real(f64::INFINITY),
                V::Real(f64::NEG_INFINITY),
                V::Real(5e-324),
                V::Real(f64::MAX),
                V::Real(-0.0),
                V::Real(1.0 / 3.0),
                V::Text("héllo \"wörld\" \n\t\u{1} 🦀".into()),
                V::Text("{\"$b\":\"00\"}".into()),
                V::Blob(vec![0, 1, 0xfe, 0xff]),
                V::Blob(vec![]),
                V::Null,
            ]
        };
        let sql = format!("SELECT {} FROM t", image_sql("t", &columns));
        for v in values {
            conn.execute("DELETE FROM t", []).unwrap();
            conn.execute("INSERT INTO t VALUES (?1, ?1, 7)", [&v])
                .unwrap();
            let text: String = conn.query_row(&sql, [], |r| r.get(0)).unwrap();
            let row = decode_image(&text, &columns).unwrap();
            let direct = conn
                .query_row("SELECT a FROM t", [], |r| Ok(from_sql(r.get_ref(0)?)))
                .unwrap();
            assert_eq!(row.get("a"), Some(&direct), "{text}");
            assert_eq!(row.get("we\"ird 'name'"), Some(&direct), "{text}");
            assert_eq!(row.get("c"), Some(&Value::Int(7)));
            if let Value::Float(f) = direct {
                let Some(Value::Float(g)) = row.get("a") else {
                    panic!("{text}")
                };
                // SQLite prints -0.0 as 0.0: the sign of zero is the one thing not kept.
                if f != 0.0 {
                    assert_eq!(f.to_bits(), g.to_bits(), "{text}");
                }
            }
        }
    }

    #[test]
    fn dropped_columns_follow_known_ones() {
        let row = decode_image(r#"{"z":1,"b":"x","a":null}"#, &cols(&["b", "a"])).unwrap();
        let names: Vec<&str> = row.iter().map(|(c, _)| c).collect();
        assert_eq!(names, ["b", "a", "z"]);
        assert!(decode_image("[1]", &cols(&["a"])).is_err());
        assert!(decode_image(r#"{"a":{"$x":"1"}}"#, &cols(&["a"])).is_err());
        assert!(decode_image(r#"{"a":{"$b":"0g"}}"#, &cols(&["a"])).is_err());
    }
}
