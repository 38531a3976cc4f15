//! Replica identity NOTHING and USING INDEX: what PostgreSQL sends for each, and what the
//! events carry. (DEFAULT and FULL are in `stream.rs`.)

use sluice_core::{Op, Source, Value};
use sluice_postgres::PostgresSource;

use crate::common::{Driver, TestDb, int};

/// An event key or row as (column, value) pairs.
type Pairs = Vec<(String, Value)>;

fn t(v: &str) -> Value {
    Value::Text(v.into())
}

/// With REPLICA IDENTITY NOTHING the server sends no old tuple at all, and once such a table
/// is in a publication that publishes updates and deletes, PostgreSQL rejects the
/// application's own UPDATE and DELETE. sluice therefore never adds it to its publication:
/// `check`, `setup` and `start` refuse it with a hint.
#[tokio::test]
async fn replica_identity_nothing_is_refused_with_a_hint() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE nothing_t (id int PRIMARY KEY, v text);
         ALTER TABLE nothing_t REPLICA IDENTITY NOTHING;
         INSERT INTO nothing_t VALUES (1, 'a');",
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec!["nothing_t".into()];

    let e = sluice_postgres::check(&config).await.unwrap_err();
    assert!(!e.is_transient(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("table \"public.nothing_t\" has REPLICA IDENTITY NOTHING"),
        "{text}"
    );
    assert!(
        text.contains("hint: ALTER TABLE \"public\".\"nothing_t\" REPLICA IDENTITY DEFAULT"),
        "{text}"
    );
    let e = sluice_postgres::setup(&config).await.unwrap_err();
    assert!(
        !e.is_transient() && e.to_string().contains("NOTHING"),
        "{e}"
    );
    let e = PostgresSource::new("app", &config)
        .start(None)
        .await
        .unwrap_err();
    assert!(
        !e.is_transient() && e.to_string().contains("NOTHING"),
        "{e}"
    );
    // Nothing was created, so the application's writes still work.
    db.exec("UPDATE nothing_t SET v = 'b'; DELETE FROM nothing_t;")
        .await;
    let publications: i64 = db
        .client
        .query_one("SELECT count(*) FROM pg_publication", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(publications, 0);

    // Why: published, the table rejects updates and deletes (SQLSTATE 55000).
    db.exec(
        "INSERT INTO nothing_t VALUES (2, 'c'); CREATE PUBLICATION by_hand FOR TABLE nothing_t;",
    )
    .await;
    let e = db
        .client
        .batch_execute("UPDATE nothing_t SET v = 'd'")
        .await
        .unwrap_err();
    let db_error = e.as_db_error().unwrap();
    assert_eq!(db_error.code().code(), "55000", "{db_error:?}");
    assert!(
        db_error
            .message()
            .contains("does not have a replica identity"),
        "{db_error:?}"
    );
    db.exec("DROP PUBLICATION by_hand").await;
    db.finish().await;
}

/// REPLICA IDENTITY USING INDEX: the key is the index's columns, in the snapshot and in the
/// stream alike, also when the table has a different primary key; deletes carry it; updates
/// have no before-image; an update of the index columns is a delete and an insert.
#[tokio::test]
async fn replica_identity_using_index_keys_events_by_the_index_columns() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE no_pk (a int NOT NULL, b text NOT NULL, v text);
         CREATE UNIQUE INDEX no_pk_ab ON no_pk (a, b);
         ALTER TABLE no_pk REPLICA IDENTITY USING INDEX no_pk_ab;
         CREATE TABLE with_pk (id int PRIMARY KEY, email text NOT NULL, v text);
         CREATE UNIQUE INDEX with_pk_email ON with_pk (email);
         ALTER TABLE with_pk REPLICA IDENTITY USING INDEX with_pk_email;
         INSERT INTO no_pk VALUES (1, 'x', 'first');
         INSERT INTO with_pk VALUES (1, 'one@example.com', 'first');",
    )
    .await;
    let mut config = db.config("app");
    config.tables = vec!["no_pk".into(), "with_pk".into()];
    let text = sluice_postgres::check(&config).await.unwrap().join("\n");
    assert!(
        text.contains("table \"public.no_pk\": 3 columns, key (a, b), replica identity index"),
        "{text}"
    );
    assert!(
        text.contains("table \"public.with_pk\": 3 columns, key (email), replica identity index"),
        "{text}"
    );

    let mut d = Driver::start(&config, None).await;
    d.until_count(2).await;
    let keys: Vec<Vec<String>> = d
        .changes
        .iter()
        .map(|c| c.key.iter().map(|(k, _)| k.to_owned()).collect())
        .collect();
    assert_eq!(keys, [vec!["a", "b"], vec!["email"]]);

    db.exec(
        "UPDATE no_pk SET v = 'second' WHERE a = 1;
         UPDATE no_pk SET b = 'y' WHERE a = 1;
         DELETE FROM no_pk WHERE a = 1;
         UPDATE with_pk SET v = 'second' WHERE id = 1;
         UPDATE with_pk SET email = 'uno@example.com' WHERE id = 1;
         DELETE FROM with_pk WHERE id = 1;",
    )
    .await;
    d.until_count(2 + 8).await;
    let stream = &d.changes[2..];
    let got: Vec<(Op, String, Pairs)> = stream
        .iter()
        .map(|c| {
            let key = c
                .key
                .iter()
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect();
            (c.op, c.table.to_string(), key)
        })
        .collect();
    let ab = |b: &str| vec![("a".to_owned(), Value::Int(1)), ("b".to_owned(), t(b))];
    let email = |e: &str| vec![("email".to_owned(), t(e))];
    assert_eq!(
        got,
        [
            (Op::Update, "public.no_pk".into(), ab("x")),
            (Op::Delete, "public.no_pk".into(), ab("x")),
            (Op::Insert, "public.no_pk".into(), ab("y")),
            (Op::Delete, "public.no_pk".into(), ab("y")),
            (
                Op::Update,
                "public.with_pk".into(),
                email("one@example.com")
            ),
            (
                Op::Delete,
                "public.with_pk".into(),
                email("one@example.com")
            ),
            (
                Op::Insert,
                "public.with_pk".into(),
                email("uno@example.com")
            ),
            (
                Op::Delete,
                "public.with_pk".into(),
                email("uno@example.com")
            ),
        ]
    );
    // No before-images under an index identity.
    assert!(stream.iter().all(|c| c.before.is_none()), "{stream:#?}");
    assert_eq!(
        stream[4].after.as_ref().unwrap().get("v"),
        Some(&t("second"))
    );
    assert_eq!(int(stream[6].after.as_ref().unwrap(), "id"), 1);
    drop(d);
    db.finish().await;
}

