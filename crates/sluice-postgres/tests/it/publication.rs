//! What the publication covers: inheritance children, partitions, column lists, tables
//! newly published after a checkpoint, and whose publication `teardown` may drop.

use sluice_core::{Op, Source, Value};
use sluice_postgres::PostgresSource;

use crate::common::{Driver, TestDb, fold};

fn ids(changes: &[sluice_core::Change], table: &str, op: Op) -> Vec<i64> {
    let mut ids: Vec<i64> = changes
        .iter()
        .filter(|c| &*c.table == table && c.op == op)
        .map(|c| match c.key.get("id") {
            Some(Value::Int(i)) => *i,
            other => panic!("id of {c:?}: {other:?}"),
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// Start a source that must fail at start; its error message.
async fn start_error(config: &sluice_config::model::PostgresSourceConfig) -> String {
    let mut source = PostgresSource::new("app", config);
    match source.start(None).await {
        Ok(()) => panic!("the source started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_table_with_inheritance_children_is_read_and_published_without_them() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE base (id int PRIMARY KEY, v text);
         CREATE TABLE child (extra int) INHERITS (base); ALTER TABLE child ADD PRIMARY KEY (id);
         INSERT INTO base VALUES (1, 'b1'); INSERT INTO child VALUES (10, 'c10', 1);",
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec!["base".into()];
    let mut d = Driver::start(&config, None).await;
    d.until_count(1).await;
    db.exec("INSERT INTO base VALUES (2, 'b2'); INSERT INTO child VALUES (11, 'c11', 2);")
        .await;
    d.until("the insert into base", |c| {
        c.iter().any(|c| c.op == Op::Insert)
    })
    .await;
    d.drain().await;
    assert_eq!(ids(&d.changes, "public.base", Op::Read), [1]);
    assert_eq!(ids(&d.changes, "public.base", Op::Insert), [2]);
    assert!(
        d.changes.iter().all(|c| &*c.table == "public.base"),
        "{:#?}",
        d.changes
    );
    let published: Vec<String> = db
        .client
        .query(
            "SELECT tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[&config.publication],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(published, ["base"]);
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn partitions_and_publications_that_cover_them() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE parent (id int PRIMARY KEY, region text) PARTITION BY RANGE (id);
         CREATE TABLE p1 PARTITION OF parent FOR VALUES FROM (0) TO (100);
         CREATE TABLE p2 PARTITION OF parent FOR VALUES FROM (100) TO (200);
         INSERT INTO parent VALUES (1, 'a'), (150, 'b');",
    )
    .await;

    // A partition beside its partitioned table would be read twice: refused.
    let mut both = db.config("app");
    both.tables = vec!["parent".into(), "p1".into()];
    let e = start_error(&both).await;
    assert!(
        e.contains("both \"public.parent\" and its partition \"public.p1\" are captured"),
        "{e}"
    );

    // The same table twice, spelled two ways, would be read twice as well: refused.
    let mut twice = db.config("app");
    twice.tables = vec!["public.parent".into(), "parent".into()];
    let e = start_error(&twice).await;
    assert!(
        e.contains("table \"public.parent\" is listed twice in `tables`"),
        "{e}"
    );

    // A partition in a FOR ALL TABLES publication is covered: nothing to add, no error,
    // twice.
    db.exec("CREATE PUBLICATION allp FOR ALL TABLES").await;
    let mut one = db.config("one");
    one.tables = vec!["p1".into()];
    one.publication = "allp".into();
    one.snapshot = sluice_config::model::SnapshotMode::Never;
    for _ in 0..2 {
        let mut source = PostgresSource::new("app", &one);
        source.start(None).await.unwrap();
        source.stop().await.unwrap();
    }
    // Published as its root, the partition would receive no changes: refused.
    db.exec("ALTER PUBLICATION allp SET (publish_via_partition_root = true)")
        .await;
    let e = start_error(&one).await;
    assert!(
        e.contains("\"public.p1\" is a partition of parent, and publication \"allp\" publishes its changes as parent"),
        "{e}"
    );

    // A partition in another schema than its partitioned table, whose schema a FOR TABLES
    // IN SCHEMA publication covers: covered (nothing added); published as its root, refused
    // by `run` and reported by `check`.
    db.exec(
        "CREATE SCHEMA sales; CREATE SCHEMA archive;
         CREATE TABLE sales.orders (id int PRIMARY KEY) PARTITION BY RANGE (id);
         CREATE TABLE archive.orders_old PARTITION OF sales.orders FOR VALUES FROM (0) TO (100);
         CREATE PUBLICATION schp FOR TABLES IN SCHEMA sales;",
    )
    .await;
    let mut old = db.config("old");
    old.tables = vec!["archive.orders_old".into()];
    old.publication = "schp".into();
    old.snapshot = sluice_config::model::SnapshotMode::Never;
    let mut source = PostgresSource::new("app", &old);
    source.start(None).await.unwrap();
    source.stop().await.unwrap();
    let listed: i64 = db
        .client
        .query_one(
            "SELECT count(*) FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid WHERE p.pubname = 'schp'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        listed, 0,
        "the schema publication already covers the partition"
    );
    db.exec("ALTER PUBLICATION schp SET (publish_via_partition_root = true)")
        .await;
    let e = start_error(&old).await;
    assert!(
        e.contains("\"archive.orders_old\" is a partition of sales.orders, and publication \"schp\" publishes its changes as sales.orders"),
        "{e}"
    );
    let checked = sluice_postgres::check(&old).await;
    assert!(
        checked.as_ref().is_err_and(|e| e
            .to_string()
            .contains("publishes its changes as sales.orders")),
        "{checked:?}"
    );

    // The publication sluice makes for the partitioned table: changes come as it, and the
    // partitions' own descriptions (sent beside the root's) yield no schema event.
    let mut config = db.config("root");
    config.tables = vec![];
    config.publication = "rootp".into();
    db.exec("CREATE PUBLICATION rootp FOR TABLE parent WITH (publish_via_partition_root = true)")
        .await;
    let mut d = Driver::start(&config, None).await;
    d.until_count(2).await;
    db.exec("INSERT INTO parent VALUES (2, 'c'), (151, 'd'); UPDATE parent SET region = 'e' WHERE id = 1;")
        .await;
    d.until("the update", |c| c.iter().any(|c| c.op == Op::Update))
        .await;
    d.drain().await;
    assert!(
        d.changes.iter().all(|c| &*c.table == "public.parent"),
        "{:#?}",
        d.changes
    );
    assert_eq!(ids(&d.changes, "public.parent", Op::Read), [1, 150]);
    assert_eq!(ids(&d.changes, "public.parent", Op::Insert), [2, 151]);
    assert!(
        d.changes.iter().all(|c| c.op != Op::Schema),
        "{:#?}",
        d.changes
    );
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn a_column_list_without_the_key_is_refused() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, a text, b text); INSERT INTO t VALUES (1, 'x', 'y');
         CREATE PUBLICATION p FOR TABLE t (a, b);",
    )
    .await;
    let mut config = db.config("app");
    config.publication = "p".into();
    let e = start_error(&config).await;
    assert!(
        e.contains("publishes table \"public.t\" without its key column(s) id"),
        "{e}"
    );
    assert!(
        e.contains("ADD TABLE \"public\".\"t\" (\"id\", \"a\", \"b\")"),
        "{e}"
    );
    db.finish().await;
}

#[tokio::test]
async fn a_table_published_after_the_checkpoint_is_read_before_streaming_resumes() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE c (id int PRIMARY KEY);
         INSERT INTO a VALUES (1); INSERT INTO c VALUES (1), (2);",
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec!["a".into()];
    let mut d = Driver::start(&config, None).await;
    d.until_count(1).await;
    d.drain().await;
    let resume = d.last_position.clone();
    d.source.stop().await.unwrap();
    drop(d);

    db.exec("INSERT INTO a VALUES (2); INSERT INTO c VALUES (3);")
        .await;
    config.tables = vec!["a".into(), "c".into()];
    let mut d = Driver::start(&config, resume).await;
    db.exec("INSERT INTO c VALUES (4);").await;
    d.until("c's insert after the restart", |c| {
        c.iter()
            .any(|c| &*c.table == "public.c" && c.op == Op::Insert)
    })
    .await;
    d.drain().await;
    // Rows of c from before it was published come as reads; a's changes are replayed.
    assert_eq!(ids(&d.changes, "public.c", Op::Read), [1, 2, 3]);
    assert_eq!(ids(&d.changes, "public.c", Op::Insert), [4]);
    assert_eq!(ids(&d.changes, "public.a", Op::Insert), [2]);
    let resume = d.last_position.clone();
    d.source.stop().await.unwrap();
    drop(d);

    // Not again on the next start: c is published now.
    let mut d = Driver::start(&config, resume).await;
    d.drain().await;
    assert!(
        d.changes.iter().all(|c| c.op != Op::Read),
        "{:#?}",
        d.changes
    );
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn teardown_drops_only_the_publication_sluice_made() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION mine FOR TABLE t;")
        .await;
    let mut config = db.config("app");
    config.publication = "mine".into();
    sluice_postgres::setup(&config).await.unwrap();
    let lines = sluice_postgres::teardown(&config).await.unwrap().join("\n");
    assert!(
        lines.contains("left publication \"mine\" in place"),
        "{lines}"
    );
    let exists = |name: &'static str| {
        let client = &db.client;
        async move {
            client
                .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(exists("mine").await);

    let mut config = db.config("app");
    config.publication = "made_here".into();
    sluice_postgres::setup(&config).await.unwrap();
    let lines = sluice_postgres::teardown(&config).await.unwrap().join("\n");
    assert!(
        lines.contains("dropped publication \"made_here\""),
        "{lines}"
    );
    assert!(!exists("made_here").await);
    db.finish().await;
}

#[tokio::test]
async fn a_read_of_a_newly_published_table_cut_by_an_error_is_done_again_on_restart() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE c (id int PRIMARY KEY);
         INSERT INTO a VALUES (1); INSERT INTO c SELECT generate_series(1, 50000);",
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec!["a".into()];
    config.batch_size = 100;
    let mut d = Driver::start(&config, None).await;
    d.until_count(1).await;
    d.drain().await;
    let resume = d.last_position.clone();
    d.source.stop().await.unwrap();
    drop(d);

    config.tables = vec!["a".into(), "c".into()];
    let mut d = Driver::start(&config, resume.clone()).await;
    // Nothing confirmed: whether the cut lands inside the read or just after it (the rows
    // of a small table may all be in socket buffers already), no position past the read
    // reaches a checkpoint, so the restart must read the table again.
    d.confirm = false;
    d.until("some of c's rows", |c| c.iter().any(|c| c.op == Op::Read))
        .await;
    // Cut every connection of the source mid-read (the channel's bound holds the reader),
    // again each second until the source reports it (a connection being made as the first
    // cut lands escapes it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut cut_at = std::time::Instant::now() - std::time::Duration::from_secs(2);
    let error = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no error after the cut"
        );
        if cut_at.elapsed() > std::time::Duration::from_secs(1) {
            db.exec(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .await;
            cut_at = std::time::Instant::now();
        }
        if let Err(e) = d.poll_once().await {
            break e;
        }
    };
    assert!(error.is_transient(), "{error}");
    // As the engine does: the same source, restarted from the last checkpoint (no row of
    // the read reached one).
    d.changes.clear();
    d.source.start(resume).await.unwrap();
    d.until("all of c's rows", |c| {
        c.iter().filter(|c| c.op == Op::Read).count() >= 50_000
    })
    .await;
    let read = ids(&d.changes, "public.c", Op::Read);
    assert_eq!(read, (1..=50_000).collect::<Vec<i64>>());
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn an_interrupted_read_of_new_and_resnapshot_tables_resumes_without_skipping_any() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE z (id int PRIMARY KEY); CREATE TABLE c (id int PRIMARY KEY);
         INSERT INTO z VALUES (1); INSERT INTO c SELECT generate_series(1, 50000);",
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec!["z".into()];
    config.batch_size = 100;
    config.snapshot_chunk_pages = 20;
    let mut d = Driver::start(&config, None).await;
    d.until_count(1).await;
    d.drain().await;
    let resume = d.last_position.clone();
    d.source.stop().await.unwrap();
    drop(d);

    // c is new (listed first), z is read again on demand: one read of both, in the
    // captured tables' order whatever order they were asked for in.
    config.tables = vec!["c".into(), "z".into()];
    config.resnapshot = vec!["z".into()];
    let mut d = Driver::start(&config, resume).await;
    d.until("a few chunks of c", |c| {
        c.iter().filter(|c| &*c.table == "public.c").count() > 10_000
    })
    .await;
    // Stopped mid-read, as a crash after a checkpoint there would leave it.
    let checkpoint = d.last_position.clone();
    assert!(
        matches!(
            checkpoint,
            Some(sluice_core::Position::Pg { snapshot: true, .. })
        ),
        "{checkpoint:?}"
    );
    let first = ids(&d.changes, "public.c", Op::Read);
    d.source.stop().await.unwrap();
    drop(d);

    config.resnapshot.clear();
    let mut d = Driver::start(&config, checkpoint).await;
    d.until("the rest of c", |changes| {
        let mut seen: std::collections::BTreeSet<i64> = first.iter().copied().collect();
        for c in changes.iter().filter(|c| &*c.table == "public.c") {
            if let Some(Value::Int(i)) = c.key.get("id") {
                seen.insert(*i);
            }
        }
        seen.len() == 50_000
    })
    .await;
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn a_table_published_before_the_run_that_first_captures_it_is_read_once() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
         INSERT INTO a VALUES (1); INSERT INTO b VALUES (1), (2), (3);",
    )
    .await;
    let state = tempfile::tempdir().unwrap();
    let record = state.path().join("app.tables.json");
    let mut config = db.config("app");
    config.tables = vec!["a".into()];
    config.state_dir = Some(state.path().to_owned());
    let mut d = Driver::start(&config, None).await;
    d.until_count(1).await;
    // Recorded once the snapshot's end is confirmed.
    d.drain().await;
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(
        text.contains("public.a") && !text.contains("public.b"),
        "{text}"
    );
    let resume = d.last_position.clone();
    d.source.stop().await.unwrap();
    drop(d);

    // What `sluice setup` does once b is listed: the publication publishes b before the
    // run that first captures it, so that run adds nothing to the publication.
    db.exec(&format!(
        "ALTER PUBLICATION \"{}\" ADD TABLE b",
        config.publication
    ))
    .await;
    config.tables = vec!["a".into(), "b".into()];
    let mut d = Driver::start(&config, resume).await;
    d.until("b's rows", |c| {
        c.iter().filter(|c| c.op == Op::Read).count() >= 3
    })
    .await;
    db.exec("INSERT INTO b VALUES (4)").await;
    d.until("the insert into b", |c| {
        c.iter().any(|c| c.op == Op::Insert)
    })
    .await;
    d.drain().await;
    assert_eq!(ids(&d.changes, "public.b", Op::Read), [1, 2, 3]);
    assert_eq!(ids(&d.changes, "public.a", Op::Read), Vec::<i64>::new());
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(
        text.contains("public.a") && text.contains("public.b"),
        "{text}"
    );
    let resume = d.last_position.clone();
    d.source.stop().await.unwrap();
    drop(d);

    // Recorded: the next start reads nothing again.
    let mut d = Driver::start(&config, resume).await;
    db.exec("INSERT INTO b VALUES (5)").await;
    d.until("the insert into b", |c| {
        c.iter().any(|c| c.op == Op::Insert)
    })
    .await;
    d.drain().await;
    assert!(
        d.changes.iter().all(|c| c.op != Op::Read),
        "{:#?}",
        d.changes
    );
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn a_table_dropped_and_created_again_while_streaming_is_captured_again() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE gone (id int PRIMARY KEY);
         INSERT INTO t VALUES (1, 'old'); INSERT INTO gone VALUES (1);",
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec!["t".into(), "gone".into()];
    // Tables are looked up every 10 status intervals: every second here.
    config.status_interval_ms = 100;
    let state = tempfile::tempdir().unwrap();
    config.state_dir = Some(state.path().to_owned());
    let mut d = Driver::start(&config, None).await;
    d.until_count(2).await;
    d.drain().await;

    // Dropped for good: a warning, the stream goes on.
    db.exec("DROP TABLE gone").await;
    let quiet_until = std::time::Instant::now() + std::time::Duration::from_millis(2500);
    while std::time::Instant::now() < quiet_until {
        d.poll_once().await.unwrap();
    }

    // The checkpoint stays here: the old table's last insert is replayed after the restart,
    // and must not come back under the new table's name.
    let resume = d.last_position.clone();
    d.confirm = false;
    db.exec(
        "INSERT INTO t VALUES (2, 'old'); DROP TABLE t; CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t VALUES (7, 'new');",
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let error = loop {
        assert!(std::time::Instant::now() < deadline, "no restart asked for");
        if let Err(e) = d.poll_once().await {
            break e;
        }
    };
    assert!(error.is_transient(), "{error}");
    assert!(
        error
            .to_string()
            .contains("\"public.t\" was dropped and created again"),
        "{error}"
    );
    // Restart from the last checkpoint, as the engine does (without `gone`, which a start
    // would now refuse: it is listed and does not exist). The new table is added to the
    // publication and read, then its changes stream.
    drop(d);
    config.tables = vec!["t".into()];
    let mut d = Driver::start(&config, resume).await;
    d.until("the new table's row", |c| {
        c.iter()
            .any(|c| c.op == Op::Read && &*c.table == "public.t")
    })
    .await;
    db.exec("INSERT INTO t VALUES (8, 'later')").await;
    d.until("the insert", |c| c.iter().any(|c| c.op == Op::Insert))
        .await;
    // The record knows the old table: a truncate first, so the sinks drop its rows.
    let ops: Vec<Op> = d
        .changes
        .iter()
        .filter(|c| &*c.table == "public.t")
        .map(|c| c.op)
        .collect();
    assert_eq!(
        ops,
        [Op::Truncate, Op::Read, Op::Insert],
        "{:#?}",
        d.changes
    );
    assert_eq!(ids(&d.changes, "public.t", Op::Read), [7]);
    assert_eq!(ids(&d.changes, "public.t", Op::Insert), [8]);
    drop(d);
    db.finish().await;
}

/// A listed table renamed while streaming, and a new table created under the listed name:
/// the stream follows the renamed table by OID, and the lookup every 10 status intervals
/// notices the listed name now names another table, so the source restarts and captures it
/// (a truncate, its rows read, then its changes).
#[tokio::test]
async fn a_listed_table_renamed_and_replaced_while_streaming_is_captured_again() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'old');")
        .await;
    let mut config = db.config("app");
    config.tables = vec!["t".into()];
    config.status_interval_ms = 100;
    let state = tempfile::tempdir().unwrap();
    config.state_dir = Some(state.path().to_owned());
    let mut d = Driver::start(&config, None).await;
    d.until_count(1).await;
    d.drain().await;
    let resume = d.last_position.clone();
    d.confirm = false;
    db.exec(
        "ALTER TABLE t RENAME TO t_old; CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t VALUES (7, 'new');",
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let error = loop {
        assert!(std::time::Instant::now() < deadline, "no restart asked for");
        if let Err(e) = d.poll_once().await {
            break e;
        }
    };
    assert!(error.is_transient(), "{error}");
    assert!(
        error
            .to_string()
            .contains("\"public.t\" was renamed and another table created under its name"),
        "{error}"
    );
    drop(d);
    let mut d = Driver::start(&config, resume).await;
    d.until("the new table's row", |c| {
        c.iter()
            .any(|c| c.op == Op::Read && &*c.table == "public.t")
    })
    .await;
    db.exec("INSERT INTO t VALUES (8, 'later')").await;
    d.until("the insert", |c| c.iter().any(|c| c.op == Op::Insert))
        .await;
    let ops: Vec<Op> = d
        .changes
        .iter()
        .filter(|c| &*c.table == "public.t")
        .map(|c| c.op)
        .collect();
    assert_eq!(
        ops,
        [Op::Truncate, Op::Read, Op::Insert],
        "{:#?}",
        d.changes
    );
    assert_eq!(ids(&d.changes, "public.t", Op::Read), [7]);
    drop(d);
    db.finish().await;
}

