//! What the catalog says about the captured tables: which they are, their columns with type
//! OIDs, their key and replica identity.

use std::sync::Arc;

use sluice_config::model::PostgresSourceConfig;
use sluice_core::{Error, Name, Result};
use tokio_postgres::Client;

use crate::conn::{ident, pg_error};

/// One captured table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// `d` (default: primary key), `f` (full), `i` (index) or `n` (nothing).
    pub replica_identity: char,
    pub columns: Vec<TableColumn>,
    /// Key columns: the replica identity index under `USING INDEX`, else the primary key,
    /// else (identity full) every column.
    pub key: Vec<Name>,
    /// True when the table has a primary key the server can use as its replica identity.
    pub has_primary_key: bool,
    /// True when it has a primary key the server cannot use as one (deferrable, or invalid).
    pub unusable_primary_key: bool,
    /// True for an UNLOGGED table: PostgreSQL can neither publish nor decode it.
    pub unlogged: bool,
    /// True for a partitioned table (its rows live in partitions).
    pub partitioned: bool,
    /// The publication's row filter for this table (PostgreSQL 15+), as SQL: the snapshot
    /// reads only the rows the stream would publish.
    pub row_filter: Option<String>,
}

/// One column of a captured table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableColumn {
    pub name: Name,
    pub type_oid: u32,
    pub type_modifier: i32,
    /// `format_type(type, modifier)`: `integer`, `numeric(12,2)`, `text[]`, ...
    pub type_name: Arc<str>,
}

impl Table {
    /// `schema.name`, as events name tables.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// `"schema"."name"`, quoted for SQL.
    pub fn sql(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }
}

/// `schema.table` or `table` (meaning `public.table`) as its two parts.
pub(crate) fn split_name(name: &str) -> (String, String) {
    match name.split_once('.') {
        Some((schema, table)) => (schema.to_owned(), table.to_owned()),
        None => ("public".to_owned(), name.to_owned()),
    }
}

const FIND_TABLE: &str = "SELECT c.oid, c.relreplident::text, c.relkind = 'p', \
    c.relpersistence <> 'p' FROM pg_class c \
    JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind IN ('r', 'p') AND n.nspname = $1 AND c.relname = $2";

/// Every user table (partitions are read through their partitioned table), and whether it
/// has a replica identity: REPLICA IDENTITY FULL, or the index its identity uses (the primary
/// key under DEFAULT, the chosen index under USING INDEX) exists and is one the server can
/// use (valid, unique, not deferrable, no predicate: as PostgreSQL's relcache decides). A
/// table without one must not be published: the server then refuses its UPDATEs and DELETEs.
const ALL_TABLES_WITH_KEY: &str = "SELECT n.nspname::text, c.relname::text, \
    c.relreplident = 'f' OR EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid \
    AND CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident ELSE false END \
    AND i.indisvalid AND i.indisunique AND i.indimmediate AND i.indpred IS NULL), \
    c.relpersistence <> 'p' \
    FROM pg_class c \
    JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
    ORDER BY 1, 2";

/// The columns pgoutput publishes: generated columns (PostgreSQL 12+) are not among them.
const COLUMNS: &str = "SELECT a.attname::text, a.atttypid, a.atttypmod, \
    format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
    WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
    ORDER BY a.attnum";

/// [`COLUMNS`] before PostgreSQL 12, which has no generated columns (nor `attgenerated`).
const COLUMNS_BEFORE_12: &str = "SELECT a.attname::text, a.atttypid, a.atttypmod, \
    format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
    WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
    ORDER BY a.attnum";

/// Key columns of the primary key (`indisprimary`) and of the replica identity index
/// (`indisreplident`), and whether the server can use that index as a replica identity: a
/// DEFERRABLE primary key, for one, is not (PostgreSQL's relcache skips invalid, non-unique,
/// deferrable and partial indexes).
const KEY_COLUMNS: &str = "SELECT i.indisprimary, i.indisreplident, a.attname::text, \
    i.indisvalid AND i.indisunique AND i.indimmediate AND i.indpred IS NULL FROM pg_index i \
    CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
    WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisreplident) \
    ORDER BY i.indisprimary DESC, k.ord";