/// PostgreSQL cannot use a DEFERRABLE primary key as a replica identity, nor a USING INDEX
/// identity whose index was dropped: such a table has none, and once published the server
/// rejects the application's UPDATE and DELETE on it. Listed, sluice refuses it with a hint
/// (changing nothing); with `tables` unset it is left out of the publication sluice creates.
/// So is an UNLOGGED table, which PostgreSQL refuses to publish. Under REPLICA IDENTITY FULL a deferrable primary key is fine, and is the events' key.
#[tokio::test]
async fn tables_the_server_has_no_replica_identity_for_are_never_published() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec(
        "CREATE TABLE deferred (id int, v text, CONSTRAINT deferred_pk PRIMARY KEY (id) DEFERRABLE);
         CREATE TABLE lost_index (id int PRIMARY KEY, u int NOT NULL, v text);
         CREATE UNIQUE INDEX lost_index_u ON lost_index (u);
         ALTER TABLE lost_index REPLICA IDENTITY USING INDEX lost_index_u;
         DROP INDEX lost_index_u;
         CREATE TABLE full_deferred (id int, v text, CONSTRAINT full_deferred_pk PRIMARY KEY (id) DEFERRABLE);
         ALTER TABLE full_deferred REPLICA IDENTITY FULL;
         CREATE TABLE plain (id int PRIMARY KEY, v text);
         CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY);
         INSERT INTO deferred VALUES (1, 'a'); INSERT INTO lost_index VALUES (1, 1, 'a');
         INSERT INTO full_deferred VALUES (1, 'a'); INSERT INTO plain VALUES (1, 'a');",
    )
    .await;
    let publications = || async {
        let rows = db
            .client
            .query(
                "SELECT tablename::text FROM pg_publication_tables ORDER BY 1",
                &[],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };

    for (table, expected) in [
        ("deferred", "DEFERRABLE"),
        ("lost_index", "REPLICA IDENTITY USING INDEX, but that index"),
        // (Unlogged tables cannot be published at all, nor decoded.)
        ("scratch", "is UNLOGGED"),
    ] {
        let mut config = db.config("listed");
        config.tables = vec![table.into()];
        let e = sluice_postgres::check(&config).await.unwrap_err();
        assert!(!e.is_transient() && e.to_string().contains(expected), "{e}");
        assert!(e.to_string().contains("hint: ALTER TABLE"), "{e}");
        let e = sluice_postgres::setup(&config).await.unwrap_err();
        assert!(e.to_string().contains(expected), "{e}");
        let e = PostgresSource::new("listed", &config)
            .start(None)
            .await
            .unwrap_err();
        assert!(!e.is_transient() && e.to_string().contains(expected), "{e}");
        assert!(publications().await.is_empty());
    }

    let config = db.config("all");
    let mut d = Driver::start(&config, None).await;
    d.until_count(2).await;
    assert_eq!(publications().await, ["full_deferred", "plain"]);
    let mut read: Vec<(String, Pairs)> = d
        .changes
        .iter()
        .map(|c| {
            let key = c
                .key
                .iter()
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect();
            (c.table.to_string(), key)
        })
        .collect();
    read.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        read,
        [
            (
                "public.full_deferred".to_owned(),
                vec![("id".to_owned(), Value::Int(1))]
            ),
            (
                "public.plain".to_owned(),
                vec![("id".to_owned(), Value::Int(1))]
            ),
        ]
    );
    // The application's writes to the left-out tables still work.
    db.exec(
        "UPDATE deferred SET v = 'b'; DELETE FROM deferred;
         UPDATE lost_index SET v = 'b'; DELETE FROM lost_index;
         UPDATE full_deferred SET v = 'b' WHERE id = 1;",
    )
    .await;
    d.until("the update of full_deferred", |c| {
        c.iter()
            .any(|c| c.op == Op::Update && &*c.table == "public.full_deferred")
    })
    .await;
    drop(d);
    db.finish().await;
}
