//! `sluice setup`, `teardown` and `check` for PostgreSQL: the publication and the logical
//! replication slot. All of them are idempotent and say what they did.

use sluice_config::model::PostgresSourceConfig;
use sluice_core::{Error, PgLsn, Result};
use tokio_postgres::Client;

use crate::catalog::{self, Table, identity_problem};
use crate::conn::{connect, ident, literal, pg_error, shown_url};

/// What the catalog says about a replication slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotState {
    pub plugin: String,
    pub database: String,
    pub active_pid: Option<i32>,
    pub confirmed_flush: Option<PgLsn>,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
}

pub(crate) async fn slot_state(client: &Client, slot: &str) -> Result<Option<SlotState>> {
    let row = client
        .query_opt(
            "SELECT coalesce(plugin::text, ''), coalesce(database::text, ''), active_pid, \
             confirmed_flush_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| pg_error(e, &format!("reading replication slot \"{slot}\"")))?;
    Ok(row.map(|r| SlotState {
        plugin: r.get(0),
        database: r.get(1),
        active_pid: r.get(2),
        confirmed_flush: r.get::<_, Option<String>>(3).and_then(|t| t.parse().ok()),
        wal_status: r.get(4),
    }))
}

/// A permanent error when `state` cannot be streamed from.
pub(crate) fn slot_problem(slot: &str, state: &SlotState, database: &str) -> Option<Error> {
    if state.plugin != "pgoutput" {
        return Some(Error::permanent(format!(
            "replication slot \"{slot}\" uses output plugin \"{}\", not pgoutput (hint: choose another `slot` name, or drop it with SELECT pg_drop_replication_slot('{slot}'))",
            state.plugin
        )));
    }
    if state.database != database {
        return Some(Error::permanent(format!(
            "replication slot \"{slot}\" belongs to database \"{}\", not \"{database}\" (hint: choose another `slot` name)",
            state.database
        )));
    }
    if state.wal_status.as_deref() == Some("lost") {
        return Some(Error::permanent(format!(
            "replication slot \"{slot}\" was invalidated: the server removed WAL it still needed (max_slot_wal_keep_size), so changes were lost (hint: run `sluice teardown`, delete the checkpoint of this source, and start again with a new snapshot)"
        )));
    }
    None
}

/// The comment on publications sluice creates.
const CREATED_BY_SLUICE: &str = "created by sluice";

/// Whether sluice created the publication: it carries sluice's comment, or (made before
/// sluice marked them) it has no comment and the default name `sluice_<source>`.
async fn made_by_sluice(client: &Client, publication: &str) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|e| pg_error(e, &format!("reading publication \"{publication}\"")))?;
    let comment: Option<String> = row.get(0);
    Ok(match comment {
        Some(c) => c == CREATED_BY_SLUICE,
        None => publication.starts_with("sluice_"),
    })
}

pub(crate) async fn publication_exists(client: &Client, publication: &str) -> Result<bool> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|e| pg_error(e, &format!("reading publication \"{publication}\"")))?
        .is_some())
}

/// What the publication leaves out of its `publish` list (insert, update, delete,
/// truncate), as a warning; `None` when it publishes all four or does not exist.
pub(crate) async fn publication_gaps(client: &Client, publication: &str) -> Result<Option<String>> {
    let Some(row) = client
        .query_opt(
            "SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|e| pg_error(e, &format!("reading publication \"{publication}\"")))?
    else {
        return Ok(None);
    };
    let ops = ["insert", "update", "delete", "truncate"];
    let missing: Vec<&str> = ops
        .iter()
        .enumerate()
        .filter(|(i, _)| !row.get::<_, bool>(*i))
        .map(|(_, op)| *op)
        .collect();
    if missing.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "publication \"{publication}\" does not publish {}: those changes never reach the sinks, which then differ from the source (hint: ALTER PUBLICATION {} SET (publish = 'insert, update, delete, truncate'))",
        missing.join(", "),
        ident(publication)
    )))
}

