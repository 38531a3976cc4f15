//! The replication connection's own parsers (`frame_len`, `parse_replication_message`,
//! `parse_error_fields`): never panic, and what they accept is consistent with the bytes.
//!
//! Input: bytes as read from the socket. They are cut into backend messages the way
//! `ReplicationConnection::next_buffered` does; CopyData (`d`) bodies go through
//! `parse_replication_message` and ErrorResponse/NoticeResponse (`E`/`N`) bodies through
//! `parse_error_fields`. Each parser also gets the whole input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_postgres::fuzzing::{
    MAX_MESSAGE_BYTES, ReplicationMessage, frame_len, parse_error_fields, parse_replication_message,
};

/// XLogData header: type byte, WAL start, WAL end, server clock.
const XLOGDATA_HEADER: usize = 1 + 8 + 8 + 8;
/// Primary keepalive: type byte, WAL end, server clock, reply flag.
const KEEPALIVE: usize = 1 + 8 + 8 + 1;

fn copy_data(payload: &[u8]) {
    match parse_replication_message(payload) {
        Ok(ReplicationMessage::XLogData { data, .. }) => {
            assert_eq!(payload.len(), XLOGDATA_HEADER + data.len());
            assert_eq!(&payload[XLOGDATA_HEADER..], data);
        }
        Ok(ReplicationMessage::Keepalive { .. }) => assert_eq!(payload.len(), KEEPALIVE),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fn error_fields(body: &[u8]) {
    if let Ok(e) = parse_error_fields(body) {
        // An accepted body has its terminating zero byte; fields are C strings.
        assert!(body.contains(&0), "{e:?}");
        for text in [&e.severity, &e.code, &e.message] {
            assert!(!text.contains('\0'), "{e:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    copy_data(data);
    error_fields(data);

    let mut buf = data;
    loop {
        match frame_len(buf) {
            Ok(Some(total)) => {
                let declared = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
                assert_eq!(Ok(total), usize::try_from(declared).map(|len| 1 + len));
                assert!((5..=buf.len()).contains(&total) && total <= 1 + MAX_MESSAGE_BYTES);
                let (tag, body) = (buf[0], &buf[5..total]);
                match tag {
                    b'd' => copy_data(body),
                    b'E' | b'N' => error_fields(body),
                    _ => {}
                }
                buf = &buf[total..];
            }
            Ok(None) => {
                if let Some(header) = buf.get(1..5) {
                    let declared = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
                    assert!(declared >= 4 && buf.len() < 1 + declared as usize);
                }
                break;
            }
            Err(e) => {
                let _ = e.to_string();
                break;
            }
        }
    }
});
