//! Property tests: decode never panics, prefixes of valid messages are errors, and generated
//! messages round-trip through the test encoder.

use proptest::prelude::*;

use super::builder::encode;
use super::tests::samples;
use super::*;

fn any_ctx() -> impl Strategy<Value = DecodeContext> {
    (0u32..=5, any::<bool>(), any::<bool>()).prop_map(|(v, in_stream, streaming_parallel)| {
        DecodeContext {
            protocol_version: v,
            in_stream,
            streaming_parallel,
        }
    })
}

fn cell() -> impl Strategy<Value = Cell> {
    prop_oneof![
        Just(Cell::Null),
        Just(Cell::Unchanged),
        ".{0,12}".prop_map(Cell::Text),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Cell::Binary),
    ]
}

fn tuple() -> impl Strategy<Value = Tuple> {
    proptest::collection::vec(cell(), 0..8).prop_map(|cells| Tuple { cells })
}

fn old_tuple() -> impl Strategy<Value = OldTuple> {
    prop_oneof![
        tuple().prop_map(OldTuple::Key),
        tuple().prop_map(OldTuple::Full)
    ]
}

fn relation(xid: Option<u32>) -> impl Strategy<Value = Message> {
    let column = (any::<bool>(), "[a-z_]{0,10}", any::<u32>(), any::<i32>()).prop_map(
        |(key, name, type_oid, type_modifier)| RelationColumn {
            key,
            name,
            type_oid,
            type_modifier,
        },
    );
    (
        any::<u32>(),
        "[a-z]{0,8}",
        "\\PC{0,8}",
        prop::sample::select(vec![
            ReplicaIdentity::Default,
            ReplicaIdentity::Nothing,
            ReplicaIdentity::Full,
            ReplicaIdentity::Index,
        ]),
        proptest::collection::vec(column, 0..6),
    )
        .prop_map(move |(oid, namespace, name, replica_identity, columns)| {
            Message::Relation(Relation {
                xid,
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            })
        })
}

/// A generated data message and a context that decodes it.
fn data_message() -> impl Strategy<Value = (DecodeContext, Message)> {
    (prop::option::of(any::<u32>()), 1u32..=4).prop_flat_map(|(xid, version)| {
        let version = if xid.is_some() {
            version.max(2)
        } else {
            version
        };
        let ctx = DecodeContext {
            in_stream: xid.is_some(),
            ..DecodeContext::new(version)
        };
        let message = prop_oneof![
            relation(xid),
            (any::<u32>(), tuple()).prop_map(move |(rel, new)| Message::Insert { xid, rel, new }),
            (any::<u32>(), prop::option::of(old_tuple()), tuple())
                .prop_map(move |(rel, old, new)| Message::Update { xid, rel, old, new }),
            (any::<u32>(), old_tuple()).prop_map(move |(rel, old)| Message::Delete {
                xid,
                rel,
                old
            }),
        ];
        (Just(ctx), message)
    })
}

const TAGS: &[u8] = b"BCORYIUDTMSEcAbPKrp";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn never_panics_on_arbitrary_bytes(
        tag in prop::sample::select(TAGS),
        rest in proptest::collection::vec(any::<u8>(), 0..512),
        ctx in any_ctx(),
    ) {
        let mut bytes = vec![tag];
        bytes.extend(rest);
        let _ = decode(&bytes, &ctx);
    }

    #[test]
    fn never_panics_on_any_first_byte(bytes in proptest::collection::vec(any::<u8>(), 0..64), ctx in any_ctx()) {
        let _ = decode(&bytes, &ctx);
    }

    #[test]
    fn generated_messages_round_trip((ctx, message) in data_message()) {
        let bytes = encode(&message, &ctx);
        prop_assert_eq!(decode(&bytes, &ctx), Ok(message));
        for len in 0..bytes.len() {
            prop_assert!(decode(bytes.get(..len).unwrap_or_default(), &ctx).is_err(), "prefix of {} bytes decoded", len);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(decode(&longer, &ctx).is_err(), "trailing byte accepted");
    }

    #[test]
    fn corrupted_samples_never_panic(index in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let samples = samples();
        let Some((ctx, mut bytes, _)) = samples.get(index.index(samples.len())).cloned() else { return Ok(()) };
        if !bytes.is_empty() {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = decode(&bytes, &ctx);
    }
}

#[test]
fn every_prefix_of_a_valid_message_is_an_error() {
    for (ctx, bytes, message) in samples() {
        for len in 0..bytes.len() {
            let prefix = bytes.get(..len).unwrap_or_default();
            assert!(
                decode(prefix, &ctx).is_err(),
                "{len}-byte prefix of {message:?} decoded"
            );
        }
    }
}
