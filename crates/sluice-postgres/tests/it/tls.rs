//! TLS against the test server started with `scripts/pg-server start --ssl`: its certificate
//! is signed by `ca.crt` and issued for "localhost" only.

use sluice_config::Secret;
use sluice_config::model::PostgresSourceConfig;
use sluice_core::{Op, Source};
use sluice_postgres::PostgresSource;

use crate::common::{Driver, TestDb, int};

/// The TLS directory, or `None` after a loud message.
fn tls_dir() -> Option<String> {
    match std::env::var("SLUICE_TEST_PG_TLS") {
        Ok(dir) => Some(dir),
        Err(_) => {
            eprintln!(
                "SKIPPED: SLUICE_TEST_PG_TLS not set: the test server has no TLS (run scripts/test, which starts it with scripts/pg-server start --ssl)"
            );
            None
        }
    }
}

/// Puts a file's text back when dropped (also when the test fails).
struct Restore(String, String);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, &self.1);
    }
}

/// `db`'s config with `host` in place of 127.0.0.1 and `params` appended to the URL.
fn config_with(db: &TestDb, host: &str, params: &str) -> PostgresSourceConfig {
    let mut c = db.config("app");
    let url = db.url.replace("@127.0.0.1:", &format!("@{host}:"));
    c.url = Secret::new(format!("{url}?{params}"));
    c
}

