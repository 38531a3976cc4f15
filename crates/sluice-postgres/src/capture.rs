//! The capture task: the snapshot (when there is one), then the replication stream, feeding
//! batches into a bounded channel that [`crate::PostgresSource::poll`] drains. The channel
//! bound is the backpressure: a slow pipeline stops the task reading, and the server
//! buffers WAL, not sluice's memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sluice_config::model::PostgresSourceConfig;
use sluice_core::{
    Change, Error, Name, Op, PgLsn, PgSnapshotProgress, Position, Result, Row, SourceBatch,
    SourcePoll,
};
use tokio::sync::{mpsc, watch};

use crate::catalog::Table;
use crate::conn::{connect, ident, literal, pg_error};
use crate::pgoutput::{self, DecodeContext};
use crate::replication::{
    ReplicationConnection, ReplicationMessage, parse_replication_message, standby_status_update,
};
use crate::snapshot;
use crate::spill::{Replay, Routed, Streams};
use crate::stream::Converter;

/// Batches buffered between the capture task and `poll`.
pub(crate) const CHANNEL_CAPACITY: usize = 4;
/// The pgoutput protocol version to request from a server of `major` version: 1, or with
/// `streaming` (in-progress transactions) 2 on PostgreSQL 14 and 3 on 15+ (3 adds two-phase
/// messages, which sluice does not ask for). The decoder also reads 4 (PostgreSQL 16's
/// parallel streaming), which sluice has no use for.
pub(crate) fn protocol_version(major: u32, streaming: bool) -> u32 {
    match major {
        _ if !streaming => 1,
        14 => 2,
        15.. => 3,
        _ => 1,
    }
}
/// How long changes that fill less than a batch wait for more before they are handed over.
/// A server streaming a backlog sends a few changes per read; handing each read over as its
/// own batch costs the engine more per change than the change itself. 5 ms is well inside
/// the latency budget (p99 < 50 ms).
const HANDOVER_LINGER: Duration = Duration::from_millis(5);
/// How long `START_REPLICATION` keeps retrying while the slot is still held by a walsender
/// that is going away (after a restart).
const SLOT_BUSY_RETRY: Duration = Duration::from_secs(10);

/// Where the capture task starts.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Read the snapshot exported by `conn` when it created the slot at `at`, then stream
    /// on that same connection from `at`.
    Snapshot {
        conn: ReplicationConnection,
        snapshot_name: String,
        at: PgLsn,
    },
    /// An earlier snapshot at `from` was interrupted after delivering what `progress`
    /// says: read the rest under a fresh snapshot exported by a temporary slot on `conn`,
    /// then stream from `from` on the persistent slot.
    Resnapshot {
        conn: ReplicationConnection,
        snapshot_name: String,
        from: PgLsn,
        progress: Option<PgSnapshotProgress>,
        /// Read only these tables (`run --resnapshot`), then stream all of the second list.
        only: Option<(Vec<String>, Vec<Table>)>,
        /// Tables dropped and created again since the checkpoint (among `only`'s), with the
        /// old table's OID: a `truncate` for each goes first, so the sinks drop the old
        /// table's rows before the new one's are read, and the old table's changes still to
        /// replay from `from` are skipped (they would bring its rows back).
        emptied: Vec<(String, u32)>,
    },
    /// Stream from `from`.
    Stream { from: PgLsn, tables: Vec<Table> },
    /// `snapshot = "only"`: read the snapshot exported by `holder`'s open transaction
    /// (skipping what `progress` says was delivered), then report the source done.
    SnapshotOnly {
        holder: tokio_postgres::Client,
        snapshot_name: String,
        at: PgLsn,
        progress: Option<PgSnapshotProgress>,
    },
    /// Nothing left to do (`snapshot = "only"`, finished before).
    Done,
}

/// Everything the task needs besides its plan.
#[derive(Debug)]
pub(crate) struct Task {
    pub source: Name,
    pub config: PostgresSourceConfig,
    pub out: mpsc::Sender<Result<SourcePoll>>,
    /// The highest streaming position the engine has checkpointed.
    pub confirmed: watch::Receiver<PgLsn>,
    /// The flush position last written to the server (what `Source::stop` waits for).
    pub reported: watch::Sender<PgLsn>,
    /// While the last thing the server sent was a keepalive outside any transaction and
    /// every change before it is in the channel: that keepalive's WAL position (how far the
    /// server has decoded), else 0. `poll` compares it with the server's flush position
    /// before it reports the source idle.
    pub caught_up: Arc<AtomicU64>,
    /// Tables read again before the stream (see `PostgresSource::rereads`): marked read
    /// once they all are.
    pub rereads: Arc<std::sync::Mutex<crate::source::Rereads>>,
}

