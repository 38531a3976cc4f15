//! The decoded pgoutput messages.
//!
//! Field names follow the PostgreSQL documentation ("Logical Replication Message Formats").
//! Transaction ids are `u32` (the server's `TransactionId`), relation and type ids are `u32`
//! OIDs.

use std::fmt;

use sluice_core::PgLsn;

use super::tuple::Tuple;
use crate::PgTimestamp;

/// One decoded pgoutput message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Start of a (non-streamed) transaction.
    Begin {
        /// LSN of the transaction's commit record.
        final_lsn: PgLsn,
        /// Commit time.
        timestamp: PgTimestamp,
        /// Transaction id.
        xid: u32,
    },
    /// End of a (non-streamed) transaction.
    Commit {
        /// Flags; currently unused by the server and always 0.
        flags: u8,
        /// LSN of the commit record.
        commit_lsn: PgLsn,
        /// LSN just after the commit record: the position to confirm once it is durable.
        end_lsn: PgLsn,
        /// Commit time.
        timestamp: PgTimestamp,
    },
    /// The transaction came from another node through replication origin `name`.
    Origin {
        /// LSN of the commit on the origin server.
        commit_lsn: PgLsn,
        /// Origin name.
        name: String,
    },
    /// Describes a table. Sent before the first change to it in a session, and again
    /// whenever its definition changes; later row messages refer to it by OID.
    Relation(Relation),
    /// Describes a non-built-in type used by a column.
    Type {
        /// Transaction id, only inside a stream.
        xid: Option<u32>,
        /// Type OID.
        oid: u32,
        /// Schema name; empty for `pg_catalog`.
        namespace: String,
        /// Type name.
        name: String,
    },
    /// A row was inserted.
    Insert {
        /// Transaction id, only inside a stream.
        xid: Option<u32>,
        /// Relation OID (see [`Message::Relation`]).
        rel: u32,
        /// The new row.
        new: Tuple,
    },
    /// A row was updated.
    Update {
        /// Transaction id, only inside a stream.
        xid: Option<u32>,
        /// Relation OID.
        rel: u32,
        /// The old row or its key, when the server sent one (see [`OldTuple`]).
        old: Option<OldTuple>,
        /// The new row. Unchanged TOAST columns are [`super::Cell::Unchanged`].
        new: Tuple,
    },
    /// A row was deleted.
    Delete {
        /// Transaction id, only inside a stream.
        xid: Option<u32>,
        /// Relation OID.
        rel: u32,
        /// The deleted row's key or whole old row.
        old: OldTuple,
    },
    /// Tables were truncated.
    Truncate {
        /// Transaction id, only inside a stream.
        xid: Option<u32>,
        /// `TRUNCATE ... CASCADE`.
        cascade: bool,
        /// `TRUNCATE ... RESTART IDENTITY`.
        restart_identity: bool,
        /// Relation OIDs.
        rels: Vec<u32>,
    },
    /// A message written with `pg_logical_emit_message()` (sent only with the `messages`
    /// option).
    Message {
        /// Transaction id, only inside a stream.
        xid: Option<u32>,
        /// True when the message is part of a transaction.
        transactional: bool,
        /// LSN of the message.
        lsn: PgLsn,
        /// The prefix given to `pg_logical_emit_message()`.
        prefix: String,
        /// The content, as raw bytes.
        content: Vec<u8>,
    },
    /// Start of a block of changes of an in-progress transaction (protocol 2+). Until the
    /// matching [`Message::StreamStop`], data messages carry the transaction id.
    StreamStart {
        /// Transaction id of the top-level transaction.
        xid: u32,
        /// True for the transaction's first block.
        first_segment: bool,
    },
    /// End of a block of streamed changes (protocol 2+).
    StreamStop,
    /// A streamed transaction committed (protocol 2+).
    StreamCommit {
        /// Transaction id.
        xid: u32,
        /// Flags; currently unused and always 0.
        flags: u8,
        /// LSN of the commit record.
        commit_lsn: PgLsn,
        /// LSN just after the commit record.
        end_lsn: PgLsn,
        /// Commit time.
        timestamp: PgTimestamp,
    },
    /// A streamed transaction, or one of its subtransactions, aborted (protocol 2+).
    StreamAbort {
        /// Transaction id of the top-level transaction.
        xid: u32,
        /// Transaction id of the aborted subtransaction; equal to `xid` for the whole
        /// transaction.
        subxid: u32,
        /// Where and when it aborted; sent only with protocol 4 and `streaming 'parallel'`.
        abort: Option<AbortInfo>,
    },
    /// Start of a prepared transaction (protocol 3+, `two_phase`).
    BeginPrepare {
        /// LSN of the prepare record.
        prepare_lsn: PgLsn,
        /// LSN just after the prepare record.
        end_lsn: PgLsn,
        /// Prepare time.
        timestamp: PgTimestamp,
        /// Transaction id.
        xid: u32,
        /// Global transaction id given to `PREPARE TRANSACTION`.
        gid: String,
    },
    /// A transaction was prepared (protocol 3+).
    Prepare(PrepareInfo),
    /// A prepared transaction committed (protocol 3+).
    CommitPrepared {
        /// Flags; currently unused and always 0.
        flags: u8,
        /// LSN of the commit record.
        commit_lsn: PgLsn,
        /// LSN just after the commit record.
        end_lsn: PgLsn,
        /// Commit time.
        timestamp: PgTimestamp,
        /// Transaction id.
        xid: u32,
        /// Global transaction id.
        gid: String,
    },
    /// A prepared transaction was rolled back (protocol 3+).
    RollbackPrepared {
        /// Flags; currently unused and always 0.
        flags: u8,
        /// LSN just after the prepare record.
        prepare_end_lsn: PgLsn,
        /// LSN just after the rollback record.
        rollback_end_lsn: PgLsn,
        /// Prepare time.
        prepare_timestamp: PgTimestamp,
        /// Rollback time.
        rollback_timestamp: PgTimestamp,
        /// Transaction id.
        xid: u32,
        /// Global transaction id.
        gid: String,
    },
    /// A streamed transaction was prepared (protocol 3+, streaming and `two_phase`).
    StreamPrepare(PrepareInfo),
}

