//! Engine tests with in-memory sources and sinks: ack-then-checkpoint, retries, permanent
//! errors, shutdown draining, fan-out and backpressure.

// Test helpers outside #[test] functions may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sluice_config::BatchConfig;
use sluice_core::{
    Change, CheckpointStore, Error, MemoryCheckpointStore, Name, Op, Position, Result, Row, Sink,
    Source, SourceBatch, SourcePoll, SqlitePosition, Value,
};
use sluice_engine::{Pipeline, Route, RunOptions, SinkSpec, SourceSpec};

fn pos(seq: i64) -> Position {
    Position::Sqlite(SqlitePosition {
        seq,
        snapshot: false,
    })
}

fn change(seq: i64) -> Change {
    let row: Row = [(Name::new("id"), Value::Int(seq))].into_iter().collect();
    Change {
        op: Op::Insert,
        source: "mem".into(),
        table: "main.t".into(),
        key: row.clone(),
        before: None,
        after: Some(row),
        position: pos(seq),
        tx: None,
        schema: None,
    }
}

/// Produces changes 1..=total in batches, resuming after a checkpoint; records confirms.
struct MemSource {
    total: i64,
    batch: i64,
    next: i64,
    confirmed: Arc<Mutex<Vec<Position>>>,
}

#[async_trait]
impl Source for MemSource {
    async fn start(&mut self, from: Option<Position>) -> Result<()> {
        self.next = match from {
            Some(Position::Sqlite(p)) => p.seq + 1,
            _ => 1,
        };
        Ok(())
    }

    async fn poll(&mut self) -> Result<SourcePoll> {
        if self.next > self.total {
            tokio::time::sleep(Duration::from_millis(5)).await;
            return Ok(SourcePoll::Idle);
        }
        let end = (self.next + self.batch - 1).min(self.total);
        let changes = (self.next..=end).map(change).collect();
        self.next = end + 1;
        Ok(SourcePoll::Batch(SourceBatch {
            changes,
            position: pos(end),
        }))
    }

    async fn confirm(&mut self, position: &Position) -> Result<()> {
        self.confirmed.lock().unwrap().push(position.clone());
        Ok(())
    }
}

/// Records writes; can fail transiently N times, or permanently after some ids.
#[derive(Clone, Default)]
struct MemSink {
    seen: Arc<Mutex<Vec<i64>>>,
    transient_failures: Arc<AtomicUsize>,
    permanent_after: Option<i64>,
    delay: Duration,
}

#[async_trait]
impl Sink for MemSink {
    async fn write(&mut self, batch: &[Change]) -> Result<()> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.transient_failures.load(Ordering::SeqCst) > 0 {
            self.transient_failures.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::transient("sink briefly unavailable"));
        }
        let ids: Vec<i64> = batch
            .iter()
            .map(|c| match c.key.get("id") {
                Some(Value::Int(i)) => *i,
                _ => -1,
            })
            .collect();
        if let Some(limit) = self.permanent_after
            && ids.iter().any(|i| *i > limit)
        {
            return Err(Error::permanent("sink rejected the batch"));
        }
        self.seen.lock().unwrap().extend(ids);
        Ok(())
    }
}

fn options() -> RunOptions {
    RunOptions {
        exit_when_idle: true,
        retry_min: Duration::from_millis(1),
        retry_max: Duration::from_millis(5),
        ..RunOptions::default()
    }
}

fn pipeline(
    total: i64,
    sinks: Vec<MemSink>,
    store: Arc<MemoryCheckpointStore>,
    confirmed: Arc<Mutex<Vec<Position>>>,
) -> Pipeline {
    let routes = (0..sinks.len())
        .map(|sink| Route {
            sink,
            chains: vec![vec![]],
        })
        .collect();
    Pipeline {
        sources: vec![SourceSpec {
            name: "mem".into(),
            source: Box::new(MemSource {
                total,
                batch: 7,
                next: 1,
                confirmed,
            }),
            routes,
        }],
        sinks: sinks
            .into_iter()
            .enumerate()
            .map(|(i, s)| SinkSpec {
                name: format!("s{i}"),
                sink: Box::new(s),
                batch: BatchConfig {
                    max_events: 20,
                    max_bytes: 1 << 20,
                    timeout_ms: 1,
                },
            })
            .collect(),
        store,
        options: options(),
    }
}

fn checkpoint_seq(store: &MemoryCheckpointStore) -> Option<i64> {
    match store.load("mem").unwrap().map(|c| c.position) {
        Some(Position::Sqlite(p)) => Some(p.seq),
        _ => None,
    }
}

async fn run(p: Pipeline) -> Result<sluice_engine::RunSummary> {
    let (_tx, rx) = tokio::sync::watch::channel(false);
    tokio::time::timeout(Duration::from_secs(20), p.run(rx))
        .await
        .expect("pipeline hung")
}

#[tokio::test]
async fn delivers_everything_to_every_sink_and_checkpoints_the_end() {
    let store = Arc::new(MemoryCheckpointStore::default());
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let a = MemSink::default();
    let b = MemSink {
        delay: Duration::from_millis(2),
        ..MemSink::default()
    };
    let summary = run(pipeline(
        500,
        vec![a.clone(), b.clone()],
        store.clone(),
        confirmed.clone(),
    ))
    .await
    .unwrap();
    let expected: Vec<i64> = (1..=500).collect();
    assert_eq!(*a.seen.lock().unwrap(), expected);
    assert_eq!(*b.seen.lock().unwrap(), expected);
    assert_eq!(checkpoint_seq(&store), Some(500));
    assert_eq!(summary.sources[0].1, 500);
    // Confirms only ever name saved positions, in order.
    let confirmed = confirmed.lock().unwrap();
    assert!(confirmed.windows(2).all(|w| w[0] < w[1]));
    // The final checkpoint is confirmed to the source even though the source stopped first.
    assert_eq!(confirmed.last(), Some(&pos(500)));
}