impl Task {
    pub async fn run(self, plan: Plan) {
        let out = self.out.clone();
        let source = self.source;
        if let Err(e) = self.run_plan(plan).await {
            let _ = out
                .send(Err(e.context(format!("postgres source \"{source}\""))))
                .await;
        }
    }

    async fn run_plan(self, plan: Plan) -> Result<()> {
        let mut replaced = Vec::new();
        let (conn, from, tables) = match plan {
            Plan::Snapshot {
                conn,
                snapshot_name,
                at,
            } => {
                let Some(tables) = self.snapshot(&snapshot_name, at, None).await? else {
                    return Ok(());
                };
                (Some(conn), at, tables)
            }
            Plan::Resnapshot {
                conn,
                snapshot_name,
                from,
                progress,
                only,
                emptied,
            } => {
                if !emptied.is_empty() {
                    // At the read's first position: like its rows, before the checkpoint.
                    let position = Position::Pg {
                        lsn: from,
                        snapshot: true,
                        progress: Some(PgSnapshotProgress {
                            table: 0,
                            page: 0,
                            filenode: 0,
                        }),
                    };
                    let changes = emptied
                        .iter()
                        .map(|(table, _)| Change {
                            op: Op::Truncate,
                            source: self.source,
                            table: Name::new(table),
                            key: Row::default(),
                            before: None,
                            after: None,
                            position: position.clone(),
                            tx: None,
                            schema: None,
                        })
                        .collect();
                    let batch = SourcePoll::Batch(SourceBatch { changes, position });
                    if self.out.send(Ok(batch)).await.is_err() {
                        return Ok(());
                    }
                    replaced = emptied.clone();
                }
                let tables = match only {
                    None => self.snapshot(&snapshot_name, from, progress).await?,
                    Some((names, all)) => {
                        let mut narrowed = self.config.clone();
                        narrowed.tables = names;
                        let read = snapshot::read(
                            &narrowed,
                            &self.source,
                            &snapshot_name,
                            from,
                            None,
                            &self.out,
                        )
                        .await?;
                        if read.is_some() {
                            self.rereads
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .read = true;
                        }
                        read.map(|_| all)
                    }
                };
                let Some(tables) = tables else {
                    return Ok(());
                };
                // Closing the connection drops its temporary slot.
                drop(conn);
                (None, from, tables)
            }
            Plan::Stream { from, tables } => (None, from, tables),
            Plan::SnapshotOnly {
                holder,
                snapshot_name,
                at,
                progress,
            } => {
                if self.snapshot(&snapshot_name, at, progress).await?.is_some() {
                    drop(holder);
                    let _ = self.out.send(Ok(SourcePoll::Done)).await;
                }
                return Ok(());
            }
            Plan::Done => {
                let _ = self.out.send(Ok(SourcePoll::Done)).await;
                return Ok(());
            }
        };
        let (conn, version) = match conn {
            Some(mut conn) => {
                let version = self.start_replication(&mut conn, from).await?;
                (conn, version)
            }
            None => self.connect_and_start(from).await?,
        };
        self.stream(conn, version, from, &tables, replaced).await
    }

    /// Read the snapshot, then send the empty batch that marks it complete.
    async fn snapshot(
        &self,
        snapshot_name: &str,
        at: PgLsn,
        resume: Option<PgSnapshotProgress>,
    ) -> Result<Option<Vec<Table>>> {
        tracing::info!(source = %self.source, lsn = %at, "snapshot started");
        let tables = snapshot::read(
            &self.config,
            &self.source,
            snapshot_name,
            at,
            resume,
            &self.out,
        )
        .await?;
        let Some(tables) = tables else {
            return Ok(None);
        };
        tracing::info!(source = %self.source, lsn = %at, "snapshot done");
        let done = SourcePoll::Batch(SourceBatch {
            changes: Vec::new(),
            position: Position::Pg {
                lsn: at,
                snapshot: false,
                progress: None,
            },
        });
        if self.out.send(Ok(done)).await.is_err() {
            return Ok(None);
        }
        Ok(Some(tables))
    }