/// With `tables` unset and a FOR ALL TABLES publication, a table created while streaming
/// without a key has its changes skipped; given a key later, it cannot just be captured from
/// then on (its first rows would be missing): the source restarts, and the start reads it.
#[tokio::test]
async fn a_published_table_given_a_key_after_its_first_rows_is_read_whole() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE k (id int PRIMARY KEY); INSERT INTO k VALUES (1);
         CREATE PUBLICATION everything FOR ALL TABLES;",
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec![];
    config.publication = "everything".into();
    let state = tempfile::tempdir().unwrap();
    config.state_dir = Some(state.path().to_owned());
    let mut d = Driver::start(&config, None).await;
    d.until_count(1).await;
    d.drain().await;
    let resume = d.last_position.clone();
    d.confirm = false;
    db.exec(
        "CREATE TABLE late (id int, v text); INSERT INTO late VALUES (1, 'before the key');
         ALTER TABLE late ADD PRIMARY KEY (id); INSERT INTO late VALUES (2, 'after');",
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let error = loop {
        assert!(std::time::Instant::now() < deadline, "no restart asked for");
        if let Err(e) = d.poll_once().await {
            break e;
        }
    };
    assert!(error.is_transient(), "{error}");
    assert!(
        error
            .to_string()
            .contains("\"public.late\", whose earlier changes were skipped"),
        "{error}"
    );
    assert!(
        !d.changes
            .iter()
            .any(|c| &*c.table == "public.late" && c.op != Op::Schema),
        "{:#?}",
        d.changes
    );
    drop(d);
    let mut d = Driver::start(&config, resume).await;
    d.until("both rows of the late table", |c| {
        c.iter()
            .filter(|c| &*c.table == "public.late" && c.op == Op::Read)
            .count()
            == 2
    })
    .await;
    db.exec("INSERT INTO late VALUES (3, 'later')").await;
    d.until("the insert", |c| {
        ids(c, "public.late", Op::Insert).contains(&3)
    })
    .await;
    assert_eq!(ids(&d.changes, "public.late", Op::Read), [1, 2]);
    // The stream replays from the checkpoint, before the read: its inserts come again
    // (a duplicate, never a gap), then the new one.
    assert_eq!(ids(&d.changes, "public.late", Op::Insert).last(), Some(&3));
    let rows: Vec<i64> = fold(&d.changes, "public.late").into_keys().collect();
    assert_eq!(rows, [1, 2, 3]);
    drop(d);
    db.finish().await;
}

