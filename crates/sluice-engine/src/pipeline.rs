//! The runtime: one task per source, one per sink, one checkpointer per source.
//!
//! ```text
//! source task ──poll──► transforms per route ──bounded channel──► sink task (batch, write, retry)
//!      ▲                                                               │ ack(seq)
//!      └──confirm(saved)◄── checkpointer ◄──done prefix── AckTracker ◄─┘
//! ```
//!
//! Invariants:
//! - A position is saved only after every sink fed by its source has durably written every
//!   change up to it ([`AckTracker`]); the source is told (`confirm`) only after the save.
//! - Memory is bounded: channels hold a fixed number of batches and sources produce bounded
//!   batches, so a slow sink slows the source (backpressure) instead of buffering.
//! - Transient errors are retried with exponential backoff and jitter; a permanent error stops
//!   every task, and whatever was acknowledged before it stays checkpointed.
//! - On shutdown, sources stop polling, sinks drain what is queued, and the final done
//!   position is saved.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_config::BatchConfig;
use sluice_core::{Change, Checkpoint, CheckpointStore, Error, Position, Sink, Source, SourcePoll};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use crate::ack::AckTracker;
use crate::retry::Backoff;
use crate::transform::{Transform, apply_chain};

/// How long a source may take to confirm the final checkpoint at shutdown.
const FINAL_CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// A source and where its changes go.
pub struct SourceSpec {
    /// Configured name.
    pub name: String,
    /// The source.
    pub source: Box<dyn Source>,
    /// One route per sink fed by this source.
    pub routes: Vec<Route>,
}

impl std::fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceSpec")
            .field("name", &self.name)
            .field("routes", &self.routes)
            .finish()
    }
}

/// How a source's changes reach one sink: through one or more transform chains (a chain may
/// be empty when the sink reads the source directly).
#[derive(Debug, Clone)]
pub struct Route {
    /// Index of the sink in [`Pipeline::sinks`].
    pub sink: usize,
    /// Transform chains from the source to the sink.
    pub chains: Vec<Vec<Arc<Transform>>>,
}

/// A sink and its batching limits.
pub struct SinkSpec {
    /// Configured name.
    pub name: String,
    /// The sink.
    pub sink: Box<dyn Sink>,
    /// When to flush.
    pub batch: BatchConfig,
}

impl std::fmt::Debug for SinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkSpec")
            .field("name", &self.name)
            .field("batch", &self.batch)
            .finish()
    }
}

/// Runtime knobs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Batches buffered per sink before the source waits.
    pub channel_capacity: usize,
    /// Stop each source once it is idle and everything it produced is checkpointed.
    pub exit_when_idle: bool,
    /// First retry delay.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// How often progress is logged.
    pub progress_interval: Duration,
    /// Least time between two checkpoint saves of one source: saves coalesce the batches
    /// acknowledged meanwhile (each save is two fsyncs and a confirm to the source).
    pub checkpoint_interval: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            channel_capacity: 4,
            exit_when_idle: false,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
            progress_interval: Duration::from_secs(10),
            checkpoint_interval: Duration::from_millis(20),
        }
    }
}

/// What a run did, per source.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// `(source, events checkpointed during this run, last saved position)`.
    pub sources: Vec<(String, u64, Option<Position>)>,
}

/// A built topology ready to run.
pub struct Pipeline {
    /// Sources with their routes.
    pub sources: Vec<SourceSpec>,
    /// Sinks, indexed by [`Route::sink`].
    pub sinks: Vec<SinkSpec>,
    /// Where positions are saved.
    pub store: Arc<dyn CheckpointStore>,
    /// Knobs.
    pub options: RunOptions,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("sources", &self.sources)
            .field("sinks", &self.sinks)
            .field("options", &self.options)
            .finish()
    }
}

/// A source's way to one sink: its channel, and a nudge to write the batch it is
/// collecting without waiting for more.
#[derive(Clone)]
struct SinkHandle {
    tx: mpsc::Sender<SinkMsg>,
    flush: Arc<Notify>,
}

struct SinkMsg {
    tracker: Arc<AckTracker>,
    seq: u64,
    changes: Vec<Change>,
}

/// Shared stop signal and the first permanent error.
#[derive(Clone)]
struct Control {
    stop: watch::Sender<bool>,
    failure: Arc<Mutex<Option<Error>>>,
}

