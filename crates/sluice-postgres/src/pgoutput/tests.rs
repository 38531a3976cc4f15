//! Hand-built messages for every kind, and the errors malformed ones produce.

use sluice_core::PgLsn;

use super::builder::{Bytes, encode};
use super::*;
use crate::PgTimestamp;

const TS: PgTimestamp = PgTimestamp(762_525_296_789_000);

fn ctx(version: u32) -> DecodeContext {
    DecodeContext::new(version)
}

fn streaming(version: u32) -> DecodeContext {
    DecodeContext {
        in_stream: true,
        ..ctx(version)
    }
}

fn parallel() -> DecodeContext {
    DecodeContext {
        streaming_parallel: true,
        ..ctx(4)
    }
}

fn text(s: &str) -> Cell {
    Cell::Text(s.to_owned())
}

fn tuple(cells: Vec<Cell>) -> Tuple {
    Tuple { cells }
}

/// Every message kind (and the streaming variants) as (context, bytes built by hand, the
/// expected message). Shared with the property tests.
pub(super) fn samples() -> Vec<(DecodeContext, Vec<u8>, Message)> {
    let row = Bytes::default()
        .i16(4)
        .u8(b't')
        .i32(2)
        .raw(b"42")
        .u8(b'n')
        .u8(b'u')
        .u8(b'b')
        .i32(3)
        .raw(&[0, 0xff, 7]);
    let row_cells = || {
        tuple(vec![
            text("42"),
            Cell::Null,
            Cell::Unchanged,
            Cell::Binary(vec![0, 0xff, 7]),
        ])
    };
    let key = Bytes::default().i16(2).u8(b't').i32(1).raw(b"7").u8(b'n');
    let key_cells = || tuple(vec![text("7"), Cell::Null]);
    let relation = |xid: Option<u32>| {
        Message::Relation(Relation {
            xid,
            oid: 16_384,
            namespace: "public".into(),
            name: "users".into(),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![
                RelationColumn {
                    key: true,
                    name: "id".into(),
                    type_oid: 23,
                    type_modifier: -1,
                },
                RelationColumn {
                    key: false,
                    name: "name".into(),
                    type_oid: 1043,
                    type_modifier: 68,
                },
            ],
        })
    };
    let relation_bytes = |b: Bytes| {
        b.u32(16_384)
            .str("public")
            .str("users")
            .u8(b'd')
            .i16(2)
            .u8(1)
            .str("id")
            .u32(23)
            .i32(-1)
            .u8(0)
            .str("name")
            .u32(1043)
            .i32(68)
    };
    let prepare = PrepareInfo {
        flags: 0,
        prepare_lsn: PgLsn(0x10),
        end_lsn: PgLsn(0x20),
        timestamp: TS,
        xid: 900,
        gid: "gid-1".into(),
    };
    let prepare_bytes = |tag| {
        Bytes::tag(tag)
            .u8(0)
            .u64(0x10)
            .u64(0x20)
            .i64(TS.0)
            .u32(900)
            .str("gid-1")
            .0
    };
    vec![
        (
            ctx(1),
            Bytes::tag(b'B').u64(0x016B_3748).i64(TS.0).u32(734).0,
            Message::Begin {
                final_lsn: PgLsn(0x016B_3748),
                timestamp: TS,
                xid: 734,
            },
        ),
        (
            ctx(1),
            Bytes::tag(b'C').u8(0).u64(0x100).u64(0x128).i64(TS.0).0,
            Message::Commit {
                flags: 0,
                commit_lsn: PgLsn(0x100),
                end_lsn: PgLsn(0x128),
                timestamp: TS,
            },
        ),
        (
            ctx(1),
            Bytes::tag(b'O').u64(0x55).str("node_a").0,
            Message::Origin {
                commit_lsn: PgLsn(0x55),
                name: "node_a".into(),
            },
        ),
        (ctx(1), relation_bytes(Bytes::tag(b'R')).0, relation(None)),
        (
            streaming(2),
            relation_bytes(Bytes::tag(b'R').u32(801)).0,
            relation(Some(801)),
        ),
        (
            ctx(1),
            Bytes::tag(b'Y').u32(70_000).str("").str("mood").0,
            Message::Type {
                xid: None,
                oid: 70_000,
                namespace: String::new(),
                name: "mood".into(),
            },
        ),
        (
            ctx(1),
            Bytes::tag(b'I').u32(16_384).u8(b'N').raw(&row.0).0,
            Message::Insert {
                xid: None,
                rel: 16_384,
                new: row_cells(),
            },
        ),
        (
            streaming(2),
            Bytes::tag(b'I').u32(801).u32(16_384).u8(b'N').raw(&row.0).0,
            Message::Insert {
                xid: Some(801),
                rel: 16_384,
                new: row_cells(),
            },
        ),
        (
            ctx(1),
            Bytes::tag(b'U').u32(16_384).u8(b'N').raw(&row.0).0,
            Message::Update {
                xid: None,
                rel: 16_384,
                old: None,
                new: row_cells(),
            },
        ),
        (
            ctx(1),
            Bytes::tag(b'U')
                .u32(16_384)
                .u8(b'K')
                .raw(&key.0)
                .u8(b'N')
                .raw(&row.0)
                .0,
            Message::Update {
                xid: None,
                rel: 16_384,
                old: Some(OldTuple::Key(key_cells())),
                new: row_cells(),
            },
        ),
        (
            streaming(3),
            Bytes::tag(b'U')
                .u32(802)
                .u32(16_384)
                .u8(b'O')
                .raw(&row.0)
                .u8(b'N')
                .raw(&row.0)
                .0,
            Message::Update {
                xid: Some(802),
                rel: 16_384,
                old: Some(OldTuple::Full(row_cells())),
                new: row_cells(),
            },
        ),
        (
            ctx(1),
            Bytes::tag(b'D').u32(16_384).u8(b'K').raw(&key.0).0,
            Message::Delete {
                xid: None,
                rel: 16_384,
                old: OldTuple::Key(key_cells()),
            },
        ),
        (
            streaming(4),
            Bytes::tag(b'D').u32(803).u32(16_384).u8(b'O').raw(&row.0).0,
            Message::Delete {
                xid: Some(803),
                rel: 16_384,
                old: OldTuple::Full(row_cells()),
            },
        ),
        (
            ctx(1),
            Bytes::tag(b'T').i32(2).u8(3).u32(16_384).u32(16_390).0,
            Message::Truncate {
                xid: None,
                cascade: true,
                restart_identity: true,
                rels: vec![16_384, 16_390],
            },
        ),
        (
            streaming(2),
            Bytes::tag(b'T').u32(804).i32(1).u8(2).u32(16_384).0,
            Message::Truncate {
                xid: Some(804),
                cascade: false,
                restart_identity: true,
                rels: vec![16_384],
            },
        ),
        (
            ctx(1),
            Bytes::tag(b'M')
                .u8(1)
                .u64(0x77)
                .str("sluice")
                .i32(3)
                .raw(b"\x00hi")
                .0,
            Message::Message {
                xid: None,
                transactional: true,
                lsn: PgLsn(0x77),
                prefix: "sluice".into(),
                content: b"\x00hi".to_vec(),
            },
        ),
        (
            streaming(2),
            Bytes::tag(b'M').u32(805).u8(0).u64(0x78).str("p").i32(0).0,
            Message::Message {
                xid: Some(805),
                transactional: false,
                lsn: PgLsn(0x78),
                prefix: "p".into(),
                content: Vec::new(),
            },
        ),
        (
            ctx(2),
            Bytes::tag(b'S').u32(801).u8(1).0,
            Message::StreamStart {
                xid: 801,
                first_segment: true,
            },
        ),
        (ctx(2), Bytes::tag(b'E').0, Message::StreamStop),
        (
            ctx(2),
            Bytes::tag(b'c')
                .u32(801)
                .u8(0)
                .u64(0x200)
                .u64(0x230)
                .i64(TS.0)
                .0,
            Message::StreamCommit {
                xid: 801,
                flags: 0,
                commit_lsn: PgLsn(0x200),
                end_lsn: PgLsn(0x230),
                timestamp: TS,
            },
        ),
        (
            ctx(2),
            Bytes::tag(b'A').u32(801).u32(806).0,
            Message::StreamAbort {
                xid: 801,
                subxid: 806,
                abort: None,
            },
        ),
        (
            // Protocol 4 without `streaming 'parallel'`: no abort info.
            ctx(4),
            Bytes::tag(b'A').u32(801).u32(801).0,
            Message::StreamAbort {
                xid: 801,
                subxid: 801,
                abort: None,
            },
        ),
        (
            parallel(),
            Bytes::tag(b'A').u32(801).u32(806).u64(0x300).i64(TS.0).0,
            Message::StreamAbort {
                xid: 801,
                subxid: 806,
                abort: Some(AbortInfo {
                    lsn: PgLsn(0x300),
                    timestamp: TS,
                }),
            },
        ),
        (
            ctx(3),
            Bytes::tag(b'b')
                .u64(0x10)
                .u64(0x20)
                .i64(TS.0)
                .u32(900)
                .str("gid-1")
                .0,
            Message::BeginPrepare {
                prepare_lsn: PgLsn(0x10),
                end_lsn: PgLsn(0x20),
                timestamp: TS,
                xid: 900,
                gid: "gid-1".into(),
            },
        ),
        (
            ctx(3),
            prepare_bytes(b'P'),
            Message::Prepare(prepare.clone()),
        ),
        (ctx(3), prepare_bytes(b'p'), Message::StreamPrepare(prepare)),
        (
            ctx(3),
            Bytes::tag(b'K')
                .u8(0)
                .u64(0x40)
                .u64(0x48)
                .i64(TS.0)
                .u32(900)
                .str("gid-1")
                .0,
            Message::CommitPrepared {
                flags: 0,
                commit_lsn: PgLsn(0x40),
                end_lsn: PgLsn(0x48),
                timestamp: TS,
                xid: 900,
                gid: "gid-1".into(),
            },
        ),
        (
            ctx(4),
            Bytes::tag(b'r')
                .u8(0)
                .u64(0x20)
                .u64(0x50)
                .i64(TS.0)
                .i64(TS.0 + 1)
                .u32(900)
                .str("gid-1")
                .0,
            Message::RollbackPrepared {
                flags: 0,
                prepare_end_lsn: PgLsn(0x20),
                rollback_end_lsn: PgLsn(0x50),
                prepare_timestamp: TS,
                rollback_timestamp: PgTimestamp(TS.0 + 1),
                xid: 900,
                gid: "gid-1".into(),
            },
        ),
    ]
}

