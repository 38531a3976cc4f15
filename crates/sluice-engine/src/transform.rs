//! Transforms applied between sources and sinks: `filter` (by table and op) and `select`
//! (keep, drop and rename columns).

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_config::{FilterTransform, SelectTransform, TransformKind, table_matches};
use sluice_core::{Change, Name, Op, Row, Schema, SchemaColumn};

/// A compiled transform.
#[derive(Debug, Clone)]
pub enum Transform {
    /// Keep changes of some tables and ops.
    Filter(FilterTransform),
    /// Keep, drop and rename columns.
    Select(Select),
}

/// A compiled `select` transform.
#[derive(Debug, Clone)]
pub struct Select {
    config: SelectTransform,
    rename: BTreeMap<String, Name>,
}

impl Transform {
    /// Compile a configured transform.
    pub fn new(kind: &TransformKind) -> Self {
        match kind {
            TransformKind::Filter(f) => Transform::Filter(f.clone()),
            TransformKind::Select(s) => Transform::Select(Select {
                config: s.clone(),
                rename: s
                    .rename
                    .iter()
                    .map(|(k, v)| (k.clone(), Name::new(v)))
                    .collect(),
            }),
        }
    }

    /// Apply to one change: `None` drops it.
    pub fn apply(&self, mut change: Change) -> Option<Change> {
        match self {
            Transform::Filter(f) => keep(f, &change.table, change.op).then_some(change),
            Transform::Select(s) => {
                let c = &s.config;
                if !c.tables.is_empty() && !c.tables.iter().any(|p| table_matches(p, &change.table))
                {
                    return Some(change);
                }
                let keep_column = |name: &str| {
                    (c.include.is_empty() || c.include.iter().any(|i| i == name))
                        && !c.exclude.iter().any(|e| e == name)
                };
                let rename = |row: Row, filter: bool| -> Row {
                    row.0
                        .into_iter()
                        .filter(|(name, _)| !filter || keep_column(name))
                        .map(|(name, v)| match s.rename.get(&*name) {
                            Some(new) => (*new, v),
                            None => (name, v),
                        })
                        .collect()
                };
                change.key = rename(std::mem::take(&mut change.key), false);
                change.before = change.before.map(|r| rename(r, true));
                change.after = change.after.map(|r| rename(r, true));
                // A schema event describes the columns the rows after it carry.
                change.schema = change.schema.map(|schema| {
                    let columns = schema
                        .columns
                        .iter()
                        .filter(|col| keep_column(&col.name))
                        .map(|col| SchemaColumn {
                            name: *s.rename.get(&*col.name).unwrap_or(&col.name),
                            ..col.clone()
                        })
                        .collect();
                    Arc::new(Schema { columns })
                });
                Some(change)
            }
        }
    }
}

fn keep(f: &FilterTransform, table: &str, op: Op) -> bool {
    (f.tables.is_empty() || f.tables.iter().any(|p| table_matches(p, table)))
        && !f.exclude_tables.iter().any(|p| table_matches(p, table))
        && (f.ops.is_empty() || f.ops.contains(&op))
}

/// Apply a chain of transforms in order.
pub fn apply_chain(chain: &[Arc<Transform>], change: Change) -> Option<Change> {
    chain.iter().try_fold(change, |c, t| t.apply(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{Position, SqlitePosition, Value};

    fn row(cols: &[(&str, i64)]) -> Row {
        cols.iter()
            .map(|(c, v)| (Name::new(c), Value::Int(*v)))
            .collect()
    }

    fn change(table: &str, op: Op) -> Change {
        Change {
            op,
            source: "s".into(),
            table: table.into(),
            key: row(&[("id", 1)]),
            before: None,
            after: Some(row(&[("id", 1), ("secret", 2), ("email", 3)])),
            position: Position::Sqlite(SqlitePosition {
                seq: 1,
                snapshot: false,
            }),
            tx: None,
            schema: None,
        }
    }

    #[test]
    fn filter_by_table_and_op() {
        let t = Transform::new(&TransformKind::Filter(FilterTransform {
            tables: vec!["main.*".into()],
            exclude_tables: vec!["audit".into()],
            ops: vec![Op::Insert, Op::Read],
        }));
        assert!(t.apply(change("main.users", Op::Insert)).is_some());
        assert!(t.apply(change("main.users", Op::Delete)).is_none());
        assert!(t.apply(change("main.audit", Op::Insert)).is_none());
        assert!(t.apply(change("other.users", Op::Insert)).is_none());
    }

    #[test]
    fn select_drops_and_renames() {
        let t = Transform::new(&TransformKind::Select(SelectTransform {
            tables: vec!["users".into()],
            include: vec![],
            exclude: vec!["secret".into()],
            rename: [
                ("email".to_owned(), "mail".to_owned()),
                ("id".to_owned(), "user_id".to_owned()),
            ]
            .into_iter()
            .collect(),
        }));
        let out = t.apply(change("main.users", Op::Insert)).unwrap();
        assert_eq!(out.after, Some(row(&[("user_id", 1), ("mail", 3)])));
        assert_eq!(out.key, row(&[("user_id", 1)]));
        let untouched = t.apply(change("main.orders", Op::Insert)).unwrap();
        assert_eq!(untouched.after, change("main.orders", Op::Insert).after);

        // A schema event's columns get the same treatment as the rows after it.
        let column = |name: &str, key: bool| SchemaColumn {
            name: name.into(),
            type_name: "integer".into(),
            key,
        };
        let mut schema = change("main.users", Op::Schema);
        schema.schema = Some(Arc::new(Schema {
            columns: vec![
                column("id", true),
                column("secret", false),
                column("email", false),
            ],
        }));
        let out = t.apply(schema).unwrap().schema.unwrap();
        assert_eq!(
            out.columns,
            [column("user_id", true), column("mail", false)]
        );
    }
}