/// Whether every connection of this test database's sluice (walsender included) is
/// encrypted, and how many there are.
async fn sluice_connections_encrypted(db: &TestDb) -> (i64, bool) {
    let row = db
        .client
        .query_one(
            "SELECT count(*), coalesce(bool_and(s.ssl), false)
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
             WHERE a.application_name = 'sluice' AND a.datname = current_database()",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// Snapshot one row, stream one insert, and report the encryption of sluice's connections
/// while they are open.
async fn round_trip(db: &TestDb, config: &PostgresSourceConfig, id: i64) -> (i64, bool) {
    let mut d = Driver::start(config, None).await;
    let before = d.changes.len();
    d.until("the snapshot row", |c| c.iter().any(|c| c.op == Op::Read))
        .await;
    db.exec(&format!("INSERT INTO t VALUES ({id}, 'x')")).await;
    d.until("the streamed insert", |c| {
        c[before..]
            .iter()
            .any(|c| c.op == Op::Insert && int(&c.key, "id") == id)
    })
    .await;
    let seen = sluice_connections_encrypted(db).await;
    d.source.stop().await.unwrap();
    drop(d);
    // Each run made its own slot (same name): drop it for the next one.
    db.exec(&format!(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{}' AND NOT active",
        config.slot
    ))
    .await;
    seen
}

#[tokio::test]
async fn sslmodes_encrypt_and_verify_like_libpq() {
    let Some(tls) = tls_dir() else {
        return;
    };
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec("CREATE TABLE t (id bigint PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')")
        .await;
    let ca = format!("{tls}/ca.crt");

    // From here on the server refuses unencrypted connections to this database, so any
    // connection sluice makes without TLS (snapshot, walsender, catalog) fails the run.
    let hba: String = db
        .client
        .query_one("SHOW hba_file", &[])
        .await
        .unwrap()
        .get(0);
    let original = std::fs::read_to_string(&hba).unwrap();
    let restore = Restore(hba.clone(), original.clone());
    let rule = format!("hostnossl {} all all reject\n", db.name);
    std::fs::write(&hba, format!("{rule}{original}")).unwrap();
    db.exec("SELECT pg_reload_conf()").await;

    // require: encrypted, certificate not checked (it is not issued for 127.0.0.1).
    let (n, encrypted) =
        round_trip(&db, &config_with(&db, "127.0.0.1", "sslmode=require"), 10).await;
    assert!(
        n >= 1 && encrypted,
        "sslmode=require: {n} connections, encrypted {encrypted}"
    );

    // prefer (the default): the server offers TLS, so it is used.
    let (n, encrypted) = round_trip(&db, &db.config("app"), 11).await;
    assert!(
        n >= 1 && encrypted,
        "default sslmode: {n} connections, encrypted {encrypted}"
    );

    // verify-full by the name on the certificate, with the right CA.
    let (_, encrypted) = round_trip(
        &db,
        &config_with(
            &db,
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        13,
    )
    .await;
    assert!(encrypted);

    // verify-ca does not look at the name.
    let (_, encrypted) = round_trip(
        &db,
        &config_with(
            &db,
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={ca}"),
        ),
        14,
    )
    .await;
    assert!(encrypted);

    // verify-full by an address the certificate does not name: refused, for good.
    let refused = |host: &str, params: String| {
        let config = config_with(&db, host, &params);
        async move {
            let mut source = PostgresSource::new("app", &config);
            let e = source
                .start(None)
                .await
                .expect_err("the connection should be refused");
            assert!(
                !e.is_transient(),
                "a certificate failure must be permanent: {e}"
            );
            e.to_string()
        }
    };
    let e = refused("127.0.0.1", format!("sslmode=verify-full&sslrootcert={ca}")).await;
    assert!(e.contains("not issued for the host"), "{e}");
    // The wrong CA.
    let e = refused(
        "localhost",
        format!("sslmode=verify-full&sslrootcert={tls}/other-ca.crt"),
    )
    .await;
    assert!(e.contains("not signed by a root in sslrootcert"), "{e}");
    // A root file that is not there.
    let e = refused(
        "localhost",
        "sslmode=verify-ca&sslrootcert=/nonexistent/ca.crt".into(),
    )
    .await;
    assert!(e.contains("/nonexistent/ca.crt"), "{e}");

    // disable: plain, which the server refuses for now.
    let e = refused("127.0.0.1", "sslmode=disable".into()).await;
    assert!(e.contains("no encryption"), "{e}");

    drop(restore);
    db.exec("SELECT pg_reload_conf()").await;
    let (n, encrypted) =
        round_trip(&db, &config_with(&db, "127.0.0.1", "sslmode=disable"), 12).await;
    assert!(
        n >= 1 && !encrypted,
        "sslmode=disable: {n} connections, encrypted {encrypted}"
    );

    // Every row made it, whichever way it came.
    let ids: Vec<i64> = db
        .client
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, [1, 10, 11, 12, 13, 14]);
    db.finish().await;
}

/// Over the server's Unix socket there is no TLS, whatever sslmode says (as with libpq): the
/// default `prefer` and even `require` connect in plain, snapshot and stream alike. (The
/// `prefer` default once failed every attempt with "invalid dns name", the socket's empty
/// host name being taken for a certificate name.)
#[tokio::test]
async fn unix_socket_connects_in_plain_whatever_sslmode() {
    let Ok(dir) = std::env::var("SLUICE_TEST_PG_DIR") else {
        eprintln!(
            "SKIPPED: SLUICE_TEST_PG_DIR not set: the server's socket directory is not known (run scripts/test)"
        );
        return;
    };
    let Some(db) = TestDb::new().await else {
        return;
    };
    db.exec("CREATE TABLE t (id bigint PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')")
        .await;
    let port = db
        .url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap()
        .to_owned();
    let unix = |params: &str| {
        let mut c = db.config("app");
        c.url = Secret::new(format!(
            "postgres://postgres@/{}?host={dir}&port={port}{params}",
            db.name
        ));
        c
    };
    for (params, id) in [("", 20), ("&sslmode=require", 21)] {
        let (n, encrypted) = round_trip(&db, &unix(params), id).await;
        assert!(
            n >= 1 && !encrypted,
            "unix socket{params}: {n} connections, encrypted {encrypted}"
        );
    }
    let ids: Vec<i64> = db
        .client
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, [1, 20, 21]);
    db.finish().await;
}