impl Message {
    /// Which kind of message this is.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Begin { .. } => MessageKind::Begin,
            Message::Commit { .. } => MessageKind::Commit,
            Message::Origin { .. } => MessageKind::Origin,
            Message::Relation(_) => MessageKind::Relation,
            Message::Type { .. } => MessageKind::Type,
            Message::Insert { .. } => MessageKind::Insert,
            Message::Update { .. } => MessageKind::Update,
            Message::Delete { .. } => MessageKind::Delete,
            Message::Truncate { .. } => MessageKind::Truncate,
            Message::Message { .. } => MessageKind::Message,
            Message::StreamStart { .. } => MessageKind::StreamStart,
            Message::StreamStop => MessageKind::StreamStop,
            Message::StreamCommit { .. } => MessageKind::StreamCommit,
            Message::StreamAbort { .. } => MessageKind::StreamAbort,
            Message::BeginPrepare { .. } => MessageKind::BeginPrepare,
            Message::Prepare(_) => MessageKind::Prepare,
            Message::CommitPrepared { .. } => MessageKind::CommitPrepared,
            Message::RollbackPrepared { .. } => MessageKind::RollbackPrepared,
            Message::StreamPrepare(_) => MessageKind::StreamPrepare,
        }
    }
}

/// The body shared by Prepare `'P'` and Stream Prepare `'p'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareInfo {
    /// Flags; currently unused and always 0.
    pub flags: u8,
    /// LSN of the prepare record.
    pub prepare_lsn: PgLsn,
    /// LSN just after the prepare record.
    pub end_lsn: PgLsn,
    /// Prepare time.
    pub timestamp: PgTimestamp,
    /// Transaction id.
    pub xid: u32,
    /// Global transaction id.
    pub gid: String,
}

/// Where and when a streamed transaction aborted (protocol 4, `streaming 'parallel'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortInfo {
    /// LSN of the abort record.
    pub lsn: PgLsn,
    /// Abort time.
    pub timestamp: PgTimestamp,
}

/// The old side of an Update or Delete.
#[derive(Debug, Clone, PartialEq)]
pub enum OldTuple {
    /// `'K'`: the replica identity key columns (primary key or `REPLICA IDENTITY USING
    /// INDEX`). Every column of the table is present; those outside the key are
    /// [`super::Cell::Null`]. An Update sends it only when the key changed.
    Key(Tuple),
    /// `'O'`: the whole old row (`REPLICA IDENTITY FULL`).
    Full(Tuple),
}

impl OldTuple {
    /// The tuple, whichever kind it is.
    pub fn tuple(&self) -> &Tuple {
        match self {
            OldTuple::Key(t) | OldTuple::Full(t) => t,
        }
    }
}

/// A table description from a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Transaction id, only inside a stream.
    pub xid: Option<u32>,
    /// Relation OID, used by row messages to refer to this table.
    pub oid: u32,
    /// Schema name; empty for `pg_catalog`.
    pub namespace: String,
    /// Table name.
    pub name: String,
    /// What the old side of updates and deletes contains.
    pub replica_identity: ReplicaIdentity,
    /// The published columns, in the order tuples use.
    pub columns: Vec<RelationColumn>,
}

/// A table's `REPLICA IDENTITY`, which decides what Update and Delete messages say about the
/// old row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicaIdentity {
    /// `'d'`: the primary key columns.
    Default,
    /// `'n'`: nothing; updates and deletes cannot be published.
    Nothing,
    /// `'f'`: the whole old row.
    Full,
    /// `'i'`: the columns of a chosen unique index.
    Index,
}

