//! PostgreSQL helpers for the end-to-end tests: a fresh database per test (dropped when the
//! test passes, kept and named when it fails), a blocking client, a writer thread, and the
//! fold of the file sink's events into table state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A blocking PostgreSQL client: tokio-postgres on a private current-thread runtime.
pub struct Pg {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg").finish_non_exhaustive()
    }
}

impl Pg {
    pub fn connect(url: &str) -> Result<Pg, tokio_postgres::Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok::<_, tokio_postgres::Error>(client)
        })?;
        Ok(Pg { rt, client })
    }

    pub fn try_exec(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.rt.block_on(self.client.batch_execute(sql))
    }

    pub fn exec(&self, sql: &str) {
        self.try_exec(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    /// Flush the server's WAL. The test server runs with `synchronous_commit = off`, so the
    /// last commits may not be flushed yet, and logical decoding only reads flushed WAL; a
    /// synchronous commit flushes everything before it. (Only a commit that wrote WAL of its
    /// own flushes: a bare `txid_current()` transaction does not.)
    pub fn flush_wal(&self) {
        self.exec(
            "BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_logical_emit_message(true, 'test_flush', ''); COMMIT;",
        );
    }

    /// `SELECT id, val, n, doc FROM items` as the state the events must fold into.
    pub fn items(&self) -> State {
        self.rt
            .block_on(
                self.client
                    .query("SELECT id, val, n::bigint, doc FROM items", &[]),
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
            .collect()
    }
}

/// A database created for one test on the server at `admin_url`.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin_url: String,
    pub client: Pg,
}

impl TestDb {
    /// A fresh database on the server named by `SLUICE_TEST_PG_URL`, or `None` (after a loud
    /// message) when it is not set.
    pub fn from_env() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var("SLUICE_TEST_PG_URL") else {
            eprintln!("SKIPPED: SLUICE_TEST_PG_URL not set (run scripts/test)");
            return None;
        };
        Some(TestDb::create(&admin_url))
    }

    pub fn create(admin_url: &str) -> TestDb {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "sluice_cli_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos % 100_000
        );
        Pg::connect(admin_url)
            .unwrap()
            .exec(&format!("CREATE DATABASE {name}"));
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        let client = Pg::connect(&url).unwrap();
        eprintln!("test database: {name}");
        TestDb {
            name,
            url,
            admin_url: admin_url.to_owned(),
            client,
        }
    }

    /// A slot name of this database's own (slots are global to the server).
    pub fn slot(&self) -> String {
        format!("{}_slot", self.name)
    }

    /// Drop the database and its slots (only reached when the test passed).
    pub fn finish(self) {
        let admin = Pg::connect(&self.admin_url).unwrap();
        let name = &self.name;
        drop(self.client);
        admin.exec(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ));
        for _ in 0..50 {
            admin.exec(&format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{name}' AND NOT active"
            ));
            if admin
                .try_exec(&format!("DROP DATABASE IF EXISTS {name}"))
                .is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not drop database {name}");
    }
}

/// A directory with a config capturing `url` (table `items`) into `out.jsonl`.
pub fn write_config(dir: &Path, url: &str, slot: &str) -> PathBuf {
    let path = dir.join("sluice.toml");
    std::fs::write(
        &path,
        format!(
            "[sources.app]\ntype = \"postgres\"\nurl = \"{url}\"\ntables = [\"items\"]\nslot = \"{slot}\"\nstatus_interval_ms = 100\nheartbeat_interval_ms = 500\nbatch_size = 500\n\n[sinks.out]\ninputs = [\"app\"]\ntype = \"file\"\npath = \"out.jsonl\"\nbatch = {{ max_events = 500, timeout_ms = 5 }}\n"
        ),
    )
    .unwrap();
    path
}

/// The `items` table: `id bigint` key, `val text`, `n int`, and `doc text` stored out of line
/// without compression, so that big values are TOASTed and updates that leave them alone
/// send them as unchanged.
pub const ITEMS: &str =
    "CREATE TABLE items (id bigint PRIMARY KEY, val text NOT NULL, n int NOT NULL, doc text);
    ALTER TABLE items ALTER COLUMN doc SET STORAGE EXTERNAL;";

/// id → (val, n, doc).
pub type State = BTreeMap<i64, (String, i64, Option<String>)>;

