//! End-to-end tests of the `sluice` binary on real SQLite files.

// Test helpers outside #[test] functions may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod cli;
mod crash;
mod pg;
mod pg_crash;
mod pg_restart;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn sluice() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.env_remove("SLUICE_CONFIG").env("SLUICE_LOG", "warn");
    c
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn sluice");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A temporary directory with a SQLite database `app.db` and a config writing to `out.jsonl`.
#[derive(Debug)]
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new(schema: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
        conn.execute_batch(schema).unwrap();
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write_config(&self, extra_source: &str, sink: &str) -> PathBuf {
        let path = self.path("sluice.toml");
        std::fs::write(
            &path,
            format!(
                "[sources.app]\ntype = \"sqlite\"\npath = \"app.db\"\npoll_interval_ms = 10\nmax_idle_interval_ms = 50\n{extra_source}\n\n[sinks.out]\ninputs = [\"app\"]\n{sink}\n"
            ),
        )
        .unwrap();
        path
    }

    pub fn db(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.path("app.db")).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        c
    }
}

/// Parse the JSON lines of a file sink.
pub fn events(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}
