//! Engine benchmark: an in-memory source through the whole engine (transform-free route,
//! batching, ack tracking, fsynced file checkpoints) into a null sink, against an anchor that
//! moves the same batches through a bare bounded channel and drops them.
//!
//! Each side runs in its own child process so peak RSS (VmHWM) is measured separately.
//!
//!   cargo bench -p sluice-engine --bench engine
//!   SLUICE_BENCH_EVENTS=5000000 cargo bench -p sluice-engine --bench engine

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sluice_config::BatchConfig;
use sluice_core::{
    Change, Name, Op, Position, Result, Row, Source, SourceBatch, SourcePoll, SqlitePosition, Value,
};
use sluice_engine::{FileCheckpointStore, Pipeline, Route, RunOptions, SinkSpec, SourceSpec};

const BATCH: i64 = 1_000;

struct Gen {
    columns: [Name; 5],
    next: i64,
    total: i64,
}

impl Gen {
    fn new(total: i64) -> Self {
        Self {
            columns: ["id", "name", "amount", "active", "note"].map(Name::new),
            next: 1,
            total,
        }
    }

    fn batch(&mut self) -> Option<SourceBatch> {
        if self.next > self.total {
            return None;
        }
        let end = (self.next + BATCH - 1).min(self.total);
        let changes = (self.next..=end)
            .map(|i| {
                let c = &self.columns;
                let after: Row = Row(vec![
                    (c[0], Value::Int(i)),
                    (
                        c[1],
                        Value::Text(sluice_core::format_compact!("customer-{i:08}")),
                    ),
                    (c[2], Value::Float(i as f64 * 0.25)),
                    (c[3], Value::Bool(i % 2 == 0)),
                    (
                        c[4],
                        Value::Text("a note of about forty characters, fixed".into()),
                    ),
                ]);
                Change {
                    op: Op::Insert,
                    source: "bench".into(),
                    table: "main.orders".into(),
                    key: Row(vec![(c[0], Value::Int(i))]),
                    before: None,
                    after: Some(after),
                    position: Position::Sqlite(SqlitePosition {
                        seq: i,
                        snapshot: false,
                    }),
                    tx: None,
                    schema: None,
                }
            })
            .collect();
        self.next = end + 1;
        Some(SourceBatch {
            changes,
            position: Position::Sqlite(SqlitePosition {
                seq: end,
                snapshot: false,
            }),
        })
    }
}

#[async_trait]
impl Source for Gen {
    async fn start(&mut self, _from: Option<Position>) -> Result<()> {
        Ok(())
    }
    async fn poll(&mut self) -> Result<SourcePoll> {
        Ok(match self.batch() {
            Some(b) => SourcePoll::Batch(b),
            None => SourcePoll::Idle,
        })
    }
    async fn confirm(&mut self, _position: &Position) -> Result<()> {
        Ok(())
    }
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn anchor(total: i64) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<SourceBatch>(4);
    let started = Instant::now();
    let consumer = tokio::spawn(async move {
        let mut n = 0usize;
        while let Some(b) = rx.recv().await {
            n += b.changes.len();
        }
        n
    });
    let mut g = Gen::new(total);
    while let Some(b) = g.batch() {
        if tx.send(b).await.is_err() {
            break;
        }
    }
    drop(tx);
    let n = consumer.await.unwrap_or(0);
    assert_eq!(n as i64, total);
    started.elapsed()
}

async fn engine(total: i64) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let pipeline = Pipeline {
        sources: vec![SourceSpec {
            name: "bench".into(),
            source: Box::new(Gen::new(total)),
            routes: vec![Route {
                sink: 0,
                chains: vec![vec![]],
            }],
        }],
        sinks: vec![SinkSpec {
            name: "null".into(),
            sink: Box::new(sluice_sinks::null::NullSink::default()),
            batch: BatchConfig::default(),
        }],
        store: Arc::new(FileCheckpointStore::new(dir.path())),
        options: RunOptions {
            exit_when_idle: true,
            ..RunOptions::default()
        },
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let summary = pipeline.run(rx).await.expect("engine run");
    let elapsed = started.elapsed();
    assert_eq!(
        summary.sources[0].1 as i64, total,
        "every event checkpointed"
    );
    elapsed
}

fn main() {
    let total: i64 = std::env::var("SLUICE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    if let Ok(mode) = std::env::var("SLUICE_BENCH_MODE") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let elapsed = rt.block_on(async {
            if mode == "anchor" {
                anchor(total).await
            } else {
                engine(total).await
            }
        });
        println!("{} {}", elapsed.as_secs_f64(), peak_rss_mb());
        return;
    }
    let exe = std::env::current_exe().expect("current exe");
    let run = |mode: &str| -> (f64, f64) {
        let out = std::process::Command::new(&exe)
            .env("SLUICE_BENCH_MODE", mode)
            .env("SLUICE_BENCH_EVENTS", total.to_string())
            .output()
            .expect("run child");
        assert!(
            out.status.success(),
            "{mode} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text
            .split_whitespace()
            .map(|v| v.parse::<f64>().unwrap_or(0.0));
        (it.next().unwrap_or(0.0), it.next().unwrap_or(0.0))
    };
    println!("engine benchmark: {total} events of 5 columns, source batches of {BATCH}, null sink");
    let (at, arss) = run("anchor");
    let (et, erss) = run("engine");
    let rate = |t: f64| total as f64 / t;
    println!(
        "{:<44} {:>12.0} ev/s  {:>7.3} s  peak RSS {:>6.1} MB",
        "anchor: same batches through a bare channel",
        rate(at),
        at,
        arss
    );
    println!(
        "{:<44} {:>12.0} ev/s  {:>7.3} s  peak RSS {:>6.1} MB",
        "sluice engine: ack-then-checkpoint, fsync",
        rate(et),
        et,
        erss
    );
    println!(
        "ratio: engine throughput = {:.2}x the anchor's; engine RSS = {:.2}x",
        at / et,
        erss / arss.max(0.1)
    );
}
