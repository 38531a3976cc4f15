//! SIGKILL `sluice run` on a PostgreSQL source again and again, during the snapshot and
//! while streaming, while a writer keeps writing (multi-row transactions and unchanged TOAST
//! included); then drain with `run --once` and check that the file sink equals the table.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::pg::{ITEMS, Pg, Rng, TestDb, compare, fold, random_write, write_config};
use crate::{events, run_ok, sluice};

const SEED_ROWS: u64 = 100_000;

/// A row for a failure message: the doc as its length.
fn brief(row: Option<&(String, i64, Option<String>)>) -> Option<(String, i64, Option<usize>)> {
    row.map(|(val, n, doc)| (val.clone(), *n, doc.as_ref().map(String::len)))
}

#[test]
fn pg_sigkill_mid_snapshot_and_mid_stream_loses_nothing() {
    let Some(db) = TestDb::from_env() else {
        return;
    };
    db.client.exec(ITEMS);
    db.client.exec(&format!(
        "INSERT INTO items SELECT g, 'seed', 0, CASE WHEN g % 500 = 0 THEN repeat(md5(g::text), 100) END
         FROM generate_series(1, {SEED_ROWS}) g"
    ));
    // Kept when the test fails (removed at the end), like the database.
    let dir = tempfile::tempdir().unwrap().keep();
    eprintln!("test directory: {}", dir.display());
    let config = write_config(&dir, &db.url, &db.slot());

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let url = db.url.clone();
        std::thread::spawn(move || {
            let c = Pg::connect(&url).unwrap();
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            let mut writes = 0u64;
            while !stop.load(Ordering::SeqCst) {
                c.exec(&random_write(&mut rng, SEED_ROWS + 10_000));
                writes += 1;
                if writes.is_multiple_of(20) {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            writes
        })
    };

    let kills: u32 = 8;
    let (snapshot_kills, stream_kills) = crate::kill_loop(
        &config,
        &dir.join(".sluice/checkpoints/app.json"),
        &crate::KillPlan {
            kills,
            // Two kills during the snapshot of 100k rows, then mid-stream.
            snapshot_kills_after_ms: vec![400, 700],
            stream_base_ms: 100,
            stream_spread_ms: 600,
            snapshot_timeout: Duration::from_secs(120),
        },
    );
    assert!(
        snapshot_kills >= 1 && stream_kills >= 4,
        "{snapshot_kills} snapshot kills, {stream_kills} stream kills"
    );
    stop.store(true, Ordering::SeqCst);
    let writes = writer.join().unwrap();
    assert!(writes > 500, "the writer made only {writes} writes");

    db.client.flush_wal();
    let started = Instant::now();
    run_ok(sluice().args(["run", "--once", "-c"]).arg(&config));
    eprintln!("recovery run took {:?}", started.elapsed());

    let evs = events(&dir.join("out.jsonl"));
    let folded = fold(&evs);
    let truth = db.client.items();
    let (lost, stale, ghosts) = compare(&truth, &folded.state);
    eprintln!(
        "kills {kills}, writes {writes}, events {} ({} reads, {} streamed, {} unchanged TOAST), lost {lost}, stale {stale}, ghosts {ghosts}, duplicates {}",
        evs.len(),
        folded.reads,
        folded.streamed,
        folded.unchanged,
        folded.duplicates
    );
    if (lost, stale, ghosts) != (0, 0, 0) {
        let diff: Vec<_> = truth
            .iter()
            .filter(|(k, v)| folded.state.get(k) != Some(*v))
            .take(5)
            .map(|(k, v)| (k, brief(Some(v)), brief(folded.state.get(k))))
            .collect();
        panic!("the sink must equal the source; first differences (id, table, sink): {diff:?}");
    }
    assert!(
        folded.unchanged > 0,
        "no unchanged TOAST value was exercised"
    );
    // Duplicates come only from what was in flight at each kill: the source channel (4
    // batches), one batch in the sink and one being read, of 500 changes, plus the rest of a
    // transaction cut by the checkpoint.
    assert!(
        folded.duplicates <= kills as usize * 7 * 500,
        "{} duplicates for {kills} kills",
        folded.duplicates
    );
    std::fs::remove_dir_all(&dir).unwrap();
    db.finish();
}

/// The test server commits with `synchronous_commit = off`: a commit is acknowledged before
/// its WAL is flushed, and decoding reads only flushed WAL. `run --once` right after a commit
/// must still deliver it (sluice flushes the WAL before it decides it is caught up), not stop
/// at the older flush position and leave the commit for the next run.
#[test]
fn run_once_right_after_async_commits_delivers_them() {
    let Some(db) = TestDb::from_env() else {
        return;
    };
    db.client.exec(ITEMS);
    db.client
        .exec("INSERT INTO items VALUES (0, 'seed', 0, NULL)");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db.url, &db.slot());
    run_ok(sluice().args(["run", "--once", "-c"]).arg(&config));
    for id in 1..=8 {
        db.client.exec(&format!(
            "INSERT INTO items VALUES ({id}, 'async', 0, NULL); UPDATE items SET n = {id} WHERE id = 0"
        ));
        run_ok(sluice().args(["run", "--once", "-c"]).arg(&config));
        let state = fold(&events(&dir.path().join("out.jsonl"))).state;
        assert!(
            state.contains_key(&id) && state.get(&0).map(|r| r.1) == Some(id),
            "run --once after commit {id} stopped before it: {:?}",
            state.get(&0)
        );
    }
    drop(dir);
    db.finish();
}

/// Creating a slot waits for every transaction in progress; sluice says so, and a shutdown
/// request ends the wait instead of being ignored until the transaction ends.
#[test]
fn a_shutdown_while_the_slot_waits_for_an_open_transaction_is_prompt() {
    let Some(db) = TestDb::from_env() else {
        return;
    };
    db.client.exec(ITEMS);
    db.client
        .exec("INSERT INTO items VALUES (0, 'seed', 0, NULL)");
    // A transaction with an xid, left open.
    let holder = Pg::connect(&db.url).unwrap();
    holder.exec("BEGIN; INSERT INTO items VALUES (1, 'open', 0, NULL)");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db.url, &db.slot());
    let child = sluice()
        .args(["run", "-c"])
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let started = Instant::now();
    let pid = child.id().to_string();
    // Should the wait not end, fail instead of hanging: SIGKILL it after 20 s.
    let watchdog = pid.clone();
    let exited = Arc::new(AtomicBool::new(false));
    let exited_seen = exited.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(20));
        if !exited_seen.load(Ordering::SeqCst) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &watchdog])
                .status();
        }
    });
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    exited.store(true, Ordering::SeqCst);
    let waited = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        waited < Duration::from_secs(5),
        "sluice took {waited:?} to stop while the slot waited: {stderr}"
    );
    assert!(
        stderr.contains("waits for every transaction in progress to end"),
        "{stderr}"
    );
    holder.exec("ROLLBACK");
    drop(holder);
    drop(dir);
    db.finish();
}
