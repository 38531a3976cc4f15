//! Streamed in-progress transactions (pgoutput protocol 2+, `streaming 'on'`).
//!
//! The server sends a transaction bigger than its `logical_decoding_work_mem` in blocks
//! (Stream Start … Stream Stop) while it is still running, interleaved with whole
//! transactions that commit meanwhile. Nothing of it may reach a sink before its Stream
//! Commit, so each block's messages go, as the server sent them, into an unlinked file per
//! transaction (gone with the process, even after `kill -9`; a restart is sent the whole
//! transaction again). Stream Commit replays the file as an ordinary Begin … Commit
//! transaction, one message at a time, so memory stays bounded whatever its size. Stream
//! Abort of the transaction drops the file; of a subtransaction, it cuts the file back to
//! where that subtransaction's first change was, as PostgreSQL's own apply worker does
//! (everything after it belongs to the subtransaction or to its children).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use sluice_core::{Error, Result};

use crate::PgTimestamp;
use crate::pgoutput::{self, DecodeContext, Message};

/// Buffer of each spill file's writer and of the replay reader.
const BUF_SIZE: usize = 64 * 1024;

/// The streamed transactions of one replication session.
#[derive(Debug)]
pub(crate) struct Streams {
    /// Where spill files go; `None`: the system temporary directory.
    dir: Option<PathBuf>,
    protocol_version: u32,
    /// Open streamed transactions, by top-level transaction id.
    open: HashMap<u32, Spilled>,
    /// The transaction of the block being received.
    current: Option<u32>,
}

#[derive(Debug)]
struct Spilled {
    file: BufWriter<File>,
    /// Bytes written.
    len: u64,
    /// Subtransactions in the order of their first change, with the file offset of it.
    subxacts: Vec<(u32, u64)>,
}

/// What to do with a message.
#[derive(Debug)]
pub(crate) enum Routed {
    /// Not part of a stream: handle it now.
    Now(Message),
    /// Kept for its commit, or dropped by an abort.
    Kept,
    /// A streamed transaction committed: handle what the replay yields.
    Commit(Replay),
}

impl Streams {
    pub fn new(dir: Option<PathBuf>, protocol_version: u32) -> Self {
        Streams {
            dir,
            protocol_version,
            open: HashMap::new(),
            current: None,
        }
    }

    /// Streamed transactions not yet committed or aborted.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// Route `message`, decoded from `raw`, in stream order.
    pub fn route(&mut self, message: Message, raw: &[u8]) -> Result<Routed> {
        match message {
            Message::StreamStart { xid, first_segment } => {
                if let Some(other) = self.current {
                    return Err(Error::permanent(format!(
                        "pgoutput sent Stream Start for transaction {xid} inside the block of transaction {other}"
                    )));
                }
                if first_segment {
                    let file = self.create()?;
                    tracing::debug!(xid, "streaming an in-progress transaction");
                    self.open.insert(
                        xid,
                        Spilled {
                            file: BufWriter::with_capacity(BUF_SIZE, file),
                            len: 0,
                            subxacts: Vec::new(),
                        },
                    );
                } else if !self.open.contains_key(&xid) {
                    // Cannot happen on one connection; a new one is sent the whole
                    // transaction again, so retrying is the way out.
                    return Err(Error::transient(format!(
                        "pgoutput continued streamed transaction {xid}, whose first block this connection did not receive"
                    )));
                }
                self.current = Some(xid);
                Ok(Routed::Kept)
            }
            Message::StreamStop => {
                self.current = None;
                Ok(Routed::Kept)
            }
            Message::StreamAbort { xid, subxid, .. } => {
                if xid == subxid {
                    // Dropping the file frees it.
                    self.open.remove(&xid);
                    tracing::debug!(xid, "streamed transaction aborted");
                } else if let Some(s) = self.open.get_mut(&xid)
                    && let Some(i) = s.subxacts.iter().position(|&(x, _)| x == subxid)
                {
                    let at = s.subxacts[i].1;
                    s.subxacts.truncate(i);
                    s.truncate(at).map_err(|e| spill_error(&e))?;
                }
                Ok(Routed::Kept)
            }
            Message::StreamCommit {
                xid,
                commit_lsn,
                end_lsn,
                timestamp,
                ..
            } => {
                let Some(spilled) = self.open.remove(&xid) else {
                    return Err(Error::transient(format!(
                        "pgoutput committed streamed transaction {xid}, whose blocks this connection did not receive"
                    )));
                };
                let bytes = spilled.len;
                let mut file = spilled
                    .file
                    .into_inner()
                    .map_err(|e| spill_error(e.error()))?;
                file.seek(SeekFrom::Start(0)).map_err(|e| spill_error(&e))?;
                tracing::debug!(xid, bytes, %end_lsn, "streamed transaction committed");
                Ok(Routed::Commit(Replay {
                    reader: BufReader::with_capacity(BUF_SIZE, file.take(bytes)),
                    ctx: DecodeContext {
                        protocol_version: self.protocol_version,
                        in_stream: true,
                        streaming_parallel: false,
                    },
                    step: Step::Begin,
                    xid,
                    commit_lsn,
                    end_lsn,
                    timestamp,
                    buf: Vec::new(),
                }))
            }
            Message::StreamPrepare(_) => Err(Error::permanent(
                "pgoutput sent Stream Prepare, but sluice does not ask for two-phase decoding",
            )),
            m if m.kind().has_stream_xid() => {
                let Some(top) = self.current else {
                    return Ok(Routed::Now(m));
                };
                let Some(s) = self.open.get_mut(&top) else {
                    return Err(Error::permanent(format!(
                        "pgoutput sent a change for streamed transaction {top} before its first block"
                    )));
                };
                // The decoder read the (sub)transaction id at bytes 1..5.
                let subxid = raw
                    .get(1..5)
                    .and_then(|b| b.try_into().ok())
                    .map_or(top, u32::from_be_bytes);
                if subxid != top && !s.subxacts.iter().any(|&(x, _)| x == subxid) {
                    s.subxacts.push((subxid, s.len));
                }
                s.append(raw).map_err(|e| spill_error(&e))?;
                Ok(Routed::Kept)
            }
            m => Ok(Routed::Now(m)),
        }
    }

