//! [`SqliteSource`]: the [`Source`] the engine drives.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::Connection;
use sluice_config::model::SqliteSourceConfig;
use sluice_core::{Error, Lag, Name, Position, Result, Source, SourcePoll};
use tokio::sync::{mpsc, oneshot};

use crate::capture::{self, CHANNEL_CAPACITY};
use crate::changelog;
use crate::connection::{Access, db_error, open};

/// Captures a SQLite database through triggers and a changelog table.
///
/// `start` spawns a thread that owns the connection (rusqlite is synchronous); `poll` awaits
/// its next batch. `confirm` and `lag` use a second, short-lived-statement connection so they
/// never wait on the snapshot's read transaction. Dropping the source stops the thread.
#[derive(Debug)]
pub struct SqliteSource {
    name: Name,
    config: SqliteSourceConfig,
    running: Option<Running>,
    /// Connection for `confirm` and `lag`, opened on first use.
    side: Arc<Mutex<Option<Connection>>>,
    /// Highest `seq` already pruned.
    pruned: i64,
}

#[derive(Debug)]
struct Running {
    batches: mpsc::Receiver<Result<SourcePoll>>,
    /// Dropping it wakes the thread from its idle sleep and makes it exit.
    _stop: std::sync::mpsc::Sender<()>,
}

impl SqliteSource {
    /// A source named `source_name` (as in the config) reading `config`. Nothing is opened
    /// until [`Source::start`].
    pub fn new(source_name: &str, config: &SqliteSourceConfig) -> Self {
        SqliteSource {
            name: Name::new(source_name),
            config: config.clone(),
            running: None,
            side: Arc::new(Mutex::new(None)),
            pruned: i64::MIN,
        }
    }

    /// Run `f` on the side connection in a blocking task.
    async fn with_side<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &SqliteSourceConfig) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let side = self.side.clone();
        let config = self.config.clone();
        let name = self.name;
        tokio::task::spawn_blocking(move || {
            let mut guard = side.lock().map_err(|_| {
                Error::permanent(format!(
                    "sqlite source \"{name}\": side connection lock is poisoned"
                ))
            })?;
            let conn = match guard.take() {
                Some(conn) => conn,
                None => open(&config.path, Access::ReadWrite)?,
            };
            let result = f(&conn, &config);
            *guard = Some(conn);
            result
        })
        .await
        .map_err(|e| {
            Error::permanent(format!(
                "sqlite source \"{}\": blocking task failed",
                self.name
            ))
            .with_source(e)
        })?
    }
}

fn sqlite_position<'p>(
    name: &str,
    position: &'p Position,
) -> Result<&'p sluice_core::SqlitePosition> {
    match position {
        Position::Sqlite(p) => Ok(p),
        other => Err(Error::permanent(format!(
            "sqlite source \"{name}\" was given {other}, a position of another kind of source (hint: delete the checkpoint of this source)"
        ))),
    }
}

#[async_trait]
impl Source for SqliteSource {
    async fn start(&mut self, from: Option<Position>) -> Result<()> {
        // A restart after an error replaces the previous thread (dropping its channels stops it).
        self.running = None;
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (stop_tx, stop_rx) = std::sync::mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        capture::spawn(self.name, self.config.clone(), from, tx, stop_rx, ready_tx).map_err(
            |e| {
                Error::permanent(format!(
                    "sqlite source \"{}\": cannot start its capture thread",
                    self.name
                ))
                .with_source(e)
            },
        )?;
        match ready_rx.await {
            Ok(Ok(())) => {
                self.running = Some(Running {
                    batches: rx,
                    _stop: stop_tx,
                });
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::permanent(format!(
                "sqlite source \"{}\": capture thread exited while starting",
                self.name
            ))),
        }
    }

    async fn poll(&mut self) -> Result<SourcePoll> {
        let Some(running) = self.running.as_mut() else {
            return Err(Error::permanent(format!(
                "sqlite source \"{}\" was polled before start",
                self.name
            )));
        };
        match running.batches.recv().await {
            Some(Ok(poll)) => Ok(poll),
            Some(Err(e)) => {
                self.running = None;
                Err(e)
            }
            None => {
                self.running = None;
                Err(Error::permanent(format!(
                    "sqlite source \"{}\": capture thread stopped",
                    self.name
                )))
            }
        }
    }

    async fn confirm(&mut self, position: &Position) -> Result<()> {
        let p = *sqlite_position(&self.name, position)?;
        // During the snapshot `seq` is the high-water mark the stream will start after; rows
        // up to it are not yet safe to prune until the snapshot is complete.
        if p.snapshot || p.seq <= self.pruned {
            return Ok(());
        }
        let pruned = self
            .with_side(move |conn, config| {
                let path = config.path.as_path();
                let name = &config.changelog_table;
                if !changelog::exists(conn, name).map_err(|e| db_error(path, "pruning the changelog of", e))? {
                    // The capture thread reports this as lost changes on its next poll.
                    return Ok(None);
                }
                match changelog::prune(conn, name, p.seq) {
                    Ok(n) => Ok(Some(n)),
                    Err(e) => {
                        let e = db_error(path, "pruning the changelog of", e);
                        if e.is_transient() {
                            tracing::warn!(error = %e, "could not prune the changelog now; will retry at the next confirm");
                            Ok(None)
                        } else {
                            Err(e)
                        }
                    }
                }
            })
            .await?;
        if let Some(n) = pruned {
            tracing::debug!(source = %self.name, through = p.seq, rows = n, "pruned changelog");
            self.pruned = p.seq;
        }
        Ok(())
    }

    async fn lag(&mut self, checkpoint: Option<&Position>) -> Result<Option<Lag>> {
        let after = match checkpoint {
            Some(position) => {
                let p = sqlite_position(&self.name, position)?;
                if p.snapshot { 0 } else { p.seq }
            }
            None => 0,
        };
        self.with_side(move |conn, config| {
            let path = config.path.as_path();
            let fail = |e| db_error(path, "measuring the lag of", e);
            if !changelog::exists(conn, &config.changelog_table).map_err(fail)? {
                return Ok(None);
            }
            let (events, oldest_ms) =
                changelog::pending(conn, &config.changelog_table, after).map_err(fail)?;
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let seconds = oldest_ms.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0);
            Ok(Some(Lag {
                events: Some(events),
                bytes: None,
                seconds: Some(seconds),
            }))
        })
        .await
    }
}
