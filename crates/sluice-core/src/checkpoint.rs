//! Where positions are remembered.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::{Error, Position, Result};

/// A stored position of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Resume point: every change up to it reached every sink.
    pub position: Position,
    /// When it was written, milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
    /// Changes delivered by this pipeline since the checkpoint store was created.
    #[serde(default)]
    pub events: u64,
}

/// Durable storage for source checkpoints.
///
/// Contract: [`CheckpointStore::save`] is atomic (after a crash, `load` returns either the
/// previous checkpoint or the new one, never a torn mix) and durable when it returns.
/// Implementations may block; the engine calls them off the async threads.
pub trait CheckpointStore: Send + Sync {
    /// The last saved checkpoint of `source`, if any.
    fn load(&self, source: &str) -> Result<Option<Checkpoint>>;

    /// Atomically and durably replace the checkpoint of `source`.
    fn save(&self, source: &str, checkpoint: &Checkpoint) -> Result<()>;

    /// All stored checkpoints, by source name.
    fn list(&self) -> Result<Vec<(String, Checkpoint)>>;
}

/// An in-memory store for engine tests. Not durable.
#[derive(Debug, Default)]
pub struct MemoryCheckpointStore {
    inner: Mutex<HashMap<String, Checkpoint>>,
}

impl MemoryCheckpointStore {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Checkpoint>>> {
        self.inner
            .lock()
            .map_err(|_| Error::permanent("memory checkpoint store is poisoned"))
    }
}

impl CheckpointStore for MemoryCheckpointStore {
    fn load(&self, source: &str) -> Result<Option<Checkpoint>> {
        Ok(self.lock()?.get(source).cloned())
    }

    fn save(&self, source: &str, checkpoint: &Checkpoint) -> Result<()> {
        self.lock()?.insert(source.to_owned(), checkpoint.clone());
        Ok(())
    }

    fn list(&self) -> Result<Vec<(String, Checkpoint)>> {
        let mut all: Vec<_> = self
            .lock()?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }
}
