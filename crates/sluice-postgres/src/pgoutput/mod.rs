//! Decoding of PostgreSQL's `pgoutput` logical replication messages, protocol versions 1–4.
//!
//! The input is the payload of one XLogData (`'w'`) message of the replication stream, from
//! the message type byte on; [`decode`] returns one [`Message`]. Formats follow the
//! PostgreSQL documentation, "Logical Replication Message Formats".
//!
//! # Invariants
//!
//! - **Pure.** No I/O and no hidden state. What the bytes alone cannot say comes from a
//!   [`DecodeContext`]: the negotiated protocol version, whether we are inside a
//!   Stream Start/Stream Stop block (data messages then start with a transaction id), and
//!   whether `streaming 'parallel'` was requested (Stream Abort then carries the abort LSN and
//!   timestamp). [`DecodeContext::observe`] keeps the streaming state.
//! - **Never panics.** All reads are bounds-checked; lengths and counts from the wire are
//!   compared with the bytes that remain before anything is allocated, so a length of 2^31
//!   in a 10-byte message is a [`DecodeError::Truncated`], not an allocation.
//! - **Exact.** A message must use every byte; trailing bytes are an error, as are unknown
//!   message types, tuple cell kinds and replica identities, and messages the negotiated
//!   version does not have. Reserved flag bits are kept or ignored, not rejected, so that
//!   the server can start using them.
//! - **Unchanged TOAST is not null.** A `'u'` cell is [`Cell::Unchanged`].
//! - **Text is UTF-8.** Names, prefixes and `'t'` cells are validated UTF-8 (sluice requires
//!   UTF8 databases); a `'b'` cell and a logical message's content stay raw bytes.

mod decode;
mod error;
mod message;
mod reader;
mod tuple;

#[cfg(any(test, fuzzing))]
pub(crate) mod builder;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use decode::decode;
pub use error::{DecodeError, Field};
pub use message::{
    AbortInfo, Message, MessageKind, OldTuple, PrepareInfo, Relation, RelationColumn,
    ReplicaIdentity,
};
pub use tuple::{Cell, Tuple};

/// What [`decode`] needs to know that the message bytes do not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeContext {
    /// The `proto_version` given to `START_REPLICATION` (1 to 4).
    pub protocol_version: u32,
    /// True between a Stream Start and its Stream Stop: Relation, Type, Insert, Update,
    /// Delete, Truncate and Logical Message messages then begin with a transaction id.
    pub in_stream: bool,
    /// True when `streaming 'parallel'` was requested (PostgreSQL 16+, protocol 4): Stream
    /// Abort messages then carry the abort LSN and timestamp. With `streaming 'on'` they do
    /// not, even on protocol 4.
    pub streaming_parallel: bool,
}

impl DecodeContext {
    /// A context for a session using `protocol_version`, outside any stream.
    pub fn new(protocol_version: u32) -> Self {
        Self {
            protocol_version,
            in_stream: false,
            streaming_parallel: false,
        }
    }

    /// Updates the streaming state after `message` was decoded: Stream Start enters a
    /// stream, Stream Stop leaves it. Call it for every message, in order.
    pub fn observe(&mut self, message: &Message) {
        match message {
            Message::StreamStart { .. } => self.in_stream = true,
            Message::StreamStop => self.in_stream = false,
            _ => {}
        }
    }
}
