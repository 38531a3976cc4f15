//! [`PostgresSource`]: the [`Source`] the engine drives.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sluice_config::model::{PostgresSourceConfig, SnapshotMode};
use sluice_core::{Error, Lag, Name, PgLsn, Position, Result, Source, SourceBatch, SourcePoll};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::capture::{self, CHANNEL_CAPACITY, Plan, Task};
use crate::captured::{self, CapturedTable};
use crate::catalog::{self, identity_problem};
use crate::conn::{connect, ident, literal, pg_error};
use crate::lifecycle::{ensure_publication, publication_gaps, usable_slot};
use crate::replication::ReplicationConnection;

/// Captures PostgreSQL through a logical replication slot and the `pgoutput` plugin.
///
/// `start` prepares the publication and slot and spawns the capture task (snapshot, then
/// stream); `poll` awaits its next batch, and after `status_interval_ms` without one reports
/// the source idle if the stream has caught up with the server's flush position (else it
/// keeps waiting, so a snapshot, a reconnect or a backlog still being decoded is never taken
/// for idle); `confirm` hands
/// the checkpointed position to the task, which reports it to the server as the slot's
/// flush position. Dropping the source stops the task and closes its connections.
#[derive(Debug)]
pub struct PostgresSource {
    name: Name,
    config: PostgresSourceConfig,
    running: Option<Running>,
    /// Connection for `lag`, opened on first use.
    side: Option<Client>,
    /// `resnapshot` tables were read (once per process; a restart after an error resumes
    /// the stream without reading them again).
    resnapshot_done: std::sync::atomic::AtomicBool,
    /// When the captured tables were last looked up (see `check_tables`).
    tables_checked: std::time::Instant,
    /// The highest LSN of a position `poll` has returned, over every start of this source:
    /// batches of an earlier start may still be in flight after a restart, and their
    /// confirmation says nothing about what this start read.
    polled: PgLsn,
    /// The last batch `poll` returned was streamed (not a snapshot's).
    streaming: bool,
    /// Tables to read again before the stream resumes (`--resnapshot`, newly published
    /// ones), kept until a streamed position after their read is confirmed: a restart
    /// after an error before then reads them again instead of losing them.
    rereads: Arc<std::sync::Mutex<Rereads>>,
}

/// See [`PostgresSource::rereads`].
#[derive(Debug, Default)]
pub(crate) struct Rereads {
    pub tables: Vec<String>,
    /// The capture task read them all (their changes are in the channel).
    pub read: bool,
    /// Their rows are delivered once a streamed position past this is confirmed.
    pub after: PgLsn,
    /// The captured tables to record once a streamed position after this start's is
    /// confirmed (with no table left to read): see [`crate::captured`].
    pub record: Option<captured::Pending>,
    /// The captured tables as this start found them, watched for a drop and re-creation.
    pub watch: Vec<Watched>,
}

/// A captured table, by the OID it had at start.
#[derive(Debug, Clone)]
pub(crate) struct Watched {
    oid: u32,
    schema: String,
    name: String,
    /// Seen dropped (and warned about) already.
    gone: bool,
}

fn lock(rereads: &std::sync::Mutex<Rereads>) -> std::sync::MutexGuard<'_, Rereads> {
    rereads
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug)]
struct Running {
    batches: mpsc::Receiver<Result<SourcePoll>>,
    confirmed: watch::Sender<PgLsn>,
    /// The flush position last written to the server by the task.
    reported: watch::Receiver<PgLsn>,
    /// How far the server has decoded while the stream is at a keepalive (0 otherwise).
    caught_up: Arc<AtomicU64>,
    /// The server's flush position that the stream must reach before `poll` reports idle,
    /// and when it was read: read again once older than `status_interval_ms`.
    idle_target: Option<(Option<PgLsn>, std::time::Instant)>,
    task: JoinHandle<()>,
    heartbeat: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(h) = &self.heartbeat {
            h.abort();
        }
    }
}

impl PostgresSource {
    /// A source named `source_name` (as in the config) reading `config`. Nothing is opened
    /// until [`Source::start`].
    pub fn new(source_name: &str, config: &PostgresSourceConfig) -> Self {
        PostgresSource {
            name: Name::new(source_name),
            config: config.clone(),
            running: None,
            side: None,
            resnapshot_done: std::sync::atomic::AtomicBool::new(false),
            rereads: Arc::default(),
            tables_checked: std::time::Instant::now(),
            polled: PgLsn(0),
            streaming: false,
        }
    }

