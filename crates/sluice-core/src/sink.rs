//! The contract of a sink.

use async_trait::async_trait;

use crate::{Change, Result};

/// A destination for changes.
///
/// Contract:
/// - [`Sink::write`] returns `Ok` only when every change in the batch is **durable** at the
///   destination (fsynced, acknowledged by the broker, task succeeded...). The engine treats
///   `Ok` as an acknowledgement and may then checkpoint the source position.
/// - Delivery is **at-least-once**: after a crash the engine replays from the last
///   checkpoint, so a sink sees some changes again. Sinks write idempotently by key (upsert or
///   delete by primary key, Kafka keys, document ids) so that replay converges to the source.
/// - **Order per key** is preserved: batches arrive in source order and a sink must apply
///   changes to the same key in the order given.
/// - A sink never decides when a position is safe; the engine does.
/// - Errors are classed: a transient error makes the engine retry the same batch with
///   backoff; a permanent one stops the pipeline with the checkpoint intact.
#[async_trait]
pub trait Sink: Send {
    /// Write a batch durably.
    async fn write(&mut self, batch: &[Change]) -> Result<()>;

    /// Release resources at shutdown, after the last write.
    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}