/// A FOR ALL TABLES publication publishes every incarnation of a table dropped and created
/// again while sluice was stopped. Twice over: the record knows the first table, the second
/// lived and died in between, the third is captured now. The first's and the second's
/// replayed changes are skipped (a truncate and the third's rows replace them).
#[tokio::test]
async fn a_table_dropped_and_created_twice_while_stopped_keeps_only_the_last_rows() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'first');
         CREATE PUBLICATION everything FOR ALL TABLES;",
    )
    .await;
    let state = tempfile::tempdir().unwrap();
    let mut config = db.config("app");
    config.tables = vec![];
    config.publication = "everything".into();
    config.state_dir = Some(state.path().to_owned());
    let mut d = Driver::start(&config, None).await;
    d.until_count(1).await;
    d.drain().await;
    let resume = d.last_position.clone();
    d.source.stop().await.unwrap();
    drop(d);

    db.exec(
        "INSERT INTO t VALUES (2, 'first, late'); DROP TABLE t;
         CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t VALUES (200, 'second'), (201, 'second');
         UPDATE t SET v = 'second, updated' WHERE id = 200; DROP TABLE t;
         CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (7, 'third');",
    )
    .await;
    let mut d = Driver::start(&config, resume).await;
    d.until("the third table's row", |c| {
        c.iter()
            .any(|c| c.op == Op::Read && &*c.table == "public.t")
    })
    .await;
    db.exec("INSERT INTO t VALUES (8, 'later')").await;
    d.until("the insert", |c| {
        ids(c, "public.t", Op::Insert).contains(&8)
    })
    .await;
    let ops: Vec<Op> = d
        .changes
        .iter()
        .filter(|c| &*c.table == "public.t")
        .map(|c| c.op)
        .collect();
    assert_eq!(ops[..2], [Op::Truncate, Op::Read], "{:#?}", d.changes);
    let rows: Vec<i64> = fold(&d.changes, "public.t").into_keys().collect();
    assert_eq!(rows, [7, 8], "{:#?}", d.changes);
    drop(d);
    db.finish().await;
}

