use crate::common::TestDb;

#[tokio::test]
async fn setup_check_teardown() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec("CREATE TABLE users (id int PRIMARY KEY, name text); CREATE TABLE nokey (x int);")
        .await;
    let config = db.config("life-cycle");
    let defaults = sluice_config::model::PostgresSourceConfig::new("life-cycle", "postgres://x");
    assert_eq!(defaults.slot, "sluice_life_cycle");
    assert_eq!(config.publication, "sluice_life_cycle");
    let slot = &config.slot;

    let lines = sluice_postgres::check(&config).await.unwrap();
    let text = lines.join("\n");
    assert!(text.contains("wal_level is logical"), "{text}");
    assert!(
        text.contains("missing: publication \"sluice_life_cycle\""),
        "{text}"
    );
    assert!(
        text.contains(&format!("missing: replication slot \"{slot}\"")),
        "{text}"
    );
    assert!(
        text.contains("table \"public.users\": 2 columns, key (id)"),
        "{text}"
    );
    assert!(
        !text.contains("nokey"),
        "tables without a key are not captured by default: {text}"
    );
    assert!(
        !text.contains("sluice@"),
        "the password must not print: {text}"
    );

    let lines = sluice_postgres::setup(&config).await.unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        lines[0],
        "created publication \"sluice_life_cycle\" for \"public.users\""
    );
    assert!(lines[1].starts_with(&format!(
        "created replication slot \"{slot}\" (pgoutput) at "
    )));
    let again = sluice_postgres::setup(&config).await.unwrap();
    assert!(again[0].contains("already exist"), "{again:?}");

    let text = sluice_postgres::check(&config).await.unwrap().join("\n");
    assert!(!text.contains("missing:"), "{text}");
    assert!(
        text.contains("publication \"sluice_life_cycle\" covers every table"),
        "{text}"
    );

    // A table without a key cannot be captured: check explains, with a hint.
    let mut bad = config.clone();
    bad.tables = vec!["nokey".into(), "public.users".into()];
    let e = sluice_postgres::check(&bad).await.unwrap_err().to_string();
    assert!(
        e.contains("table \"public.nokey\" has no primary key"),
        "{e}"
    );
    assert!(e.contains("REPLICA IDENTITY FULL"), "{e}");
    let mut missing = config.clone();
    missing.tables = vec!["nope".into()];
    let e = sluice_postgres::setup(&missing).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("table \"public.nope\" does not exist"),
        "{e}"
    );
    assert!(!e.is_transient());
    // Every missing table is named at once.
    missing.tables = vec!["nope".into(), "public.users".into(), "other.gone".into()];
    let e = sluice_postgres::check(&missing)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tables \"public.nope\", \"other.gone\" do not exist"),
        "{e}"
    );

    // Adding a table to `tables` adds it to the publication.
    db.exec("CREATE TABLE orders (id int PRIMARY KEY)").await;
    let mut more = config.clone();
    more.tables = vec!["users".into(), "orders".into()];
    let text = sluice_postgres::check(&more).await.unwrap().join("\n");
    assert!(
        text.contains(
            "missing: publication \"sluice_life_cycle\" does not cover \"public.orders\""
        ),
        "{text}"
    );
    let lines = sluice_postgres::setup(&more).await.unwrap();
    assert_eq!(
        lines,
        ["added \"public.orders\" to publication \"sluice_life_cycle\""]
    );

    let lines = sluice_postgres::teardown(&config).await.unwrap();
    assert_eq!(
        lines,
        [
            format!("dropped replication slot \"{slot}\""),
            "dropped publication \"sluice_life_cycle\"".to_owned()
        ]
    );
    let lines = sluice_postgres::teardown(&config).await.unwrap();
    assert!(lines[0].starts_with("nothing to remove"), "{lines:?}");
    db.finish().await;
}

#[tokio::test]
async fn bad_password_is_a_permanent_error_without_the_password() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec("CREATE TABLE t (id int PRIMARY KEY)").await;
    let url = db.url.replacen(":sluice@", ":wrong-secret@", 1);
    assert_ne!(
        url, db.url,
        "the test server's password is expected to be `sluice`"
    );
    let config = sluice_config::model::PostgresSourceConfig::new("x", url);
    let e = sluice_postgres::check(&config).await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(!text.contains("wrong-secret"), "{text}");
    assert!(!e.is_transient(), "{e}");
    db.finish().await;
}

#[tokio::test]
async fn an_existing_publication_decides_the_default_tables() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let config = db.config("app");
    db.exec(&format!(
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         CREATE TABLE b (id int PRIMARY KEY, v text);
         CREATE TABLE c (v text);
         INSERT INTO a VALUES (1, 'a'); INSERT INTO b VALUES (1, 'b');
         CREATE PUBLICATION {} FOR TABLE a, c;",
        config.publication
    ))
    .await;
    assert!(config.tables.is_empty());
    let mut d = crate::common::Driver::start(&config, None).await;
    d.until_count(1).await;
    db.exec("INSERT INTO a VALUES (2, 'a2'); INSERT INTO b VALUES (2, 'b2');")
        .await;
    d.until_count(2).await;
    d.drain().await;
    // Only the publication's table with a key: not b (outside it), not c (no key).
    let tables: Vec<&str> = d.changes.iter().map(|c| &*c.table).collect();
    assert_eq!(tables, ["public.a", "public.a"]);
    drop(d);
    // The publication was left as it was.
    let published: Vec<String> = db
        .client
        .query(
            "SELECT tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1",
            &[&config.publication],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(published, ["a", "c"]);
    db.finish().await;
}

/// A publication that leaves out some operations, or filters rows: `check` says so.
#[tokio::test]
async fn check_warns_about_a_publication_that_drops_operations_or_rows() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    let config = db.config("app");
    db.exec(&format!(
        "CREATE PUBLICATION {} FOR TABLE t WHERE (id > 10) WITH (publish = 'insert, truncate')",
        config.publication
    ))
    .await;
    let text = sluice_postgres::check(&config).await.unwrap().join("\n");
    assert!(
        text.contains("does not publish update, delete: those changes never reach the sinks"),
        "{text}"
    );
    assert!(
        text.contains("SET (publish = 'insert, update, delete, truncate')"),
        "{text}"
    );
    assert!(
        text.contains("only rows where (id > 10) (publication row filter)"),
        "{text}"
    );
    db.finish().await;
}

/// A slot name already taken by another database's slot: `setup` and `start` refuse it
/// before creating anything, so no publication is left behind.
#[tokio::test]
async fn a_slot_of_another_database_is_refused_before_anything_is_created() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    let Some(other) = TestDb::new().await else {
        return;
    };
    db.exec("CREATE TABLE t (id int PRIMARY KEY)").await;
    let mut config = db.config("app");
    config.slot = format!("{}_taken", other.name);
    other
        .exec(&format!(
            "SELECT pg_create_logical_replication_slot('{}', 'pgoutput')",
            config.slot
        ))
        .await;
    let e = sluice_postgres::setup(&config).await.unwrap_err();
    assert!(
        !e.is_transient()
            && e.to_string()
                .contains(&format!("belongs to database \"{}\"", other.name)),
        "{e}"
    );
    let mut source = sluice_postgres::PostgresSource::new("app", &config);
    let e = sluice_core::Source::start(&mut source, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("belongs to database"), "{e}");
    let publications: i64 = db
        .client
        .query_one("SELECT count(*) FROM pg_publication", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(publications, 0);
    db.finish().await;
    other.finish().await;
}
