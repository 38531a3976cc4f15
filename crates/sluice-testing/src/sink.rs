//! The sink conformance suite: every sink must pass it against its real destination.
//!
//! A [`SinkHarness`] makes sinks and reads back what the destination holds, folded by key
//! into a [`SinkState`] (id → value, deletes remove). The checks prove the [`Sink`] contract:
//! a write that returned is visible to a fresh reader (durable on ack), replaying batches
//! converges to the same state (idempotent by key), and changes to one key are applied in
//! order.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sluice_core::{Change, Name, Op, Position, Row, Sink, SqlitePosition, Value};

/// What the destination holds, by `id`.
pub type SinkState = BTreeMap<i64, String>;

/// Access to one sink implementation and its destination.
#[async_trait]
pub trait SinkHarness: Send {
    /// A new sink writing to the harness's destination (a new instance each call, as after a
    /// restart).
    async fn make_sink(&mut self) -> Box<dyn Sink>;
    /// Read the destination back with a fresh reader and fold it by key.
    async fn read_back(&mut self) -> SinkState;
}

fn row(id: i64, val: &str) -> Row {
    Row(vec![
        (Name::new("id"), Value::Int(id)),
        (Name::new("val"), Value::Text(val.into())),
    ])
}

/// A change of table `main.items` (columns `id`, `val`) at changelog position `seq`.
pub fn change(op: Op, id: i64, val: &str, seq: i64) -> Change {
    let key = Row(vec![(Name::new("id"), Value::Int(id))]);
    let (before, after) = match op {
        Op::Delete => (Some(row(id, val)), None),
        Op::Update => (Some(row(id, "?")), Some(row(id, val))),
        _ => (None, Some(row(id, val))),
    };
    Change {
        op,
        source: "conformance".into(),
        table: "main.items".into(),
        key,
        before,
        after,
        position: Position::Sqlite(SqlitePosition {
            seq,
            snapshot: false,
        }),
        tx: None,
        schema: None,
    }
}

fn expected(pairs: &[(i64, &str)]) -> SinkState {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// A write that returned `Ok` is visible to a fresh reader, even after the sink is dropped
/// without `close` (as in a crash).
pub async fn check_durable_on_ack(h: &mut dyn SinkHarness) {
    let mut sink = h.make_sink().await;
    let batch = vec![change(Op::Insert, 1, "a", 1), change(Op::Insert, 2, "b", 2)];
    sink.write(&batch).await.expect("write");
    drop(sink);
    assert_eq!(
        h.read_back().await,
        expected(&[(1, "a"), (2, "b")]),
        "acknowledged writes must be durable"
    );
}

/// Replaying batches already written (at-least-once delivery after a crash) converges to the
/// same state.
pub async fn check_idempotent_replay(h: &mut dyn SinkHarness) {
    let first = vec![
        change(Op::Insert, 10, "x", 1),
        change(Op::Update, 10, "y", 2),
        change(Op::Insert, 11, "z", 3),
    ];
    let second = vec![
        change(Op::Delete, 11, "z", 4),
        change(Op::Insert, 12, "w", 5),
    ];
    let mut sink = h.make_sink().await;
    sink.write(&first).await.expect("write");
    sink.write(&second).await.expect("write");
    drop(sink);
    let once = h.read_back().await;
    // A restart replays from an older checkpoint: both batches again.
    let mut sink = h.make_sink().await;
    sink.write(&first).await.expect("replay");
    sink.write(&second).await.expect("replay");
    sink.close().await.expect("close");
    assert_eq!(
        h.read_back().await,
        once,
        "replay must not change the end state"
    );
    assert_eq!(once.get(&10).map(String::as_str), Some("y"));
    assert!(!once.contains_key(&11));
    assert_eq!(once.get(&12).map(String::as_str), Some("w"));
}

/// Changes to one key inside one batch and across batches apply in order.
pub async fn check_order_per_key(h: &mut dyn SinkHarness) {
    let mut sink = h.make_sink().await;
    let batch: Vec<Change> = (0..50)
        .map(|i| change(Op::Update, 100, &format!("v{i}"), 100 + i))
        .collect();
    sink.write(&batch).await.expect("write");
    sink.write(&[change(Op::Update, 100, "last", 200)])
        .await
        .expect("write");
    sink.write(&[
        change(Op::Delete, 101, "", 201),
        change(Op::Insert, 101, "back", 202),
    ])
    .await
    .expect("write");
    sink.close().await.expect("close");
    let state = h.read_back().await;
    assert_eq!(state.get(&100).map(String::as_str), Some("last"));
    assert_eq!(state.get(&101).map(String::as_str), Some("back"));
}

/// Fold native JSON events (as written by the file and stdout sinks) into a [`SinkState`].
pub fn fold_events(lines: &str) -> SinkState {
    let mut state = SinkState::new();
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            panic!("not a JSON event: {line:?}");
        };
        let Some(id) = event["key"]["id"].as_i64() else {
            continue;
        };
        match event["op"].as_str() {
            Some("delete") => {
                state.remove(&id);
            }
            Some(_) => {
                let val = event["after"]["val"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                state.insert(id, val);
            }
            None => panic!("event without op: {line}"),
        }
    }
    state
}
