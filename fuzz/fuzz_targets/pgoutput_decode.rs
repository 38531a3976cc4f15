//! `sluice_postgres::pgoutput::decode`: never panics, whatever the bytes and the context; a
//! message it accepts encodes to bytes that decode to the same message; and no strict prefix
//! of an accepted message is accepted (a message must use every byte).
//!
//! Input: one context byte (bits 0-2: the protocol version, 0 to 7, of which 1 to 4 are
//! supported; bit 3: inside a Stream Start/Stop block; bit 4: `streaming 'parallel'`), then
//! the XLogData payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_postgres::fuzzing::encode_pgoutput;
use sluice_postgres::pgoutput::{DecodeContext, decode};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let ctx = DecodeContext {
        protocol_version: u32::from(flags & 0b111),
        in_stream: flags & 0b1000 != 0,
        streaming_parallel: flags & 0b1_0000 != 0,
    };
    let message = match decode(bytes, &ctx) {
        Ok(message) => message,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let again = encode_pgoutput(&message, &ctx);
    assert_eq!(
        decode(&again, &ctx).as_ref(),
        Ok(&message),
        "{bytes:?} decoded to {message:?}, which encodes to {again:?}"
    );
    for cut in [bytes.len() - 1, bytes.len() / 2] {
        assert!(
            decode(&bytes[..cut], &ctx).is_err(),
            "the first {cut} bytes of {bytes:?} were accepted too"
        );
    }
    let mut next = ctx;
    next.observe(&message);
});
