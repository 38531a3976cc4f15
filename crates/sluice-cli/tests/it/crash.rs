//! SIGKILL `sluice run` again and again while a writer keeps writing, then check that every
//! change arrived (duplicates only from in-flight batches).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::{Fixture, Rng, events, run_ok, sluice};

#[test]
fn sigkill_mid_snapshot_and_mid_stream_loses_nothing() {
    let f = Fixture::new(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, val TEXT NOT NULL, n INTEGER NOT NULL);",
    );
    {
        let mut c = f.db();
        let tx = c.transaction().unwrap();
        for i in 0..60_000 {
            tx.execute("INSERT INTO items VALUES (?1, 'seed', 0)", [i])
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let config = f.write_config(
        "batch_size = 200",
        "type = \"file\"\npath = \"out.jsonl\"\nbatch = { max_events = 200, timeout_ms = 5 }",
    );

    // The writer: inserts, updates and deletes until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let db = f.path("app.db");
        std::thread::spawn(move || {
            let c = rusqlite::Connection::open(db).unwrap();
            c.busy_timeout(Duration::from_secs(30)).unwrap();
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            let mut writes = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let id = (rng.next_u64() % 70_000) as i64;
                let sql = match rng.next_u64() % 3 {
                    0 => "INSERT OR REPLACE INTO items VALUES (?1, 'ins', 1)",
                    1 => "UPDATE items SET val = 'upd', n = n + 1 WHERE id = ?1",
                    _ => "DELETE FROM items WHERE id = ?1",
                };
                c.execute(sql, [id]).unwrap();
                writes += 1;
                if writes.is_multiple_of(50) {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            writes
        })
    };

    let kills: u32 = 8;
    let (snapshot_kills, stream_kills) = crate::kill_loop(
        &config,
        &f.path(".sluice/checkpoints/app.json"),
        &crate::KillPlan {
            kills,
            // Two kills during the snapshot of 60k rows, then mid-stream.
            snapshot_kills_after_ms: vec![60, 100],
            stream_base_ms: 20,
            stream_spread_ms: 300,
            snapshot_timeout: Duration::from_secs(60),
        },
    );
    assert!(
        snapshot_kills >= 1 && stream_kills >= 4,
        "{snapshot_kills} snapshot kills, {stream_kills} stream kills"
    );
    stop.store(true, Ordering::SeqCst);
    let writes = writer.join().unwrap();
    assert!(writes > 500, "the writer made only {writes} writes");

    // Restart and drain.
    let started = Instant::now();
    run_ok(sluice().args(["run", "--once", "-c"]).arg(&config));
    eprintln!("recovery run took {:?}", started.elapsed());

    // Fold the events into a table state, counting duplicates by changelog position.
    let evs = events(&f.path("out.jsonl"));
    let mut state: BTreeMap<i64, (String, i64)> = BTreeMap::new();
    let mut seen_positions: BTreeMap<i64, u32> = BTreeMap::new();
    for e in &evs {
        let id = e["key"]["id"].as_i64().unwrap();
        match e["op"].as_str().unwrap() {
            "read" | "insert" | "update" => {
                let after = &e["after"];
                state.insert(
                    id,
                    (
                        after["val"].as_str().unwrap().to_owned(),
                        after["n"].as_i64().unwrap(),
                    ),
                );
            }
            "delete" => {
                state.remove(&id);
            }
            other => panic!("unexpected op {other}"),
        }
        if e["position"]["snapshot"].is_null() {
            *seen_positions
                .entry(e["position"]["seq"].as_i64().unwrap())
                .or_default() += 1;
        }
    }
    let truth: BTreeMap<i64, (String, i64)> = {
        let c = f.db();
        let mut s = c.prepare("SELECT id, val, n FROM items").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let lost = truth.iter().filter(|(k, _)| !state.contains_key(k)).count();
    let stale = truth
        .iter()
        .filter(|(k, v)| state.get(k).is_some_and(|s| s != *v))
        .count();
    let ghosts = state.keys().filter(|k| !truth.contains_key(k)).count();
    let duplicates: u32 = seen_positions.values().map(|n| n - 1).sum();
    eprintln!(
        "kills {kills}, writes {writes}, events {}, lost {lost}, stale {stale}, ghosts {ghosts}, duplicates {duplicates}",
        evs.len()
    );
    assert_eq!(
        (lost, stale, ghosts),
        (0, 0, 0),
        "the sink must equal the source"
    );
    // Every changelog entry since capture started arrived at least once.
    let max_seq = *seen_positions.keys().max().unwrap();
    let first_seq = *seen_positions.keys().min().unwrap();
    assert_eq!(
        seen_positions.len() as i64,
        max_seq - first_seq + 1,
        "a changelog entry is missing"
    );
    // Duplicates come only from batches in flight at each kill: at most the channel (4) and the
    // batch being written (1) times the batch size (200), plus one source batch, per kill.
    assert!(
        duplicates <= kills * 6 * 200,
        "{duplicates} duplicates for {kills} kills"
    );
}
