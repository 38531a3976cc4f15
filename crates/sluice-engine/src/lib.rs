//! The sluice runtime.
//!
//! Builds the topology from a config ([`topology::build`]), runs it ([`Pipeline::run`]) and
//! keeps the central promise: **a source position is checkpointed, and confirmed to the
//! source, only after every sink fed by it has durably accepted every change up to that
//! position.** Restart resumes from the checkpoint, so delivery is at-least-once and sinks
//! converge by writing idempotently by key.
//!
//! - [`ack`]: the per-source acknowledgement tracker behind that promise.
//! - [`pipeline`]: tasks, bounded channels (backpressure), batching by count, bytes and time,
//!   retries with backoff and jitter, graceful shutdown.
//! - [`store`]: checkpoints as atomically replaced files, and the data directory lock.
//! - [`registry`]: the one explicit list of connectors.
//! - [`transform`]: `filter` and `select`.

pub mod ack;
pub mod pipeline;
pub mod registry;
mod retry;
pub mod store;
pub mod topology;
pub mod transform;

pub use pipeline::{Pipeline, Route, RunOptions, RunSummary, SinkSpec, SourceSpec};
pub use store::{DataDirLock, FileCheckpointStore};