#[test]
fn every_message_kind_decodes() {
    let samples = samples();
    for kind in MessageKind::ALL {
        assert!(
            samples.iter().any(|(_, _, m)| m.kind() == kind),
            "no sample for {kind}"
        );
    }
    for (ctx, bytes, expected) in samples {
        assert_eq!(decode(&bytes, &ctx), Ok(expected.clone()), "{expected:?}");
        // The test encoder agrees with the hand-built bytes.
        assert_eq!(encode(&expected, &ctx), bytes, "{expected:?}");
    }
}

#[test]
fn unchanged_toast_is_not_null() {
    let bytes = Bytes::tag(b'U').u32(1).u8(b'N').i16(2).u8(b'u').u8(b'n').0;
    let Ok(Message::Update { new, .. }) = decode(&bytes, &ctx(1)) else {
        panic!("not an update");
    };
    assert_eq!(new.cells, vec![Cell::Unchanged, Cell::Null]);
}

#[test]
fn stream_xid_only_inside_streams() {
    // The same bytes mean different things inside and outside a stream.
    let bytes = Bytes::tag(b'T').u32(9).i32(1).u8(0).u32(5).0;
    assert!(decode(&bytes, &ctx(2)).is_err());
    assert_eq!(
        decode(&bytes, &streaming(2)),
        Ok(Message::Truncate {
            xid: Some(9),
            cascade: false,
            restart_identity: false,
            rels: vec![5],
        })
    );
    // Origin, and the transaction control messages, never carry the prefix.
    let origin = Bytes::tag(b'O').u64(1).str("o").0;
    assert!(decode(&origin, &streaming(2)).is_ok());
}