/// The tables an existing publication covers, each with whether it has a replica identity
/// (as in [`ALL_TABLES_WITH_KEY`]).
const PUBLICATION_TABLES: &str = "SELECT p.schemaname::text, p.tablename::text, \
    c.relreplident = 'f' OR EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid \
    AND CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident ELSE false END \
    AND i.indisvalid AND i.indisunique AND i.indimmediate AND i.indpred IS NULL) \
    FROM pg_publication_tables p \
    JOIN pg_namespace n ON n.nspname = p.schemaname \
    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename \
    WHERE p.pubname = $1 ORDER BY 1, 2";

/// What a PostgreSQL 15+ publication publishes of one table: its column list (every column
/// when it has none) and its row filter.
const PUBLISHED_SHAPE: &str = "SELECT p.attnames::text[], p.rowfilter FROM pg_publication_tables p \
    WHERE p.pubname = $1 AND p.schemaname = $2 AND p.tablename = $3";

/// The tables `config` captures, read from the catalog: the configured ones; else, when the
/// publication exists, its tables that have a key; else every table with a primary key. A
/// configured table that does not exist is a permanent error; so is an empty result.
pub(crate) async fn captured(client: &Client, config: &PostgresSourceConfig) -> Result<Vec<Table>> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| pg_error(e, "reading the server version"))?
        .get(0);
    let publication = &config.publication;
    let names: Vec<(String, String)> = if config.tables.is_empty() {
        let exists = crate::lifecycle::publication_exists(client, publication).await?;
        if exists {
            let rows = client
                .query(PUBLICATION_TABLES, &[publication])
                .await
                .map_err(|e| pg_error(e, &format!("listing publication \"{publication}\"")))?;
            let mut names = Vec::with_capacity(rows.len());
            for r in &rows {
                let (schema, name, keyed): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
                if keyed {
                    names.push((schema, name));
                } else {
                    tracing::warn!(publication = %publication, table = %format!("{schema}.{name}"), "table in the publication has no primary key: not captured (hint: add one, or REPLICA IDENTITY FULL)");
                }
            }
            if names.is_empty() {
                return Err(Error::permanent(format!(
                    "no tables to capture: publication \"{publication}\" has no table with a primary key (hint: add tables to it, or list tables in `tables`)"
                )));
            }
            names
        } else {
            let rows = client
                .query(ALL_TABLES_WITH_KEY, &[])
                .await
                .map_err(|e| pg_error(e, "listing tables"))?;
            let mut names = Vec::with_capacity(rows.len());
            for r in &rows {
                let (schema, name, keyed): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
                let unlogged: bool = r.get(3);
                if unlogged {
                    tracing::warn!(table = %format!("{schema}.{name}"), "table is UNLOGGED: not captured (PostgreSQL can neither publish nor decode it; hint: ALTER TABLE ... SET LOGGED)");
                } else if keyed {
                    names.push((schema, name));
                } else {
                    tracing::warn!(table = %format!("{schema}.{name}"), "table has no primary key (or none the server can use as its replica identity): not captured (hint: add one, or set REPLICA IDENTITY FULL)");
                }
            }
            names
        }
    } else {
        config.tables.iter().map(|t| split_name(t)).collect()
    };
    if names.is_empty() {
        return Err(Error::permanent(
            "no tables to capture: the database has no table with a primary key or REPLICA IDENTITY FULL (hint: create one, or list tables in `tables`)",
        ));
    }
    let mut tables = Vec::with_capacity(names.len());
    let mut missing = Vec::new();
    for (schema, name) in names {
        match find(client, version, &schema, &name).await? {
            Some(t) => tables.push(t),
            None => missing.push(format!("\"{schema}.{name}\"")),
        }
    }
    match missing.len() {
        0 => {}
        1 => {
            return Err(Error::permanent(format!(
                "table {} does not exist (hint: check `tables`; names are `schema.table`, or `table` for `public.table`)",
                missing[0]
            )));
        }
        _ => {
            return Err(Error::permanent(format!(
                "tables {} do not exist (hint: check `tables`; names are `schema.table`, or `table` for `public.table`)",
                missing.join(", ")
            )));
        }
    }
    for (i, table) in tables.iter().enumerate() {
        if tables[..i].iter().any(|t| t.oid == table.oid) {
            return Err(Error::permanent(format!(
                "table \"{}\" is listed twice in `tables` (perhaps once as \"{}\" and once with its schema): its rows would be read twice (hint: list it once)",
                table.qualified(),
                table.name
            )));
        }
    }
    if version >= 120_000 && tables.len() > 1 {
        reject_partitions_of_captured(client, &tables).await?;
    }
    narrow_to_publication(client, version, publication, &mut tables).await?;
    Ok(tables)
}

