//! The binary format of `COPY ... TO STDOUT (FORMAT binary)`, decoded, for the snapshot.
//!
//! The server spends much less on binary output than on text (no number or date
//! formatting), so the snapshot reads a table in binary when every column has a type listed
//! in [`readable`]; other tables are read in text. Each value becomes exactly the
//! [`Value`] that the type's text output gives through [`crate::types::text_to_value`], so
//! a snapshot row and a streamed row (pgoutput sends text) never differ: dates and
//! timestamps are printed the way the server prints them (`DateStyle = ISO`,
//! `TimeZone = UTC`, which sluice sets) and converted by the same code as text.
//!
//! Format: an 11-byte signature, a 32-bit flags word, a 32-bit header-extension length and
//! that many bytes; then tuples, each a 16-bit field count and per field a 32-bit length
//! (-1 for NULL) and the value's bytes in its type's binary send format; then a 16-bit -1.
//! The bytes arrive in `CopyData` messages whose boundaries need not fall between tuples;
//! [`CopyBinaryRows`] carries an incomplete tuple over to the next one.
//!
//! Pure and total: no I/O, and no input makes it panic.

use sluice_core::{CompactString, Value};

use crate::types::{oid, text_to_value};

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Malformed binary COPY data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryCopyError {
    #[error("binary COPY data does not start with the PGCOPY signature")]
    Signature,
    #[error("binary COPY data has a tuple with {0} fields")]
    FieldCount(i16),
    #[error("binary COPY data has a field of length {0}")]
    FieldLength(i32),
    #[error("binary COPY data goes on after its trailer")]
    AfterTrailer,
    #[error("binary COPY data ended inside a tuple or before its trailer")]
    Truncated,
}

impl From<BinaryCopyError> for sluice_core::Error {
    fn from(e: BinaryCopyError) -> Self {
        sluice_core::Error::permanent(e.to_string())
    }
}

/// One tuple: its field count and the bytes of its fields (lengths already checked).
#[derive(Debug, Clone, Copy)]
pub struct BinaryTuple<'a> {
    count: usize,
    body: &'a [u8],
}

impl<'a> BinaryTuple<'a> {
    /// How many fields the tuple has.
    pub fn field_count(&self) -> usize {
        self.count
    }

    /// The fields in order: `None` for NULL, else the value's bytes.
    pub fn fields(&self) -> impl Iterator<Item = Option<&'a [u8]>> + 'a {
        let mut rest = self.body;
        (0..self.count).map(move |_| {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let len = i32::from_be_bytes(*len);
            let Ok(len) = usize::try_from(len) else {
                rest = tail;
                return None;
            };
            let (value, tail) = tail.split_at_checked(len)?;
            rest = tail;
            Some(value)
        })
    }
}

/// Splits a stream of binary `COPY` chunks into tuples.
#[derive(Debug, Default)]
pub struct CopyBinaryRows {
    /// Bytes of an incomplete header or tuple.
    partial: Vec<u8>,
    header_read: bool,
    trailer_read: bool,
}