#[test]
fn observe_tracks_streams() {
    let mut c = ctx(2);
    c.observe(&Message::StreamStart {
        xid: 1,
        first_segment: false,
    });
    assert!(c.in_stream);
    c.observe(&Message::StreamStop);
    assert!(!c.in_stream);
}

fn err(bytes: &[u8], ctx: &DecodeContext) -> String {
    match decode(bytes, ctx) {
        Ok(m) => panic!("decoded {m:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn errors_say_what_and_where() {
    let cases: Vec<(Vec<u8>, DecodeContext, &str)> = vec![
        (
            vec![],
            ctx(1),
            "empty pgoutput message: expected at least the 1-byte message type",
        ),
        (
            vec![b'z'],
            ctx(1),
            "unknown pgoutput message type 0x7a ('z')",
        ),
        (vec![0], ctx(1), "unknown pgoutput message type 0x00"),
        (
            Bytes::tag(b'U').u32(7).u32(1).u8(b'N').raw(&[0, 1]).0,
            streaming(2),
            "pgoutput Update message truncated at byte 12: expected 1 byte for the tuple's \
             columns (at least 1 byte each), found 0",
        ),
        (
            Bytes::tag(b'U').u32(7).u32(1).u8(b'N').raw(&[0]).0,
            streaming(2),
            "pgoutput Update message truncated at byte 10: expected 2 bytes for the tuple \
             column count, found 1",
        ),
        (
            Bytes::tag(b'U').raw(&[0, 1]).0,
            ctx(1),
            "pgoutput Update message truncated at byte 1: expected 4 bytes for the relation id, \
             found 2",
        ),
        (
            Bytes::tag(b'I')
                .u32(1)
                .u8(b'N')
                .i16(3)
                .u8(b'n')
                .u8(b'n')
                .u8(b'x')
                .0,
            ctx(1),
            "unknown tuple cell kind 0x78 ('x') in column 3 of pgoutput Insert message at byte 10",
        ),
        (
            // A length of 2^31 - 1 in a short message is an error, not an allocation.
            Bytes::tag(b'I')
                .u32(1)
                .u8(b'N')
                .i16(1)
                .u8(b't')
                .i32(i32::MAX)
                .raw(b"ab")
                .0,
            ctx(1),
            "pgoutput Insert message truncated at byte 13: expected 2147483647 bytes for the \
             value of column 1, found 2",
        ),
        (
            Bytes::tag(b'I').u32(1).u8(b'N').i16(1).u8(b'b').i32(-1).0,
            ctx(1),
            "pgoutput Insert message: the length of column 1 at byte 9 is negative (-1)",
        ),
        (
            Bytes::tag(b'I').u32(1).u8(b'N').i16(-2).0,
            ctx(1),
            "pgoutput Insert message: the tuple column count at byte 6 is negative (-2)",
        ),
        (
            Bytes::tag(b'I').u32(1).u8(b'N').i16(i16::MAX).u8(b'n').0,
            ctx(1),
            "pgoutput Insert message truncated at byte 8: expected 32767 bytes for the tuple's \
             columns (at least 1 byte each), found 1",
        ),
        (
            Bytes::tag(b'I')
                .u32(1)
                .u8(b'N')
                .i16(1)
                .u8(b't')
                .i32(2)
                .raw(&[0xc3, 0x28])
                .0,
            ctx(1),
            "pgoutput Insert message: the text value of column 1 at byte 13 is not valid UTF-8 \
             (invalid byte at offset 13); hint: sluice needs a database with UTF8 encoding",
        ),
        (
            Bytes::tag(b'I').u32(1).u8(b'K').i16(0).0,
            ctx(1),
            "pgoutput Insert message: expected 'N' at byte 5, found 0x4b ('K')",
        ),
        (
            Bytes::tag(b'U').u32(1).u8(b'K').i16(0).u8(b'K').i16(0).0,
            ctx(1),
            "pgoutput Update message: expected 'N' at byte 8, found 0x4b ('K')",
        ),
        (
            Bytes::tag(b'D').u32(1).u8(b'N').i16(0).0,
            ctx(1),
            "pgoutput Delete message: expected 'K' or 'O' at byte 5, found 0x4e ('N')",
        ),
        (
            Bytes::tag(b'T').i32(i32::MAX).u8(0).u32(1).0,
            ctx(1),
            "pgoutput Truncate message truncated at byte 6: expected 8589934588 bytes for the \
             relation ids, found 4",
        ),
        (
            Bytes::tag(b'R').u32(1).str("s").str("t").u8(b'x').i16(0).0,
            ctx(1),
            "pgoutput Relation message: unknown replica identity 0x78 ('x') at byte 9, expected \
             'd', 'n', 'f' or 'i'",
        ),
        (
            Bytes::tag(b'R')
                .u32(1)
                .str("s")
                .str("t")
                .u8(b'f')
                .i16(1000)
                .u8(1)
                .0,
            ctx(1),
            "pgoutput Relation message truncated at byte 12: expected 10000 bytes for the \
             columns (at least 10 bytes each), found 1",
        ),
        (
            Bytes::tag(b'R').u32(1).raw(b"public").0,
            ctx(1),
            "pgoutput Relation message: the namespace at byte 5 has no terminating NUL",
        ),
        (
            Bytes::tag(b'E').u8(0).0,
            ctx(2),
            "pgoutput Stream Stop message has 1 byte left over after its end at byte 1",
        ),
        (
            Bytes::tag(b'S').u32(1).u8(1).0,
            ctx(1),
            "pgoutput Stream Start message uses streaming, which needs protocol version 2 or \
             higher, but the session negotiated version 1",
        ),
        (
            Bytes::tag(b'P').0,
            ctx(2),
            "pgoutput Prepare message uses two-phase commit, which needs protocol version 3 or \
             higher, but the session negotiated version 2",
        ),
        (
            Bytes::tag(b'A').u32(1).u32(1).0,
            DecodeContext {
                streaming_parallel: true,
                ..ctx(3)
            },
            "pgoutput Stream Abort message uses parallel streaming, which needs protocol version \
             4 or higher, but the session negotiated version 3",
        ),
        (
            Bytes::tag(b'A').u32(1).u32(1).u64(1).i64(1).0,
            ctx(4),
            "pgoutput Stream Abort message has 16 bytes left over after its end at byte 9",
        ),
        (
            Bytes::tag(b'B').0,
            ctx(5),
            "unsupported pgoutput protocol version 5: sluice decodes versions 1 to 4; hint: use \
             proto_version 1 to 4 in START_REPLICATION",
        ),
    ];
    for (bytes, ctx, expected) in cases {
        assert_eq!(err(&bytes, &ctx), expected, "{bytes:?}");
    }
}

#[test]
fn decode_errors_are_permanent() {
    let e: sluice_core::Error = DecodeError::Empty.into();
    assert_eq!(e.class(), sluice_core::ErrorClass::Permanent);
}
