//! The binary `COPY ... TO STDOUT (FORMAT binary)` splitter and value decoder: never panics,
//! and the tuples it produces do not depend on where the chunks are cut. Each field decodes
//! (or is refused) as every type the snapshot reads in binary, and a decoded value
//! serialises to JSON.
//!
//! Input: two bytes placing two cuts (each scaled to the length of the rest), then the COPY
//! output, fed as the three chunks between the cuts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_postgres::fuzzing::{
    BinaryCopyError, CopyBinaryRows, binary_readable, binary_to_value,
};

type Tuples = (Vec<Vec<Option<Vec<u8>>>>, Result<(), BinaryCopyError>);

fn decode<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> Tuples {
    let mut tuples = Vec::new();
    let mut reader = CopyBinaryRows::default();
    for chunk in chunks {
        let fed = reader.feed(chunk, |t| {
            let fields: Vec<Option<Vec<u8>>> =
                t.fields().map(|f| f.map(<[u8]>::to_vec)).collect();
            assert_eq!(fields.len(), t.field_count());
            tuples.push(fields);
            Ok::<(), BinaryCopyError>(())
        });
        if let Err(e) = fed {
            return (tuples, Err(e));
        }
    }
    (tuples, reader.finish())
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
    if whole.1.is_ok() {
        assert_eq!(
            whole, chunked,
            "tuples depend on the cuts at {first} and {second}"
        );
    }
    for field in whole.0.iter().flatten().flatten() {
        for oid in 0..4000 {
            if binary_readable(oid)
                && let Some(value) = binary_to_value(oid, field)
            {
                let _ = serde_json::to_string(&value.to_json()).unwrap();
            }
        }
    }
});