    fn start_sql(&self, from: PgLsn, version: u32) -> String {
        let streaming = if version >= 2 { ", streaming 'on'" } else { "" };
        format!(
            "START_REPLICATION SLOT {} LOGICAL {from} (proto_version '{version}', publication_names {}, messages 'true'{streaming})",
            ident(&self.config.slot),
            literal(&ident(&self.config.publication))
        )
    }

    /// Start streaming on `conn`; returns the protocol version asked for.
    async fn start_replication(
        &self,
        conn: &mut ReplicationConnection,
        from: PgLsn,
    ) -> Result<u32> {
        let what = format!(
            "starting replication from slot \"{}\" at {from}",
            self.config.slot
        );
        let version = protocol_version(conn.server_major(), self.config.stream_in_progress);
        conn.start_copy_both(&self.start_sql(from, version), &what)
            .await?;
        tracing::debug!(source = %self.source, version, "pgoutput protocol");
        Ok(version)
    }

    async fn connect_and_start(&self, from: PgLsn) -> Result<(ReplicationConnection, u32)> {
        let deadline = tokio::time::Instant::now() + SLOT_BUSY_RETRY;
        loop {
            let mut conn = ReplicationConnection::connect(&self.config).await?;
            match self.start_replication(&mut conn, from).await {
                Ok(version) => return Ok((conn, version)),
                // The slot is still held by a walsender of an earlier run that is exiting.
                Err(e)
                    if e.message().contains("SQLSTATE 55006")
                        && tokio::time::Instant::now() < deadline =>
                {
                    tracing::debug!(error = %e, "slot busy; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn stream(
        mut self,
        mut conn: ReplicationConnection,
        version: u32,
        from: PgLsn,
        tables: &[Table],
        replaced: Vec<(String, u32)>,
    ) -> Result<()> {
        let mut converter = Converter::new(self.source, tables, from)
            .with_key_change(self.config.primary_key_change)
            .following_publication(self.config.tables.is_empty())
            .skipping_replaced(replaced);
        let mut ctx = DecodeContext::new(version);
        let mut streams = Streams::new(self.config.spill_dir.clone(), version);
        let interval = Duration::from_millis(self.config.status_interval_ms.max(1));
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let batch_size = self.config.batch_size.max(1);
        let mut status = Status {
            received: from,
            idle: None,
        };
        // The WAL end of the last message if it was a keepalive outside a transaction.
        let mut at_keepalive: Option<PgLsn> = None;
        // While less than a batch is ready: when it is handed over anyway.
        let mut handover_at: Option<tokio::time::Instant> = None;
        loop {
            while let Some(m) = conn.next_buffered()? {
                let Some(payload) = conn.copy_payload(&m)? else {
                    continue;
                };
                let message = parse_replication_message(&payload)
                    .map_err(|e| Error::permanent(format!("replication stream: {e}")))?;
                match message {
                    ReplicationMessage::XLogData {
                        wal_start,
                        wal_end,
                        data,
                    } => {
                        status.received = status.received.max(wal_end);
                        at_keepalive = None;
                        self.caught_up.store(0, Ordering::Release);
                        let message = pgoutput::decode(data, &ctx).map_err(|e| {
                            Error::permanent(format!(
                                "cannot decode the pgoutput message at {wal_start}: {e}"
                            ))
                        })?;
                        ctx.observe(&message);
                        let mut replay = match streams.route(message, data)? {
                            Routed::Now(message) => {
                                converter.handle(message)?;
                                None
                            }
                            Routed::Kept => None,
                            Routed::Commit(replay) => Some(replay),
                        };
                        loop {
                            if converter.ready() >= batch_size {
                                handover_at = None;
                                let batch = converter.take_batch();
                                if !self.send(&mut conn, &mut ticker, &status, batch).await? {
                                    return Ok(());
                                }
                            }
                            match replay.as_mut().map(Replay::next_message).transpose()? {
                                Some(Some(message)) => converter.handle(message)?,
                                _ => break,
                            }
                        }
                    }
                    ReplicationMessage::Keepalive {
                        wal_end,
                        reply_requested,
                    } => {
                        status.received = status.received.max(wal_end);
                        at_keepalive = (!converter.in_transaction()).then_some(wal_end);
                        if !converter.in_transaction() && !converter.has_progress() {
                            status.idle = Some(wal_end);
                        }
                        if reply_requested {
                            self.send_status(&mut conn, &status).await?;
                        }
                    }
                }
            }
            // Nothing more is buffered: hand over what is ready (at a commit, or part of a
            // transaction still arriving) once it has waited HANDOVER_LINGER for more.
            if converter.has_progress() {
                let now = tokio::time::Instant::now();
                let at = *handover_at.get_or_insert(now + HANDOVER_LINGER);
                if now >= at {
                    handover_at = None;
                    let batch = converter.take_batch();
                    if !self.send(&mut conn, &mut ticker, &status, batch).await? {
                        return Ok(());
                    }
                }
            }
            // Everything decoded up to the keepalive's position is handed over. (A keepalive
            // alone does not mean caught up: the server also sends one whenever it reaches
            // the flush position it last looked at, with more WAL possibly behind it.)
            if let Some(at) = at_keepalive
                && handover_at.is_none()
            {
                self.caught_up.store(at.0, Ordering::Release);
            }
            let linger = async {
                match handover_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                read = conn.fill() => read?,
                _ = linger => {}
                _ = ticker.tick() => {
                    if let Some(lsn) = status.idle.take() {
                        converter.idle_at(lsn);
                    }
                    self.send_status(&mut conn, &status).await?;
                }
                changed = self.confirmed.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    self.send_status(&mut conn, &status).await?;
                }
                _ = self.out.closed() => return Ok(()),
            }
        }
    }

    /// Hand a batch to `poll`, answering the server while the channel is full. False when
    /// the source went away.
    async fn send(
        &mut self,
        conn: &mut ReplicationConnection,
        ticker: &mut tokio::time::Interval,
        status: &Status,
        batch: SourceBatch,
    ) -> Result<bool> {
        loop {
            tokio::select! {
                permit = self.out.reserve() => {
                    return match permit {
                        Ok(permit) => {
                            permit.send(Ok(SourcePoll::Batch(batch)));
                            Ok(true)
                        }
                        Err(_) => Ok(false),
                    };
                }
                _ = ticker.tick() => self.send_status(conn, status).await?,
            }
        }
    }

    /// Tell the server how far the engine has checkpointed: never further, so the slot's
    /// confirmed position is never past this pipeline's checkpoint (which is how a slot
    /// moved by something else is told apart at start). An idle slot still holds no WAL:
    /// idle keepalives move the resume position, and so the checkpoint, forward.
    async fn send_status(&self, conn: &mut ReplicationConnection, status: &Status) -> Result<()> {
        let flush = *self.confirmed.borrow();
        let write = status.received.max(flush);
        conn.send_copy_data(&standby_status_update(write, flush, flush, false))
            .await?;
        self.reported.send_replace(flush);
        Ok(())
    }
}

#[derive(Debug)]
struct Status {
    /// Highest WAL end the server reported.
    received: PgLsn,
    /// The WAL end of the last keepalive that found nothing in flight: at the next status
    /// tick it becomes the resume position (an empty batch the engine checkpoints), so an
    /// idle slot holds no WAL. At most one such checkpoint per `status_interval_ms`.
    idle: Option<PgLsn>,
}

/// Write a heartbeat into the WAL every `interval`, so a slot on a quiet database still sees
/// WAL move and can confirm it. Failures are logged and retried on the next tick.
pub(crate) async fn heartbeat(config: PostgresSourceConfig, source: Name, interval: Duration) {
    let mut client = None;
    loop {
        tokio::time::sleep(interval).await;
        if client.is_none() {
            match connect(&config).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    tracing::warn!(source = %source, error = %e, "heartbeat: cannot connect");
                    continue;
                }
            }
        }
        if let Some(c) = &client {
            let sql = format!(
                "SELECT pg_logical_emit_message(false, {}, '')",
                literal(crate::stream::HEARTBEAT_PREFIX)
            );
            if let Err(e) = c.batch_execute(&sql).await {
                let e = pg_error(e, "writing a heartbeat");
                tracing::warn!(source = %source, error = %e, "heartbeat failed");
                client = None;
            }
        }
    }
}
