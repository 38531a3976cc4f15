//! One change to one row, as it travels through a pipeline and as it is written in the
//! native event format (`docs/event-format.md`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::{Name, Position, Schema, Value};

/// What happened to the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A row was inserted.
    Insert,
    /// A row was updated; `before` is set when the source has the old image.
    Update,
    /// A row was deleted; `after` is absent.
    Delete,
    /// The whole table was emptied; `key`, `before` and `after` are absent.
    Truncate,
    /// A row read by a snapshot (it existed when the snapshot was taken).
    Read,
    /// The table's columns changed (added, dropped, retyped); `schema` has the new shape,
    /// which the changes after it use. `key`, `before` and `after` are absent.
    Schema,
}

impl Op {
    /// Every op, in documentation order.
    pub const ALL: [Op; 6] = [
        Op::Insert,
        Op::Update,
        Op::Delete,
        Op::Truncate,
        Op::Read,
        Op::Schema,
    ];

    /// The lowercase name used in events and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Truncate => "truncate",
            Op::Read => "read",
            Op::Schema => "schema",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Op {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Op::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| {
                format!("unknown op {s:?}, expected one of insert, update, delete, truncate, read, schema")
            })
    }
}

/// Column names paired with values, in table column order. Serialised as a JSON object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row(pub Vec<(Name, Value)>);

impl Row {
    /// The value of a column, if present.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.0.iter().find(|(c, _)| **c == *column).map(|(_, v)| v)
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterate over `(column, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(c, v)| (&**c, v))
    }

    fn approx_bytes(&self) -> usize {
        self.0.iter().map(|(c, v)| c.len() + v.approx_bytes()).sum()
    }
}

impl FromIterator<(Name, Value)> for Row {
    fn from_iter<I: IntoIterator<Item = (Name, Value)>>(iter: I) -> Self {
        Row(iter.into_iter().collect())
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (column, value) in &self.0 {
            m.serialize_entry(&**column, value)?;
        }
        m.end()
    }
}

/// Transaction metadata carried by every change that has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxMeta {
    /// Source transaction id (PostgreSQL xid, MySQL GTID, ...).
    pub id: String,
    /// Commit time, RFC 3339, when the source reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_ts: Option<String>,
    /// 0-based ordinal of this change inside its transaction.
    pub ordinal: u64,
    /// True for the last change of the transaction.
    pub last: bool,
}

/// One row-level change (or snapshot read) from a source.
///
/// Serialises as the native event: `{"op", "source", "table", "key", "before", "after",
/// "position", "tx"}`. Absent parts are `null`.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What happened.
    pub op: Op,
    /// Name of the configured source that captured it.
    pub source: Name,
    /// Fully qualified table name, `schema.name` (`main.name` for SQLite).
    pub table: Name,
    /// Primary-key columns identifying the row (empty for truncate).
    pub key: Row,
    /// Row image before the change, when the source has it.
    pub before: Option<Row>,
    /// Row image after the change (absent for delete and truncate).
    pub after: Option<Row>,
    /// Source position of this change; resuming from it replays nothing before it.
    pub position: Position,
    /// Transaction metadata, when the source has transactions it can identify.
    pub tx: Option<TxMeta>,
    /// The table's new shape, for [`Op::Schema`] only.
    pub schema: Option<Arc<Schema>>,
}

impl Change {
    /// A rough in-memory size, used for batching by bytes.
    pub fn approx_bytes(&self) -> usize {
        64 + self.table.len()
            + self.key.approx_bytes()
            + self.before.as_ref().map_or(0, Row::approx_bytes)
            + self.after.as_ref().map_or(0, Row::approx_bytes)
            + self.schema.as_ref().map_or(0, |s| s.approx_bytes())
    }
}

impl Serialize for Change {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(8 + usize::from(self.schema.is_some())))?;
        m.serialize_entry("op", &self.op)?;
        m.serialize_entry("source", &*self.source)?;
        m.serialize_entry("table", &*self.table)?;
        if matches!(self.op, Op::Truncate | Op::Schema) {
            m.serialize_entry("key", &())?;
        } else {
            m.serialize_entry("key", &self.key)?;
        }
        m.serialize_entry("before", &self.before)?;
        m.serialize_entry("after", &self.after)?;
        if let Some(schema) = &self.schema {
            m.serialize_entry("schema", &**schema)?;
        }
        m.serialize_entry("position", &self.position)?;
        m.serialize_entry("tx", &self.tx)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqlitePosition;

