//! The bytes of the streaming replication protocol that `postgres-protocol` does not parse:
//! backend message framing, ErrorResponse fields, the CopyData payloads of a replication
//! stream (XLogData `'w'`, primary keepalive `'k'`) and the standby status update `'r'`.
//!
//! Every parser is bounds-checked and returns an error on bad bytes; nothing here panics.

use std::time::{SystemTime, UNIX_EPOCH};

use sluice_core::PgLsn;

/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const UNIX_TO_PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Largest backend message accepted (PostgreSQL never sends more than 1 GiB in one).
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// A malformed message; the text says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {0}")]
pub struct ProtocolError(pub String);

/// One backend message: its type byte and body (without the length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackendMessage {
    pub tag: u8,
    pub body: bytes::Bytes,
}

/// If `buf` starts with a whole message, its total length (type byte + length + body).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
    let Some(header) = buf.get(..5) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if len < 4 || len as usize > MAX_MESSAGE_BYTES {
        return Err(ProtocolError(format!(
            "backend message '{}': length {len}",
            header[0].escape_ascii()
        )));
    }
    let total = 1 + len as usize;
    Ok((buf.len() >= total).then_some(total))
}

/// A bounds-checked cursor over a message body.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Cursor { buf, what }
    }

    fn err(&self, field: &str) -> ProtocolError {
        ProtocolError(format!("{}: truncated at {field}", self.what))
    }

    pub fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], ProtocolError> {
        if self.buf.len() < n {
            return Err(self.err(field));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn u8(&mut self, field: &str) -> Result<u8, ProtocolError> {
        Ok(self.take(1, field)?[0])
    }

    pub fn i16(&mut self, field: &str) -> Result<i16, ProtocolError> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub fn i32(&mut self, field: &str) -> Result<i32, ProtocolError> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self, field: &str) -> Result<u64, ProtocolError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A NUL-terminated string (lossy UTF-8: these are messages and names, not data).
    pub fn cstr(&mut self, field: &str) -> Result<String, ProtocolError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.err(field))?;
        let s = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// The fields of an ErrorResponse or NoticeResponse that sluice shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerError {
    pub severity: String,
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

pub fn parse_error_fields(body: &[u8]) -> Result<ServerError, ProtocolError> {
    let mut c = Cursor::new(body, "ErrorResponse");
    let mut e = ServerError::default();
    loop {
        let field = c.u8("a field type")?;
        if field == 0 {
            break;
        }
        let value = c.cstr("a field value")?;
        match field {
            b'V' => e.severity = value,
            b'S' if e.severity.is_empty() => e.severity = value,
            b'C' => e.code = value,
            b'M' => e.message = value,
            b'D' => e.detail = Some(value),
            b'H' => e.hint = Some(value),
            _ => {}
        }
    }
    Ok(e)
}

/// What a CopyData message of a logical replication stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicationMessage<'a> {
    /// `'w'`: WAL data; for logical replication one pgoutput message.
    XLogData {
        wal_start: PgLsn,
        wal_end: PgLsn,
        data: &'a [u8],
    },
    /// `'k'`: the server's position, and whether it wants a status update now.
    Keepalive {
        wal_end: PgLsn,
        reply_requested: bool,
    },
}

pub fn parse_replication_message(payload: &[u8]) -> Result<ReplicationMessage<'_>, ProtocolError> {
    let mut c = Cursor::new(payload, "replication CopyData");
    match c.u8("the message type")? {
        b'w' => {
            let wal_start = PgLsn(c.u64("the WAL start")?);
            let wal_end = PgLsn(c.u64("the WAL end")?);
            let _clock = c.u64("the server clock")?;
            Ok(ReplicationMessage::XLogData {
                wal_start,
                wal_end,
                data: c.rest(),
            })
        }
        b'k' => {
            let wal_end = PgLsn(c.u64("the WAL end")?);
            let _clock = c.u64("the server clock")?;
            let reply = c.u8("the reply flag")?;
            if !c.is_empty() {
                return Err(ProtocolError("primary keepalive: trailing bytes".into()));
            }
            Ok(ReplicationMessage::Keepalive {
                wal_end,
                reply_requested: reply == 1,
            })
        }
        other => Err(ProtocolError(format!(
            "replication CopyData: unknown message type '{}'",
            other.escape_ascii()
        ))),
    }
}

/// Now, in microseconds since 2000-01-01 UTC.
pub(crate) fn pg_clock_now() -> i64 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    unix - UNIX_TO_PG_EPOCH_MICROS
}

/// A Standby Status Update (`'r'`), as the payload of a CopyData message: everything up to
/// `flush` is durable on our side and may be released by the slot.
pub(crate) fn standby_status_update(
    write: PgLsn,
    flush: PgLsn,
    apply: PgLsn,
    reply: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(34);
    out.push(b'r');
    out.extend_from_slice(&write.0.to_be_bytes());
    out.extend_from_slice(&flush.0.to_be_bytes());
    out.extend_from_slice(&apply.0.to_be_bytes());
    out.extend_from_slice(&pg_clock_now().to_be_bytes());
    out.push(u8::from(reply));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn xlogdata_and_keepalive() {
        let mut w = vec![b'w'];
        w.extend_from_slice(&1u64.to_be_bytes());
        w.extend_from_slice(&2u64.to_be_bytes());
        w.extend_from_slice(&3u64.to_be_bytes());
        w.extend_from_slice(b"B...");
        assert_eq!(
            parse_replication_message(&w),
            Ok(ReplicationMessage::XLogData {
                wal_start: PgLsn(1),
                wal_end: PgLsn(2),
                data: b"B...",
            })
        );
        let mut k = vec![b'k'];
        k.extend_from_slice(&9u64.to_be_bytes());
        k.extend_from_slice(&0u64.to_be_bytes());
        k.push(1);
        assert_eq!(
            parse_replication_message(&k),
            Ok(ReplicationMessage::Keepalive {
                wal_end: PgLsn(9),
                reply_requested: true
            })
        );
        assert!(parse_replication_message(&k[..10]).is_err());
        assert!(parse_replication_message(b"").is_err());
        assert!(parse_replication_message(b"x").is_err());
    }

    #[test]
    fn status_update_layout() {
        let m = standby_status_update(PgLsn(1), PgLsn(2), PgLsn(3), true);
        assert_eq!(m.len(), 34);
        assert_eq!(m[0], b'r');
        assert_eq!(&m[9..17], &2u64.to_be_bytes());
        assert_eq!(m[33], 1);
    }

    #[test]
    fn framing_and_errors() {
        assert_eq!(frame_len(b"Z\0\0\0\x05I"), Ok(Some(6)));
        assert_eq!(frame_len(b"Z\0\0\0\x05"), Ok(None));
        assert!(frame_len(b"Z\0\0\0\x02").is_err());
        assert!(frame_len(b"Z\xff\xff\xff\xff").is_err());
        let e = parse_error_fields(b"SERROR\0VERROR\0C42704\0Mno slot\0Hdo x\0\0").unwrap();
        assert_eq!(e.code, "42704");
        assert_eq!(e.message, "no slot");
        assert_eq!(e.hint.as_deref(), Some("do x"));
        assert!(parse_error_fields(b"C42704").is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_replication_message(&bytes);
            let _ = parse_error_fields(&bytes);
            let _ = frame_len(&bytes);
        }
    }
}