    /// Every `10 × status_interval_ms`: a captured table dropped and created again while
    /// the stream runs is out of the publication (and has a new OID), and PostgreSQL sends
    /// nothing about it. Restart the source (a transient error) when the new table will be
    /// captured, so the start adds it to the publication and reads its rows; warn once about
    /// a table dropped for good.
    async fn check_tables(&mut self) -> Result<()> {
        let every = Duration::from_millis(self.config.status_interval_ms.max(1).saturating_mul(10));
        if self.tables_checked.elapsed() < every {
            return Ok(());
        }
        self.tables_checked = std::time::Instant::now();
        let mut watch = std::mem::take(&mut lock(&self.rereads).watch);
        let result = self.check_watched(&mut watch).await;
        let mut rereads = lock(&self.rereads);
        if rereads.watch.is_empty() {
            rereads.watch = watch;
        }
        result
    }

    async fn check_watched(&mut self, watch: &mut [Watched]) -> Result<()> {
        if watch.is_empty() {
            return Ok(());
        }
        if self.side.as_ref().is_none_or(Client::is_closed) {
            // Not now: the next check tries again (the stream reports a server that is down).
            self.side = connect(&self.config).await.ok();
        }
        let Some(client) = self.side.as_ref() else {
            return Ok(());
        };
        let oids: Vec<u32> = watch.iter().map(|w| w.oid).collect();
        let schemas: Vec<&str> = watch.iter().map(|w| w.schema.as_str()).collect();
        let names: Vec<&str> = watch.iter().map(|w| w.name.as_str()).collect();
        // For each captured table: does its OID still exist, and which table has its name now.
        let Ok(rows) = client
            .query(
                "SELECT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = w.oid), \
                 (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE n.nspname = w.schema AND c.relname = w.name AND c.relkind IN ('r', 'p')) \
                 FROM unnest($1::oid[], $2::text[], $3::text[]) WITH ORDINALITY w(oid, schema, name, i) \
                 ORDER BY w.i",
                &[&oids, &schemas, &names],
            )
            .await
        else {
            return Ok(());
        };
        for (table, row) in watch.iter_mut().zip(&rows) {
            let (exists, now): (bool, Option<u32>) = (row.get(0), row.get(1));
            let qualified = format!("{}.{}", table.schema, table.name);
            let new = match now {
                Some(new) if new != table.oid => new,
                // Still there (or renamed, which the stream follows).
                _ if exists => continue,
                _ => {
                    if !table.gone {
                        table.gone = true;
                        let listed = if self.config.tables.is_empty() {
                            ""
                        } else {
                            "; it is listed in `tables`, so the next start fails until it is removed from there or created again"
                        };
                        tracing::warn!(source = %self.name, table = %qualified, "captured table was dropped: nothing more of it is captured, and its rows stay in the sinks (PostgreSQL sends nothing for DROP TABLE){listed}");
                    }
                    continue;
                }
            };
            // Another table has the captured name: dropped and created again, or renamed and
            // replaced. Listed in `tables`, the new table is captured at the next start;
            // with `tables` unset, only if the publication publishes it.
            let captured_again = !self.config.tables.is_empty()
                || client
                    .query_opt(
                        "SELECT 1 FROM pg_publication_tables \
                         WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
                        &[&self.config.publication, &table.schema, &table.name],
                    )
                    .await
                    .ok()
                    .flatten()
                    .is_some();
            let how = if exists {
                "was renamed and another table created under its name"
            } else {
                "was dropped and created again"
            };
            if captured_again {
                return Err(Error::transient(format!(
                    "captured table \"{qualified}\" {how} (OID {} is now {new}); restarting the source to capture the new table, whose rows are read before the stream resumes (rows of the old table stay in the sinks)",
                    table.oid
                )));
            }
            if !table.gone {
                table.gone = true;
                let publication = &self.config.publication;
                tracing::warn!(source = %self.name, table = %qualified, old_oid = table.oid, new_oid = new, "captured table {how}, but the new table is not captured: publication \"{publication}\" does not publish it (hint: ALTER PUBLICATION {} ADD TABLE {}, and sluice captures it within 10 status intervals; or list it in `tables`)", ident(publication), format!("{}.{}", ident(&table.schema), ident(&table.name)));
            }
        }
        Ok(())
    }

    fn context(&self) -> String {
        format!("postgres source \"{}\"", self.name)
    }