/// Whether the publication publishes `table`'s changes: it is `FOR ALL TABLES`, it lists the
/// table or one of its ancestors (a partition is published through its partitioned table,
/// and `pg_publication_tables` names only one of the two), or (PostgreSQL 15+) it covers
/// the table's schema.
async fn covers(client: &Client, version: i32, publication: &str, table: &Table) -> Result<bool> {
    let listed = if version >= 120_000 {
        // (No rows for a table that is neither a partition nor partitioned.)
        "(r.prrelid = $2::oid OR r.prrelid IN (SELECT relid FROM pg_partition_ancestors($2::oid::regclass)))"
    } else {
        "r.prrelid = $2::oid"
    };
    // The table's schema, or (a partition) the schema of one of its ancestors.
    let schema = if version >= 150_000 {
        " OR EXISTS (SELECT 1 FROM pg_publication_namespace n JOIN pg_class c \
         ON c.relnamespace = n.pnnspid WHERE n.pnpubid = p.oid AND (c.oid = $2::oid \
         OR c.oid IN (SELECT relid FROM pg_partition_ancestors($2::oid::regclass))))"
    } else {
        ""
    };
    let sql = format!(
        "SELECT p.puballtables OR EXISTS (SELECT 1 FROM pg_publication_rel r \
         WHERE r.prpubid = p.oid AND {listed}){schema} FROM pg_publication p WHERE p.pubname = $1"
    );
    let row = client
        .query_opt(&sql, &[&publication, &table.oid])
        .await
        .map_err(|e| pg_error(e, &format!("reading publication \"{publication}\"")))?;
    Ok(row.is_some_and(|r| r.get(0)))
}

/// Under `publish_via_partition_root`, a partition whose partitioned table (or an ancestor
/// of it) the publication also publishes has its changes sent under that table's name: a
/// captured partition would receive none of them. Refuse it (PostgreSQL 13+, which has the
/// option).
async fn refuse_partitions_published_as_ancestors(
    client: &Client,
    publication: &str,
    tables: &[Table],
) -> Result<()> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| pg_error(e, "reading the server version"))?
        .get(0);
    if version < 130_000 {
        return Ok(());
    }
    // An ancestor is published when it is listed, when the publication is FOR ALL TABLES,
    // or (PostgreSQL 15+) when its schema is (FOR TABLES IN SCHEMA).
    let schema = if version >= 150_000 {
        " OR EXISTS (SELECT 1 FROM pg_publication_namespace n JOIN pg_class c \
         ON c.relnamespace = n.pnnspid WHERE n.pnpubid = p.oid AND c.oid = a.relid)"
    } else {
        ""
    };
    let ancestor_published = format!(
        "SELECT a.relid::regclass::text FROM pg_publication p \
         CROSS JOIN pg_partition_ancestors($2::oid::regclass) a \
         WHERE p.pubname = $1 AND p.pubviaroot AND a.relid <> $2::oid \
         AND (p.puballtables OR EXISTS (SELECT 1 FROM pg_publication_rel r \
              WHERE r.prpubid = p.oid AND r.prrelid = a.relid){schema}) \
         LIMIT 1"
    );
    for table in tables {
        let row = client
            .query_opt(&ancestor_published, &[&publication, &table.oid])
            .await
            .map_err(|e| pg_error(e, &format!("reading publication \"{publication}\"")))?;
        if let Some(row) = row {
            let ancestor: String = row.get(0);
            return Err(Error::permanent(format!(
                "table \"{}\" is a partition of {ancestor}, and publication \"{publication}\" publishes its changes as {ancestor} (publish_via_partition_root): none would reach \"{}\" (hint: capture {ancestor} instead, or use a publication without publish_via_partition_root)",
                table.qualified(),
                table.qualified()
            )));
        }
    }
    Ok(())
}

/// The tables the (existing) publication does not publish.
async fn uncovered<'t>(
    client: &Client,
    publication: &str,
    tables: &'t [Table],
) -> Result<Vec<&'t Table>> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| pg_error(e, "reading the server version"))?
        .get(0);
    let mut missing = Vec::new();
    for table in tables {
        if !covers(client, version, publication, table).await? {
            missing.push(table);
        }
    }
    Ok(missing)
}

