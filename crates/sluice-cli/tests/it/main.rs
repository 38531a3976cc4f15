//! End-to-end tests of the `sluice` binary on real SQLite files.

// Test helpers outside #[test] functions may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod cli;
mod crash;
mod pg;
mod pg_crash;
mod pg_restart;
mod pg_slot;

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

/// xorshift: deterministic pseudo-randomness without a dependency.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// When [`kill_loop`] kills `sluice run`.
#[derive(Debug)]
pub struct KillPlan {
    pub kills: u32,
    /// The first cycles kill this long after start (during the snapshot).
    pub snapshot_kills_after_ms: Vec<u64>,
    /// Later cycles wait for the snapshot to finish, then `base + rand % spread` ms.
    pub stream_base_ms: u64,
    pub stream_spread_ms: u64,
    /// Longest wait for a snapshot to finish.
    pub snapshot_timeout: std::time::Duration,
}

/// Start `sluice run -c config` and SIGKILL it `plan.kills` times, during the snapshot and
/// mid-stream, judging the phase from the checkpoint file. Returns the kills per phase.
pub fn kill_loop(config: &Path, checkpoint: &Path, plan: &KillPlan) -> (u32, u32) {
    use std::time::{Duration, Instant};
    let in_snapshot = || {
        let cp = std::fs::read_to_string(checkpoint).unwrap_or_default();
        cp.is_empty() || cp.contains("\"snapshot\": true")
    };
    let mut rng = Rng(42);
    let (mut snapshot_kills, mut stream_kills) = (0, 0);
    for cycle in 0..plan.kills {
        let mut child = sluice().args(["run", "-c"]).arg(config).spawn().unwrap();
        if let Some(ms) = plan.snapshot_kills_after_ms.get(cycle as usize) {
            std::thread::sleep(Duration::from_millis(*ms));
        } else {
            let deadline = Instant::now() + plan.snapshot_timeout;
            while in_snapshot() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let jitter = rng.next_u64() % plan.stream_spread_ms.max(1);
            std::thread::sleep(Duration::from_millis(plan.stream_base_ms + jitter));
        }
        let phase_before_kill = in_snapshot();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if phase_before_kill {
            snapshot_kills += 1;
        } else {
            stream_kills += 1;
        }
    }
    eprintln!("kills during snapshot: {snapshot_kills}, during streaming: {stream_kills}");
    (snapshot_kills, stream_kills)
}