    async fn plan(&self, from: Option<Position>) -> Result<Plan> {
        if !self.config.resnapshot.is_empty() {
            let ignored = if self.config.snapshot == SnapshotMode::Only {
                Some(
                    "snapshot = \"only\" exports once (delete the source's checkpoint to export again)",
                )
            } else if from.is_none() {
                Some(
                    "there is no checkpoint yet, so the whole snapshot is read (snapshot = \"initial\") or none is (\"never\")",
                )
            } else if matches!(from, Some(Position::Pg { snapshot: true, .. })) {
                Some(
                    "the first snapshot is still being read; it resumes first (run --resnapshot again once it is done)",
                )
            } else {
                None
            };
            if let Some(why) = ignored {
                tracing::warn!(source = %self.name, tables = ?self.config.resnapshot, "--resnapshot is ignored: {why}");
            }
        }
        if self.config.snapshot == SnapshotMode::Only {
            return self.plan_only(from).await;
        }
        let slot = &self.config.slot;
        let client = connect(&self.config).await?;
        let tables = catalog::captured(&client, &self.config).await?;
        if let Some(problem) = tables.iter().find_map(identity_problem) {
            return Err(Error::permanent(problem));
        }
        // Checked before anything is created: a slot of another database fails the start
        // with nothing left behind.
        let state = usable_slot(&client, slot).await?;
        // The publication must exist before the slot's consistent point, or decoding fails.
        let ensured = ensure_publication(&client, &self.config, &tables).await?;
        for line in &ensured.lines {
            tracing::info!(source = %self.name, "{line}");
        }
        lock(&self.rereads).watch = tables
            .iter()
            .map(|t| Watched {
                oid: t.oid,
                schema: t.schema.clone(),
                name: t.name.clone(),
                gone: false,
            })
            .collect();
        // Recorded with this start's position by `start`, written by `confirm`.
        lock(&self.rereads).record = Some(captured::Pending {
            after: PgLsn(0),
            strict: false,
            tables: CapturedTable::of(&tables),
        });
        if let Some(gaps) = publication_gaps(&client, &self.config.publication).await? {
            tracing::warn!(source = %self.name, "{gaps}");
        }
        match from {
            None => match self.config.snapshot {
                SnapshotMode::Initial => {
                    if let Some(state) = state {
                        // No checkpoint, so nothing relies on the slot's position; a snapshot
                        // needs a slot created together with it.
                        if let Some(pid) = state.active_pid {
                            return Err(Error::transient(format!(
                                "replication slot \"{slot}\" is in use by server process {pid} (hint: is another sluice running this source?)"
                            )));
                        }
                        tracing::warn!(source = %self.name, slot = %slot, confirmed = ?state.confirmed_flush.map(|l| l.to_string()), "no checkpoint in this data directory: dropping and recreating the existing replication slot to take a consistent snapshot (if another sluice data directory streams from this slot, it will miss changes: give each pipeline its own `slot`)");
                        client
                            .execute("SELECT pg_drop_replication_slot($1)", &[slot])
                            .await
                            .map_err(|e| {
                                pg_error(e, &format!("dropping replication slot \"{slot}\""))
                            })?;
                    }
                    let mut conn = ReplicationConnection::connect(&self.config).await?;
                    let (at, snapshot_name) =
                        create_slot(&mut conn, &ident(slot), "", slot).await?;
                    tracing::info!(source = %self.name, slot = %slot, lsn = %at, "created replication slot");
                    Ok(Plan::Snapshot {
                        conn,
                        snapshot_name,
                        at,
                    })
                }
                SnapshotMode::Only => self.plan_only(None).await,
                SnapshotMode::Never => {
                    let from = match state.and_then(|s| s.confirmed_flush) {
                        Some(lsn) => lsn,
                        None => {
                            let row = client
                                .query_one(
                                    "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                                    &[slot],
                                )
                                .await
                                .map_err(|e| pg_error(e, &format!("creating replication slot \"{slot}\"")))?;
                            parse_lsn(row.get(0), slot)?
                        }
                    };
                    Ok(Plan::Stream { from, tables })
                }
            },
            Some(Position::Pg {
                lsn,
                snapshot,
                progress,
            }) => {
                if state.is_none() {
                    return Err(Error::permanent(format!(
                        "replication slot \"{slot}\" does not exist, so changes after the checkpoint at {lsn} may be lost (hint: run `sluice teardown`, delete the checkpoint of this source, and start again with a new snapshot)"
                    )));
                }
                let (newly, recreated) = self.newly_captured(&ensured.added, &tables)?;
                if !snapshot
                    && let Some(ahead) = state
                        .as_ref()
                        .and_then(|s| s.confirmed_flush)
                        .filter(|f| *f > lsn)
                {
                    // sluice confirms only what it checkpointed, so something else moved
                    // the slot, or this data directory is older than the slot's position.
                    tracing::warn!(source = %self.name, slot = %slot, checkpoint = %lsn, slot_confirmed = %ahead, "replication slot \"{slot}\" is confirmed up to {ahead}, past this pipeline's checkpoint at {lsn}: changes committed in between ({} bytes of WAL) were not delivered here and the server will not send them again (another consumer of the slot, pg_replication_slot_advance, or a data directory restored from an older backup; hint: give each pipeline its own `slot`, and read the tables again with `sluice run --resnapshot TABLE`)", ahead.0 - lsn.0);
                }
                if !snapshot {
                    // Left over from a start whose read did not reach the sinks, then the
                    // `--resnapshot` tables (once per process).
                    let mut wanted = std::mem::take(&mut lock(&self.rereads).tables);
                    if !self.resnapshot_done.swap(true, Ordering::AcqRel) {
                        for name in &self.config.resnapshot {
                            if !wanted.iter().any(|w| same_table(w, name)) {
                                wanted.push(name.clone());
                            }
                        }
                    }
                    // Tables the publication did not publish until now (added to `tables`,
                    // or dropped and made again, since the checkpoint): their rows were
                    // never sent, so they are read like `--resnapshot` ones.
                    for name in &newly {
                        if self.config.snapshot == SnapshotMode::Never {
                            tracing::info!(source = %self.name, table = %name, "table newly published: only its changes from now on are captured (snapshot = \"never\")");
                        } else if !wanted.iter().any(|w| same_table(w, name)) {
                            if self.config.state_dir.is_some() {
                                tracing::info!(source = %self.name, table = %name, "table newly captured since this pipeline's checkpoint: reading its rows before resuming the stream");
                            } else {
                                tracing::info!(source = %self.name, table = %name, "table newly published after this pipeline's checkpoint: reading its rows before resuming the stream (if interrupted before they are checkpointed, run `sluice run --resnapshot {name}`)");
                            }
                            wanted.push(name.clone());
                        }
                    }
                    if wanted.is_empty() {
                        return Ok(Plan::Stream { from: lsn, tables });
                    }
                    // In the captured tables' order: the read's progress counts tables in its
                    // own list, and a restart that finds it interrupted applies that count to
                    // the whole list, skipping the tables before it. As a subsequence, every
                    // table it skips there was read here or was captured before.
                    wanted.sort_by_key(|w| {
                        tables
                            .iter()
                            .position(|t| same_table(&t.qualified(), w))
                            .unwrap_or(usize::MAX)
                    });
                    {
                        let mut rereads = lock(&self.rereads);
                        rereads.tables = wanted.clone();
                        rereads.read = false;
                    }
                    let wanted = &wanted;
                    // `run --resnapshot`: read those tables again under a fresh snapshot, then
                    // stream from the checkpoint. As for an interrupted snapshot, the changes
                    // between the checkpoint and the new snapshot are replayed over it, so each
                    // row ends at its current state.
                    for name in wanted {
                        let (schema, table) = catalog::split_name(name);
                        if !tables.iter().any(|t| t.schema == schema && t.name == table) {
                            let known: Vec<String> = tables.iter().map(|t| t.qualified()).collect();
                            return Err(Error::permanent(format!(
                                "cannot re-snapshot \"{schema}.{table}\": this source does not capture it (captured: {})",
                                known.join(", ")
                            )));
                        }
                    }
                    let mut conn = ReplicationConnection::connect(&self.config).await?;
                    let temp = format!(
                        "{}_snap_{}",
                        slot.chars().take(40).collect::<String>(),
                        std::process::id()
                    );
                    let (_, snapshot_name) =
                        create_slot(&mut conn, &ident(&temp), " TEMPORARY", &temp).await?;
                    tracing::info!(source = %self.name, tables = %wanted.join(", "), "re-reading tables before resuming the stream");
                    return Ok(Plan::Resnapshot {
                        conn,
                        snapshot_name,
                        from: lsn,
                        progress: None,
                        only: Some((wanted.clone(), tables)),
                        // (Only tables read now: with snapshot = "never" the old rows stay.)
                        emptied: recreated
                            .into_iter()
                            .filter(|(r, _)| wanted.iter().any(|w| same_table(w, r)))
                            .collect(),
                    });
                }
                // The snapshot at `lsn` was interrupted and its exported snapshot is gone:
                // take a new one from a temporary slot, then stream from `lsn`.
                let mut conn = ReplicationConnection::connect(&self.config).await?;
                let temp = format!(
                    "{}_snap_{}",
                    slot.chars().take(40).collect::<String>(),
                    std::process::id()
                );
                let (_, snapshot_name) =
                    create_slot(&mut conn, &ident(&temp), " TEMPORARY", &temp).await?;
                // A table newly published shifts the snapshot's table order, which the
                // progress counts in: read every table again.
                let progress = if newly.is_empty() { progress } else { None };
                Ok(Plan::Resnapshot {
                    conn,
                    snapshot_name,
                    from: lsn,
                    progress,
                    only: None,
                    emptied: Vec::new(),
                })
            }
            Some(other) => Err(Error::permanent(format!(
                "was given {other}, a position of another kind of source (hint: delete the checkpoint of this source)"
            ))),
        }
    }
}