/// With `tables` unset and FOR ALL TABLES, a captured table renamed while streaming and a
/// new table created under its old name: after the restart the new table is read under the
/// name (after a truncate of it), and the renamed table is read whole under its new name and
/// its changes go on being captured.
#[tokio::test]
async fn a_published_table_renamed_and_replaced_is_read_under_both_names() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a VALUES (1, 'old'), (2, 'old');
         CREATE PUBLICATION everything FOR ALL TABLES;",
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec![];
    config.publication = "everything".into();
    config.status_interval_ms = 100;
    let state = tempfile::tempdir().unwrap();
    config.state_dir = Some(state.path().to_owned());
    let mut d = Driver::start(&config, None).await;
    d.until_count(2).await;
    d.drain().await;
    let resume = d.last_position.clone();
    d.confirm = false;
    db.exec(
        "UPDATE a SET v = 'before the rename' WHERE id = 1;
         ALTER TABLE a RENAME TO a_old; CREATE TABLE a (id int PRIMARY KEY, v text);
         INSERT INTO a VALUES (7, 'new'); UPDATE a_old SET v = 'renamed' WHERE id = 2;",
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let error = loop {
        assert!(std::time::Instant::now() < deadline, "no restart asked for");
        if let Err(e) = d.poll_once().await {
            break e;
        }
    };
    assert!(error.is_transient(), "{error}");
    drop(d);
    let mut d = Driver::start(&config, resume).await;
    d.until("both tables read", |c| {
        ids(c, "public.a", Op::Read).contains(&7) && ids(c, "public.a_old", Op::Read).len() == 2
    })
    .await;
    db.exec("INSERT INTO a VALUES (8, 'later'); INSERT INTO a_old VALUES (3, 'later');")
        .await;
    d.until("both inserts", |c| {
        ids(c, "public.a", Op::Insert).contains(&8)
            && ids(c, "public.a_old", Op::Insert).contains(&3)
    })
    .await;
    let ops: Vec<Op> = d
        .changes
        .iter()
        .filter(|c| &*c.table == "public.a")
        .map(|c| c.op)
        .collect();
    assert_eq!(ops[0], Op::Truncate, "{:#?}", d.changes);
    let a: Vec<i64> = fold(&d.changes, "public.a").into_keys().collect();
    assert_eq!(a, [7, 8], "{:#?}", d.changes);
    let old = fold(&d.changes, "public.a_old");
    assert_eq!(old.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(old[&2].get("v"), Some(&Value::Text("renamed".into())));
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn with_tables_unset_every_keyed_table_is_captured_and_full_identity_counts_as_keyed() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE k (id int PRIMARY KEY); CREATE TABLE f (v text);
         ALTER TABLE f REPLICA IDENTITY FULL; CREATE TABLE n (v text);
         INSERT INTO k VALUES (1); INSERT INTO f VALUES ('x'); INSERT INTO n VALUES ('y');",
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec![];
    let mut d = Driver::start(&config, None).await;
    d.until_count(2).await;
    d.drain().await;
    let mut tables: Vec<&str> = d.changes.iter().map(|c| &*c.table).collect();
    tables.sort_unstable();
    assert_eq!(tables, ["public.f", "public.k"], "{:#?}", d.changes);
    drop(d);
    db.finish().await;
}
