//! Checkpoints on disk: one small JSON file per source under `<data_dir>/checkpoints/`,
//! replaced atomically (write a temporary file, fsync it, rename it over the old one, fsync
//! the directory), so a crash leaves either the old checkpoint or the new one.
//!
//! [`DataDirLock`] keeps two `sluice run` processes from sharing one data directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use sluice_core::{Checkpoint, CheckpointStore, Error, Result};

/// Checkpoints as atomically replaced JSON files.
#[derive(Debug, Clone)]
pub struct FileCheckpointStore {
    dir: PathBuf,
}

impl FileCheckpointStore {
    /// A store under `data_dir` (the directory is created on first save).
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("checkpoints"),
        }
    }

    fn file(&self, source: &str) -> PathBuf {
        self.dir.join(format!("{source}.json"))
    }
}

fn io(action: &str, path: &Path, e: std::io::Error) -> Error {
    let msg = format!("{action} checkpoint \"{}\" failed", path.display());
    match e.kind() {
        std::io::ErrorKind::StorageFull => Error::permanent(format!(
            "{msg}: no space left on device (hint: free disk space)"
        )),
        _ => Error::permanent(msg),
    }
    .with_source(e)
}

impl CheckpointStore for FileCheckpointStore {
    fn load(&self, source: &str) -> Result<Option<Checkpoint>> {
        let path = self.file(source);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading", &path, e)),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::permanent(format!(
                "checkpoint \"{}\" is corrupt (hint: restore it, or delete it to start over \
                 with a new snapshot)",
                path.display()
            ))
            .with_source(e)
        })
    }

    fn save(&self, source: &str, checkpoint: &Checkpoint) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(|e| io("creating directory for", &self.dir, e))?;
        let path = self.file(source);
        let tmp = self.dir.join(format!(".{source}.json.tmp"));
        let body = serde_json::to_vec_pretty(checkpoint)
            .map_err(|e| Error::permanent("cannot encode checkpoint").with_source(e))?;
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(&body)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io("writing", &path, e)
        })
    }

    fn list(&self) -> Result<Vec<(String, Checkpoint)>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("listing", &self.dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io("listing", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(source) = name.strip_suffix(".json").filter(|s| !s.starts_with('.'))
                && let Some(cp) = self.load(source)?
            {
                out.push((source.to_owned(), cp));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// An exclusive lock on a data directory, held while a pipeline runs.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Lock `data_dir` (creating it), or fail if another process holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self> {
        fs::create_dir_all(data_dir).map_err(|e| {
            Error::permanent(format!(
                "cannot create data directory \"{}\"",
                data_dir.display()
            ))
            .with_source(e)
        })?;
        let path = data_dir.join("lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("opening lock for", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::permanent(format!(
                "data directory \"{}\" is in use by another sluice process (hint: stop it, or \
                 give this pipeline its own `data_dir`)",
                data_dir.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(io("locking", &path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{Position, SqlitePosition};

    #[test]
    fn save_load_list_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path());
        assert_eq!(store.load("app").unwrap(), None);
        let cp = Checkpoint {
            position: Position::Sqlite(SqlitePosition {
                seq: 9,
                snapshot: false,
            }),
            updated_at_ms: 1,
            events: 9,
        };
        store.save("app", &cp).unwrap();
        store.save("app", &cp).unwrap();
        assert_eq!(store.load("app").unwrap(), Some(cp.clone()));
        assert_eq!(store.list().unwrap(), vec![("app".to_owned(), cp)]);
        fs::write(dir.path().join("checkpoints/app.json"), "{").unwrap();
        let err = store.load("app").unwrap_err();
        assert!(err.to_string().contains("is corrupt"), "{err}");
    }

    #[test]
    fn lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("in use by another sluice process"),
            "{err}"
        );
        drop(lock);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}
