//! The SQLite changelog's row images (the JSON objects the capture triggers write, decoded by
//! `decode_image` when streaming): never panics on any text; an accepted image has one value
//! per member, the configured columns first and in their order, the others after.
//!
//! Input: the image text (lossy UTF-8). The table's columns are `id`, `name`, `price`,
//! `data`.
//! Member names outside those become interned column names (`sluice_core::Name`), which
//! are never freed: a run of many hours grows by the distinct names it tries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::Name;
use sluice_sqlite::fuzzing::decode_image;

const COLUMNS: [&str; 4] = ["id", "name", "price", "data"];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let columns: Vec<Name> = COLUMNS.map(Name::new).to_vec();
    let Ok(row) = decode_image(&text, &columns) else {
        return;
    };
    let Ok(serde_json::Value::Object(members)) = serde_json::from_str(&text) else {
        panic!("{text:?} was accepted but is not a JSON object");
    };
    assert_eq!(row.0.len(), members.len(), "{text:?}");
    let known: Vec<&str> = COLUMNS
        .iter()
        .copied()
        .filter(|c| members.contains_key(*c))
        .collect();
    let names: Vec<&str> = row.0.iter().map(|(name, _)| &**name).collect();
    assert_eq!(&names[..known.len()], &known[..], "{text:?}");
    for name in &names[known.len()..] {
        assert!(
            members.contains_key(*name) && !COLUMNS.contains(name),
            "{text:?}"
        );
    }
});
