//! `type = "null"`: accepts and discards every change. For benchmarks and dry runs.

use async_trait::async_trait;
use sluice_core::{Change, Result, Sink};

/// A sink that discards everything, counting what it saw.
#[derive(Debug, Default)]
pub struct NullSink {
    /// Changes accepted so far.
    pub accepted: u64,
}

#[async_trait]
impl Sink for NullSink {
    async fn write(&mut self, batch: &[Change]) -> Result<()> {
        self.accepted += batch.len() as u64;
        Ok(())
    }
}
