//! Versioned table schemas. A schema change is an event with a new version, not a crash.

use std::sync::Arc;

use serde::Serialize;

use crate::Name;

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// Column name.
    pub name: Name,
    /// The type as the source declares it (`INTEGER`, `text`, `numeric(12,2)`, ...).
    pub type_name: String,
    /// False when the column is declared NOT NULL.
    pub nullable: bool,
}

/// A table's shape as an [`crate::Op::Schema`] event carries it: the columns that the changes
/// after the event use, in table order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schema {
    /// Columns in table order.
    pub columns: Vec<SchemaColumn>,
}

/// One column of a [`Schema`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaColumn {
    /// Column name.
    pub name: Name,
    /// The type as the source names it (`integer`, `numeric(12,2)`, `text[]`, ...).
    #[serde(rename = "type")]
    pub type_name: Arc<str>,
    /// True for the columns that make up the events' `key`.
    pub key: bool,
}

impl Schema {
    /// A rough in-memory size, used for batching by bytes.
    pub fn approx_bytes(&self) -> usize {
        self.columns
            .iter()
            .map(|c| 16 + c.name.len() + c.type_name.len())
            .sum()
    }
}

/// The shape of a table at some point in the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableSchema {
    /// Fully qualified name, `schema.name`.
    pub table: Name,
    /// Starts at 1 and increases by one each time the column set or types change.
    pub version: u32,
    /// Columns in table order.
    pub columns: Vec<Column>,
    /// Primary-key column names, in key order.
    pub primary_key: Vec<Name>,
}

impl TableSchema {
    /// The next version of this schema if `columns`/`primary_key` differ, else `None`.
    pub fn evolve(&self, columns: Vec<Column>, primary_key: Vec<Name>) -> Option<TableSchema> {
        if columns == self.columns && primary_key == self.primary_key {
            return None;
        }
        Some(TableSchema {
            table: self.table,
            version: self.version + 1,
            columns,
            primary_key,
        })
    }

    /// Position of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| &*c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str) -> Column {
        Column {
            name: name.into(),
            type_name: "INTEGER".into(),
            nullable: true,
        }
    }

    #[test]
    fn evolve_bumps_version_only_on_change() {
        let v1 = TableSchema {
            table: "main.t".into(),
            version: 1,
            columns: vec![col("id")],
            primary_key: vec!["id".into()],
        };
        assert!(v1.evolve(vec![col("id")], vec!["id".into()]).is_none());
        let v2 = v1
            .evolve(vec![col("id"), col("x")], vec!["id".into()])
            .unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!(v2.column_index("x"), Some(1));
    }
}
