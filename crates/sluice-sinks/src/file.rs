//! `type = "file"`: JSON lines appended to a file and fsynced before the write is
//! acknowledged.
//!
//! The file stays well-formed JSON lines across crashes and errors:
//! - a batch that fails half-written (disk full) is cut back to where it started before the
//!   error is returned, so a retry or restart does not leave a torn line behind;
//! - on open, a torn last line left by a crash between `write` and `fsync` is cut off (those
//!   changes were never acknowledged, so the engine replays them).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sluice_config::FileSinkConfig;
use sluice_core::{Change, Error, Result, Sink};

/// Appends changes to a file as JSON lines.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: Option<File>,
    buf: Vec<u8>,
}

impl FileSink {
    /// A file sink; the file is opened (and created, with its directory) on first write.
    pub fn new(config: &FileSinkConfig) -> Self {
        Self {
            path: config.path.clone(),
            file: None,
            buf: Vec::new(),
        }
    }

    fn io_error(&self, action: &str, e: std::io::Error) -> Error {
        let what = format!("{action} \"{}\" failed", self.path.display());
        let err = match e.kind() {
            std::io::ErrorKind::StorageFull => Error::permanent(format!(
                "{what}: no space left on device (hint: free disk space, then run again; \
                 nothing after the last checkpoint is lost)"
            )),
            std::io::ErrorKind::PermissionDenied => Error::permanent(format!(
                "{what}: permission denied (hint: check the permissions of the file and its directory)"
            )),
            std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock => {
                Error::transient(what)
            }
            _ => Error::permanent(what),
        };
        err.with_source(e)
    }
}

/// Open `path` for appending, creating it and its directory, and cut a torn last line.
fn open_repaired(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let len = file.metadata()?.len();
    if len > 0 {
        // Find the last newline, reading backwards in blocks.
        let mut end = len;
        let mut block = vec![0u8; 64 * 1024];
        let mut keep = 0;
        while end > 0 {
            let start = end.saturating_sub(block.len() as u64);
            let n = (end - start) as usize;
            file.seek(SeekFrom::Start(start))?;
            file.read_exact(&mut block[..n])?;
            if let Some(i) = block[..n].iter().rposition(|b| *b == b'\n') {
                keep = start + i as u64 + 1;
                break;
            }
            end = start;
        }
        if keep < len {
            tracing::warn!(
                file = %path.display(),
                bytes = len - keep,
                "cutting a torn last line left by an interrupted write; it will be replayed"
            );
            file.set_len(keep)?;
            file.sync_data()?;
        }
    }
    file.seek(SeekFrom::End(0))?;
    Ok(file)
}

#[async_trait]
impl Sink for FileSink {
    async fn write(&mut self, batch: &[Change]) -> Result<()> {
        if self.file.is_none() {
            let path = self.path.clone();
            let file = tokio::task::spawn_blocking(move || open_repaired(&path))
                .await
                .map_err(|e| Error::permanent("file sink task failed").with_source(e))?
                .map_err(|e| self.io_error("opening", e))?;
            self.file = Some(file);
        }
        self.buf.clear();
        crate::encode_lines(batch, false, &mut self.buf)?;
        let Some(mut file) = self.file.take() else {
            return Err(Error::permanent("file sink lost its file handle"));
        };
        let buf = std::mem::take(&mut self.buf);
        let (file, buf, result) = tokio::task::spawn_blocking(move || {
            let result = append_durably(&mut file, &buf);
            (file, buf, result)
        })
        .await
        .map_err(|e| Error::permanent("file sink task failed").with_source(e))?;
        self.buf = buf;
        match result {
            Ok(()) => {
                self.file = Some(file);
                Ok(())
            }
            // The file handle is dropped; the next write reopens and repairs.
            Err(e) => Err(self.io_error("appending to", e)),
        }
    }
}

/// Append `buf` and fsync; on failure, cut the file back to its previous length.
fn append_durably(file: &mut File, buf: &[u8]) -> std::io::Result<()> {
    let start = file.seek(SeekFrom::End(0))?;
    let result = file.write_all(buf).and_then(|()| file.sync_data());
    if result.is_err() {
        let _ = file.set_len(start);
        let _ = file.sync_data();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{Name, Op, Position, Row, SqlitePosition, Value};

    fn change(id: i64) -> Change {
        let row: Row = [(Name::new("id"), Value::Int(id))].into_iter().collect();
        Change {
            op: Op::Insert,
            source: "app".into(),
            table: "main.t".into(),
            key: row.clone(),
            before: None,
            after: Some(row),
            position: Position::Sqlite(SqlitePosition {
                seq: id,
                snapshot: false,
            }),
            tx: None,
            schema: None,
        }
    }

    #[tokio::test]
    async fn appends_lines_and_repairs_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.jsonl");
        let mut sink = FileSink::new(&FileSinkConfig { path: path.clone() });
        sink.write(&[change(1), change(2)]).await.unwrap();
        drop(sink);
        // Simulate a crash mid-line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"op\":\"ins").unwrap();
        drop(f);
        let mut sink = FileSink::new(&FileSinkConfig { path: path.clone() });
        sink.write(&[change(3)]).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let ids: Vec<i64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["key"]["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert_eq!(ids, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn full_disk_is_a_permanent_error_naming_the_file() {
        if !Path::new("/dev/full").exists() {
            eprintln!("SKIPPED: /dev/full is not available");
            return;
        }
        let mut sink = FileSink::new(&FileSinkConfig {
            path: "/dev/full".into(),
        });
        let err = sink.write(&[change(1)]).await.unwrap_err();
        assert!(!err.is_transient());
        assert!(err.to_string().contains("\"/dev/full\""), "{err}");
        assert!(err.to_string().contains("no space left"), "{err}");
    }
}
