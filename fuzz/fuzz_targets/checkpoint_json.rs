//! Checkpoint files as the file checkpoint store reads them back (`serde_json` into
//! `Checkpoint`, whose `position` is a tagged `Position`): never panics on any text; what it
//! accepts writes back (as the store writes it) to JSON that reads back the same; a position
//! prints and is ordered equal to itself.
//!
//! Input: the file's bytes (not UTF-8: rejected, as `read_to_string` does).
#![no_main]

use std::cmp::Ordering;

use libfuzzer_sys::fuzz_target;
use sluice_core::{Checkpoint, Position};

fn position(p: &Position) {
    let _ = p.to_string();
    assert_eq!(p.partial_cmp(p), Some(Ordering::Equal), "{p:?}");
    let json = serde_json::to_string(p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    let back: Position = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(&back, p);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match serde_json::from_str::<Checkpoint>(text) {
        Ok(checkpoint) => {
            position(&checkpoint.position);
            let body = serde_json::to_vec_pretty(&checkpoint)
                .unwrap_or_else(|e| panic!("{checkpoint:?}: {e}"));
            let back: Checkpoint = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&body)));
            assert_eq!(back, checkpoint);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Ok(p) = serde_json::from_str::<Position>(text) {
        position(&p);
    }
});
