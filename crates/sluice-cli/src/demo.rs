//! `sluice demo`: the embedded quickstart. A sample SQLite database in a temporary directory,
//! a pipeline to stdout, and live inserts, updates and deletes while it runs.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sluice_core::{CheckpointStore, Position};
use sluice_engine::{FileCheckpointStore, RunOptions, topology};

use crate::cli::DemoArgs;

const SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, plan TEXT NOT NULL DEFAULT 'free');
CREATE TABLE orders (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, total REAL NOT NULL, paid INTEGER NOT NULL DEFAULT 0);
INSERT INTO users (name, email) VALUES ('Ada', 'ada@example.com'), ('Grace', 'grace@example.com'), ('Linus', NULL);
INSERT INTO orders VALUES ('5f0c6a1e-0000-4000-8000-000000000001', 1, 19.99, 1), ('5f0c6a1e-0000-4000-8000-000000000002', 2, 5.5, 0);
";

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("sluice-demo-")
        .tempdir()
        .context("creating a temporary directory")?;
    let db = dir.path().join("demo.db");
    rusqlite::Connection::open(&db)
        .and_then(|c| c.execute_batch(SCHEMA))
        .with_context(|| format!("creating the sample database {}", db.display()))?;
    let config_path = dir.path().join("sluice.toml");
    std::fs::write(
        &config_path,
        "[sources.demo]\ntype = \"sqlite\"\npath = \"demo.db\"\npoll_interval_ms = 20\nmax_idle_interval_ms = 100\n\n\
         [sinks.console]\ntype = \"stdout\"\ninputs = [\"demo\"]\nbatch = { timeout_ms = 10 }\n",
    )?;
    let config = crate::commands::load(&config_path)?;
    eprintln!(
        "demo: sample database {} (tables users, orders)",
        db.display()
    );
    eprintln!(
        "demo: config {}; events are JSON lines on stdout, narration on stderr",
        config_path.display()
    );
    eprintln!("demo: snapshot of existing rows first (op \"read\"), then live changes:");

    let store = Arc::new(FileCheckpointStore::new(&config.data_dir));
    let pipeline = topology::build(&config, store.clone(), RunOptions::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(pipeline.run(stop_rx));

    let writer_db = db.clone();
    let (changes, interval) = (args.changes, Duration::from_millis(args.interval_ms));
    let writer = tokio::task::spawn_blocking(move || write_changes(&writer_db, changes, interval));
    let written = writer.await.context("the demo writer panicked")??;

    // Wait until everything written is checkpointed, i.e. delivered to stdout.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let head = changelog_head(&db)?;
        let at = store.load("demo")?.map(|c| c.position);
        if matches!(at, Some(Position::Sqlite(p)) if !p.snapshot && p.seq >= head) {
            break;
        }
        if running.is_finished() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_tx.send_replace(true);
    let summary = running.await.context("the demo pipeline panicked")??;
    let delivered: u64 = summary.sources.iter().map(|s| s.1).sum();
    eprintln!("demo: made {written} live changes; {delivered} events delivered and checkpointed");
    if delivered < u64::from(written) {
        bail!("only {delivered} of at least {written} events arrived");
    }
    eprintln!("demo: next, point sluice at your own database: sluice init --from path/to/app.db");
    Ok(ExitCode::SUCCESS)
}

fn changelog_head(db: &std::path::Path) -> Result<i64> {
    let conn = rusqlite::Connection::open(db)?;
    let seq = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = '_sluice_changelog'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0);
    Ok(seq)
}

fn write_changes(db: &std::path::Path, changes: u32, interval: Duration) -> Result<u32> {
    let conn = rusqlite::Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // Give the pipeline time to install triggers and take its snapshot.
    let deadline = Instant::now() + Duration::from_secs(10);
    while conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'",
        [],
        |r| r.get::<_, i64>(0),
    )? == 0
    {
        if Instant::now() > deadline {
            bail!("the pipeline did not install its triggers within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(interval);
    let names = ["Margaret", "Edsger", "Barbara", "Donald", "Frances", "Ken"];
    for i in 0..changes {
        std::thread::sleep(interval);
        let n = i as usize;
        let sql = match i % 4 {
            0 => format!(
                "INSERT INTO users (name, email) VALUES ('{0}', '{1}@example.com')",
                names[n / 4 % names.len()],
                names[n / 4 % names.len()].to_lowercase()
            ),
            1 => format!(
                "UPDATE users SET plan = 'pro' WHERE id = (SELECT max(id) FROM users) -- change {i}"
            ),
            2 => format!(
                "INSERT INTO orders VALUES ('9b2d4c7e-0000-4000-8000-{i:012}', (SELECT max(id) FROM users), {}.5, 0)",
                i + 10
            ),
            _ => "DELETE FROM orders WHERE id = (SELECT min(id) FROM orders)".to_owned(),
        };
        eprintln!("demo: {}", sql.split(" -- ").next().unwrap_or(&sql));
        conn.execute(&sql, [])?;
    }
    Ok(changes)
}
