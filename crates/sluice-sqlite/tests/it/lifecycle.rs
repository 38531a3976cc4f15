//! `setup`, `teardown`, `check` and `introspect`.

use sluice_sqlite::TableInfo;

use crate::support::Db;

const APP: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
                   CREATE TABLE orders (user_id INTEGER, n INTEGER, total REAL, PRIMARY KEY (user_id, n));
                   CREATE TABLE log (line TEXT);
                   INSERT INTO users VALUES (1, 'ada'), (2, 'bob');";

#[tokio::test]
async fn setup_and_teardown_are_idempotent_and_keep_user_data() {
    let db = Db::new(APP);
    let config = db.config(&["users", "main.orders"]);
    let lines = sluice_sqlite::setup(&config).await.unwrap();
    assert_eq!(
        lines,
        [
            "created changelog table \"_sluice_changelog\"",
            "installed triggers on \"main.users\"",
            "installed triggers on \"main.orders\"",
            "set journal mode to wal (was delete)",
        ]
    );
    let after_setup = db.master();
    let again = sluice_sqlite::setup(&config).await.unwrap();
    assert_eq!(
        again,
        [
            "changelog table \"_sluice_changelog\" and triggers on \"main.users\", \"main.orders\" are already current"
        ]
    );
    assert_eq!(db.master(), after_setup);
    let triggers = after_setup
        .iter()
        .filter(|(ty, _, _)| ty == "trigger")
        .count();
    assert_eq!(triggers, 6);

    // Narrowing "tables" removes the triggers of the table left out.
    let narrowed = sluice_sqlite::setup(&db.config(&["users"])).await.unwrap();
    assert_eq!(
        narrowed,
        ["removed triggers on \"main.orders\" (not in \"tables\")"]
    );
    sluice_sqlite::setup(&config).await.unwrap();

    db.exec("INSERT INTO users VALUES (3, 'cy');");
    let lines = sluice_sqlite::teardown(&config).await.unwrap();
    assert_eq!(
        lines,
        [
            "dropped triggers on \"main.orders\"",
            "dropped triggers on \"main.users\"",
            "dropped changelog table \"_sluice_changelog\"",
        ]
    );
    let left: Vec<String> = db
        .master()
        .into_iter()
        .map(|(ty, name, _)| format!("{ty} {name}"))
        .collect();
    assert_eq!(
        left,
        [
            "index sqlite_autoindex_orders_1",
            "table log",
            "table orders",
            "table sqlite_sequence",
            "table users"
        ]
    );
    let users: i64 = db
        .conn()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 3);
    let again = sluice_sqlite::teardown(&config).await.unwrap();
    assert_eq!(
        again,
        ["nothing to remove: no changelog table \"_sluice_changelog\" and no sluice triggers"]
    );
}

#[tokio::test]
async fn check_reports_missing_setup_and_changes_nothing() {
    let db = Db::new(APP);
    let config = db.config(&["users"]);
    let before = db.master();
    let lines = sluice_sqlite::check(&config).await.unwrap();
    assert_eq!(db.master(), before);
    let mode: String = db
        .conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    assert!(
        lines[0].starts_with(&format!(
            "opened sqlite database \"{}\" (sqlite 3.",
            db.path.display()
        )),
        "{lines:?}"
    );
    assert_eq!(
        &lines[1..],
        [
            "table \"main.users\": 2 columns, primary key (id)",
            "missing: changelog table \"_sluice_changelog\" (run `sluice setup`)",
            "missing: triggers on \"main.users\" (run `sluice setup`)",
            "journal mode is delete; sluice switches it to wal at start so the snapshot does not block writers",
        ]
    );

    sluice_sqlite::setup(&config).await.unwrap();
    let lines = sluice_sqlite::check(&config).await.unwrap();
    assert_eq!(
        &lines[1..],
        [
            "table \"main.users\": 2 columns, primary key (id)",
            "changelog table \"_sluice_changelog\": 0 changes not yet pruned",
            "triggers on \"main.users\" are current",
        ]
    );
    db.exec("ALTER TABLE users ADD COLUMN email TEXT;");
    let lines = sluice_sqlite::check(&config).await.unwrap();
    assert!(
        lines.contains(&"outdated: triggers on \"main.users\" (run `sluice setup`)".to_owned()),
        "{lines:?}"
    );

    let err = sluice_sqlite::check(&db.config(&["log"]))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("table \"main.log\" has no primary key"),
        "{err}"
    );
}

#[tokio::test]
async fn introspect_lists_user_tables_only() {
    let db = Db::new(APP);
    sluice_sqlite::setup(&db.config(&[])).await.unwrap();
    let tables = sluice_sqlite::introspect(&db.path).unwrap();
    assert_eq!(
        tables,
        [
            TableInfo {
                name: "main.log".into(),
                primary_key: vec![],
                columns: vec![("line".into(), "TEXT".into())],
                rows: 0
            },
            TableInfo {
                name: "main.orders".into(),
                primary_key: vec!["user_id".into(), "n".into()],
                columns: vec![
                    ("user_id".into(), "INTEGER".into()),
                    ("n".into(), "INTEGER".into()),
                    ("total".into(), "REAL".into())
                ],
                rows: 0,
            },
            TableInfo {
                name: "main.users".into(),
                primary_key: vec!["id".into()],
                columns: vec![
                    ("id".into(), "INTEGER".into()),
                    ("name".into(), "TEXT".into())
                ],
                rows: 2,
            },
        ]
    );
}