impl PostgresSource {
    /// `snapshot = "only"`: no slot and no publication. A snapshot exported by an ordinary
    /// transaction (`pg_export_snapshot()`, kept open while the chunks are read) is read,
    /// then the source is done. The LSN in its positions is the WAL insert position at the
    /// export, for reference only: nothing streams from it. A checkpoint of a finished
    /// snapshot (`snapshot: false`) means there is nothing left to do; an interrupted one
    /// is read again from the start under a fresh snapshot.
    async fn plan_only(&self, from: Option<Position>) -> Result<Plan> {
        let progress = match from {
            None => None,
            Some(Position::Pg {
                snapshot: false, ..
            }) => return Ok(Plan::Done),
            // Without a stream from the first snapshot's point, a row that moved into a
            // delivered chunk since would be missed: an interrupted export starts over.
            Some(Position::Pg { .. }) => None,
            Some(other) => {
                return Err(Error::permanent(format!(
                    "was given {other}, a position of another kind of source (hint: delete the checkpoint of this source)"
                )));
            }
        };
        let holder = connect(&self.config).await?;
        let row = holder
            .simple_query(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                 SELECT pg_export_snapshot(), pg_current_wal_insert_lsn()::text",
            )
            .await
            .map_err(|e| pg_error(e, "exporting a snapshot"))?
            .into_iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .ok_or_else(|| Error::permanent("exporting a snapshot returned no row"))?;
        let snapshot_name = row.get(0).unwrap_or_default().to_owned();
        let at = parse_lsn(row.get(1).unwrap_or_default().to_owned(), "(none)")?;
        Ok(Plan::SnapshotOnly {
            holder,
            snapshot_name,
            at,
            progress,
        })
    }
}