fn list(tables: &[&Table]) -> String {
    tables
        .iter()
        .map(|t| format!("\"{}\"", t.qualified()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What [`ensure_publication`] did.
#[derive(Debug, Default)]
pub(crate) struct Ensured {
    /// A line per thing done.
    pub lines: Vec<String>,
    /// The tables (`schema.name`) it made the publication publish: their changes before
    /// now were never sent.
    pub added: Vec<String>,
}

/// Create the publication if missing, and add missing tables to it.
pub(crate) async fn ensure_publication(
    client: &Client,
    config: &PostgresSourceConfig,
    tables: &[Table],
) -> Result<Ensured> {
    let publication = &config.publication;
    // `ONLY`: a table's inheritance children are not captured, so they are not published
    // either (a partitioned table's partitions are published as it all the same).
    let sql_list = |ts: &[&Table]| {
        ts.iter()
            .map(|t| format!("ONLY {}", t.sql()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !publication_exists(client, publication).await? {
        let all: Vec<&Table> = tables.iter().collect();
        // Changes to a partitioned table are published as the table itself, not as the
        // partition the row lives in (which sluice does not capture).
        // The comment marks it as sluice's: `teardown` drops only publications it made.
        client
            .batch_execute(&format!(
                "CREATE PUBLICATION {p} FOR TABLE {} WITH (publish_via_partition_root = true); COMMENT ON PUBLICATION {p} IS {}",
                sql_list(&all),
                literal(CREATED_BY_SLUICE),
                p = ident(publication),
            ))
            .await
            .map_err(|e| pg_error(e, &format!("creating publication \"{publication}\"")))?;
        return Ok(Ensured {
            lines: vec![format!(
                "created publication \"{publication}\" for {}",
                list(&all)
            )],
            added: all.iter().map(|t| t.qualified()).collect(),
        });
    }
    let mut done = Vec::new();
    if let Some(table) = tables.iter().find(|t| t.partitioned)
        && !via_partition_root(client, publication).await?
    {
        // Without it the server publishes a partitioned table's changes under the names of
        // its partitions, which sluice would not recognise: they would be skipped.
        client
            .batch_execute(&format!(
                "ALTER PUBLICATION {} SET (publish_via_partition_root = true)",
                ident(publication)
            ))
            .await
            .map_err(|e| {
                pg_error(
                    e,
                    &format!("setting publish_via_partition_root on publication \"{publication}\""),
                )
            })?;
        done.push(format!(
            "set publish_via_partition_root on publication \"{publication}\" (\"{}\" is partitioned)",
            table.qualified()
        ));
    }
    refuse_partitions_published_as_ancestors(client, publication, tables).await?;
    let missing = uncovered(client, publication, tables).await?;
    if missing.is_empty() {
        return Ok(Ensured {
            lines: done,
            added: Vec::new(),
        });
    }
    client
        .batch_execute(&format!(
            "ALTER PUBLICATION {} ADD TABLE {}",
            ident(publication),
            sql_list(&missing)
        ))
        .await
        .map_err(|e| {
            pg_error(
                e,
                &format!("adding tables to publication \"{publication}\""),
            )
        })?;
    done.push(format!(
        "added {} to publication \"{publication}\"",
        list(&missing)
    ));
    Ok(Ensured {
        lines: done,
        added: missing.iter().map(|t| t.qualified()).collect(),
    })
}

/// Whether the publication publishes partitions' changes as their partitioned table.
async fn via_partition_root(client: &Client, publication: &str) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT pubviaroot FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|e| pg_error(e, &format!("reading publication \"{publication}\"")))?
        .get(0))
}

/// The slot's state when it exists and this source can use it (pgoutput, this database,
/// not invalidated); the slot's problem as a permanent error otherwise.
pub(crate) async fn usable_slot(client: &Client, slot: &str) -> Result<Option<SlotState>> {
    let Some(state) = slot_state(client, slot).await? else {
        return Ok(None);
    };
    let database = current_database(client).await?;
    match slot_problem(slot, &state, &database) {
        Some(e) => Err(e),
        None => Ok(Some(state)),
    }
}

async fn current_database(client: &Client) -> Result<String> {
    let row = client
        .query_one("SELECT current_database()::text", &[])
        .await
        .map_err(|e| pg_error(e, "reading the current database"))?;
    Ok(row.get(0))
}

pub(crate) async fn setup(config: &PostgresSourceConfig) -> Result<Vec<String>> {
    let client = connect(config).await?;
    let tables = catalog::captured(&client, config).await?;
    if let Some(problem) = tables.iter().find_map(identity_problem) {
        return Err(Error::permanent(problem));
    }
    let slot = &config.slot;
    // Checked first: a slot of another database fails the setup with nothing created.
    let state = usable_slot(&client, slot).await?;
    let mut lines = ensure_publication(&client, config, &tables).await?.lines;
    match state {
        Some(_) => {}
        None => {
            let row = client
                .query_one(
                    "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[slot],
                )
                .await
                .map_err(|e| pg_error(e, &format!("creating replication slot \"{slot}\"")))?;
            let lsn: String = row.get(0);
            lines.push(format!(
                "created replication slot \"{slot}\" (pgoutput) at {lsn}"
            ));
        }
    }
    if lines.is_empty() {
        let all: Vec<&Table> = tables.iter().collect();
        lines.push(format!(
            "publication \"{}\" (covering {}) and replication slot \"{slot}\" already exist",
            config.publication,
            list(&all)
        ));
    }
    Ok(lines)
}

pub(crate) async fn teardown(config: &PostgresSourceConfig) -> Result<Vec<String>> {
    let client = connect(config).await?;
    let slot = &config.slot;
    let publication = &config.publication;
    let mut lines = Vec::new();
    if let Some(state) = slot_state(&client, slot).await? {
        if let Some(pid) = state.active_pid {
            return Err(Error::transient(format!(
                "replication slot \"{slot}\" is in use by server process {pid} (hint: stop the sluice pipeline reading it, then run teardown again)"
            )));
        }
        client
            .execute("SELECT pg_drop_replication_slot($1)", &[slot])
            .await
            .map_err(|e| pg_error(e, &format!("dropping replication slot \"{slot}\"")))?;
        lines.push(format!("dropped replication slot \"{slot}\""));
    }
    if publication_exists(&client, publication).await? {
        if made_by_sluice(&client, publication).await? {
            client
                .batch_execute(&format!("DROP PUBLICATION {}", ident(publication)))
                .await
                .map_err(|e| pg_error(e, &format!("dropping publication \"{publication}\"")))?;
            lines.push(format!("dropped publication \"{publication}\""));
        } else {
            lines.push(format!(
                "left publication \"{publication}\" in place: sluice did not create it, and other subscribers may use it (drop it yourself with DROP PUBLICATION {})",
                ident(publication)
            ));
        }
    }
    if lines.is_empty() {
        lines.push(format!(
            "nothing to remove: no replication slot \"{slot}\" and no publication \"{publication}\""
        ));
    }
    Ok(lines)
}

async fn setting(client: &Client, name: &str) -> Result<String> {
    let row = client
        .query_one("SELECT current_setting($1)", &[&name])
        .await
        .map_err(|e| pg_error(e, &format!("reading setting {name}")))?;
    Ok(row.get(0))
}

pub(crate) async fn check(config: &PostgresSourceConfig) -> Result<Vec<String>> {
    let client = connect(config).await?;
    let database = current_database(&client).await?;
    let version = setting(&client, "server_version").await?;
    let mut lines = vec![format!(
        "connected to \"{}\" (PostgreSQL {version}, database \"{database}\")",
        shown_url(config)
    )];
    let mut problems = Vec::new();

    let wal_level = setting(&client, "wal_level").await?;
    if wal_level == "logical" {
        lines.push("wal_level is logical".to_owned());
    } else {
        problems.push(format!(
            "wal_level is \"{wal_level}\" but logical replication needs \"logical\" (hint: run ALTER SYSTEM SET wal_level = logical, then restart the server)"
        ));
    }

    let major: u32 = setting(&client, "server_version_num")
        .await?
        .parse::<u32>()
        .map_or(0, |n| n / 10_000);
    // The setting exists from PostgreSQL 13; before, the server keeps 4,096 changes of a
    // transaction in memory.
    let work_mem = if major >= 13 {
        format!(
            "logical_decoding_work_mem ({})",
            setting(&client, "logical_decoding_work_mem").await?
        )
    } else {
        "4,096 changes".to_owned()
    };
    lines.push(match crate::capture::protocol_version(major, config.stream_in_progress) {
        1 if config.stream_in_progress => format!(
            "transactions bigger than {work_mem} are spilled by the server and sent at commit (streaming them needs PostgreSQL 14+)"
        ),
        1 => format!(
            "transactions bigger than {work_mem} are spilled by the server and sent at commit (stream_in_progress = false)"
        ),
        version => format!(
            "transactions bigger than {work_mem} are streamed while they run (pgoutput protocol {version}) and wait in sluice's data directory until commit"
        ),
    });

    let row = client
        .query_one(
            "SELECT current_setting('max_replication_slots')::int, \
             (SELECT count(*)::int FROM pg_replication_slots), \
             current_setting('max_wal_senders')::int, \
             (SELECT count(*)::int FROM pg_stat_replication), \
             (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), \
             current_user::text",
            &[],
        )
        .await
        .map_err(|e| pg_error(e, "reading replication limits"))?;
    let (max_slots, slots, max_senders, senders): (i32, i32, i32, i32) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let can_replicate: Option<bool> = row.get(4);
    let user: String = row.get(5);
    let slot = &config.slot;
    let state = slot_state(&client, slot).await?;
    if state.is_none() && slots >= max_slots {
        problems.push(format!(
            "all {max_slots} replication slots are in use (hint: raise max_replication_slots and restart, or drop unused slots)"
        ));
    }
    if senders >= max_senders {
        problems.push(format!(
            "all {max_senders} WAL senders are in use (hint: raise max_wal_senders and restart)"
        ));
    }
    if can_replicate == Some(true) {
        lines.push(format!("role \"{user}\" may replicate"));
    } else {
        problems.push(format!(
            "role \"{user}\" lacks the REPLICATION attribute (hint: ALTER ROLE {} REPLICATION)",
            ident(&user)
        ));
    }

    let tables = match catalog::captured(&client, config).await {
        Ok(tables) => tables,
        Err(e) => {
            problems.push(e.to_string());
            Vec::new()
        }
    };
    for table in &tables {
        match identity_problem(table) {
            Some(problem) => problems.push(problem),
            None => {
                let identity = match table.replica_identity {
                    'f' => "full (before-images of whole rows)",
                    'i' => "index",
                    _ => "default (before-images of the key only)",
                };
                let key: Vec<&str> = table.key.iter().map(|k| &**k).collect();
                let rows = table.row_filter.as_ref().map_or_else(String::new, |f| {
                    format!(", only rows where {f} (publication row filter)")
                });
                lines.push(format!(
                    "table \"{}\": {} columns, key ({}), replica identity {identity}{rows}",
                    table.qualified(),
                    table.columns.len(),
                    key.join(", ")
                ));
            }
        }
    }

    let publication = &config.publication;
    if publication_exists(&client, publication).await? {
        if let Err(e) =
            refuse_partitions_published_as_ancestors(&client, publication, &tables).await
        {
            problems.push(e.to_string());
        }
        let missing = uncovered(&client, publication, &tables).await?;
        if let Some(gaps) = publication_gaps(&client, publication).await? {
            lines.push(format!("warning: {gaps}"));
        }
        if missing.is_empty() {
            lines.push(format!("publication \"{publication}\" covers every table"));
        } else {
            lines.push(format!(
                "missing: publication \"{publication}\" does not cover {} (run `sluice setup`)",
                list(&missing)
            ));
        }
    } else {
        lines.push(format!(
            "missing: publication \"{publication}\" (run `sluice setup`)"
        ));
    }

    match state {
        Some(state) => match slot_problem(slot, &state, &database) {
            Some(e) => problems.push(e.to_string()),
            None => lines.push(format!(
                "replication slot \"{slot}\" (pgoutput) confirmed up to {}{}",
                state
                    .confirmed_flush
                    .map_or_else(|| "nothing yet".to_owned(), |l| l.to_string()),
                state.active_pid.map_or_else(String::new, |pid| format!(
                    ", in use by server process {pid}"
                ))
            )),
        },
        None => lines.push(format!(
            "missing: replication slot \"{slot}\" (run `sluice setup`)"
        )),
    }

    if problems.is_empty() {
        Ok(lines)
    } else {
        Err(Error::permanent(problems.join("; ")))
    }
}
