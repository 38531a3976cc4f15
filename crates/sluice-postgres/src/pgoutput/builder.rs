//! Test- and fuzz-only (built with `--cfg fuzzing` for the round trip in `fuzz/`): builds
//! pgoutput bytes, by hand ([`Bytes`]) or from a [`Message`] ([`encode`]).

use super::{Cell, DecodeContext, Message, OldTuple, PrepareInfo, Relation, Tuple};

/// A byte builder in the server's wire format (big-endian, NUL-terminated strings).
#[derive(Debug, Default)]
pub(crate) struct Bytes(pub(crate) Vec<u8>);

impl Bytes {
    pub(crate) fn tag(tag: u8) -> Self {
        Self(vec![tag])
    }
    pub(crate) fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub(crate) fn i16(mut self, v: i16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn raw(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
    pub(crate) fn str(self, s: &str) -> Self {
        self.raw(s.as_bytes()).u8(0)
    }
    pub(crate) fn opt_u32(self, v: Option<u32>) -> Self {
        match v {
            Some(v) => self.u32(v),
            None => self,
        }
    }
    pub(crate) fn tuple(self, t: &Tuple) -> Self {
        let count = i16::try_from(t.cells.len()).expect("test tuple too wide");
        t.cells.iter().fold(self.i16(count), |b, cell| match cell {
            Cell::Null => b.u8(b'n'),
            Cell::Unchanged => b.u8(b'u'),
            Cell::Text(s) => b.u8(b't').len_prefixed(s.as_bytes()),
            Cell::Binary(v) => b.u8(b'b').len_prefixed(v),
        })
    }
    pub(crate) fn len_prefixed(self, v: &[u8]) -> Self {
        let len = i32::try_from(v.len()).expect("test value too long");
        self.i32(len).raw(v)
    }
    fn old(self, old: &OldTuple) -> Self {
        match old {
            OldTuple::Key(t) => self.u8(b'K').tuple(t),
            OldTuple::Full(t) => self.u8(b'O').tuple(t),
        }
    }
    fn prepare(self, p: &PrepareInfo) -> Self {
        self.u8(p.flags)
            .u64(p.prepare_lsn.0)
            .u64(p.end_lsn.0)
            .i64(p.timestamp.0)
            .u32(p.xid)
            .str(&p.gid)
    }
}

/// The bytes the server would send for `message`. The streaming xid of data messages is
/// written when the message has one, so `ctx` is only consulted for Stream Abort.
pub fn encode(message: &Message, ctx: &DecodeContext) -> Vec<u8> {
    let b = Bytes::tag(message.kind().tag());
    let b = match message {
        Message::Begin {
            final_lsn,
            timestamp,
            xid,
        } => b.u64(final_lsn.0).i64(timestamp.0).u32(*xid),
        Message::Commit {
            flags,
            commit_lsn,
            end_lsn,
            timestamp,
        } => b
            .u8(*flags)
            .u64(commit_lsn.0)
            .u64(end_lsn.0)
            .i64(timestamp.0),
        Message::Origin { commit_lsn, name } => b.u64(commit_lsn.0).str(name),
        Message::Relation(Relation {
            xid,
            oid,
            namespace,
            name,
            replica_identity,
            columns,
        }) => {
            let count = i16::try_from(columns.len()).expect("test relation too wide");
            let b = b
                .opt_u32(*xid)
                .u32(*oid)
                .str(namespace)
                .str(name)
                .u8(replica_identity.as_byte())
                .i16(count);
            columns.iter().fold(b, |b, c| {
                b.u8(u8::from(c.key))
                    .str(&c.name)
                    .u32(c.type_oid)
                    .i32(c.type_modifier)
            })
        }
        Message::Type {
            xid,
            oid,
            namespace,
            name,
        } => b.opt_u32(*xid).u32(*oid).str(namespace).str(name),
        Message::Insert { xid, rel, new } => b.opt_u32(*xid).u32(*rel).u8(b'N').tuple(new),
        Message::Update { xid, rel, old, new } => {
            let b = b.opt_u32(*xid).u32(*rel);
            let b = match old {
                Some(old) => b.old(old),
                None => b,
            };
            b.u8(b'N').tuple(new)
        }
        Message::Delete { xid, rel, old } => b.opt_u32(*xid).u32(*rel).old(old),
        Message::Truncate {
            xid,
            cascade,
            restart_identity,
            rels,
        } => {
            let count = i32::try_from(rels.len()).expect("test truncate too long");
            let options = u8::from(*cascade) | (u8::from(*restart_identity) << 1);
            let b = b.opt_u32(*xid).i32(count).u8(options);
            rels.iter().fold(b, |b, rel| b.u32(*rel))
        }
        Message::Message {
            xid,
            transactional,
            lsn,
            prefix,
            content,
        } => b
            .opt_u32(*xid)
            .u8(u8::from(*transactional))
            .u64(lsn.0)
            .str(prefix)
            .len_prefixed(content),
        Message::StreamStart { xid, first_segment } => b.u32(*xid).u8(u8::from(*first_segment)),
        Message::StreamStop => b,
        Message::StreamCommit {
            xid,
            flags,
            commit_lsn,
            end_lsn,
            timestamp,
        } => b
            .u32(*xid)
            .u8(*flags)
            .u64(commit_lsn.0)
            .u64(end_lsn.0)
            .i64(timestamp.0),
        Message::StreamAbort { xid, subxid, abort } => {
            let b = b.u32(*xid).u32(*subxid);
            match abort {
                Some(a) if ctx.streaming_parallel => b.u64(a.lsn.0).i64(a.timestamp.0),
                _ => b,
            }
        }
        Message::BeginPrepare {
            prepare_lsn,
            end_lsn,
            timestamp,
            xid,
            gid,
        } => b
            .u64(prepare_lsn.0)
            .u64(end_lsn.0)
            .i64(timestamp.0)
            .u32(*xid)
            .str(gid),
        Message::Prepare(p) | Message::StreamPrepare(p) => b.prepare(p),
        Message::CommitPrepared {
            flags,
            commit_lsn,
            end_lsn,
            timestamp,
            xid,
            gid,
        } => b
            .u8(*flags)
            .u64(commit_lsn.0)
            .u64(end_lsn.0)
            .i64(timestamp.0)
            .u32(*xid)
            .str(gid),
        Message::RollbackPrepared {
            flags,
            prepare_end_lsn,
            rollback_end_lsn,
            prepare_timestamp,
            rollback_timestamp,
            xid,
            gid,
        } => b
            .u8(*flags)
            .u64(prepare_end_lsn.0)
            .u64(rollback_end_lsn.0)
            .i64(prepare_timestamp.0)
            .i64(rollback_timestamp.0)
            .u32(*xid)
            .str(gid),
    };
    b.0
}
