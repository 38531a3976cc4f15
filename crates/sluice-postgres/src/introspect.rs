//! What `sluice init` needs to write a config: the user tables of a database, their keys
//! and (estimated) sizes.

use sluice_config::model::PostgresSourceConfig;
use sluice_core::{Error, Result};

use crate::conn::connect;

/// One user table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// `schema.table`.
    pub name: String,
    /// Primary-key columns in key order (empty when there is none).
    pub primary_key: Vec<String>,
    /// `(column, type)` in table order.
    pub columns: Vec<(String, String)>,
    /// Estimated row count (`pg_class.reltuples`; 0 when never analysed).
    pub rows: u64,
    /// Replica identity: `d` default, `f` full, `i` index, `n` nothing.
    pub replica_identity: char,
}

const TABLES: &str = "SELECT c.oid, n.nspname::text, c.relname::text, \
    GREATEST(c.reltuples, 0)::float8, c.relreplident::text \
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
    ORDER BY 2, 3";

const COLUMNS: &str = "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
    FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
    ORDER BY a.attnum";

/// A DEFERRABLE (or invalid) primary key is not one: the server cannot use it as the
/// replica identity, so the table counts as keyless.
const PRIMARY_KEY: &str = "SELECT a.attname::text FROM pg_index i \
    CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
    WHERE i.indrelid = $1 AND i.indisprimary AND i.indimmediate AND i.indisvalid ORDER BY k.ord";

/// Every user table of the database at `url`.
pub async fn introspect(url: &str) -> Result<Vec<TableInfo>> {
    let config = PostgresSourceConfig::new("init", url);
    let client = connect(&config).await?;
    let failed = |what: &str, e: tokio_postgres::Error| {
        Error::permanent(format!("introspecting the database failed while {what}")).with_source(e)
    };
    let tables = client
        .query(TABLES, &[])
        .await
        .map_err(|e| failed("listing tables", e))?;
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let oid: u32 = t.get(0);
        let columns = client
            .query(COLUMNS, &[&oid])
            .await
            .map_err(|e| failed("reading columns", e))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let primary_key = client
            .query(PRIMARY_KEY, &[&oid])
            .await
            .map_err(|e| failed("reading primary keys", e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let schema: String = t.get(1);
        let name: String = t.get(2);
        let rows: f64 = t.get(3);
        let identity: String = t.get(4);
        out.push(TableInfo {
            name: format!("{schema}.{name}"),
            primary_key,
            columns,
            rows: rows as u64,
            replica_identity: identity.chars().next().unwrap_or('d'),
        });
    }
    Ok(out)
}
