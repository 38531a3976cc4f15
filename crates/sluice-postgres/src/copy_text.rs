//! The text format of `COPY ... TO STDOUT`, decoded: rows end with a newline, fields are
//! separated by tabs, `\N` is NULL, and a backslash escapes what would otherwise be read as
//! structure (`\\`, `\t`, `\n`, `\r`, `\b`, `\f`, `\v`, octal `\NNN`, hex `\xHH`; a backslash
//! before any other character stands for that character).
//!
//! A raw tab or newline is never part of a value in what the server sends (it escapes them),
//! so rows and fields are split on the raw bytes first and unescaped afterwards. The server
//! sends `CopyData` messages whose boundaries need not fall between rows; [`CopyTextRows`]
//! carries an incomplete row over to the next chunk.
//!
//! Pure and total: no I/O, and no input makes it panic. Bytes that are not UTF-8 after
//! unescaping (the server sends UTF-8, as the session's `client_encoding` says) are replaced
//! with U+FFFD rather than fail the row.

use std::borrow::Cow;

/// Splits a stream of `COPY` text-format chunks into rows.
#[derive(Debug, Default)]
pub struct CopyTextRows {
    /// The start of a row whose newline has not arrived yet.
    partial: Vec<u8>,
}

impl CopyTextRows {
    /// Call `row` with each row completed by `chunk` (its bytes without the newline), in
    /// order; keeps the incomplete tail for the next call. Stops at the first error `row`
    /// returns.
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        mut row: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rest = chunk;
        if !self.partial.is_empty() {
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                self.partial.extend_from_slice(rest);
                return Ok(());
            };
            self.partial.extend_from_slice(&rest[..end]);
            let line = std::mem::take(&mut self.partial);
            row(&line)?;
            // Keep the allocation for the next partial row.
            self.partial = line;
            self.partial.clear();
            rest = &rest[end + 1..];
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            row(&rest[..end])?;
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// Call `row` with the last row if the input did not end with a newline (the server
    /// always ends rows with one, so this is a truncated stream, reported as a row anyway).
    pub fn finish<E>(self, mut row: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if self.partial.is_empty() {
            Ok(())
        } else {
            row(&self.partial)
        }
    }
}

/// The fields of one row (without its newline): `None` for `\N` (NULL), else the unescaped
/// text, borrowed when it had no escapes.
pub fn fields(line: &[u8]) -> impl Iterator<Item = Option<Cow<'_, str>>> {
    line.split(|&b| b == b'\t').map(field)
}

/// One field: `\N` is NULL; anything else is unescaped.
pub fn field(raw: &[u8]) -> Option<Cow<'_, str>> {
    if raw == b"\\N" {
        return None;
    }
    if !raw.contains(&b'\\') {
        // `from_utf8` is the fast check; the lossy path only for invalid bytes.
        return Some(match std::str::from_utf8(raw) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(raw),
        });
    }
    let bytes = unescape(raw);
    Some(Cow::Owned(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }))
}

fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = raw.get(i) else {
            // A trailing lone backslash: keep it.
            out.push(b'\\');
            break;
        };
        i += 1;
        match e {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0C),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0B),
            b'0'..=b'7' => {
                // One to three octal digits; like the server, only the low 8 bits count.
                let mut value = u32::from(e - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((value & 0xFF) as u8);
            }
            b'x' => {
                // One or two hex digits; `\x` without one is a plain `x`.
                let mut value = 0u8;
                let mut digits = 0;
                while digits < 2 {
                    match raw.get(i).and_then(|&d| (d as char).to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d as u8;
                            i += 1;
                            digits += 1;
                        }
                        None => break,
                    }
                }
                out.push(if digits == 0 { b'x' } else { value });
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the server writes for a row (`CopyAttributeOutText`, the common escapes).
    fn encode(row: &[Option<String>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, f) in row.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            match f {
                None => out.extend_from_slice(b"\\N"),
                Some(text) => {
                    for &b in text.as_bytes() {
                        match b {
                            b'\\' => out.extend_from_slice(b"\\\\"),
                            b'\t' => out.extend_from_slice(b"\\t"),
                            b'\n' => out.extend_from_slice(b"\\n"),
                            b'\r' => out.extend_from_slice(b"\\r"),
                            0x08 => out.extend_from_slice(b"\\b"),
                            0x0C => out.extend_from_slice(b"\\f"),
                            0x0B => out.extend_from_slice(b"\\v"),
                            _ => out.push(b),
                        }
                    }
                }
            }
        }
        out.push(b'\n');
        out
    }

    /// Decode `chunks` into rows of owned fields.
    fn decode(chunks: &[&[u8]]) -> Vec<Vec<Option<String>>> {
        let mut rows = Vec::new();
        let mut reader = CopyTextRows::default();
        let mut push = |line: &[u8]| -> Result<(), ()> {
            rows.push(fields(line).map(|f| f.map(Cow::into_owned)).collect());
            Ok(())
        };
        for chunk in chunks {
            reader.feed(chunk, &mut push).unwrap();
        }
        reader.finish(&mut push).unwrap();
        rows
    }

    #[test]
    fn escapes_and_nulls() {
        let rows = decode(&[b"1\ta\\tb\\\\c\\nd\t\\N\tNULL\n2\t\\101\\x42\\x4\\xg\\q\t\t\n"]);
        assert_eq!(
            rows,
            vec![
                vec![
                    Some("1".into()),
                    Some("a\tb\\c\nd".into()),
                    None,
                    Some("NULL".into())
                ],
                vec![
                    Some("2".into()),
                    Some("AB\u{4}xgq".into()),
                    Some(String::new()),
                    Some(String::new())
                ],
            ]
        );
    }

    #[test]
    fn rows_split_across_chunks() {
        let rows = decode(&[b"1\tab", b"c\\", b"n\n2", b"\t\\N\n", b"", b"3\n"]);
        assert_eq!(
            rows,
            vec![
                vec![Some("1".into()), Some("abc\n".into())],
                vec![Some("2".into()), None],
                vec![Some("3".into())],
            ]
        );
    }

    #[test]
    fn unicode_and_invalid_utf8() {
        assert_eq!(decode(&["é\t😀\n".as_bytes()])[0][1].as_deref(), Some("😀"));
        assert_eq!(
            decode(&[b"\\377\n"])[0][0].as_deref(),
            Some("\u{FFFD}"),
            "a byte that is not UTF-8 is replaced"
        );
    }

    fn text() -> impl Strategy<Value = String> {
        // Bias towards the characters that need escaping.
        proptest::collection::vec(
            prop_oneof![
                Just('\\'),
                Just('\t'),
                Just('\n'),
                Just('\r'),
                Just('\u{8}'),
                Just('\u{b}'),
                Just('\u{c}'),
                Just('N'),
                Just('x'),
                Just('0'),
                any::<char>(),
            ],
            0..12,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), cut in any::<prop::sample::Index>()) {
            let at = cut.index(bytes.len() + 1);
            let _ = decode(&[&bytes[..at], &bytes[at..]]);
        }

        #[test]
        fn round_trips_the_server_encoding(
            rows in proptest::collection::vec(proptest::collection::vec(proptest::option::of(text()), 1..5), 0..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            let bytes: Vec<u8> = rows.iter().flat_map(|r| encode(r)).collect();
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            at.push(0);
            at.push(bytes.len());
            at.sort_unstable();
            let chunks: Vec<&[u8]> = at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
            prop_assert_eq!(decode(&chunks), rows);
        }
    }
}
