//! Column values and their JSON form in the native event format.
//!
//! JSON has no bytes, no NaN and no "value not sent", so those use tagged objects that cannot
//! be confused with ordinary values:
//!
//! | Value | JSON |
//! |---|---|
//! | `Null`, `Bool`, `Int` | `null`, `true`, `42` (64-bit integers are exact) |
//! | `Float` (finite) | `1.5` |
//! | `Float` (NaN, ±infinity) | `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | `Decimal` | `"12.50"` (exact text; never a JSON number) |
//! | `Text`, `Uuid`, `Date`, `Time`, `Timestamp`, `TimestampTz` | strings (ISO 8601 for times) |
//! | `Bytes` | `{"$base64": "3q2+7w=="}` |
//! | `Json` | the JSON value itself |
//! | `Array` | a JSON array |
//! | `Unchanged` | `{"$unchanged": true}` |

use base64::Engine as _;
use compact_str::CompactString;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// One column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Boolean.
    Bool(bool),
    /// Signed 64-bit integer.
    Int(i64),
    /// Double precision float, including NaN and infinities.
    Float(f64),
    /// Exact decimal kept as its canonical text (`"12.50"`, `"NaN"`, `"Infinity"`).
    Decimal(CompactString),
    /// Text.
    Text(CompactString),
    /// Binary data.
    Bytes(Vec<u8>),
    /// A JSON document.
    Json(serde_json::Value),
    /// Calendar date, `YYYY-MM-DD`.
    Date(CompactString),
    /// Time of day, `HH:MM:SS[.ffffff][+TZ]`.
    Time(CompactString),
    /// Timestamp without time zone, ISO 8601.
    Timestamp(CompactString),
    /// Timestamp with time zone, ISO 8601 with offset.
    TimestampTz(CompactString),
    /// UUID in canonical hyphenated form.
    Uuid(CompactString),
    /// Array of values (nested for multi-dimensional arrays).
    Array(Vec<Value>),
    /// A value the source did not resend (for example an unchanged TOAST column in
    /// PostgreSQL). Sinks must keep the previous value rather than write null.
    Unchanged,
}

impl Value {
    /// A rough in-memory size, used for batching by bytes.
    pub fn approx_bytes(&self) -> usize {
        16 + match self {
            Value::Decimal(s)
            | Value::Text(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Timestamp(s)
            | Value::TimestampTz(s)
            | Value::Uuid(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Json(j) => json_bytes(j),
            Value::Array(items) => items.iter().map(Value::approx_bytes).sum(),
            Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Unchanged => 0,
        }
    }

    /// The value as a JSON value in the native event format.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// A rough size of a JSON document, without printing it (batching sizes every change).
fn json_bytes(j: &serde_json::Value) -> usize {
    use serde_json::Value as J;
    match j {
        J::Null | J::Bool(_) | J::Number(_) => 8,
        J::String(s) => s.len() + 2,
        J::Array(items) => 2 + items.iter().map(|i| json_bytes(i) + 1).sum::<usize>(),
        J::Object(members) => {
            2 + members
                .iter()
                .map(|(k, v)| k.len() + 4 + json_bytes(v))
                .sum::<usize>()
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) if f.is_nan() => s.serialize_str("NaN"),
            Value::Float(f) if f.is_infinite() => {
                s.serialize_str(if *f > 0.0 { "Infinity" } else { "-Infinity" })
            }
            Value::Float(f) => s.serialize_f64(*f),
            Value::Decimal(t)
            | Value::Text(t)
            | Value::Date(t)
            | Value::Time(t)
            | Value::Timestamp(t)
            | Value::TimestampTz(t)
            | Value::Uuid(t) => s.serialize_str(t),
            Value::Bytes(b) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(
                    "$base64",
                    &base64::engine::general_purpose::STANDARD.encode(b),
                )?;
                m.end()
            }
            Value::Json(j) => j.serialize(s),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Unchanged => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("$unchanged", &true)?;
                m.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_forms_are_unambiguous() {
        let cases = [
            (Value::Null, json!(null)),
            (Value::Int(i64::MAX), json!(i64::MAX)),
            (Value::Float(1.5), json!(1.5)),
            (Value::Float(f64::NAN), json!("NaN")),
            (Value::Float(f64::NEG_INFINITY), json!("-Infinity")),
            (Value::Decimal("12.50".into()), json!("12.50")),
            (
                Value::Bytes(vec![0xde, 0xad, 0xbe, 0xef]),
                json!({"$base64": "3q2+7w=="}),
            ),
            (Value::Unchanged, json!({"$unchanged": true})),
            (Value::Json(json!({"a": [1]})), json!({"a": [1]})),
            (
                Value::Array(vec![Value::Array(vec![Value::Int(1), Value::Null])]),
                json!([[1, null]]),
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(value.to_json(), expected, "{value:?}");
        }
    }
}
