//! The parser: one XLogData payload in, one [`Message`] out.

use super::DecodeContext;
use super::error::{DecodeError, Field};
use super::message::{
    AbortInfo, Message, MessageKind, OldTuple, PrepareInfo, Relation, RelationColumn,
    ReplicaIdentity,
};
use super::reader::Reader;
use super::tuple::read_tuple;

const fn f(name: &'static str) -> Field {
    Field::Named(name)
}

/// Decodes one pgoutput message: the payload of an XLogData (`'w'`) message, starting at the
/// message type byte.
///
/// The whole payload must be exactly one message; bytes after it are an error. The function
/// is pure and never panics: every malformed input, including a length larger than the
/// message, is a [`DecodeError`].
pub fn decode(bytes: &[u8], ctx: &DecodeContext) -> Result<Message, DecodeError> {
    let version = ctx.protocol_version;
    if !(1..=4).contains(&version) {
        return Err(DecodeError::UnsupportedProtocolVersion { version });
    }
    let (&tag, _) = bytes.split_first().ok_or(DecodeError::Empty)?;
    let kind = MessageKind::from_tag(tag).ok_or(DecodeError::UnknownMessageType { tag })?;
    let needs = |feature, required| {
        if version < required {
            Err(DecodeError::FeatureNeedsVersion {
                kind,
                feature,
                required,
                version,
            })
        } else {
            Ok(())
        }
    };
    if let Some((required, feature)) = kind.min_version() {
        needs(feature, required)?;
    }
    let stream_xid = ctx.in_stream && kind.has_stream_xid();
    if stream_xid {
        needs("streaming", 2)?;
    }
    let abort_info = kind == MessageKind::StreamAbort && ctx.streaming_parallel;
    if abort_info {
        needs("parallel streaming", 4)?;
    }

    let mut r = Reader::after_tag(bytes, kind);
    let xid = if stream_xid {
        Some(r.u32(f("the transaction id"))?)
    } else {
        None
    };
    let message = match kind {
        MessageKind::Begin => Message::Begin {
            final_lsn: r.lsn(f("the final LSN"))?,
            timestamp: r.timestamp(f("the commit timestamp"))?,
            xid: r.u32(f("the transaction id"))?,
        },
        MessageKind::Commit => Message::Commit {
            flags: r.u8(f("the flags"))?,
            commit_lsn: r.lsn(f("the commit LSN"))?,
            end_lsn: r.lsn(f("the end LSN"))?,
            timestamp: r.timestamp(f("the commit timestamp"))?,
        },
        MessageKind::Origin => Message::Origin {
            commit_lsn: r.lsn(f("the origin commit LSN"))?,
            name: r.cstr(f("the origin name"))?,
        },
        MessageKind::Relation => Message::Relation(relation(&mut r, xid)?),
        MessageKind::Type => Message::Type {
            xid,
            oid: r.u32(f("the type id"))?,
            namespace: r.cstr(f("the type namespace"))?,
            name: r.cstr(f("the type name"))?,
        },
        MessageKind::Insert => {
            let rel = r.u32(f("the relation id"))?;
            marker(&mut r, b"N", "'N'")?;
            Message::Insert {
                xid,
                rel,
                new: read_tuple(&mut r)?,
            }
        }
        MessageKind::Update => {
            let rel = r.u32(f("the relation id"))?;
            let old = match marker(&mut r, b"KON", "'K', 'O' or 'N'")? {
                b'K' => Some(OldTuple::Key(read_tuple(&mut r)?)),
                b'O' => Some(OldTuple::Full(read_tuple(&mut r)?)),
                _ => None,
            };
            if old.is_some() {
                marker(&mut r, b"N", "'N'")?;
            }
            Message::Update {
                xid,
                rel,
                old,
                new: read_tuple(&mut r)?,
            }
        }
        MessageKind::Delete => {
            let rel = r.u32(f("the relation id"))?;
            let old = match marker(&mut r, b"KO", "'K' or 'O'")? {
                b'K' => OldTuple::Key(read_tuple(&mut r)?),
                _ => OldTuple::Full(read_tuple(&mut r)?),
            };
            Message::Delete { xid, rel, old }
        }
        MessageKind::Truncate => truncate(&mut r, xid)?,
        MessageKind::Message => {
            let flags = r.u8(f("the flags"))?;
            let lsn = r.lsn(f("the message LSN"))?;
            let prefix = r.cstr(f("the prefix"))?;
            let len = r.count32(f("the content length"))?;
            Message::Message {
                xid,
                transactional: flags & 1 != 0,
                lsn,
                prefix,
                content: r.bytes(len, f("the content"))?.to_vec(),
            }
        }
        MessageKind::StreamStart => Message::StreamStart {
            xid: r.u32(f("the transaction id"))?,
            first_segment: r.u8(f("the first-segment flag"))? == 1,
        },
        MessageKind::StreamStop => Message::StreamStop,
        MessageKind::StreamCommit => Message::StreamCommit {
            xid: r.u32(f("the transaction id"))?,
            flags: r.u8(f("the flags"))?,
            commit_lsn: r.lsn(f("the commit LSN"))?,
            end_lsn: r.lsn(f("the end LSN"))?,
            timestamp: r.timestamp(f("the commit timestamp"))?,
        },
        MessageKind::StreamAbort => Message::StreamAbort {
            xid: r.u32(f("the transaction id"))?,
            subxid: r.u32(f("the subtransaction id"))?,
            abort: if abort_info {
                Some(AbortInfo {
                    lsn: r.lsn(f("the abort LSN"))?,
                    timestamp: r.timestamp(f("the abort timestamp"))?,
                })
            } else {
                None
            },
        },
        MessageKind::BeginPrepare => Message::BeginPrepare {
            prepare_lsn: r.lsn(f("the prepare LSN"))?,
            end_lsn: r.lsn(f("the end LSN"))?,
            timestamp: r.timestamp(f("the prepare timestamp"))?,
            xid: r.u32(f("the transaction id"))?,
            gid: r.cstr(f("the global transaction id"))?,
        },
        MessageKind::Prepare => Message::Prepare(prepare(&mut r)?),
        MessageKind::StreamPrepare => Message::StreamPrepare(prepare(&mut r)?),
        MessageKind::CommitPrepared => Message::CommitPrepared {
            flags: r.u8(f("the flags"))?,
            commit_lsn: r.lsn(f("the commit LSN"))?,
            end_lsn: r.lsn(f("the end LSN"))?,
            timestamp: r.timestamp(f("the commit timestamp"))?,
            xid: r.u32(f("the transaction id"))?,
            gid: r.cstr(f("the global transaction id"))?,
        },
        MessageKind::RollbackPrepared => Message::RollbackPrepared {
            flags: r.u8(f("the flags"))?,
            prepare_end_lsn: r.lsn(f("the prepare end LSN"))?,
            rollback_end_lsn: r.lsn(f("the rollback end LSN"))?,
            prepare_timestamp: r.timestamp(f("the prepare timestamp"))?,
            rollback_timestamp: r.timestamp(f("the rollback timestamp"))?,
            xid: r.u32(f("the transaction id"))?,
            gid: r.cstr(f("the global transaction id"))?,
        },
    };
    r.finish()?;
    Ok(message)
}