/// The partitioned tables above `oid` (empty for a table that is not a partition).
const ANCESTORS: &str = "SELECT n.nspname::text || '.' || c.relname::text \
    FROM pg_partition_ancestors($1::oid::regclass) a \
    JOIN pg_class c ON c.oid = a.relid JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE a.relid <> $1::oid";

/// A partition captured beside its partitioned table would be read twice by the snapshot
/// (once in each) and published only once: refuse it.
async fn reject_partitions_of_captured(client: &Client, tables: &[Table]) -> Result<()> {
    for table in tables {
        let ancestors = client.query(ANCESTORS, &[&table.oid]).await.map_err(|e| {
            pg_error(
                e,
                &format!("reading the partition tree of \"{}\"", table.qualified()),
            )
        })?;
        for row in ancestors {
            let ancestor: String = row.get(0);
            if tables.iter().any(|t| t.qualified() == ancestor) {
                return Err(Error::permanent(format!(
                    "both \"{ancestor}\" and its partition \"{}\" are captured: the partition's rows would be read twice (hint: list only \"{ancestor}\" in `tables`; its partitions' changes are captured as it)",
                    table.qualified()
                )));
            }
        }
    }
    Ok(())
}

/// Narrow `tables` to what the publication publishes of them: a PostgreSQL 15+ column list
/// drops the other columns (the stream never carries them), a row filter is kept for the
/// snapshot. Tables not (yet) in the publication, or an older server, are left whole.
async fn narrow_to_publication(
    client: &Client,
    version: i32,
    publication: &str,
    tables: &mut [Table],
) -> Result<()> {
    if version < 150_000 {
        return Ok(());
    }
    for table in tables {
        let what = format!(
            "reading what publication \"{publication}\" publishes of table \"{}\"",
            table.qualified()
        );
        let Some(row) = client
            .query_opt(PUBLISHED_SHAPE, &[&publication, &table.schema, &table.name])
            .await
            .map_err(|e| pg_error(e, &what))?
        else {
            continue;
        };
        let published: Option<Vec<String>> = row.get(0);
        table.row_filter = row.get(1);
        if let Some(published) = published {
            let left_out: Vec<&str> = table
                .key
                .iter()
                .filter(|k| !published.iter().any(|p| **p == ***k))
                .map(|k| &**k)
                .collect();
            if !left_out.is_empty() {
                let columns: Vec<String> = table
                    .key
                    .iter()
                    .map(|k| &**k)
                    .chain(
                        published
                            .iter()
                            .map(String::as_str)
                            .filter(|p| !table.key.iter().any(|k| **k == **p)),
                    )
                    .map(ident)
                    .collect();
                return Err(Error::permanent(format!(
                    "publication \"{publication}\" publishes table \"{}\" without its key column(s) {}: sluice could not tell its rows apart (hint: ALTER PUBLICATION {pub_sql} DROP TABLE {t}; ALTER PUBLICATION {pub_sql} ADD TABLE {t} ({}))",
                    table.qualified(),
                    left_out.join(", "),
                    columns.join(", "),
                    pub_sql = ident(publication),
                    t = table.sql(),
                )));
            }
            let before = table.columns.len();
            table
                .columns
                .retain(|c| published.iter().any(|p| **p == *c.name));
            if table.columns.len() < before {
                tracing::info!(
                    table = %table.qualified(),
                    publication = %publication,
                    columns = %published.join(", "),
                    "the publication's column list limits the captured columns"
                );
            }
        }
        if let Some(filter) = &table.row_filter {
            tracing::info!(
                table = %table.qualified(),
                publication = %publication,
                filter = %filter,
                "the publication's row filter limits the captured rows"
            );
        }
    }
    Ok(())
}