/// How long slot creation may take before sluice says what it is waiting for.
const SLOT_WAIT_NOTICE: std::time::Duration = std::time::Duration::from_secs(3);

/// How often `poll` looks whether a quiet stream has caught up with the server.
const IDLE_CHECK: Duration = Duration::from_millis(50);

/// `CREATE_REPLICATION_SLOT ... (SNAPSHOT 'export')`: the consistent point and the name of
/// the exported snapshot, valid until the next command on `conn`.
async fn create_slot(
    conn: &mut ReplicationConnection,
    quoted: &str,
    temporary: &str,
    name: &str,
) -> Result<(PgLsn, String)> {
    let sql =
        format!("CREATE_REPLICATION_SLOT {quoted}{temporary} LOGICAL pgoutput (SNAPSHOT 'export')");
    let what = format!("creating replication slot \"{name}\"");
    let creating = conn.simple_query(&sql, &what);
    tokio::pin!(creating);
    let rows = tokio::select! {
        rows = &mut creating => rows?,
        _ = tokio::time::sleep(SLOT_WAIT_NOTICE) => {
            tracing::warn!(slot = %name, "creating the replication slot waits for every transaction in progress to end (hint: find them with SELECT pid, xact_start, state, query FROM pg_stat_activity WHERE backend_xid IS NOT NULL OR backend_xmin IS NOT NULL ORDER BY xact_start)");
            creating.await?
        }
    };
    let row = rows.first().ok_or_else(|| {
        Error::permanent(format!(
            "creating replication slot \"{name}\" returned no row"
        ))
    })?;
    let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    let at = parse_lsn(field(1), name)?;
    let snapshot_name = field(2);
    if snapshot_name.is_empty() {
        return Err(Error::permanent(format!(
            "creating replication slot \"{name}\" exported no snapshot"
        )));
    }
    Ok((at, snapshot_name))
}

