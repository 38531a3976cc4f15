//! The sink conformance suite against the file sink, on a real file.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use async_trait::async_trait;
use sluice_config::FileSinkConfig;
use sluice_core::Sink;
use sluice_sinks::file::FileSink;
use sluice_testing::sink::{self, SinkHarness, SinkState};

struct FileHarness {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl FileHarness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/changes.jsonl");
        Self { _dir: dir, path }
    }
}

#[async_trait]
impl SinkHarness for FileHarness {
    async fn make_sink(&mut self) -> Box<dyn Sink> {
        Box::new(FileSink::new(&FileSinkConfig {
            path: self.path.clone(),
        }))
    }

    async fn read_back(&mut self) -> SinkState {
        sink::fold_events(&std::fs::read_to_string(&self.path).unwrap_or_default())
    }
}

#[tokio::test]
async fn file_sink_is_durable_on_ack() {
    sink::check_durable_on_ack(&mut FileHarness::new()).await;
}

#[tokio::test]
async fn file_sink_replay_is_idempotent() {
    sink::check_idempotent_replay(&mut FileHarness::new()).await;
}

#[tokio::test]
async fn file_sink_keeps_order_per_key() {
    sink::check_order_per_key(&mut FileHarness::new()).await;
}
