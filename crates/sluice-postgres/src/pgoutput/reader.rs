//! A bounds-checked cursor over one message. Every read either returns the bytes it asked
//! for or a [`DecodeError`] naming the field; nothing here can panic.

use sluice_core::PgLsn;

use super::error::{DecodeError, Field};
use super::message::MessageKind;
use crate::PgTimestamp;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    kind: MessageKind,
}

impl<'a> Reader<'a> {
    /// A reader positioned just after the message type byte.
    pub(crate) fn after_tag(buf: &'a [u8], kind: MessageKind) -> Self {
        Self { buf, pos: 1, kind }
    }

    pub(crate) fn kind(&self) -> MessageKind {
        self.kind
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn truncated(&self, field: Field, expected: u64) -> DecodeError {
        DecodeError::Truncated {
            kind: self.kind,
            offset: self.pos,
            field,
            expected,
            found: self.remaining(),
        }
    }

    fn array<const N: usize>(&mut self, field: Field) -> Result<[u8; N], DecodeError> {
        let bytes = *self
            .rest()
            .first_chunk::<N>()
            .ok_or_else(|| self.truncated(field, N as u64))?;
        self.pos += N;
        Ok(bytes)
    }

    /// `n` bytes, after checking they are there (so `n` may come from the wire).
    pub(crate) fn bytes(&mut self, n: usize, field: Field) -> Result<&'a [u8], DecodeError> {
        let bytes = self
            .rest()
            .get(..n)
            .ok_or_else(|| self.truncated(field, n as u64))?;
        self.pos += n;
        Ok(bytes)
    }

    pub(crate) fn u8(&mut self, field: Field) -> Result<u8, DecodeError> {
        self.array::<1>(field).map(|[b]| b)
    }

    pub(crate) fn i16(&mut self, field: Field) -> Result<i16, DecodeError> {
        self.array(field).map(i16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self, field: Field) -> Result<i32, DecodeError> {
        self.array(field).map(i32::from_be_bytes)
    }

    pub(crate) fn u32(&mut self, field: Field) -> Result<u32, DecodeError> {
        self.array(field).map(u32::from_be_bytes)
    }

    pub(crate) fn i64(&mut self, field: Field) -> Result<i64, DecodeError> {
        self.array(field).map(i64::from_be_bytes)
    }

    pub(crate) fn lsn(&mut self, field: Field) -> Result<PgLsn, DecodeError> {
        self.array(field).map(u64::from_be_bytes).map(PgLsn)
    }

    pub(crate) fn timestamp(&mut self, field: Field) -> Result<PgTimestamp, DecodeError> {
        self.i64(field).map(PgTimestamp)
    }

    /// A count (Int16) that must not be negative.
    pub(crate) fn count16(&mut self, field: Field) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let n = self.i16(field)?;
        usize::try_from(n).map_err(|_| self.negative(offset, field, n.into()))
    }

    /// A count or length (Int32) that must not be negative.
    pub(crate) fn count32(&mut self, field: Field) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let n = self.i32(field)?;
        usize::try_from(n).map_err(|_| self.negative(offset, field, n.into()))
    }

    fn negative(&self, offset: usize, field: Field, value: i64) -> DecodeError {
        DecodeError::NegativeLength {
            kind: self.kind,
            offset,
            field,
            value,
        }
    }

    /// A NUL-terminated UTF-8 string.
    pub(crate) fn cstr(&mut self, field: Field) -> Result<String, DecodeError> {
        let offset = self.pos;
        let rest = self.rest();
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::UnterminatedString {
                kind: self.kind,
                offset,
                field,
            })?;
        let bytes = rest.get(..len).unwrap_or_default();
        self.pos += len + 1;
        self.utf8(bytes, offset, field)
    }

    pub(crate) fn utf8(
        &self,
        bytes: &[u8],
        offset: usize,
        field: Field,
    ) -> Result<String, DecodeError> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(DecodeError::InvalidUtf8 {
                kind: self.kind,
                offset,
                field,
                invalid_at: offset + e.valid_up_to(),
            }),
        }
    }

    /// Succeeds only at the end of the message.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                kind: self.kind,
                offset: self.pos,
                count,
            }),
        }
    }
}