/// Whether two table names (`schema.table`, or `table` for `public.table`) are the same.
impl PostgresSource {
    /// Tables whose rows the checkpoint does not cover: those just added to the publication
    /// (`added`), and, with a record of the checkpoint's tables, those captured now but not
    /// then (see [`crate::captured`]); and of those, the ones the record has under the same
    /// name with another OID (dropped and created again).
    fn newly_captured(
        &self,
        added: &[String],
        tables: &[catalog::Table],
    ) -> Result<(Vec<String>, Vec<Recreated>)> {
        let mut newly = added.to_vec();
        let mut recreated = Vec::new();
        let Some(dir) = &self.config.state_dir else {
            return Ok((newly, recreated));
        };
        if let Some(known) = captured::load(&captured::path(dir, &self.name))? {
            for table in captured::new_since(&known, tables) {
                let name = table.qualified();
                if let Some(old) = known.iter().find(|k| k.table == name) {
                    recreated.push((name.clone(), old.oid));
                    // The old table renamed, and captured under its new name: read it
                    // whole too (its changes from before the rename are skipped with the
                    // replaced name's).
                    if let Some(renamed) = tables.iter().find(|t| t.oid == old.oid) {
                        let renamed = renamed.qualified();
                        if !newly.iter().any(|n| same_table(n, &renamed)) {
                            newly.push(renamed);
                        }
                    }
                }
                if !newly.iter().any(|n| same_table(n, &name)) {
                    newly.push(name);
                }
            }
        }
        Ok((newly, recreated))
    }

    /// Record the captured tables once `confirmed` (a streamed position) is past this
    /// start's position and no table is left to read.
    fn record_captured(&self, confirmed: PgLsn) {
        let pending = {
            let mut rereads = lock(&self.rereads);
            match &rereads.record {
                Some(p) if rereads.tables.is_empty() && p.covered_by(confirmed) => {
                    rereads.record.take()
                }
                _ => None,
            }
        };
        let (Some(pending), Some(dir)) = (pending, &self.config.state_dir) else {
            return;
        };
        let path = captured::path(dir, &self.name);
        if let Err(e) = captured::save(&path, &pending.tables) {
            // Not fatal: the next start reads the tables the old record lacks again.
            tracing::warn!(source = %self.name, path = %path.display(), error = %e, "cannot record the captured tables; the next start may read some tables again");
        }
    }
}

/// A table dropped and created again since the checkpoint: its name and its old OID.
type Recreated = (String, u32);

fn same_table(a: &str, b: &str) -> bool {
    catalog::split_name(a) == catalog::split_name(b)
}

fn parse_lsn(text: String, slot: &str) -> Result<PgLsn> {
    text.parse().map_err(|e| {
        Error::permanent(format!(
            "replication slot \"{slot}\": the server sent an invalid LSN: {e}"
        ))
    })
}

/// Where the stream must reach to have delivered every transaction committed so far: the
/// server's WAL flush position, after flushing any asynchronously committed WAL. Asked over
/// the side connection (opened when needed); `None` when the server cannot be asked.
async fn caught_up_target(
    side: &mut Option<Client>,
    config: &PostgresSourceConfig,
) -> Option<PgLsn> {
    if side.as_ref().is_none_or(Client::is_closed) {
        *side = connect(config).await.ok();
    }
    let client = side.as_ref()?;
    let read = async |sql: &str| -> Option<(PgLsn, PgLsn)> {
        let row = client.query_one(sql, &[]).await.ok()?;
        let lsn = |i: usize| row.get::<_, String>(i).parse().ok();
        Some((lsn(0)?, lsn(1)?))
    };
    const LSNS: &str = "SELECT pg_current_wal_flush_lsn()::text, pg_current_wal_insert_lsn()::text";
    let (flush, insert) = read(LSNS).await?;
    if insert <= flush {
        return Some(flush);
    }
    // Commits made with `synchronous_commit = off` are acknowledged before their WAL is
    // flushed, and decoding reads only flushed WAL: flush them now, so `run --once` delivers
    // every transaction committed before it looked. (A commit that wrote no WAL of its own
    // would not flush synchronously; the transactional message makes it write some.)
    let sql = format!(
        "BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_logical_emit_message(true, {}, ''); COMMIT;",
        literal(crate::stream::HEARTBEAT_PREFIX)
    );
    if let Err(e) = client.batch_execute(&sql).await {
        tracing::debug!(error = %e, "could not flush the WAL before an idle check");
        return Some(flush);
    }
    read(LSNS).await.map(|(flush, _)| flush)
}