/// One table by name, if it exists.
async fn find(client: &Client, version: i32, schema: &str, name: &str) -> Result<Option<Table>> {
    let what = format!("reading the catalog entry of table \"{schema}.{name}\"");
    let Some(row) = client
        .query_opt(FIND_TABLE, &[&schema, &name])
        .await
        .map_err(|e| pg_error(e, &what))?
    else {
        return Ok(None);
    };
    let oid: u32 = row.get(0);
    let identity: String = row.get(1);
    let partitioned: bool = row.get(2);
    let unlogged: bool = row.get(3);
    let replica_identity = identity.chars().next().unwrap_or('d');
    let columns_sql = if version >= 120_000 {
        COLUMNS
    } else {
        COLUMNS_BEFORE_12
    };
    let columns: Vec<TableColumn> = client
        .query(columns_sql, &[&oid])
        .await
        .map_err(|e| pg_error(e, &what))?
        .iter()
        .map(|r| TableColumn {
            name: Name::new(r.get::<_, &str>(0)),
            type_oid: r.get(1),
            type_modifier: r.get(2),
            type_name: Arc::from(r.get::<_, String>(3)),
        })
        .collect();
    let all_key_rows = client
        .query(KEY_COLUMNS, &[&oid])
        .await
        .map_err(|e| pg_error(e, &what))?;
    let unusable_primary_key = all_key_rows
        .iter()
        .any(|r| r.get::<_, bool>(0) && !r.get::<_, bool>(3));
    // Under FULL the server needs no index, and a deferrable primary key still tells rows
    // apart for the sinks.
    let key_rows: Vec<_> = all_key_rows
        .into_iter()
        .filter(|r| replica_identity == 'f' || r.get::<_, bool>(3))
        .collect();
    let has_primary_key = key_rows.iter().any(|r| r.get::<_, bool>(0));
    // Under `USING INDEX` the server identifies old rows by that index alone (the primary
    // key columns of a delete arrive as nulls), so it is the key on both paths.
    // Without a usable index (dropped, say) the server has no identity at all: no key.
    let column = if replica_identity == 'i' { 1 } else { 0 };
    let mut key: Vec<Name> = key_rows
        .iter()
        .filter(|r| r.get::<_, bool>(column))
        .map(|r| Name::new(r.get::<_, &str>(2)))
        .collect();
    if key.is_empty() && replica_identity == 'f' {
        key = columns.iter().map(|c| c.name).collect();
    }
    Ok(Some(Table {
        oid,
        schema: schema.to_owned(),
        name: name.to_owned(),
        replica_identity,
        columns,
        key,
        has_primary_key,
        unusable_primary_key,
        unlogged,
        partitioned,
        row_filter: None,
    }))
}

/// Why updates and deletes of `table` cannot be captured, if they cannot.
pub(crate) fn identity_problem(table: &Table) -> Option<String> {
    let q = table.qualified();
    if table.unlogged {
        return Some(format!(
            "table \"{q}\" is UNLOGGED: PostgreSQL can neither publish nor decode its changes (hint: ALTER TABLE {} SET LOGGED, or leave it out of `tables`)",
            table.sql()
        ));
    }
    match table.replica_identity {
        'n' => Some(format!(
            "table \"{q}\" has REPLICA IDENTITY NOTHING, so its updates and deletes cannot be captured (hint: ALTER TABLE {} REPLICA IDENTITY DEFAULT, or FULL for before-images)",
            table.sql()
        )),
        'd' if !table.has_primary_key && table.unusable_primary_key => Some(format!(
            "table \"{q}\" has a primary key PostgreSQL cannot use as its replica identity (it is DEFERRABLE, or its index is invalid): once published, its UPDATEs and DELETEs would fail on the server (hint: ALTER TABLE {} REPLICA IDENTITY FULL, or make the key NOT DEFERRABLE)",
            table.sql()
        )),
        'd' if !table.has_primary_key => Some(format!(
            "table \"{q}\" has no primary key, so its updates and deletes cannot be captured (hint: add a primary key, or ALTER TABLE {} REPLICA IDENTITY FULL)",
            table.sql()
        )),
        'i' if table.key.is_empty() => Some(format!(
            "table \"{q}\" has REPLICA IDENTITY USING INDEX, but that index was dropped or cannot be used (deferrable, partial or invalid), so the server has no replica identity for it: once published, its UPDATEs and DELETEs would fail (hint: ALTER TABLE {} REPLICA IDENTITY DEFAULT, or USING INDEX another unique index)",
            table.sql()
        )),
        _ if table.key.is_empty() => Some(format!(
            "table \"{q}\" has no usable key (hint: add a primary key, or ALTER TABLE {} REPLICA IDENTITY FULL)",
            table.sql()
        )),
        _ => None,
    }
}
