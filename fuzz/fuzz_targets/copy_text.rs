//! The `COPY ... TO STDOUT` text splitter and unescaper: never panics, and the rows it
//! produces do not depend on where the chunks are cut (the server's CopyData boundaries fall
//! anywhere). Each row has one field per tab plus one, and a field is NULL exactly when it
//! is `\N`.
//!
//! Input: two bytes placing two cuts (each scaled to the length of the rest), then the COPY
//! output, fed as the three chunks between the cuts.
#![no_main]

use std::borrow::Cow;
use std::convert::Infallible;

use libfuzzer_sys::fuzz_target;
use sluice_postgres::fuzzing::{CopyTextRows, field, fields};

type Rows = Vec<(Vec<u8>, Vec<Option<String>>)>;

fn decode<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> Rows {
    let mut rows = Vec::new();
    let mut push = |line: &[u8]| -> Result<(), Infallible> {
        rows.push((
            line.to_vec(),
            fields(line).map(|f| f.map(Cow::into_owned)).collect(),
        ));
        Ok(())
    };
    let mut reader = CopyTextRows::default();
    for chunk in chunks {
        let Ok(()) = reader.feed(chunk, &mut push);
    }
    let Ok(()) = reader.finish(&mut push);
    rows
}

fuzz_target!(|data: &[u8]| {
    let Some(([a, b], bytes)) = data.split_first_chunk::<2>() else {
        return;
    };
    let at = |c: &u8| usize::from(*c) * bytes.len() / 255;
    let (first, second) = (at(a).min(at(b)), at(a).max(at(b)));
    let whole = decode(std::iter::once(bytes));
    let chunks = [&bytes[..first], &bytes[first..second], &bytes[second..]];
    let chunked = decode(chunks.into_iter());
    assert_eq!(
        whole, chunked,
        "rows depend on the cuts at {first} and {second}"
    );

    let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
    let unterminated = usize::from(!bytes.is_empty() && !bytes.ends_with(b"\n"));
    assert_eq!(whole.len(), newlines + unterminated);
    for (line, row) in &whole {
        let raw: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
        assert_eq!(row.len(), raw.len());
        for (raw, value) in raw.iter().zip(row) {
            assert_eq!(value.is_none(), *raw == b"\\N");
            if !raw.contains(&b'\\') {
                assert_eq!(value.as_deref(), Some(&*String::from_utf8_lossy(raw)));
            }
            assert_eq!(field(raw).map(Cow::into_owned).as_ref(), value.as_ref());
        }
    }
});