impl Control {
    fn fail(&self, error: Error) {
        // The caller reports the error itself (the CLI prints its chain once).
        tracing::debug!(error = %error, "pipeline stopping");
        let mut slot = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(error);
        }
        drop(slot);
        self.stop.send_replace(true);
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

async fn until_stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Pipeline {
    /// Run until every source is done, `shutdown` becomes true, or a permanent error occurs.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<RunSummary, Error> {
        let (stop, _) = watch::channel(false);
        let control = Control {
            stop,
            failure: Arc::new(Mutex::new(None)),
        };
        {
            let control = control.clone();
            tokio::spawn(async move {
                let _ = shutdown.wait_for(|s| *s).await;
                if !control.stopping() {
                    tracing::info!("shutdown requested: draining in-flight batches");
                }
                control.stop.send_replace(true);
            });
        }

        let mut senders = Vec::new();
        let mut sink_tasks = JoinSet::new();
        for spec in self.sinks {
            let (tx, rx) = mpsc::channel::<SinkMsg>(self.options.channel_capacity.max(1));
            let flush = Arc::new(Notify::new());
            senders.push(SinkHandle {
                tx,
                flush: flush.clone(),
            });
            sink_tasks.spawn(sink_task(
                spec,
                rx,
                flush,
                control.clone(),
                self.options.clone(),
            ));
        }

        let mut source_tasks = JoinSet::new();
        let mut checkpointers = JoinSet::new();
        let (finished_tx, finished_rx) = watch::channel(false);
        for spec in self.sources {
            let tracker = Arc::new(AckTracker::default());
            let txs: Vec<_> = spec
                .routes
                .iter()
                .map(|r| senders[r.sink].clone())
                .collect();
            let last = {
                let store = self.store.clone();
                let name = spec.name.clone();
                tokio::task::spawn_blocking(move || store.load(&name))
                    .await
                    .map_err(|e| Error::permanent("checkpoint task failed").with_source(e))?
                    .map_err(|e| e.context(format!("source \"{}\"", spec.name)))?
            };
            checkpointers.spawn(checkpointer(
                spec.name.clone(),
                tracker.clone(),
                self.store.clone(),
                last.clone(),
                finished_rx.clone(),
                control.clone(),
                self.options.clone(),
            ));
            source_tasks.spawn(source_task(
                spec,
                txs,
                tracker,
                last.map(|c| c.position),
                control.clone(),
                self.options.clone(),
            ));
        }
        drop(senders);

        let mut finished_sources = Vec::new();
        while let Some(r) = source_tasks.join_next().await {
            match r {
                Ok(spec) => finished_sources.push(spec),
                Err(e) => control.fail(Error::permanent("a source task panicked").with_source(e)),
            }
        }
        while let Some(r) = sink_tasks.join_next().await {
            if let Err(e) = r {
                control.fail(Error::permanent("a sink task panicked").with_source(e));
            }
        }
        let _ = finished_tx.send(true);
        let mut summary = RunSummary::default();
        while let Some(r) = checkpointers.join_next().await {
            match r {
                Ok(s) => summary.sources.push(s),
                Err(e) => {
                    control.fail(Error::permanent("a checkpoint task panicked").with_source(e))
                }
            }
        }
        summary.sources.sort_by(|a, b| a.0.cmp(&b.0));
        // The sources stopped before the sinks drained, so the last checkpoint has not been
        // confirmed to them yet: do it now, so that (for example) a replication slot does not
        // keep WAL until the next run. Failing here loses nothing; the next run confirms.
        for mut spec in finished_sources {
            let saved = summary
                .sources
                .iter()
                .find(|s| s.0 == spec.name)
                .and_then(|s| s.2.clone());
            let name = spec.name.clone();
            let source = spec.source.as_mut();
            let confirm_and_stop = async move {
                if let Some(position) = saved {
                    source.confirm(&position).await?;
                }
                source.stop().await
            };
            match tokio::time::timeout(FINAL_CONFIRM_TIMEOUT, confirm_and_stop).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(source = %name, error = %e, "could not confirm the final checkpoint; the next run will")
                }
                Err(_) => {
                    tracing::warn!(source = %name, "confirming the final checkpoint timed out; the next run will")
                }
            }
        }
        let failure = control
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match failure {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }
}

