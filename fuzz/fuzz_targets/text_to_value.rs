//! `sluice_postgres::types::text_to_value`: never panics; agrees with `text_to_value_owned`
//! (the stream's hot path); keeps the text of a type it does not map unchanged; and its
//! result always serialises to JSON (the event format has a form for every value).
//!
//! Input: one byte choosing the type OID (from the mapped types, their arrays and a few
//! unmapped ones), then the text (lossy UTF-8, as the COPY decoder hands it over).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::Value;
use sluice_postgres::types::oid::*;
use sluice_postgres::types::{array_element_type, text_to_value, text_to_value_owned};

/// OIDs sluice does not map: interval, inet, money, int4range, record, an enum-like user OID.
const UNMAPPED: [u32; 7] = [0, 1186, 869, 790, 3904, 2249, 16_385];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let pick = usize::from(pick) % (MAPPED.len() + UNMAPPED.len());
    let (type_oid, mapped) = match MAPPED.get(pick) {
        Some(&oid) => (oid, true),
        None => (UNMAPPED[pick - MAPPED.len()], false),
    };
    let text = String::from_utf8_lossy(bytes);

    let value = text_to_value(type_oid, &text);
    let owned = text_to_value_owned(type_oid, text.clone().into_owned());
    // Debug, not ==: NaN is a value here and is not equal to itself.
    assert_eq!(format!("{value:?}"), format!("{owned:?}"), "oid {type_oid}");
    if !mapped {
        assert_eq!(
            value,
            Value::Text(text.clone().into_owned().into()),
            "oid {type_oid}"
        );
        assert_eq!(array_element_type(type_oid), None);
    }
    let json = match serde_json::to_string(&value) {
        Ok(json) => json,
        Err(e) => panic!("oid {type_oid}: {value:?} does not serialise: {e}"),
    };
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&json) {
        panic!("oid {type_oid}: {value:?} serialised to invalid JSON {json}: {e}");
    }
});
