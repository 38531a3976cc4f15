//! The contract of a source.

use async_trait::async_trait;

use crate::{Change, Position, Result};

/// A batch of changes and the position to resume from once all of them are delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceBatch {
    /// Changes in source order. May be empty: a batch can carry only progress.
    pub changes: Vec<Change>,
    /// Resume point after this batch: restarting from it replays nothing in this batch or
    /// before it.
    pub position: Position,
}

/// What one poll of a source produced.
#[derive(Debug, Clone, PartialEq)]
pub enum SourcePoll {
    /// Changes (or progress) to deliver.
    Batch(SourceBatch),
    /// Nothing new, and the source has caught up with its database: everything committed
    /// so far has been delivered. The source has already waited its idle backoff; the engine
    /// may confirm positions and poll again (`run --once` stops here).
    Idle,
    /// Nothing new yet, but the source is not caught up (a snapshot is being read, the
    /// server is still decoding a backlog, the database is unreachable): the engine confirms
    /// positions and polls again.
    Pending,
    /// The source is finished (a bounded source, or snapshot-only mode).
    Done,
}

/// A source of changes: snapshot first, then stream, resumable from a [`Position`].
///
/// Contract:
/// - [`Source::start`] is called once, with the last checkpointed position or `None` for a
///   fresh start. From `None` the source delivers a consistent snapshot of existing rows
///   (`Op::Read`) followed by every change after the snapshot, with no row missed or doubled
///   at the hand-off. From `Some(p)` it delivers every change after `p` (replaying is allowed,
///   skipping is not).
/// - [`Source::poll`] returns batches in source order and must return within a bounded time
///   (an idle source returns [`SourcePoll::Idle`], a waiting one [`SourcePoll::Pending`]), so
///   the engine can confirm progress: a PostgreSQL server will not even shut down until the
///   positions it sent are confirmed.
/// - [`Source::confirm`] is called, between polls, with a position the engine has durably
///   checkpointed: every change up to it has been accepted by every sink. Only then may the
///   source release history up to it (prune a changelog, advance a replication slot).
/// - Errors are classed; a transient error makes the engine call `start` again from the
///   last checkpoint after a backoff.
#[async_trait]
pub trait Source: Send {
    /// Prepare to deliver changes after `from` (or a snapshot, then changes, when `None`).
    async fn start(&mut self, from: Option<Position>) -> Result<()>;

    /// The next batch, `Idle` when there is nothing new, or `Done` when finished.
    async fn poll(&mut self) -> Result<SourcePoll>;

    /// Everything up to `position` is durably checkpointed.
    async fn confirm(&mut self, position: &Position) -> Result<()>;

    /// Called once at shutdown, after the final [`Source::confirm`]: deliver anything still
    /// owed to the database (for example the last flush position of a replication slot)
    /// before the source is dropped. The engine bounds how long it waits.
    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    /// How far the checkpoint is behind the source's head, when the source can tell.
    async fn lag(&mut self, _checkpoint: Option<&Position>) -> Result<Option<Lag>> {
        Ok(None)
    }
}

/// How far a checkpoint is behind the head of its source.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Lag {
    /// Changes (or bytes, for WAL-based sources) not yet checkpointed.
    pub events: Option<u64>,
    /// Bytes of log retained for the checkpoint, when the source measures bytes.
    pub bytes: Option<u64>,
    /// Age in seconds of the oldest change not yet checkpointed.
    pub seconds: Option<f64>,
}