#[async_trait]
impl Source for PostgresSource {
    async fn start(&mut self, from: Option<Position>) -> Result<()> {
        // A restart after an error replaces the previous task (dropping it stops it).
        self.running = None;
        let plan = self
            .plan(from.clone())
            .await
            .map_err(|e| e.context(self.context()))?;
        let start = match (&from, &plan) {
            (Some(Position::Pg { lsn, .. }), _) => *lsn,
            (_, Plan::Snapshot { at, .. }) => *at,
            (_, Plan::Stream { from, .. } | Plan::Resnapshot { from, .. }) => *from,
            (_, Plan::SnapshotOnly { at, .. }) => *at,
            (_, Plan::Done) => PgLsn(0),
        };
        {
            let mut rereads = lock(&self.rereads);
            // A confirmation of a batch an earlier start handed over may come after this
            // start's rows are read: only a position past both shows them delivered.
            let after = start.max(self.polled);
            rereads.after = after;
            if let Some(pending) = rereads.record.as_mut() {
                pending.after = after;
                pending.strict =
                    matches!(&plan, Plan::Resnapshot { only: Some(_), .. }) || after > start;
            }
        }
        self.streaming = false;
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (confirmed_tx, confirmed_rx) = watch::channel(start);
        let (reported_tx, reported_rx) = watch::channel(PgLsn(0));
        let caught_up = Arc::new(AtomicU64::new(0));
        let task = Task {
            source: self.name,
            config: self.config.clone(),
            out: tx,
            confirmed: confirmed_rx,
            reported: reported_tx,
            caught_up: caught_up.clone(),
            rereads: self.rereads.clone(),
        };
        let task = tokio::spawn(task.run(plan));
        let streams = self.config.snapshot != SnapshotMode::Only;
        let heartbeat = (streams && self.config.heartbeat_interval_ms > 0).then(|| {
            tokio::spawn(capture::heartbeat(
                self.config.clone(),
                self.name,
                Duration::from_millis(self.config.heartbeat_interval_ms),
            ))
        });
        self.running = Some(Running {
            batches: rx,
            confirmed: confirmed_tx,
            reported: reported_rx,
            caught_up,
            idle_target: None,
            task,
            heartbeat,
        });
        Ok(())
    }

