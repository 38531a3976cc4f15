//! A slot moved past the pipeline's checkpoint by something else: `run` says so, loudly,
//! naming the gap; an ordinary restart (sluice confirms only what it checkpointed, idle
//! advances included) says nothing of the kind.

use std::time::Duration;

use crate::pg::{ITEMS, TestDb, write_config};
use crate::{events, sluice};

const WARNING: &str = "past this pipeline's checkpoint";

fn run_once(config: &std::path::Path) -> String {
    let out = sluice()
        .env("SLUICE_LOG", "warn")
        .args(["run", "--once", "-c"])
        .arg(config)
        .current_dir(config.parent().unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "run --once failed: {err}");
    err
}

#[test]
fn a_slot_advanced_past_the_checkpoint_is_reported() {
    let Some(db) = TestDb::from_env() else {
        return;
    };
    db.client.exec(ITEMS);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db.url, &db.slot());
    db.client.exec("INSERT INTO items VALUES (1, 'a', 0, NULL)");
    db.client.flush_wal();
    let err = run_once(&config);
    assert!(!err.contains(WARNING), "first run: {err}");
    // Idle for a while (heartbeats move the WAL, idle advances move the checkpoint), then
    // an ordinary restart: no warning.
    db.client.exec("INSERT INTO items VALUES (2, 'b', 0, NULL)");
    db.client.flush_wal();
    std::thread::sleep(Duration::from_millis(300));
    let err = run_once(&config);
    assert!(!err.contains(WARNING), "ordinary restart: {err}");
    assert_eq!(events(&dir.path().join("out.jsonl")).len(), 2);

    // Something else consumes the slot past a change sluice never saw.
    db.client
        .exec("INSERT INTO items VALUES (3, 'lost', 0, NULL)");
    db.client.flush_wal();
    db.client.exec(&format!(
        "SELECT pg_replication_slot_advance('{}', pg_current_wal_flush_lsn())",
        db.slot()
    ));
    let err = run_once(&config);
    assert!(err.contains(WARNING), "no warning: {err}");
    assert!(err.contains(&db.slot()), "{err}");
    assert!(err.contains("--resnapshot"), "{err}");
    db.finish();
}