    fn create(&self) -> Result<File> {
        let made = match &self.dir {
            Some(dir) => std::fs::create_dir_all(dir).and_then(|()| tempfile::tempfile_in(dir)),
            None => tempfile::tempfile(),
        };
        made.map_err(|e| {
            let dir = self
                .dir
                .clone()
                .unwrap_or_else(std::env::temp_dir)
                .display()
                .to_string();
            Error::transient(format!(
                "cannot make a spill file for a streamed transaction in {dir}: {e} (hint: make the directory writable, or set stream_in_progress = false)"
            ))
            .with_source(e)
        })
    }
}

impl Spilled {
    fn append(&mut self, raw: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(raw.len()).map_err(std::io::Error::other)?;
        self.file.write_all(&len.to_le_bytes())?;
        self.file.write_all(raw)?;
        self.len += 4 + u64::from(len);
        Ok(())
    }

    /// Cut the file back to `at` (a subtransaction aborted), keeping the Relation and Type
    /// messages of the part cut: pgoutput sends a table's description once per streamed
    /// transaction, inside whichever subtransaction touched the table first, and does not
    /// promise to send it again; a later change of the transaction may need it.
    fn truncate(&mut self, at: u64) -> std::io::Result<()> {
        self.file.flush()?;
        let file = self.file.get_mut();
        file.seek(SeekFrom::Start(at))?;
        let mut kept = Vec::new();
        {
            let mut reader = BufReader::with_capacity(BUF_SIZE, &*file);
            let mut len = [0u8; 4];
            let mut pos = at;
            while pos < self.len {
                reader.read_exact(&mut len)?;
                let len = u32::from_le_bytes(len);
                let mut tag = [0u8; 1];
                if len > 0 {
                    reader.read_exact(&mut tag)?;
                }
                let rest = u64::from(len.saturating_sub(1));
                if len > 0 && matches!(tag[0], b'R' | b'Y') {
                    let mut message = vec![tag[0]; 1];
                    message.resize(len as usize, 0);
                    reader.read_exact(&mut message[1..])?;
                    kept.push(message);
                } else {
                    reader.seek_relative(i64::try_from(rest).map_err(std::io::Error::other)?)?;
                }
                pos += 4 + u64::from(len);
            }
        }
        file.set_len(at)?;
        file.seek(SeekFrom::Start(at))?;
        self.len = at;
        for message in kept {
            self.append(&message)?;
        }
        Ok(())
    }
}