/// Reads a tuple marker byte that must be one of `allowed`.
fn marker(r: &mut Reader<'_>, allowed: &[u8], expected: &'static str) -> Result<u8, DecodeError> {
    let offset = r.pos();
    let found = r.u8(f("the tuple marker"))?;
    if allowed.contains(&found) {
        Ok(found)
    } else {
        Err(DecodeError::UnexpectedTupleMarker {
            kind: r.kind(),
            offset,
            expected,
            found,
        })
    }
}

fn relation(r: &mut Reader<'_>, xid: Option<u32>) -> Result<Relation, DecodeError> {
    let oid = r.u32(f("the relation id"))?;
    let namespace = r.cstr(f("the namespace"))?;
    let name = r.cstr(f("the relation name"))?;
    let offset = r.pos();
    let identity = r.u8(f("the replica identity"))?;
    let replica_identity =
        ReplicaIdentity::from_byte(identity).ok_or(DecodeError::UnknownReplicaIdentity {
            kind: r.kind(),
            offset,
            found: identity,
        })?;
    let count = r.count16(f("the column count"))?;
    // A column takes at least 10 bytes (flags, empty name, type, typmod).
    const MIN_COLUMN_BYTES: usize = 10;
    if count.saturating_mul(MIN_COLUMN_BYTES) > r.remaining() {
        return Err(r.truncated(
            f("the columns (at least 10 bytes each)"),
            (count * MIN_COLUMN_BYTES) as u64,
        ));
    }
    let mut columns = Vec::with_capacity(count);
    for column in 1..=count {
        let at = |part| Field::Column { part, column };
        columns.push(RelationColumn {
            key: r.u8(at("the flags"))? & 1 != 0,
            name: r.cstr(at("the name"))?,
            type_oid: r.u32(at("the type id"))?,
            type_modifier: r.i32(at("the type modifier"))?,
        });
    }
    Ok(Relation {
        xid,
        oid,
        namespace,
        name,
        replica_identity,
        columns,
    })
}

fn truncate(r: &mut Reader<'_>, xid: Option<u32>) -> Result<Message, DecodeError> {
    let count = r.count32(f("the relation count"))?;
    let options = r.u8(f("the options"))?;
    let needed = (count as u64) * 4;
    if needed > r.remaining() as u64 {
        return Err(r.truncated(f("the relation ids"), needed));
    }
    let mut rels = Vec::with_capacity(count);
    for _ in 0..count {
        rels.push(r.u32(f("a relation id"))?);
    }
    Ok(Message::Truncate {
        xid,
        cascade: options & 1 != 0,
        restart_identity: options & 2 != 0,
        rels,
    })
}

fn prepare(r: &mut Reader<'_>) -> Result<PrepareInfo, DecodeError> {
    Ok(PrepareInfo {
        flags: r.u8(f("the flags"))?,
        prepare_lsn: r.lsn(f("the prepare LSN"))?,
        end_lsn: r.lsn(f("the end LSN"))?,
        timestamp: r.timestamp(f("the prepare timestamp"))?,
        xid: r.u32(f("the transaction id"))?,
        gid: r.cstr(f("the global transaction id"))?,
    })
}
