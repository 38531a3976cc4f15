//! What can be wrong with a pgoutput message, and where.

use std::fmt;

use super::message::MessageKind;

/// A pgoutput message that could not be decoded. The bytes will not get better by trying
/// again: every variant is a permanent error (see the `From` conversion to
/// [`sluice_core::Error`]).
///
/// Byte offsets count from the message type byte (offset 0) of the XLogData payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload had no bytes at all.
    #[error("empty pgoutput message: expected at least the 1-byte message type")]
    Empty,
    /// The first byte is not a pgoutput message type.
    #[error("unknown pgoutput message type {}", Byte(*tag))]
    UnknownMessageType {
        /// The message type byte.
        tag: u8,
    },
    /// The decode context asks for a protocol version sluice does not know.
    #[error(
        "unsupported pgoutput protocol version {version}: sluice decodes versions 1 to 4; \
         hint: use proto_version 1 to 4 in START_REPLICATION"
    )]
    UnsupportedProtocolVersion {
        /// The version in the decode context.
        version: u32,
    },
    /// The message uses a feature the negotiated protocol version does not have.
    #[error(
        "pgoutput {kind} message uses {feature}, which needs protocol version {required} \
         or higher, but the session negotiated version {version}"
    )]
    FeatureNeedsVersion {
        /// The message being decoded.
        kind: MessageKind,
        /// The feature, e.g. `streaming`.
        feature: &'static str,
        /// The first protocol version with the feature.
        required: u32,
        /// The version in the decode context.
        version: u32,
    },
    /// The message ended (or a length pointed) beyond the bytes available.
    #[error(
        "pgoutput {kind} message truncated at byte {offset}: expected {} for {field}, found \
         {found}",
        Bytes(*expected)
    )]
    Truncated {
        /// The message being decoded.
        kind: MessageKind,
        /// Where the field starts.
        offset: usize,
        /// What was being read.
        field: Field,
        /// How many bytes the field needs.
        expected: u64,
        /// How many bytes were left.
        found: usize,
    },
    /// A NUL-terminated string ran to the end of the message.
    #[error("pgoutput {kind} message: {field} at byte {offset} has no terminating NUL")]
    UnterminatedString {
        /// The message being decoded.
        kind: MessageKind,
        /// Where the string starts.
        offset: usize,
        /// What was being read.
        field: Field,
    },
    /// A string or text value is not UTF-8.
    #[error(
        "pgoutput {kind} message: {field} at byte {offset} is not valid UTF-8 (invalid byte at \
         offset {invalid_at}); hint: sluice needs a database with UTF8 encoding"
    )]
    InvalidUtf8 {
        /// The message being decoded.
        kind: MessageKind,
        /// Where the string starts.
        offset: usize,
        /// What was being read.
        field: Field,
        /// Offset of the first invalid byte.
        invalid_at: usize,
    },
    /// A count or length is negative.
    #[error("pgoutput {kind} message: {field} at byte {offset} is negative ({value})")]
    NegativeLength {
        /// The message being decoded.
        kind: MessageKind,
        /// Where the count starts.
        offset: usize,
        /// What was being read.
        field: Field,
        /// The value read.
        value: i64,
    },
    /// A tuple column has a kind other than `n`, `u`, `t` or `b`.
    #[error(
        "unknown tuple cell kind {} in column {column} of pgoutput {kind} message at byte \
         {offset}",
        Byte(*cell_kind)
    )]
    UnknownCellKind {
        /// The message being decoded.
        kind: MessageKind,
        /// The column, counted from 1 in the order of the Relation message.
        column: usize,
        /// The kind byte found.
        cell_kind: u8,
        /// Where the kind byte is.
        offset: usize,
    },
    /// A tuple marker (`K`, `O`, `N`) was expected but something else was found.
    #[error("pgoutput {kind} message: expected {expected} at byte {offset}, found {}", Byte(*found))]
    UnexpectedTupleMarker {
        /// The message being decoded.
        kind: MessageKind,
        /// Where the marker is.
        offset: usize,
        /// What was allowed, e.g. `'K', 'O' or 'N'`.
        expected: &'static str,
        /// The byte found.
        found: u8,
    },
    /// A Relation message has a replica identity other than `d`, `n`, `f` or `i`.
    #[error(
        "pgoutput {kind} message: unknown replica identity {} at byte {offset}, expected 'd', \
         'n', 'f' or 'i'",
        Byte(*found)
    )]
    UnknownReplicaIdentity {
        /// The message being decoded.
        kind: MessageKind,
        /// Where the setting is.
        offset: usize,
        /// The byte found.
        found: u8,
    },
    /// Bytes remain after a complete message.
    #[error(
        "pgoutput {kind} message has {} left over after its end at byte {offset}",
        Bytes(*count as u64)
    )]
    TrailingBytes {
        /// The message being decoded.
        kind: MessageKind,
        /// Where the message ended.
        offset: usize,
        /// How many bytes follow.
        count: usize,
    },
}

impl From<DecodeError> for sluice_core::Error {
    fn from(err: DecodeError) -> Self {
        sluice_core::Error::permanent(err.to_string())
    }
}

/// The field of a message being read when decoding failed, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// A field of the message itself, e.g. `the relation id`.
    Named(&'static str),
    /// Part of one column of a tuple or Relation message, e.g. `the length` of column 3.
    Column {
        /// The part of the column, e.g. `the length`.
        part: &'static str,
        /// The column, counted from 1.
        column: usize,
    },
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Named(name) => f.write_str(name),
            Field::Column { part, column } => write!(f, "{part} of column {column}"),
        }
    }
}

/// A protocol byte printed as hex, plus the character when it is printable ASCII.
struct Byte(u8);

impl fmt::Display for Byte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x}", self.0)?;
        if self.0.is_ascii_graphic() {
            write!(f, " ('{}')", char::from(self.0))?;
        }
        Ok(())
    }
}

/// A byte count, in words.
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("1 byte"),
            n => write!(f, "{n} bytes"),
        }
    }
}