/// What folding the events gave.
#[derive(Debug, Default)]
pub struct Folded {
    pub state: State,
    pub reads: usize,
    pub streamed: usize,
    /// Streamed changes seen more than once (same transaction and ordinal).
    pub duplicates: usize,
    /// Unchanged TOAST values folded.
    pub unchanged: usize,
}

/// The doc of a row that an unchanged value arrived for while the row was unknown.
const UNKNOWN: &str = "(unchanged value of an unknown row)";

/// Fold file-sink events of `public.items` into id → (val, n, doc); an unchanged value keeps
/// the old one.
pub fn fold(events: &[serde_json::Value]) -> Folded {
    let mut f = Folded::default();
    let mut seen: BTreeMap<(String, u64), u32> = BTreeMap::new();
    for e in events {
        assert_eq!(e["table"], "public.items", "{e}");
        let op = e["op"].as_str().unwrap();
        if op == "read" {
            f.reads += 1;
        } else {
            f.streamed += 1;
            let tx = &e["tx"];
            let key = (
                tx["id"].as_str().unwrap().to_owned(),
                tx["ordinal"].as_u64().unwrap(),
            );
            let n = seen.entry(key).or_default();
            *n += 1;
            if *n > 1 {
                f.duplicates += 1;
            }
        }
        if op == "truncate" {
            f.state.clear();
            continue;
        }
        if op == "schema" {
            continue;
        }
        let id = e["key"]["id"].as_i64().unwrap();
        match op {
            "read" | "insert" | "update" => {
                let after = &e["after"];
                let doc = if after["doc"]["$unchanged"] == true {
                    f.unchanged += 1;
                    // A replayed transaction can update a row that a later change of the
                    // same transaction deleted, already applied before the crash: the old
                    // value is unknown, and the replay's delete follows. If it stays,
                    // the comparison reports the row as stale.
                    f.state
                        .get(&id)
                        .map_or_else(|| Some(UNKNOWN.to_owned()), |row| row.2.clone())
                } else {
                    after["doc"].as_str().map(str::to_owned)
                };
                f.state.insert(
                    id,
                    (
                        after["val"].as_str().unwrap().to_owned(),
                        after["n"].as_i64().unwrap(),
                        doc,
                    ),
                );
            }
            "delete" => {
                f.state.remove(&id);
            }
            other => panic!("unexpected op {other}"),
        }
    }
    f
}

/// Rows lost (in the table, not the events), stale (different) and ghosts (only in the
/// events).
pub fn compare(truth: &State, got: &State) -> (usize, usize, usize) {
    let lost = truth.keys().filter(|k| !got.contains_key(k)).count();
    let stale = truth
        .iter()
        .filter(|(k, v)| got.get(k).is_some_and(|g| g != *v))
        .count();
    let ghosts = got.keys().filter(|k| !truth.contains_key(k)).count();
    (lost, stale, ghosts)
}

pub use crate::Rng;

/// A doc big enough to be TOASTed (~3 kB).
pub fn big_doc(seed: u64) -> String {
    format!("repeat(md5('{seed}'), 100)")
}

/// One random write to `items` (sometimes a multi-statement transaction), as SQL. Ids fall
/// in `0..max_id`.
pub fn random_write(rng: &mut Rng, max_id: u64) -> String {
    let id = rng.next_u64() % max_id;
    match rng.next_u64() % 10 {
        0 | 1 => format!(
            "INSERT INTO items VALUES ({id}, 'ins', 1, {}) ON CONFLICT (id) DO UPDATE SET val = 'ups', n = items.n + 1",
            if id.is_multiple_of(3) {
                big_doc(id)
            } else {
                "NULL".into()
            }
        ),
        // Leaves doc alone: a TOASTed doc arrives as unchanged.
        2..=4 => format!("UPDATE items SET val = 'upd', n = n + 1 WHERE id = {id}"),
        5 => format!(
            "UPDATE items SET doc = {}, n = n + 1 WHERE id = {id}",
            big_doc(rng.next_u64())
        ),
        6 | 7 => format!("DELETE FROM items WHERE id = {id}"),
        _ => format!(
            "BEGIN; UPDATE items SET val = 'multi', n = n + 1 WHERE id BETWEEN {id} AND {id} + 20;
             DELETE FROM items WHERE id = {};
             INSERT INTO items VALUES ({}, 'multi-ins', 0, NULL) ON CONFLICT (id) DO NOTHING;
             COMMIT;",
            (id + 7) % max_id,
            (id + 13) % max_id
        ),
    }
}