    async fn poll(&mut self) -> Result<SourcePoll> {
        if self.running.is_some()
            && self.streaming
            && let Err(e) = self.check_tables().await
        {
            self.running = None;
            return Err(e);
        }
        let wait = Duration::from_millis(self.config.status_interval_ms.max(1));
        let Some(running) = self.running.as_mut() else {
            return Err(Error::permanent(format!(
                "{} was polled before start",
                self.context()
            )));
        };
        // Idle only when caught up with the server: a snapshot being read, a connection
        // being made or a backlog the server is still decoding is not idle (`run --once`
        // would stop short of it), only pending. Either way poll returns within `wait`, so
        // the engine can confirm what it checkpointed: a server shutting down waits for it.
        // Quiet spells are checked every IDLE_CHECK (an idle stream is seen at once, not a
        // `wait` later); the server's position is read at most once per `wait`.
        let deadline = tokio::time::Instant::now() + wait;
        let received = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left.min(IDLE_CHECK), running.batches.recv()).await {
                Ok(received) => break received,
                Err(_) => {
                    let at = PgLsn(running.caught_up.load(Ordering::Acquire));
                    if at.0 != 0 {
                        // (A failed read is kept as long: no reconnection every IDLE_CHECK.)
                        let target = match running.idle_target {
                            Some((target, read)) if read.elapsed() < wait => target,
                            _ => {
                                let target = caught_up_target(&mut self.side, &self.config).await;
                                running.idle_target = Some((target, std::time::Instant::now()));
                                target
                            }
                        };
                        // (No target: the task reports what is wrong with the server.)
                        if target.is_some_and(|target| at >= target) {
                            // The task hands a batch over before it publishes the keepalive
                            // position after it, so one that arrived since the timeout is in
                            // the channel now: deliver it rather than report idle (`run
                            // --once` would stop without it).
                            match running.batches.try_recv() {
                                Ok(received) => break Some(received),
                                Err(mpsc::error::TryRecvError::Empty) => {
                                    // Caught up past what was handed over: hand over the
                                    // position itself first (an empty batch), so the
                                    // checkpoint moves now, not at the task's next status
                                    // tick, which `run --once` would not wait for.
                                    if at > self.polled {
                                        self.polled = at;
                                        self.streaming = true;
                                        return Ok(SourcePoll::Batch(SourceBatch {
                                            changes: Vec::new(),
                                            position: Position::Pg {
                                                lsn: at,
                                                snapshot: false,
                                                progress: None,
                                            },
                                        }));
                                    }
                                    return Ok(SourcePoll::Idle);
                                }
                                Err(mpsc::error::TryRecvError::Disconnected) => break None,
                            }
                        }
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(SourcePoll::Pending);
                    }
                }
            }
        };
        match received {
            Some(Ok(poll)) => {
                if let SourcePoll::Batch(batch) = &poll
                    && let Position::Pg { lsn, snapshot, .. } = batch.position
                {
                    self.polled = self.polled.max(lsn);
                    self.streaming = !snapshot;
                }
                Ok(poll)
            }
            Some(Err(e)) => {
                self.running = None;
                Err(e)
            }
            None => {
                self.running = None;
                Err(Error::transient(format!(
                    "{}: capture task stopped",
                    self.context()
                )))
            }
        }
    }

    async fn confirm(&mut self, position: &Position) -> Result<()> {
        let lsn = match position {
            // Nothing to release while the snapshot is read: the slot sits at its start.
            Position::Pg { snapshot: true, .. } => return Ok(()),
            Position::Pg { lsn, .. } => {
                // Streamed after a finished re-read: every row it read is checkpointed.
                {
                    let mut rereads = lock(&self.rereads);
                    if rereads.read && *lsn > rereads.after {
                        rereads.tables.clear();
                        rereads.read = false;
                    }
                }
                self.record_captured(*lsn);
                *lsn
            }
            other => {
                return Err(Error::permanent(format!(
                    "{} was given {other}, a position of another kind of source (hint: delete the checkpoint of this source)",
                    self.context()
                )));
            }
        };
        if let Some(running) = &self.running {
            running.confirmed.send_if_modified(|c| {
                if lsn > *c {
                    *c = lsn;
                    true
                } else {
                    false
                }
            });
        }
        Ok(())
    }

    /// Wait until the task has told the server the last confirmed position, so a stopping
    /// pipeline leaves the slot at its final checkpoint instead of the one before.
    async fn stop(&mut self) -> Result<()> {
        let Some(running) = self.running.as_mut() else {
            return Ok(());
        };
        let target = *running.confirmed.borrow();
        if running.task.is_finished() {
            return Ok(());
        }
        // The task reports at least every `status_interval_ms`. An error means the task
        // ended (connection lost); a timeout, that it was not streaming yet. Either way the
        // next run confirms.
        let patience =
            Duration::from_millis(self.config.status_interval_ms.saturating_mul(2) + 500);
        let _ = tokio::time::timeout(patience, running.reported.wait_for(|r| *r >= target)).await;
        Ok(())
    }

    async fn lag(&mut self, checkpoint: Option<&Position>) -> Result<Option<Lag>> {
        if self.side.as_ref().is_none_or(Client::is_closed) {
            self.side = Some(connect(&self.config).await?);
        }
        let Some(client) = &self.side else {
            return Ok(None);
        };
        // A checkpoint to resume from needs the slot: say so when it is gone or unusable,
        // rather than report a lag that `run` can never catch up.
        if let Some(Position::Pg { lsn, .. }) = checkpoint
            && self.config.snapshot != SnapshotMode::Only
        {
            let slot = &self.config.slot;
            if usable_slot(client, slot).await?.is_none() {
                return Err(Error::permanent(format!(
                    "replication slot \"{slot}\" does not exist, so changes after the checkpoint at {lsn} may be lost (hint: run `sluice check` for the recovery steps)"
                )));
            }
        }
        let row = client
            .query_one(
                "SELECT pg_current_wal_lsn()::text, \
                 (SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1), \
                 (SELECT (pg_current_wal_lsn() - restart_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1), \
                 (SELECT coalesce(extract(epoch FROM r.flush_lag), 0)::float8 FROM pg_stat_replication r \
                  JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = $1)",
                &[&self.config.slot],
            )
            .await
            .map_err(|e| pg_error(e, "measuring replication lag"))?;
        let current: PgLsn = parse_lsn(row.get(0), &self.config.slot)?;
        let confirmed: Option<PgLsn> = row.get::<_, Option<String>>(1).and_then(|t| t.parse().ok());
        let retained: Option<i64> = row.get(2);
        // The server's own measure (flush_lag: WAL flushed until sluice confirmed it), while a
        // sluice is streaming from the slot; unknown otherwise.
        let seconds: Option<f64> = row.get(3);
        let behind = match checkpoint {
            Some(Position::Pg { lsn, .. }) => Some(*lsn),
            _ => confirmed,
        };
        Ok(Some(Lag {
            events: None,
            bytes: behind
                .map(|b| current.0.saturating_sub(b.0))
                .or(retained.map(|r| r.max(0) as u64)),
            seconds,
        }))
    }
}