#[tokio::test]
async fn transient_sink_errors_are_retried_without_loss() {
    let store = Arc::new(MemoryCheckpointStore::default());
    let sink = MemSink::default();
    sink.transient_failures.store(5, Ordering::SeqCst);
    run(pipeline(
        100,
        vec![sink.clone()],
        store.clone(),
        Arc::default(),
    ))
    .await
    .unwrap();
    assert_eq!(*sink.seen.lock().unwrap(), (1..=100).collect::<Vec<_>>());
    assert_eq!(checkpoint_seq(&store), Some(100));
}

#[tokio::test]
async fn permanent_error_stops_with_checkpoint_at_last_fully_acked_batch() {
    let store = Arc::new(MemoryCheckpointStore::default());
    let good = MemSink::default();
    let bad = MemSink {
        permanent_after: Some(60),
        ..MemSink::default()
    };
    let err = run(pipeline(
        200,
        vec![good.clone(), bad.clone()],
        store.clone(),
        Arc::default(),
    ))
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("sink \"s1\": sink rejected the batch"),
        "{err}"
    );
    let cp = checkpoint_seq(&store).unwrap_or(0);
    let bad_seen = bad.seen.lock().unwrap().clone();
    let bad_max = bad_seen.iter().copied().max().unwrap_or(0);
    // The checkpoint never passes what the failing sink accepted.
    assert!(
        cp <= bad_max && bad_max <= 60,
        "checkpoint {cp}, bad sink saw up to {bad_max}"
    );

    // Resume with a healthy sink: everything after the checkpoint arrives.
    let healed = MemSink::default();
    run(pipeline(
        200,
        vec![healed.clone()],
        store.clone(),
        Arc::default(),
    ))
    .await
    .unwrap();
    let mut all: Vec<i64> = bad_seen
        .into_iter()
        .chain(healed.seen.lock().unwrap().iter().copied())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all, (1..=200).collect::<Vec<_>>());
}

#[tokio::test]
async fn shutdown_drains_and_saves() {
    let store = Arc::new(MemoryCheckpointStore::default());
    let sink = MemSink {
        delay: Duration::from_millis(1),
        ..MemSink::default()
    };
    let mut p = pipeline(1_000_000, vec![sink.clone()], store.clone(), Arc::default());
    p.options.exit_when_idle = false;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(p.run(rx));
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.send(true).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let seen = sink.seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    // Everything the sink accepted is covered by the saved checkpoint (drained, not dropped).
    assert_eq!(checkpoint_seq(&store), seen.last().copied());
    assert_eq!(summary.sources[0].1, seen.len() as u64);
}

#[tokio::test]
async fn slow_sink_applies_backpressure() {
    // A source of a million changes against a slow sink: the source must not run ahead by
    // more than the channel and batch bounds.
    let store = Arc::new(MemoryCheckpointStore::default());
    let sink = MemSink {
        delay: Duration::from_millis(20),
        ..MemSink::default()
    };
    let mut p = pipeline(1_000_000, vec![sink.clone()], store.clone(), Arc::default());
    p.options.exit_when_idle = false;
    let produced = Arc::new(AtomicUsize::new(0));
    struct Counting(Box<dyn Source>, Arc<AtomicUsize>);
    #[async_trait]
    impl Source for Counting {
        async fn start(&mut self, from: Option<Position>) -> Result<()> {
            self.0.start(from).await
        }
        async fn poll(&mut self) -> Result<SourcePoll> {
            let p = self.0.poll().await?;
            if let SourcePoll::Batch(b) = &p {
                self.1.fetch_add(b.changes.len(), Ordering::SeqCst);
            }
            Ok(p)
        }
        async fn confirm(&mut self, position: &Position) -> Result<()> {
            self.0.confirm(position).await
        }
    }
    let inner = std::mem::replace(
        &mut p.sources[0].source,
        Box::new(MemSource {
            total: 0,
            batch: 1,
            next: 1,
            confirmed: Arc::default(),
        }),
    );
    p.sources[0].source = Box::new(Counting(inner, produced.clone()));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(p.run(rx));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ahead = produced.load(Ordering::SeqCst) - sink.seen.lock().unwrap().len();
    tx.send(true).unwrap();
    handle.await.unwrap().unwrap();
    // channel capacity (4) × batch (7) + one batch being built (20) + one in hand (7).
    assert!(
        ahead <= 4 * 7 + 20 + 7 + 7,
        "source ran {ahead} changes ahead of the sink"
    );
}

/// A sink collecting a batch stops waiting for more once the source is caught up: with a
/// `timeout_ms` of a minute, a run that exits when idle still ends at once, everything
/// written and checkpointed.
#[tokio::test]
async fn a_caught_up_source_has_the_partial_batch_written_without_waiting_out_the_timeout() {
    let store = Arc::new(MemoryCheckpointStore::default());
    let sink = MemSink::default();
    let mut p = pipeline(
        10,
        vec![sink.clone()],
        store.clone(),
        Arc::new(Mutex::new(Vec::new())),
    );
    p.sinks[0].batch.timeout_ms = 60_000;
    let started = std::time::Instant::now();
    run(p).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(*sink.seen.lock().unwrap(), (1..=10).collect::<Vec<_>>());
    assert_eq!(checkpoint_seq(&store), Some(10));
}