impl ReplicaIdentity {
    /// The setting for its protocol byte.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            b'd' => Self::Default,
            b'n' => Self::Nothing,
            b'f' => Self::Full,
            b'i' => Self::Index,
            _ => return None,
        })
    }

    /// The protocol byte.
    pub fn as_byte(self) -> u8 {
        match self {
            Self::Default => b'd',
            Self::Nothing => b'n',
            Self::Full => b'f',
            Self::Index => b'i',
        }
    }
}

/// One column of a [`Relation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// True when the column is part of the replica identity key (flag bit 1).
    pub key: bool,
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// Type modifier (`atttypmod`), e.g. the length of `varchar(n)`; -1 when none.
    pub type_modifier: i32,
}

/// The kinds of pgoutput message, with their type bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// `'B'`
    Begin,
    /// `'C'`
    Commit,
    /// `'O'`
    Origin,
    /// `'R'`
    Relation,
    /// `'Y'`
    Type,
    /// `'I'`
    Insert,
    /// `'U'`
    Update,
    /// `'D'`
    Delete,
    /// `'T'`
    Truncate,
    /// `'M'`
    Message,
    /// `'S'`
    StreamStart,
    /// `'E'`
    StreamStop,
    /// `'c'`
    StreamCommit,
    /// `'A'`
    StreamAbort,
    /// `'b'`
    BeginPrepare,
    /// `'P'`
    Prepare,
    /// `'K'`
    CommitPrepared,
    /// `'r'`
    RollbackPrepared,
    /// `'p'`
    StreamPrepare,
}

impl MessageKind {
    /// Every kind, in the order of the PostgreSQL documentation.
    pub const ALL: [MessageKind; 19] = [
        Self::Begin,
        Self::Message,
        Self::Commit,
        Self::Origin,
        Self::Relation,
        Self::Type,
        Self::Insert,
        Self::Update,
        Self::Delete,
        Self::Truncate,
        Self::StreamStart,
        Self::StreamStop,
        Self::StreamCommit,
        Self::StreamAbort,
        Self::BeginPrepare,
        Self::Prepare,
        Self::CommitPrepared,
        Self::RollbackPrepared,
        Self::StreamPrepare,
    ];

    /// The kind for a message type byte.
    pub fn from_tag(tag: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.tag() == tag)
    }

    /// The message type byte.
    pub fn tag(self) -> u8 {
        match self {
            Self::Begin => b'B',
            Self::Commit => b'C',
            Self::Origin => b'O',
            Self::Relation => b'R',
            Self::Type => b'Y',
            Self::Insert => b'I',
            Self::Update => b'U',
            Self::Delete => b'D',
            Self::Truncate => b'T',
            Self::Message => b'M',
            Self::StreamStart => b'S',
            Self::StreamStop => b'E',
            Self::StreamCommit => b'c',
            Self::StreamAbort => b'A',
            Self::BeginPrepare => b'b',
            Self::Prepare => b'P',
            Self::CommitPrepared => b'K',
            Self::RollbackPrepared => b'r',
            Self::StreamPrepare => b'p',
        }
    }

    /// True for the kinds that carry a transaction id prefix inside a stream.
    pub fn has_stream_xid(self) -> bool {
        matches!(
            self,
            Self::Relation
                | Self::Type
                | Self::Insert
                | Self::Update
                | Self::Delete
                | Self::Truncate
                | Self::Message
        )
    }

    /// The first protocol version that has this kind, and the feature it belongs to.
    pub(crate) fn min_version(self) -> Option<(u32, &'static str)> {
        match self {
            Self::StreamStart | Self::StreamStop | Self::StreamCommit | Self::StreamAbort => {
                Some((2, "streaming"))
            }
            Self::BeginPrepare
            | Self::Prepare
            | Self::CommitPrepared
            | Self::RollbackPrepared
            | Self::StreamPrepare => Some((3, "two-phase commit")),
            _ => None,
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Begin => "Begin",
            Self::Commit => "Commit",
            Self::Origin => "Origin",
            Self::Relation => "Relation",
            Self::Type => "Type",
            Self::Insert => "Insert",
            Self::Update => "Update",
            Self::Delete => "Delete",
            Self::Truncate => "Truncate",
            Self::Message => "Logical Message",
            Self::StreamStart => "Stream Start",
            Self::StreamStop => "Stream Stop",
            Self::StreamCommit => "Stream Commit",
            Self::StreamAbort => "Stream Abort",
            Self::BeginPrepare => "Begin Prepare",
            Self::Prepare => "Prepare",
            Self::CommitPrepared => "Commit Prepared",
            Self::RollbackPrepared => "Rollback Prepared",
            Self::StreamPrepare => "Stream Prepare",
        })
    }
}
