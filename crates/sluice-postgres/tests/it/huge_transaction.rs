//! A one-million-row transaction streams through the source in bounded memory: the server
//! streams it while it runs (it is far bigger than `logical_decoding_work_mem`), sluice
//! spills it to a file until the commit, then hands it on `batch_size` changes at a time,
//! never holding the whole transaction.

use std::time::{Duration, Instant};

use sluice_core::{Source, SourcePoll};
use sluice_postgres::PostgresSource;

use crate::common::TestDb;

const ROWS: u64 = 1_000_000;
/// Allowed growth of the process's resident memory while the transaction streams. The rows
/// are ~100 bytes of text each (~140 MB as changes), so buffering the transaction would
/// blow far past it.
const MAX_GROWTH_BYTES: u64 = 150 << 20;

/// VmRSS of this process, from /proc/self/status.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn huge_transaction_streams_in_bounded_memory() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec("CREATE TABLE big (id bigint PRIMARY KEY, body text NOT NULL)")
        .await;
    let mut config = db.config("app");
    config.snapshot = sluice_config::model::SnapshotMode::Never;
    let mut source = PostgresSource::new("app", &config);
    source.start(None).await.unwrap();
    let started = Instant::now();
    db.exec(&format!(
        "INSERT INTO big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, {ROWS}) g"
    ))
    .await;
    eprintln!(
        "inserted {ROWS} rows in one transaction in {:?}",
        started.elapsed()
    );

    let before = rss_bytes();
    let mut peak = before;
    let mut seen = 0u64;
    let mut last_seen = false;
    let mut xid = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    let streaming = Instant::now();
    while seen < ROWS {
        assert!(
            Instant::now() < deadline,
            "only {seen} of {ROWS} changes arrived"
        );
        let SourcePoll::Batch(batch) = source.poll().await.unwrap() else {
            continue;
        };
        for change in &batch.changes {
            let tx = change.tx.as_ref().unwrap();
            assert_eq!(tx.ordinal, seen, "changes out of order");
            assert_eq!(*xid.get_or_insert_with(|| tx.id.clone()), tx.id);
            last_seen = tx.last;
            seen += 1;
        }
        source.confirm(&batch.position).await.unwrap();
        // The consumer keeps nothing: what stays resident is the source's doing.
        drop(batch);
        peak = peak.max(rss_bytes());
    }
    assert!(
        last_seen,
        "the last change is not marked last in its transaction"
    );
    let growth = peak.saturating_sub(before);
    eprintln!(
        "streamed {seen} changes in {:?}; RSS before {} MB, peak {} MB, growth {} MB",
        streaming.elapsed(),
        before >> 20,
        peak >> 20,
        growth >> 20
    );
    assert!(
        growth < MAX_GROWTH_BYTES,
        "resident memory grew by {} MB while streaming one transaction",
        growth >> 20
    );
    drop(source);
    db.finish().await;
}