fn spill_error(e: &std::io::Error) -> Error {
    Error::transient(format!(
        "spill file of a streamed transaction: {e} (hint: free disk space where spill files go, or set stream_in_progress = false)"
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Begin,
    Changes,
    Done,
}

/// A committed streamed transaction, as the messages of an ordinary one: Begin, its changes
/// in stream order, Commit.
#[derive(Debug)]
pub(crate) struct Replay {
    reader: BufReader<std::io::Take<File>>,
    ctx: DecodeContext,
    step: Step,
    xid: u32,
    commit_lsn: sluice_core::PgLsn,
    end_lsn: sluice_core::PgLsn,
    timestamp: PgTimestamp,
    buf: Vec<u8>,
}

impl Replay {
    /// The next message; `None` after the Commit.
    pub fn next_message(&mut self) -> Result<Option<Message>> {
        match self.step {
            Step::Begin => {
                self.step = Step::Changes;
                Ok(Some(Message::Begin {
                    final_lsn: self.commit_lsn,
                    timestamp: self.timestamp,
                    xid: self.xid,
                }))
            }
            Step::Changes => {
                let mut len = [0u8; 4];
                match self.reader.read_exact(&mut len) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        self.step = Step::Done;
                        return Ok(Some(Message::Commit {
                            flags: 0,
                            commit_lsn: self.commit_lsn,
                            end_lsn: self.end_lsn,
                            timestamp: self.timestamp,
                        }));
                    }
                    Err(e) => return Err(spill_error(&e)),
                }
                self.buf.resize(u32::from_le_bytes(len) as usize, 0);
                self.reader
                    .read_exact(&mut self.buf)
                    .map_err(|e| spill_error(&e))?;
                let message = pgoutput::decode(&self.buf, &self.ctx).map_err(|e| {
                    Error::permanent(format!(
                        "cannot decode a message of streamed transaction {}: {e}",
                        self.xid
                    ))
                })?;
                Ok(Some(message))
            }
            Step::Done => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sluice_core::PgLsn;

    use super::*;
    use crate::pgoutput::builder::encode;
    use crate::pgoutput::{Cell, Tuple};

    /// Feeds messages through a session the way the capture loop does; returns what comes
    /// out to be handled, replays expanded.
    struct Session {
        streams: Streams,
        ctx: DecodeContext,
    }

    impl Session {
        fn new() -> Self {
            Session {
                streams: Streams::new(None, 2),
                ctx: DecodeContext::new(2),
            }
        }

        fn feed(&mut self, message: Message) -> Result<Vec<Message>> {
            let raw = encode(&message, &self.ctx);
            let decoded = pgoutput::decode(&raw, &self.ctx).unwrap();
            assert_eq!(decoded, message, "the test's message round-trips");
            self.ctx.observe(&decoded);
            Ok(match self.streams.route(decoded, &raw)? {
                Routed::Now(m) => vec![m],
                Routed::Kept => Vec::new(),
                Routed::Commit(mut replay) => {
                    let mut out = Vec::new();
                    while let Some(m) = replay.next_message()? {
                        out.push(m);
                    }
                    out
                }
            })
        }
    }

    fn insert(xid: Option<u32>, id: &str) -> Message {
        Message::Insert {
            xid,
            rel: 7,
            new: Tuple {
                cells: vec![Cell::Text(id.to_owned())],
            },
        }
    }

    fn ids(messages: &[Message]) -> Vec<String> {
        messages
            .iter()
            .map(|m| match m {
                Message::Begin { xid, .. } => format!("begin {xid}"),
                Message::Commit { end_lsn, .. } => format!("commit {end_lsn}"),
                Message::Insert { new, .. } => match &new.cells[0] {
                    Cell::Text(t) => t.clone(),
                    other => format!("{other:?}"),
                },
                other => format!("{:?}", other.kind()),
            })
            .collect()
    }

    fn start(xid: u32, first_segment: bool) -> Message {
        Message::StreamStart { xid, first_segment }
    }

    fn commit(xid: u32, end: u64) -> Message {
        Message::StreamCommit {
            xid,
            flags: 0,
            commit_lsn: PgLsn(end - 8),
            end_lsn: PgLsn(end),
            timestamp: PgTimestamp(1),
        }
    }

    fn abort(xid: u32, subxid: u32) -> Message {
        Message::StreamAbort {
            xid,
            subxid,
            abort: None,
        }
    }

    #[test]
    fn a_streamed_transaction_waits_for_its_commit_and_comes_out_whole() {
        let mut s = Session::new();
        assert!(s.feed(start(10, true)).unwrap().is_empty());
        assert!(s.feed(insert(Some(10), "a")).unwrap().is_empty());
        assert!(s.feed(Message::StreamStop).unwrap().is_empty());
        // A whole transaction committed meanwhile passes straight through.
        let begin = Message::Begin {
            final_lsn: PgLsn(90),
            timestamp: PgTimestamp(1),
            xid: 11,
        };
        assert_eq!(ids(&s.feed(begin).unwrap()), ["begin 11"]);
        assert_eq!(ids(&s.feed(insert(None, "x")).unwrap()), ["x"]);
        s.feed(start(10, false)).unwrap();
        assert!(s.feed(insert(Some(10), "b")).unwrap().is_empty());
        s.feed(Message::StreamStop).unwrap();
        assert_eq!(s.streams.open(), 1);
        let out = s.feed(commit(10, 200)).unwrap();
        assert_eq!(ids(&out), ["begin 10", "a", "b", "commit 0/C8"]);
        assert!(matches!(out[1], Message::Insert { xid: Some(10), .. }));
        assert_eq!(s.streams.open(), 0);
    }

    #[test]
    fn an_aborted_stream_is_dropped_and_a_subtransaction_abort_cuts_back_to_its_start() {
        let mut s = Session::new();
        s.feed(start(20, true)).unwrap();
        s.feed(insert(Some(20), "keep1")).unwrap();
        s.feed(insert(Some(21), "sub-kept")).unwrap();
        s.feed(insert(Some(22), "sub-rolled-back")).unwrap();
        s.feed(Message::StreamStop).unwrap();
        s.feed(start(30, true)).unwrap();
        s.feed(insert(Some(30), "other")).unwrap();
        s.feed(Message::StreamStop).unwrap();
        s.feed(start(20, false)).unwrap();
        s.feed(insert(Some(23), "child-of-22")).unwrap();
        s.feed(Message::StreamStop).unwrap();
        s.feed(abort(20, 22)).unwrap();
        // An abort of a subtransaction with nothing streamed changes nothing.
        s.feed(abort(20, 99)).unwrap();
        s.feed(abort(30, 30)).unwrap();
        assert_eq!(s.streams.open(), 1);
        s.feed(start(20, false)).unwrap();
        s.feed(insert(Some(20), "keep2")).unwrap();
        s.feed(Message::StreamStop).unwrap();
        let out = s.feed(commit(20, 300)).unwrap();
        assert_eq!(
            ids(&out),
            ["begin 20", "keep1", "sub-kept", "keep2", "commit 0/12C"]
        );
        assert!(
            s.feed(commit(30, 400))
                .unwrap_err()
                .message()
                .contains("30")
        );
    }

    #[test]
    fn a_subtransaction_abort_keeps_the_table_descriptions_it_carried() {
        use crate::pgoutput::{Relation, RelationColumn, ReplicaIdentity};
        let relation = Message::Relation(Relation {
            xid: Some(51),
            oid: 7,
            namespace: "public".into(),
            name: "t".into(),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![RelationColumn {
                key: true,
                name: "id".into(),
                type_oid: 23,
                type_modifier: -1,
            }],
        });
        let mut s = Session::new();
        s.feed(start(50, true)).unwrap();
        s.feed(relation.clone()).unwrap();
        s.feed(insert(Some(51), "rolled-back")).unwrap();
        s.feed(Message::StreamStop).unwrap();
        s.feed(abort(50, 51)).unwrap();
        s.feed(start(50, false)).unwrap();
        s.feed(insert(Some(50), "kept")).unwrap();
        s.feed(Message::StreamStop).unwrap();
        let out = s.feed(commit(50, 500)).unwrap();
        assert_eq!(ids(&out), ["begin 50", "Relation", "kept", "commit 0/1F4"]);
        assert_eq!(out[1], relation);
    }

    #[test]
    fn a_block_of_a_transaction_never_started_is_an_error_to_retry() {
        let mut s = Session::new();
        let e = s.feed(start(40, false)).unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert!(e.message().contains("40"), "{e}");
    }
}
