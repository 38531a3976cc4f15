//! Error messages and classes: configuration mistakes are permanent and say what to do; a
//! locked database is transient (after the busy timeout) or simply waited for.

use std::time::{Duration, Instant};

use sluice_core::{ErrorClass, Source};

use crate::support::{Db, finish_snapshot};

async fn start_error(db: &Db, tables: &[&str]) -> sluice_core::Error {
    let mut source = db.source(tables);
    source.start(None).await.expect_err("start should fail")
}

#[tokio::test]
async fn table_without_primary_key_is_named_with_a_hint() {
    let db = Db::new("CREATE TABLE notes (body TEXT); CREATE TABLE t (id INTEGER PRIMARY KEY);");
    let err = start_error(&db, &["notes"]).await;
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert_eq!(
        err.to_string(),
        "table \"main.notes\" has no primary key; sluice keys every change by primary key (hint: add a PRIMARY KEY, or leave the table out of \"tables\")"
    );
    // With no "tables", tables without a key are skipped rather than fatal.
    let mut source = db.source(&[]);
    source.start(None).await.unwrap();
    finish_snapshot(&mut source).await;
    assert!(
        db.master().iter().all(|(ty, _, sql)| ty != "trigger"
            || !sql.as_deref().unwrap_or("").contains("ON \"notes\""))
    );
}

#[tokio::test]
async fn unknown_table_lists_the_available_ones() {
    let db = Db::new(
        "CREATE TABLE users (id INTEGER PRIMARY KEY); CREATE TABLE orders (id INTEGER PRIMARY KEY);",
    );
    let err = start_error(&db, &["main.userz"]).await;
    assert_eq!(err.class(), ErrorClass::Permanent);
    let msg = err.to_string();
    assert!(
        msg.starts_with("table \"main.userz\" in \"tables\" does not exist in sqlite database \""),
        "{msg}"
    );
    assert!(
        msg.ends_with("(available tables: \"main.orders\", \"main.users\")"),
        "{msg}"
    );
}

#[tokio::test]
async fn missing_file_is_permanent_and_not_created() {
    let db = Db::new("");
    let mut config = db.config(&[]);
    config.path = db.path.with_file_name("nope.db");
    let mut source = sluice_sqlite::SqliteSource::new("app", &config);
    let err = source.start(None).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert_eq!(
        err.to_string(),
        format!(
            "sqlite database \"{}\" does not exist (hint: check \"path\" in the source config, or create it first)",
            config.path.display()
        )
    );
    assert!(!config.path.exists());
    assert!(sluice_sqlite::check(&config).await.is_err());
    assert!(sluice_sqlite::setup(&config).await.is_err());
    assert!(!config.path.exists());
}

#[tokio::test]
async fn file_that_is_not_a_database_is_permanent() {
    let db = Db::new("");
    let path = db.path.with_file_name("junk.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let mut config = db.config(&[]);
    config.path = path.clone();
    let err = sluice_sqlite::check(&config).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert_eq!(
        err.to_string(),
        format!(
            "file \"{}\" is not a sqlite database (hint: check \"path\" in the source config)",
            path.display()
        )
    );
    let err = sluice_sqlite::introspect(&path).unwrap_err();
    assert!(
        err.to_string().contains("is not a sqlite database"),
        "{err}"
    );
}

/// Another connection holds `BEGIN EXCLUSIVE` (rollback journal: nobody may even read) for
/// longer than the busy timeout: start fails with a transient error, so the engine retries.
#[tokio::test]
async fn exclusive_lock_held_past_busy_timeout_is_transient() {
    let db = Db::new("CREATE TABLE t (id INTEGER PRIMARY KEY);");
    let holder = db.conn();
    holder
        .execute_batch("BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")
        .unwrap();
    let started = Instant::now();
    let err = start_error(&db, &[]).await;
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "gave up after {:?}",
        started.elapsed()
    );
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "sqlite database \"{}\" is locked by another connection",
            db.path.display()
        )),
        "{msg}"
    );
    holder.execute_batch("ROLLBACK;").unwrap();
}

/// A lock released within the busy timeout is simply waited for.
#[tokio::test]
async fn lock_released_within_busy_timeout_is_waited_for() {
    let db = Db::new("CREATE TABLE t (id INTEGER PRIMARY KEY);");
    let holder = db.conn();
    holder
        .execute_batch("BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")
        .unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        holder.execute_batch("COMMIT;").unwrap();
    });
    let mut source = db.source(&[]);
    source.start(None).await.unwrap();
    let reads: usize = finish_snapshot(&mut source)
        .await
        .iter()
        .map(|b| b.changes.len())
        .sum();
    assert_eq!(reads, 1);
    release.join().unwrap();
}
