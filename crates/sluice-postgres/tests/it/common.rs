//! A fresh database per test, and helpers to drive a source like the engine does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sluice_config::model::PostgresSourceConfig;
use sluice_core::{Change, Op, Position, Row, Source, SourcePoll, Value};
use sluice_postgres::PostgresSource;
use tokio_postgres::{Client, NoTls};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database created for one test.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin_url: String,
    pub client: Client,
}

async fn client(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

impl TestDb {
    /// `None` (after a loud message) when no server is configured.
    pub async fn new() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var("SLUICE_TEST_PG_URL") else {
            eprintln!("SKIPPED: SLUICE_TEST_PG_URL not set (run scripts/test)");
            return None;
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "sluice_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos % 100_000
        );
        let admin = client(&admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        let client = client(&url).await;
        eprintln!("test database: {name}");
        Some(TestDb {
            name,
            url,
            admin_url,
            client,
        })
    }

    /// A source config with short intervals for tests.
    pub fn config(&self, source: &str) -> PostgresSourceConfig {
        let mut c = PostgresSourceConfig::new(source, &self.url);
        // Slots are global to the server: one per test database.
        c.slot = format!("{}_{}", self.name, c.slot);
        c.status_interval_ms = 100;
        c.heartbeat_interval_ms = 0;
        c
    }

    pub async fn exec(&self, sql: &str) {
        self.client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    /// Drop the database and its slots (only reached when the test passed).
    pub async fn finish(self) {
        let admin = client(&self.admin_url).await;
        let name = &self.name;
        drop(self.client);
        admin
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            ))
            .await
            .unwrap();
        for _ in 0..50 {
            admin
                .batch_execute(&format!(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{name}' AND NOT active"
                ))
                .await
                .unwrap();
            if admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("could not drop database {name}");
    }
}

/// Drives a source like the engine: polls, and confirms every batch's position at once.
pub struct Driver {
    pub source: PostgresSource,
    pub changes: Vec<Change>,
    pub last_position: Option<Position>,
    /// Confirm each batch as soon as it arrives (like an engine whose sinks are instant).
    pub confirm: bool,
}

impl Driver {
    pub async fn start(config: &PostgresSourceConfig, from: Option<Position>) -> Driver {
        let mut source = PostgresSource::new("app", config);
        source.start(from).await.unwrap();
        Driver {
            source,
            changes: Vec::new(),
            last_position: None,
            confirm: true,
        }
    }

    /// Poll once; true when it yielded a batch.
    pub async fn poll_once(&mut self) -> sluice_core::Result<bool> {
        match self.source.poll().await? {
            SourcePoll::Batch(b) => {
                if self.confirm {
                    self.source.confirm(&b.position).await?;
                }
                self.changes.extend(b.changes);
                self.last_position = Some(b.position);
                Ok(true)
            }
            SourcePoll::Idle | SourcePoll::Pending => Ok(false),
            SourcePoll::Done => panic!("postgres source is never done"),
        }
    }

    /// Poll until `done(changes)` holds, or panic after 30 s.
    pub async fn until(&mut self, what: &str, done: impl Fn(&[Change]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(&self.changes) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got {:#?}",
                self.changes
            );
            self.poll_once().await.unwrap();
        }
    }

    /// Poll until `n` changes (of any op) have arrived.
    pub async fn until_count(&mut self, n: usize) {
        self.until(&format!("{n} changes"), |c| c.len() >= n).await;
    }

    /// Poll until the source has nothing more for a little while.
    pub async fn drain(&mut self) {
        let mut idle = 0;
        while idle < 3 {
            if self.poll_once().await.unwrap() {
                idle = 0;
            } else {
                idle += 1;
            }
        }
    }
}

pub fn ops(changes: &[Change]) -> Vec<(Op, String)> {
    changes
        .iter()
        .map(|c| (c.op, c.table.to_string()))
        .collect()
}

pub fn int(row: &Row, col: &str) -> i64 {
    match row.get(col) {
        Some(Value::Int(i)) => *i,
        other => panic!("{col} is {other:?}"),
    }
}

/// Fold changes of `table` (key column `id`, int) into id → row, merging unchanged values.
pub fn fold(changes: &[Change], table: &str) -> BTreeMap<i64, Row> {
    let mut rows: BTreeMap<i64, Row> = BTreeMap::new();
    for c in changes.iter().filter(|c| &*c.table == table) {
        match c.op {
            Op::Read | Op::Insert | Op::Update => {
                let id = int(&c.key, "id");
                let mut after = c.after.clone().unwrap();
                if let Some(old) = rows.get(&id) {
                    for (col, v) in after.0.iter_mut() {
                        if *v == Value::Unchanged {
                            *v = old.get(col).cloned().unwrap();
                        }
                    }
                }
                rows.insert(id, after);
            }
            Op::Delete => {
                rows.remove(&int(&c.key, "id"));
            }
            Op::Truncate => rows.clear(),
            Op::Schema => {}
        }
    }
    rows
}

/// `SELECT id, v FROM table` as id → v (text).
pub async fn id_text(client: &Client, table: &str) -> BTreeMap<i64, Option<String>> {
    client
        .query(&format!("SELECT id::bigint, v::text FROM {table}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The folded rows as id → v (text), for comparison with [`id_text`].
pub fn folded_id_text(changes: &[Change], table: &str) -> BTreeMap<i64, Option<String>> {
    fold(changes, table)
        .into_iter()
        .map(|(id, row)| {
            let v = match row.get("v") {
                Some(Value::Text(t)) => Some(t.to_string()),
                Some(Value::Null) => None,
                other => panic!("v is {other:?}"),
            };
            (id, v)
        })
        .collect()
}