    fn row(pairs: &[(&str, Value)]) -> Row {
        pairs
            .iter()
            .map(|(c, v)| (Name::new(c), v.clone()))
            .collect()
    }

    #[test]
    fn update_event_json_is_pinned() {
        let change = Change {
            op: Op::Update,
            source: "app".into(),
            table: "main.users".into(),
            key: row(&[("id", Value::Int(7))]),
            before: Some(row(&[
                ("id", Value::Int(7)),
                ("name", Value::Text("Ada".into())),
            ])),
            after: Some(row(&[
                ("id", Value::Int(7)),
                ("name", Value::Text("Ada L".into())),
            ])),
            position: Position::Sqlite(SqlitePosition {
                seq: 12,
                snapshot: false,
            }),
            tx: Some(TxMeta {
                id: "759".into(),
                commit_ts: None,
                ordinal: 0,
                last: true,
            }),
            schema: None,
        };
        insta::assert_snapshot!(serde_json::to_string(&change).unwrap(), @r#"{"op":"update","source":"app","table":"main.users","key":{"id":7},"before":{"id":7,"name":"Ada"},"after":{"id":7,"name":"Ada L"},"position":{"kind":"sqlite","seq":12},"tx":{"id":"759","ordinal":0,"last":true}}"#);
    }

    #[test]
    fn truncate_has_null_key() {
        let change = Change {
            op: Op::Truncate,
            source: "app".into(),
            table: "public.orders".into(),
            key: Row::default(),
            before: None,
            after: None,
            position: Position::Pg {
                lsn: crate::PgLsn(0x16B3748),
                snapshot: false,
                progress: None,
            },
            tx: None,
            schema: None,
        };
        insta::assert_snapshot!(serde_json::to_string(&change).unwrap(), @r#"{"op":"truncate","source":"app","table":"public.orders","key":null,"before":null,"after":null,"position":{"kind":"pg","lsn":"0/16B3748"},"tx":null}"#);
    }

    #[test]
    fn schema_event_json_is_pinned() {
        let column = |name: &str, type_name: &str, key: bool| crate::SchemaColumn {
            name: name.into(),
            type_name: type_name.into(),
            key,
        };
        let change = Change {
            op: Op::Schema,
            source: "app".into(),
            table: "public.orders".into(),
            key: Row::default(),
            before: None,
            after: None,
            position: Position::Pg {
                lsn: crate::PgLsn(0x16B3748),
                snapshot: false,
                progress: None,
            },
            tx: None,
            schema: Some(Arc::new(Schema {
                columns: vec![
                    column("id", "bigint", true),
                    column("total", "numeric(12,2)", false),
                ],
            })),
        };
        insta::assert_snapshot!(serde_json::to_string(&change).unwrap(), @r#"{"op":"schema","source":"app","table":"public.orders","key":null,"before":null,"after":null,"schema":{"columns":[{"name":"id","type":"bigint","key":true},{"name":"total","type":"numeric(12,2)","key":false}]},"position":{"kind":"pg","lsn":"0/16B3748"},"tx":null}"#);
    }

    #[test]
    fn op_names_round_trip() {
        for op in Op::ALL {
            assert_eq!(op.as_str().parse::<Op>(), Ok(op));
        }
        assert!(
            "upsert"
                .parse::<Op>()
                .unwrap_err()
                .contains("expected one of")
        );
    }
}