async fn start_with_retry(
    name: &str,
    source: &mut dyn Source,
    from: Option<Position>,
    control: &Control,
    options: &RunOptions,
) -> Result<bool, Error> {
    let mut backoff = Backoff::new(options.retry_min, options.retry_max);
    loop {
        // A start can wait long (a PostgreSQL slot waits for every open transaction to end):
        // a shutdown request cancels it.
        let started = tokio::select! {
            started = source.start(from.clone()) => started,
            _ = until_stopped(control.stop.subscribe()) => return Ok(false),
        };
        match started {
            Ok(()) => return Ok(true),
            Err(e) if e.is_transient() => {
                let delay = backoff.next_delay();
                tracing::warn!(source = name, error = %e, retry_in_ms = delay.as_millis() as u64, "source failed to start; retrying");
                tokio::select! {
                    _ = until_stopped(control.stop.subscribe()) => return Ok(false),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Run one source until it is done, stopped or failed, and hand it back so that the final
/// checkpoint can be confirmed to it after the sinks have drained.
async fn source_task(
    mut spec: SourceSpec,
    senders: Vec<SinkHandle>,
    tracker: Arc<AckTracker>,
    resume: Option<Position>,
    control: Control,
    options: RunOptions,
) -> SourceSpec {
    drive_source(&mut spec, senders, tracker, resume, control, options).await;
    spec
}

async fn drive_source(
    spec: &mut SourceSpec,
    senders: Vec<SinkHandle>,
    tracker: Arc<AckTracker>,
    mut resume: Option<Position>,
    control: Control,
    options: RunOptions,
) {
    let name = spec.name.clone();
    let fail = |e: Error| control.fail(e.context(format!("source \"{name}\"")));
    match start_with_retry(
        &name,
        spec.source.as_mut(),
        resume.clone(),
        &control,
        &options,
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => return fail(e),
    }
    tracing::info!(source = %name, from = %resume.as_ref().map_or("no checkpoint".to_owned(), |p| p.to_string()), "source started");
    let mut backoff = Backoff::new(options.retry_min, options.retry_max);
    // When the source last (re)started: one that has run a while since is working again.
    let mut restarted = tokio::time::Instant::now();
    loop {
        if control.stopping() {
            break;
        }
        if let Some(saved) = tracker.take_saved() {
            resume = Some(saved.clone());
            if let Err(e) = spec.source.confirm(&saved).await {
                if !e.is_transient() {
                    return fail(e);
                }
                tracing::warn!(source = %name, error = %e, "confirming a checkpoint failed; will retry with the next one");
            }
        }
        let poll = tokio::select! {
            _ = until_stopped(control.stop.subscribe()) => break,
            p = spec.source.poll() => p,
        };
        match poll {
            Ok(SourcePoll::Batch(batch)) => {
                // Changes show the source works again, and so does a batch a while after
                // the restart; one carrying only progress right after it does not (a source
                // may hand its start position over, then fail each time).
                if !batch.changes.is_empty()
                    || restarted.elapsed() > options.retry_max.max(Duration::from_secs(1)) * 2
                {
                    backoff.reset();
                }
                let events = batch.changes.len() as u64;
                let mut per_route: Vec<Vec<Change>> = Vec::with_capacity(spec.routes.len());
                let last_route = spec.routes.len().saturating_sub(1);
                let mut changes = Some(batch.changes);
                for (i, route) in spec.routes.iter().enumerate() {
                    let input = if i == last_route {
                        changes.take().unwrap_or_default()
                    } else {
                        changes.clone().unwrap_or_default()
                    };
                    per_route.push(route_changes(route, input));
                }
                let fanout = per_route.iter().filter(|c| !c.is_empty()).count();
                let seq = tracker.register(batch.position, fanout, events);
                for (i, changes) in per_route.into_iter().enumerate() {
                    if changes.is_empty() {
                        continue;
                    }
                    let msg = SinkMsg {
                        tracker: tracker.clone(),
                        seq,
                        changes,
                    };
                    tokio::select! {
                        _ = until_stopped(control.stop.subscribe()) => return,
                        sent = senders[i].tx.send(msg) => if sent.is_err() {
                            // The sink stopped; its error (if any) is already recorded.
                            return;
                        }
                    }
                }
            }
            Ok(SourcePoll::Idle) => {
                if options.exit_when_idle && tracker.in_flight() == 0 {
                    break;
                }
                // Caught up: nothing more is coming soon, so a sink collecting a batch
                // writes what it has now instead of waiting out `timeout_ms`.
                if tracker.in_flight() > 0 {
                    for sink in &senders {
                        sink.flush.notify_one();
                    }
                }
            }
            Ok(SourcePoll::Pending) => {}
            Ok(SourcePoll::Done) => break,
            Err(e) if e.is_transient() => {
                let delay = backoff.next_delay();
                tracing::warn!(source = %name, error = %e, retry_in_ms = delay.as_millis() as u64, "source failed; restarting from the last checkpoint");
                tokio::select! {
                    _ = until_stopped(control.stop.subscribe()) => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                match start_with_retry(
                    &name,
                    spec.source.as_mut(),
                    resume.clone(),
                    &control,
                    &options,
                )
                .await
                {
                    Ok(true) => restarted = tokio::time::Instant::now(),
                    Ok(false) => break,
                    Err(e) => return fail(e),
                }
            }
            Err(e) => return fail(e),
        }
    }
}

fn route_changes(route: &Route, changes: Vec<Change>) -> Vec<Change> {
    match route.chains.as_slice() {
        [chain] if chain.is_empty() => changes,
        [chain] => changes
            .into_iter()
            .filter_map(|c| apply_chain(chain, c))
            .collect(),
        chains => {
            let mut out = Vec::new();
            for change in changes {
                for chain in chains {
                    out.extend(apply_chain(chain, change.clone()));
                }
            }
            out
        }
    }
}

async fn sink_task(
    mut spec: SinkSpec,
    mut rx: mpsc::Receiver<SinkMsg>,
    flush: Arc<Notify>,
    control: Control,
    options: RunOptions,
) {
    let timeout = Duration::from_millis(spec.batch.timeout_ms);
    let mut acks: Vec<(Arc<AckTracker>, u64)> = Vec::new();
    loop {
        let Some(first) = rx.recv().await else { break };
        let mut bytes: usize = first.changes.iter().map(Change::approx_bytes).sum();
        // The first message's changes become the batch as they are, not moved one by one.
        let mut batch = first.changes;
        acks.push((first.tracker, first.seq));
        let deadline = tokio::time::Instant::now() + timeout;
        while batch.len() < spec.batch.max_events && bytes < spec.batch.max_bytes {
            let next = tokio::select! {
                biased;
                msg = rx.recv() => msg,
                () = tokio::time::sleep_until(deadline) => None,
                () = flush.notified() => None,
            };
            match next {
                Some(msg) => {
                    bytes += msg.changes.iter().map(Change::approx_bytes).sum::<usize>();
                    batch.extend(msg.changes);
                    acks.push((msg.tracker, msg.seq));
                }
                None => break,
            }
        }
        let mut backoff = Backoff::new(options.retry_min, options.retry_max);
        loop {
            match spec.sink.write(&batch).await {
                Ok(()) => break,
                Err(e) if e.is_transient() => {
                    if control.stopping() {
                        tracing::warn!(sink = %spec.name, error = %e, "giving up on a batch at shutdown; it stays unacknowledged and will be replayed");
                        return;
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(sink = %spec.name, error = %e, retry_in_ms = delay.as_millis() as u64, "sink write failed; retrying");
                    tokio::select! {
                        _ = until_stopped(control.stop.subscribe()) => {}
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                Err(e) => {
                    return control.fail(e.context(format!("sink \"{}\"", spec.name)));
                }
            }
        }
        drop(batch);
        for (tracker, seq) in acks.drain(..) {
            tracker.ack(seq);
        }
    }
    if let Err(e) = spec.sink.close().await {
        control.fail(e.context(format!("sink \"{}\"", spec.name)));
    }
}

async fn checkpointer(
    name: String,
    tracker: Arc<AckTracker>,
    store: Arc<dyn CheckpointStore>,
    last: Option<Checkpoint>,
    mut finished: watch::Receiver<bool>,
    control: Control,
    options: RunOptions,
) -> (String, u64, Option<Position>) {
    let (progress_interval, checkpoint_interval) =
        (options.progress_interval, options.checkpoint_interval);
    let mut total = last.as_ref().map_or(0, |c| c.events);
    let mut saved: Option<Position> = last.map(|c| c.position);
    let mut run_events = 0u64;
    let started = Instant::now();
    let mut last_log = Instant::now();
    loop {
        let done = *finished.borrow();
        if let Some((position, events)) = tracker.take_done() {
            run_events += events;
            total += events;
            // Never move a checkpoint backwards (a source restarted after a transient error
            // re-delivers from the checkpoint; those batches carry older positions).
            let older = saved
                .as_ref()
                .is_some_and(|s| position.partial_cmp(s) == Some(std::cmp::Ordering::Less));
            if !older && saved.as_ref() != Some(&position) {
                let cp = Checkpoint {
                    position: position.clone(),
                    updated_at_ms: now_ms(),
                    events: total,
                };
                let store = store.clone();
                let source = name.clone();
                let result = tokio::task::spawn_blocking(move || store.save(&source, &cp)).await;
                match result {
                    Ok(Ok(())) => {
                        tracker.mark_saved(position.clone());
                        saved = Some(position);
                        if !done && !checkpoint_interval.is_zero() {
                            tokio::select! {
                                _ = tokio::time::sleep(checkpoint_interval) => {}
                                _ = finished.changed() => {}
                            }
                        }
                    }
                    Ok(Err(e)) => {
                        control.fail(e.context(format!("source \"{name}\"")));
                        break;
                    }
                    Err(e) => {
                        control.fail(Error::permanent("checkpoint task failed").with_source(e));
                        break;
                    }
                }
            }
            if last_log.elapsed() >= progress_interval {
                last_log = Instant::now();
                let rate = run_events as f64 / started.elapsed().as_secs_f64().max(0.001);
                tracing::info!(source = %name, events = run_events, events_per_s = rate as u64, checkpoint = %saved.as_ref().map_or(String::new(), |p| p.to_string()), "progress");
            }
            continue;
        }
        if done {
            break;
        }
        tokio::select! {
            _ = tracker.advanced.notified() => {}
            _ = finished.changed() => {}
        }
    }
    (name, run_events, saved)
}