impl CopyBinaryRows {
    /// Call `row` with each tuple completed by `chunk`, in order; keeps an incomplete tail
    /// for the next call. Stops at the first error.
    pub fn feed<E: From<BinaryCopyError>>(
        &mut self,
        chunk: &[u8],
        mut row: impl FnMut(BinaryTuple<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.partial.is_empty() {
            let used = self.parse(chunk, &mut row)?;
            self.partial.extend_from_slice(&chunk[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.partial);
            buf.extend_from_slice(chunk);
            let used = self.parse(&buf, &mut row)?;
            buf.drain(..used);
            // Keep the allocation for the next incomplete tuple.
            self.partial = buf;
        }
        Ok(())
    }

    /// Check that the data ended at its trailer.
    pub fn finish(self) -> Result<(), BinaryCopyError> {
        if self.trailer_read && self.partial.is_empty() {
            Ok(())
        } else {
            Err(BinaryCopyError::Truncated)
        }
    }

    /// Parse what is complete in `buf`; returns how many bytes were used.
    fn parse<E: From<BinaryCopyError>>(
        &mut self,
        buf: &[u8],
        row: &mut impl FnMut(BinaryTuple<'_>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let mut at = 0;
        if !self.header_read {
            let Some(fixed) = buf.get(..19) else {
                if !SIGNATURE.starts_with(&buf[..buf.len().min(11)]) {
                    return Err(BinaryCopyError::Signature.into());
                }
                return Ok(0);
            };
            if &fixed[..11] != SIGNATURE {
                return Err(BinaryCopyError::Signature.into());
            }
            let extension = u32::from_be_bytes([fixed[15], fixed[16], fixed[17], fixed[18]]);
            let end = 19 + extension as usize;
            if buf.len() < end {
                return Ok(0);
            }
            self.header_read = true;
            at = end;
        }
        loop {
            let rest = &buf[at..];
            if self.trailer_read {
                if rest.is_empty() {
                    return Ok(at);
                }
                return Err(BinaryCopyError::AfterTrailer.into());
            }
            let Some((count, mut fields)) = rest.split_first_chunk::<2>() else {
                return Ok(at);
            };
            let count = i16::from_be_bytes(*count);
            if count == -1 {
                self.trailer_read = true;
                at += 2;
                continue;
            }
            let Ok(count) = usize::try_from(count) else {
                return Err(BinaryCopyError::FieldCount(count).into());
            };
            let mut body_len = 0;
            for _ in 0..count {
                let Some((len, tail)) = fields.split_first_chunk::<4>() else {
                    return Ok(at);
                };
                let len = i32::from_be_bytes(*len);
                let size = match len {
                    -1 => 0,
                    0.. => len as usize,
                    _ => return Err(BinaryCopyError::FieldLength(len).into()),
                };
                let Some(tail) = tail.get(size..) else {
                    return Ok(at);
                };
                fields = tail;
                body_len += 4 + size;
            }
            row(BinaryTuple {
                count,
                body: &rest[2..2 + body_len],
            })?;
            at += 2 + body_len;
        }
    }
}

/// True when the snapshot can read a column of this type in binary and give exactly the
/// value its text output would.
pub fn readable(type_oid: u32) -> bool {
    use oid::*;
    matches!(
        type_oid,
        BOOL | INT2
            | INT4
            | INT8
            | OID
            | FLOAT8
            | NUMERIC
            | TEXT
            | VARCHAR
            | BPCHAR
            | NAME
            | BYTEA
            | UUID
            | JSON
            | JSONB
            | DATE
            | TIMESTAMP
            | TIMESTAMPTZ
    )
}

/// A non-null value of a [`readable`] type, in its binary send format, as the [`Value`]
/// its text output gives; `None` when the bytes are not a valid value of the type.
pub fn binary_to_value(type_oid: u32, bytes: &[u8]) -> Option<Value> {
    let mut value = Value::Null;
    binary_into(type_oid, bytes, &mut value).then_some(value)
}

/// [`binary_to_value`] written into `out` (left as it was when this returns false).
///
/// The snapshot's hot path: each arm stores its value where it belongs. Returning the value
/// through `Option` and `Result` copied it through the stack in misaligned halves whose
/// reloads stalled on the stores before them; those copies were a third of the snapshot's
/// client CPU.
pub fn binary_into(type_oid: u32, bytes: &[u8], out: &mut Value) -> bool {
    use oid::*;
    macro_rules! int {
        ($t:ty) => {{
            let Ok(b) = bytes.try_into() else {
                return false;
            };
            *out = Value::Int(<$t>::from_be_bytes(b).into());
        }};
    }
    macro_rules! text {
        ($variant:ident, $text:expr) => {{
            let Some(text) = $text else {
                return false;
            };
            *out = Value::$variant(text);
        }};
    }
    match type_oid {
        BOOL => match bytes {
            [0] => *out = Value::Bool(false),
            [1] => *out = Value::Bool(true),
            _ => return false,
        },
        INT2 => int!(i16),
        INT4 => int!(i32),
        INT8 => int!(i64),
        OID => int!(u32),
        FLOAT8 => {
            let Ok(b) = bytes.try_into() else {
                return false;
            };
            let f = f64::from_be_bytes(b);
            // The text form of any NaN is "NaN", which reads back as the one NaN.
            *out = Value::Float(if f.is_nan() { f64::NAN } else { f });
        }
        NUMERIC => text!(Decimal, numeric_text(bytes)),
        TEXT | VARCHAR | BPCHAR | NAME => *out = Value::Text(utf8(bytes)),
        BYTEA => *out = Value::Bytes(bytes.to_vec()),
        UUID => {
            let Ok::<&[u8; 16], _>(b) = bytes.try_into() else {
                return false;
            };
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let mut s = [0u8; 36];
            let mut at = 0;
            for (i, byte) in b.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    s[at] = b'-';
                    at += 1;
                }
                s[at] = HEX[usize::from(byte >> 4)];
                s[at + 1] = HEX[usize::from(byte & 0xF)];
                at += 2;
            }
            text!(Uuid, CompactString::from_utf8(&s[..]).ok())
        }
        JSON => *out = text_to_value(JSON, &utf8(bytes)),
        JSONB => match bytes.split_first() {
            Some((1, text)) => *out = text_to_value(JSONB, &utf8(text)),
            _ => return false,
        },
        DATE => {
            let Ok(b) = bytes.try_into() else {
                return false;
            };
            let Some(text) = date_text(i32::from_be_bytes(b)) else {
                return false;
            };
            *out = text_to_value(DATE, &text);
        }
        TIMESTAMP | TIMESTAMPTZ => {
            let Ok(b) = bytes.try_into() else {
                return false;
            };
            let micros = i64::from_be_bytes(b);
            let with_tz = type_oid == TIMESTAMPTZ;
            match iso_timestamp_fast(micros, with_tz) {
                Some(iso) if with_tz => *out = Value::TimestampTz(iso),
                Some(iso) => *out = Value::Timestamp(iso),
                None => match timestamp_text(micros, with_tz) {
                    Some(text) => *out = text_to_value(type_oid, &text),
                    None => return false,
                },
            }
        }
        _ => return false,
    }
    true
}

/// Text as the text path reads it: UTF-8, invalid bytes replaced.
#[inline(always)]
fn utf8(bytes: &[u8]) -> CompactString {
    match std::str::from_utf8(bytes) {
        Ok(s) => CompactString::from(s),
        Err(_) => CompactString::from_utf8_lossy(bytes),
    }
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// `numeric_send` bytes as `numeric_out` prints them.
fn numeric_text(bytes: &[u8]) -> Option<CompactString> {
    let (head, digits) = bytes.split_first_chunk::<8>()?;
    let ndigits = i16::from_be_bytes([head[0], head[1]]);
    let weight = i32::from(i16::from_be_bytes([head[2], head[3]]));
    let sign = u16::from_be_bytes([head[4], head[5]]);
    let dscale = usize::from(u16::from_be_bytes([head[6], head[7]]));
    match sign {
        NUMERIC_NAN => return Some("NaN".into()),
        NUMERIC_PINF => return Some("Infinity".into()),
        NUMERIC_NINF => return Some("-Infinity".into()),
        NUMERIC_POS | NUMERIC_NEG => {}
        _ => return None,
    }
    let ndigits = usize::try_from(ndigits).ok()?;
    if digits.len() != ndigits * 2 || dscale > 0x3FFF {
        return None;
    }
    let digit = |i: i32| -> Option<u16> {
        let Ok(i) = usize::try_from(i) else {
            return Some(0);
        };
        if i >= ndigits {
            return Some(0);
        }
        let d = u16::from_be_bytes([digits[2 * i], digits[2 * i + 1]]);
        (d <= 9999).then_some(d)
    };
    let mut out = CompactString::with_capacity(ndigits * 4 + dscale + 8);
    if sign == NUMERIC_NEG {
        out.push('-');
    }
    let mut d: i32;
    if weight < 0 {
        d = weight + 1;
        out.push('0');
    } else {
        push_int(&mut out, u64::from(digit(0)?), 1);
        for i in 1..=weight {
            push_int(&mut out, u64::from(digit(i)?), 4);
        }
        d = weight + 1;
    }
    if dscale > 0 {
        out.push('.');
        let end = out.len() + dscale;
        while out.len() < end {
            push_int(&mut out, u64::from(digit(d)?), 4);
            d += 1;
        }
        out.truncate(end);
    }
    // A digit past the last one printed is still checked.
    (0..ndigits)
        .all(|i| digit(i as i32).is_some())
        .then_some(out)
}

/// `v` in decimal, zero-padded to at least `width` digits.
fn push_int(out: &mut CompactString, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut at = buf.len();
    while v > 0 {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let start = at.min(buf.len() - width.clamp(1, 20));
    // ASCII digits: one copy, not a push (with its UTF-8 encoding) per digit.
    out.push_str(std::str::from_utf8(&buf[start..]).unwrap_or_default());
}

/// Days between the Julian day 0 and 2000-01-01, PostgreSQL's epoch.
const POSTGRES_EPOCH_JDATE: i64 = 2_451_545;
const USECS_PER_DAY: i64 = 86_400_000_000;

/// Year, month, day of a Julian day (PostgreSQL's `j2date`); `jd` is in `0..=i32::MAX`.
fn j2date(jd: i64) -> (i64, u32, u32) {
    let mut julian = jd.clamp(0, i64::from(i32::MAX)) as u64 + 32044;
    let mut quad = julian / 146_097;
    let extra = (julian - quad * 146_097) * 4 + 3;
    julian += 60 + quad * 3 + extra / 146_097;
    quad = julian / 1461;
    julian -= quad * 1461;
    let mut y = julian * 4 / 1461;
    julian = if y != 0 {
        (julian + 305) % 365
    } else {
        (julian + 306) % 366
    } + 123;
    y += quad * 4;
    let year = y as i64 - 4800;
    quad = julian * 2141 / 65_536;
    let day = julian - 7834 * quad / 256;
    let month = (quad + 10) % 12 + 1;
    (year, month as u32, day as u32)
}

/// `YYYY-MM-DD` (with ` BC` appended by the caller when the year is not positive).
fn push_date(out: &mut CompactString, year: i64, month: u32, day: u32) {
    let shown = if year > 0 { year } else { 1 - year };
    push_int(out, shown.unsigned_abs(), 4);
    out.push('-');
    push_int(out, u64::from(month), 2);
    out.push('-');
    push_int(out, u64::from(day), 2);
}

/// A `date` as `date_out` prints it (ISO); `None` for a value out of the server's range.
fn date_text(days: i32) -> Option<CompactString> {
    match days {
        i32::MIN => return Some("-infinity".into()),
        i32::MAX => return Some("infinity".into()),
        _ => {}
    }
    let jd = i64::from(days) + POSTGRES_EPOCH_JDATE;
    if !(0..=i64::from(i32::MAX)).contains(&jd) {
        return None;
    }
    let (year, month, day) = j2date(jd);
    let mut out = CompactString::with_capacity(13);
    push_date(&mut out, year, month, day);
    if year <= 0 {
        out.push_str(" BC");
    }
    Some(out)
}

/// A `timestamp` or (in UTC) `timestamptz` as the server prints it (ISO); `None` for a
/// value out of the server's range.
fn timestamp_text(micros: i64, with_tz: bool) -> Option<CompactString> {
    match micros {
        i64::MIN => return Some("-infinity".into()),
        i64::MAX => return Some("infinity".into()),
        _ => {}
    }
    let ((year, month, day), time) = split_timestamp(micros)?;
    let mut out = CompactString::with_capacity(40);
    push_date(&mut out, year, month, day);
    out.push(' ');
    push_time(&mut out, time);
    if with_tz {
        out.push_str("+00");
    }
    if year <= 0 {
        out.push_str(" BC");
    }
    Some(out)
}

/// A timestamp's calendar date and microseconds since its midnight (PostgreSQL's
/// `timestamp2tm` in UTC); `None` out of the server's range.
fn split_timestamp(micros: i64) -> Option<((i64, u32, u32), i64)> {
    let date = micros.div_euclid(USECS_PER_DAY) + POSTGRES_EPOCH_JDATE;
    let time = micros.rem_euclid(USECS_PER_DAY);
    (0..=i64::from(i32::MAX))
        .contains(&date)
        .then(|| (j2date(date), time))
}

/// `HH:MM:SS[.ffffff]` of `micros` since midnight, trailing fraction zeros dropped (as the
/// server prints it).
fn push_time(out: &mut CompactString, micros: i64) {
    let secs = micros / 1_000_000;
    let mut fraction = micros % 1_000_000;
    push_int(out, (secs / 3600).unsigned_abs(), 2);
    out.push(':');
    push_int(out, (secs / 60 % 60).unsigned_abs(), 2);
    out.push(':');
    push_int(out, (secs % 60).unsigned_abs(), 2);
    if fraction != 0 {
        let mut width = 6;
        while fraction % 10 == 0 {
            fraction /= 10;
            width -= 1;
        }
        out.push('.');
        push_int(out, fraction.unsigned_abs(), width);
    }
}

/// The event form of a `timestamp` (`with_tz`: `timestamptz` in UTC) when it is a plain
/// one (years 1 to 9999): what [`crate::types::text_to_value`] makes of the server's text,
/// built directly. `None` for the rest, which goes through the text form.
fn iso_timestamp_fast(micros: i64, with_tz: bool) -> Option<CompactString> {
    // 0001-01-01 and 10000-01-01 in microseconds since 2000-01-01.
    const MIN: i64 = -63_082_281_600_000_000;
    const MAX: i64 = 252_455_616_000_000_000;
    if !(MIN..MAX).contains(&micros) {
        return None;
    }
    let ((year, month, day), time) = split_timestamp(micros)?;
    // Fixed layout, `YYYY-MM-DDTHH:MM:SS[.ffffff][+00:00]`, built in place: the snapshot
    // formats one per row and column.
    let mut buf = *b"0000-00-00T00:00:00.000000+00:00";
    let year = year.unsigned_abs();
    put2(&mut buf[0..2], year / 100);
    put2(&mut buf[2..4], year % 100);
    put2(&mut buf[5..7], u64::from(month));
    put2(&mut buf[8..10], u64::from(day));
    let secs = time.unsigned_abs() / 1_000_000;
    put2(&mut buf[11..13], secs / 3600);
    put2(&mut buf[14..16], secs / 60 % 60);
    put2(&mut buf[17..19], secs % 60);
    let mut end = 19;
    let mut fraction = time.unsigned_abs() % 1_000_000;
    if fraction != 0 {
        for at in (20..26).rev() {
            buf[at] = b'0' + (fraction % 10) as u8;
            fraction /= 10;
        }
        // Trailing fraction zeros dropped, as the server prints it.
        end = 26;
        while buf[end - 1] == b'0' {
            end -= 1;
        }
    }
    if with_tz {
        // The offset is already in place after a full fraction; else moved up.
        buf.copy_within(26..32, end);
        end += 6;
    }
    CompactString::from_utf8(&buf[..end]).ok()
}

/// `v` (below 100) as two ASCII digits.
fn put2(out: &mut [u8], v: u64) {
    if let [tens, ones] = out {
        *tens = b'0' + (v / 10 % 10) as u8;
        *ones = b'0' + (v % 10) as u8;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&ndigits.to_be_bytes());
        b.extend_from_slice(&weight.to_be_bytes());
        b.extend_from_slice(&sign.to_be_bytes());
        b.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numerics_print_like_numeric_out() {
        let cases: &[(Vec<u8>, &str)] = &[
            (numeric(0, 0, NUMERIC_POS, 0, &[]), "0"),
            (numeric(0, 0, NUMERIC_POS, 2, &[]), "0.00"),
            (numeric(1, 0, NUMERIC_POS, 0, &[42]), "42"),
            (
                numeric(4, 2, NUMERIC_POS, 2, &[12, 3456, 7890, 1200]),
                "1234567890.12",
            ),
            (numeric(1, -1, NUMERIC_NEG, 4, &[5]), "-0.0005"),
            (numeric(1, -2, NUMERIC_POS, 6, &[12]), "0.000000"),
            (numeric(1, -2, NUMERIC_POS, 8, &[12]), "0.00000012"),
            (numeric(1, 1, NUMERIC_POS, 0, &[1]), "10000"),
            (numeric(2, 0, NUMERIC_POS, 1, &[1, 5000]), "1.5"),
            (numeric(0, 0, NUMERIC_NAN, 0, &[]), "NaN"),
            (numeric(0, 0, NUMERIC_PINF, 0, &[]), "Infinity"),
            (numeric(0, 0, NUMERIC_NINF, 0, &[]), "-Infinity"),
        ];
        for (bytes, text) in cases {
            assert_eq!(numeric_text(bytes).as_deref(), Some(*text));
        }
        assert_eq!(
            numeric_text(&numeric(1, 0, NUMERIC_POS, 0, &[10_000])),
            None
        );
        assert_eq!(numeric_text(&numeric(2, 0, NUMERIC_POS, 0, &[1])), None);
        assert_eq!(numeric_text(&numeric(0, 0, 0x1234, 0, &[])), None);
        assert_eq!(numeric_text(&[0, 0]), None);
    }

    #[test]
    fn dates_and_timestamps_print_like_the_server() {
        assert_eq!(date_text(0).unwrap(), "2000-01-01");
        assert_eq!(date_text(8825).unwrap(), "2024-02-29");
        assert_eq!(date_text(-730_119).unwrap(), "0001-01-01");
        assert_eq!(date_text(-730_120).unwrap(), "0001-12-31 BC");
        assert_eq!(date_text(i32::MAX).unwrap(), "infinity");
        assert_eq!(date_text(-3_000_000), None);
        assert_eq!(timestamp_text(0, false).unwrap(), "2000-01-01 00:00:00");
        assert_eq!(
            timestamp_text(-1, true).unwrap(),
            "1999-12-31 23:59:59.999999+00"
        );
        assert_eq!(
            timestamp_text(500_000 + 86_400_000_000, true).unwrap(),
            "2000-01-02 00:00:00.5+00"
        );
        assert_eq!(timestamp_text(i64::MIN, true).unwrap(), "-infinity");
        // The text path turns these into the event forms.
        assert_eq!(
            binary_to_value(oid::TIMESTAMPTZ, &(-1i64).to_be_bytes()),
            Some(Value::TimestampTz(
                "1999-12-31T23:59:59.999999+00:00".into()
            ))
        );
    }

    #[test]
    fn tuples_split_across_chunks_come_out_whole() {
        let mut data = SIGNATURE.to_vec();
        data.extend_from_slice(&0u32.to_be_bytes());
        data.extend_from_slice(&4u32.to_be_bytes());
        data.extend_from_slice(b"ext!");
        for id in [7i32, 8] {
            data.extend_from_slice(&2i16.to_be_bytes());
            data.extend_from_slice(&4i32.to_be_bytes());
            data.extend_from_slice(&id.to_be_bytes());
            data.extend_from_slice(&(-1i32).to_be_bytes());
        }
        data.extend_from_slice(&(-1i16).to_be_bytes());
        for cut in 0..=data.len() {
            let mut rows = CopyBinaryRows::default();
            let mut got = Vec::new();
            for part in [&data[..cut], &data[cut..]] {
                rows.feed(part, |t| {
                    let f: Vec<Option<Vec<u8>>> =
                        t.fields().map(|f| f.map(<[u8]>::to_vec)).collect();
                    got.push(f);
                    Ok::<(), BinaryCopyError>(())
                })
                .unwrap();
            }
            rows.finish().unwrap();
            assert_eq!(
                got,
                [
                    vec![Some(7i32.to_be_bytes().to_vec()), None],
                    vec![Some(8i32.to_be_bytes().to_vec()), None]
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn the_edge_test_table_is_read_in_binary() {
        // tests/it/types.rs `binary_snapshot_equals_text_stream_at_the_edges` only proves the
        // binary path while every one of its column types is readable.
        use oid::*;
        for t in [
            INT4,
            INT2,
            INT8,
            OID,
            FLOAT8,
            NUMERIC,
            BOOL,
            TEXT,
            VARCHAR,
            BPCHAR,
            NAME,
            BYTEA,
            UUID,
            JSON,
            JSONB,
            DATE,
            TIMESTAMP,
            TIMESTAMPTZ,
        ] {
            assert!(readable(t), "type {t}");
        }
        assert!(!readable(FLOAT4) && !readable(TIME) && !readable(INT4_ARRAY));
    }

    #[test]
    fn fast_timestamps_equal_the_server_text_path() {
        // The fast path against the server's text form read by the stream's conversion,
        // over the whole range it takes (years 1 to 9999), whole seconds and fractions.
        const MIN: i64 = -63_082_281_600_000_000;
        const MAX: i64 = 252_455_616_000_000_000;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut cases = vec![MIN, MAX - 1, 0, -1, 1, 86_399_999_999, 123_000_000];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let span = (MAX - MIN) as u64;
            let micros = MIN + (x % span) as i64;
            cases.push(micros);
            cases.push(micros - micros.rem_euclid(1_000_000));
            cases.push(micros - micros.rem_euclid(1_000));
        }
        for micros in cases {
            for (oid, with_tz) in [(oid::TIMESTAMP, false), (oid::TIMESTAMPTZ, true)] {
                let fast = iso_timestamp_fast(micros, with_tz).unwrap();
                let text = text_to_value(oid, &timestamp_text(micros, with_tz).unwrap());
                let expected = match text {
                    Value::Timestamp(t) | Value::TimestampTz(t) => t,
                    other => panic!("{micros}: {other:?}"),
                };
                assert_eq!(fast, expected, "{micros} with_tz={with_tz}");
            }
        }
    }

    #[test]
    fn malformed_data_is_an_error_not_a_panic() {
        let feed = |bytes: &[u8]| {
            let mut rows = CopyBinaryRows::default();
            rows.feed(bytes, |_| Ok::<(), BinaryCopyError>(()))
                .and_then(|()| rows.finish())
        };
        assert_eq!(feed(b"PGCOPX\n"), Err(BinaryCopyError::Signature));
        let mut header = SIGNATURE.to_vec();
        header.extend_from_slice(&[0; 8]);
        assert_eq!(feed(&header), Err(BinaryCopyError::Truncated));
        let mut bad = header.clone();
        bad.extend_from_slice(&(-2i16).to_be_bytes());
        assert_eq!(feed(&bad), Err(BinaryCopyError::FieldCount(-2)));
        let mut bad = header.clone();
        bad.extend_from_slice(&1i16.to_be_bytes());
        bad.extend_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(feed(&bad), Err(BinaryCopyError::FieldLength(-5)));
        let mut bad = header;
        bad.extend_from_slice(&(-1i16).to_be_bytes());
        bad.push(0);
        assert_eq!(feed(&bad), Err(BinaryCopyError::AfterTrailer));
        assert_eq!(binary_to_value(oid::INT4, &[1, 2]), None);
        assert_eq!(binary_to_value(oid::JSONB, &[2, b'1']), None);
        assert_eq!(binary_to_value(oid::BOOL, &[2]), None);
    }
}
