//! The source conformance suite: checks every source must pass, driven through the
//! [`Source`] contract alone (`start`, `poll`, `confirm`), against a real database.
//!
//! A source under test provides a [`SourceHarness`]: a way to make a fresh source over one
//! table `(id integer primary key, val text)` and to write to that table. Each check folds the
//! events it receives into a `BTreeMap<i64, String>` (read/insert/update upsert by key,
//! delete removes) and asserts that it equals what was written. Delivery is at-least-once:
//! duplicates and replays are accepted, losses are not.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sluice_core::{Change, Op, Position, Source, SourcePoll, Value};

/// How long a check waits for a source to catch up before failing.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// The table state a check expects: id → val.
pub type State = BTreeMap<i64, String>;

/// What a source under test provides. The table has columns `id` (integer primary key) and
/// `val` (text). The source made by [`SourceHarness::make_source`] should use small batches
/// (a handful of rows) so that checks interleave writes with a snapshot in progress.
#[async_trait]
pub trait SourceHarness: Send {
    /// A new, not yet started source over the test table (a new connection each time, as
    /// after a process restart).
    async fn make_source(&mut self) -> Box<dyn Source>;
    /// Insert a row and commit.
    async fn insert(&mut self, id: i64, val: &str);
    /// Update the row's `val` and commit.
    async fn update(&mut self, id: i64, val: &str);
    /// Delete the row and commit.
    async fn delete(&mut self, id: i64);
    /// The table's name as it appears in events (`main.items`, `public.items`).
    fn table(&self) -> &str;
}

/// Apply one change to `state`, if it is for `table`. Panics on a change that does not fit
/// the test table, naming it.
pub fn apply(state: &mut State, table: &str, change: &Change) {
    if &*change.table != table || change.op == Op::Schema {
        return;
    }
    let id = match change.key.get("id") {
        Some(Value::Int(id)) => *id,
        other => panic!("change without an integer key \"id\" ({other:?}): {change:?}"),
    };
    match change.op {
        Op::Read | Op::Insert | Op::Update => {
            let val = match change.after.as_ref().and_then(|a| a.get("val")) {
                Some(Value::Text(v)) => v.to_string(),
                other => panic!(
                    "{} without a text \"val\" in after ({other:?}): {change:?}",
                    change.op
                ),
            };
            state.insert(id, val);
        }
        Op::Delete => {
            state.remove(&id);
        }
        Op::Truncate => state.clear(),
        Op::Schema => {}
    }
}

/// What a source delivered while a check drove it.
#[derive(Debug, Default)]
pub struct Delivered {
    /// Every change, in order.
    pub changes: Vec<Change>,
    /// The position of the last batch received.
    pub last_position: Option<Position>,
}

/// Poll `source`, folding changes into `state`, until `done(state, last position)` holds
/// after a batch (or idle). Panics after [`CATCH_UP_TIMEOUT`] with the difference.
pub async fn poll_until(
    source: &mut dyn Source,
    table: &str,
    state: &mut State,
    mut done: impl FnMut(&State, Option<&Position>) -> bool,
) -> Delivered {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    let mut delivered = Delivered::default();
    loop {
        if done(state, delivered.last_position.as_ref()) {
            return delivered;
        }
        assert!(
            Instant::now() < deadline,
            "source did not catch up in {CATCH_UP_TIMEOUT:?}; state now: {state:?}"
        );
        match source.poll().await {
            Ok(SourcePoll::Batch(batch)) => {
                for change in &batch.changes {
                    apply(state, table, change);
                }
                delivered.changes.extend(batch.changes);
                delivered.last_position = Some(batch.position);
            }
            Ok(SourcePoll::Idle | SourcePoll::Pending) => {}
            Ok(SourcePoll::Done) => {
                panic!("source finished while a check expected more changes; state now: {state:?}")
            }
            Err(e) => panic!("poll failed: {e} ({:?})", e.class()),
        }
    }
}

/// Poll until `state` equals `expected`.
pub async fn poll_until_state(
    source: &mut dyn Source,
    table: &str,
    state: &mut State,
    expected: &State,
) -> Delivered {
    poll_until(source, table, state, |s, _| s == expected).await
}

/// Poll until a batch at or after `position` has been received.
pub async fn poll_until_position(
    source: &mut dyn Source,
    table: &str,
    state: &mut State,
    position: &Position,
) -> Delivered {
    poll_until(source, table, state, |_, last| {
        last.is_some_and(|p| p >= position)
    })
    .await
}

fn val(id: i64, version: u32) -> String {
    format!("row {id} v{version}")
}

/// Rows 1..=n written before the source starts.
async fn seed(h: &mut dyn SourceHarness, expected: &mut State, n: i64) {
    for id in 1..=n {
        h.insert(id, &val(id, 0)).await;
        expected.insert(id, val(id, 0));
    }
}

/// Resume from a checkpoint: a source that delivered (but did not get confirmed) some
/// changes, then went away while more were written, is replaced by a new one started from the
/// last checkpoint. Folding the new source's events onto the state as of the checkpoint must
/// reach the table's state: nothing is lost, and no snapshot is taken again.
pub async fn check_resume_from_checkpoint(h: &mut dyn SourceHarness) {
    let table = h.table().to_owned();
    let mut expected = State::new();
    seed(h, &mut expected, 20).await;

    let mut source = h.make_source().await;
    source.start(None).await.expect("first start");
    let mut state = State::new();
    let first = poll_until_state(source.as_mut(), &table, &mut state, &expected).await;
    // Drain to the end of the snapshot so the checkpoint is a streaming position.
    h.insert(21, &val(21, 0)).await;
    expected.insert(21, val(21, 0));
    let streamed = poll_until_state(source.as_mut(), &table, &mut state, &expected).await;
    let checkpoint = streamed
        .last_position
        .or(first.last_position)
        .expect("a position");
    source.confirm(&checkpoint).await.expect("confirm");
    let at_checkpoint = state.clone();

    // Delivered but never confirmed: these must come again.
    h.update(2, &val(2, 1)).await;
    h.delete(3).await;
    h.insert(22, &val(22, 0)).await;
    expected.insert(2, val(2, 1));
    expected.remove(&3);
    expected.insert(22, val(22, 0));
    poll_until_state(source.as_mut(), &table, &mut state, &expected).await;
    drop(source);

    // Written while no source runs.
    h.update(4, &val(4, 1)).await;
    h.delete(5).await;
    h.insert(23, &val(23, 0)).await;
    expected.insert(4, val(4, 1));
    expected.remove(&5);
    expected.insert(23, val(23, 0));

    let mut source = h.make_source().await;
    source
        .start(Some(checkpoint.clone()))
        .await
        .expect("restart from checkpoint");
    let mut state = at_checkpoint;
    let replay = poll_until_state(source.as_mut(), &table, &mut state, &expected).await;
    assert!(
        replay.changes.iter().all(|c| c.op != Op::Read),
        "resuming from {checkpoint} took a snapshot again"
    );
    assert!(
        replay.changes.iter().all(|c| c
            .position
            .partial_cmp(&checkpoint)
            .is_some_and(|o| o.is_gt())),
        "resuming from {checkpoint} replayed changes at or before it"
    );
    assert_eq!(state, expected);
}

/// Snapshot/stream hand-off: rows exist before the start, and writes (updates, deletes,
/// inserts) land between polls while the snapshot is still being delivered. The folded state
/// must equal the table: no row missed at the hand-off, no stale row resurrected.
pub async fn check_snapshot_stream_handoff(h: &mut dyn SourceHarness) {
    let table = h.table().to_owned();
    let mut expected = State::new();
    seed(h, &mut expected, 200).await;

    let mut source = h.make_source().await;
    source.start(None).await.expect("start");
    let mut state = State::new();
    let mut reads = 0usize;
    let mut batches = 0i64;
    loop {
        let poll = source.poll().await.expect("poll");
        let SourcePoll::Batch(batch) = poll else {
            continue;
        };
        let was_read = batch.changes.iter().any(|c| c.op == Op::Read);
        for change in &batch.changes {
            apply(&mut state, &table, change);
        }
        reads += batch.changes.iter().filter(|c| c.op == Op::Read).count();
        if !was_read {
            break;
        }
        // Concurrent writes while the snapshot is in flight: late rows (not read yet) and
        // early rows (already read) are both touched.
        batches += 1;
        for id in [201 - batches, batches] {
            if batches % 3 == 0 {
                h.delete(id).await;
                expected.remove(&id);
            } else {
                h.update(id, &val(id, batches as u32)).await;
                expected.insert(id, val(id, batches as u32));
            }
        }
        h.insert(1000 + batches, &val(1000 + batches, 0)).await;
        expected.insert(1000 + batches, val(1000 + batches, 0));
    }
    assert!(
        batches > 1,
        "the snapshot came in one batch; make the harness's batches smaller"
    );
    assert!(
        reads <= 200,
        "the snapshot read {reads} rows, more than the 200 that existed at its start"
    );
    poll_until_state(source.as_mut(), &table, &mut state, &expected).await;
    assert_eq!(state, expected);
}

/// Idempotent replay: replaying from an earlier checkpoint onto a state that already holds
/// every change must leave it unchanged, and replaying onto the state at that checkpoint must
/// reach the table's state.
pub async fn check_idempotent_replay(h: &mut dyn SourceHarness) {
    let table = h.table().to_owned();
    let mut expected = State::new();
    seed(h, &mut expected, 10).await;

    let mut source = h.make_source().await;
    source.start(None).await.expect("start");
    let mut state = State::new();
    let snapshot = poll_until_state(source.as_mut(), &table, &mut state, &expected).await;
    h.insert(11, &val(11, 0)).await;
    expected.insert(11, val(11, 0));
    let handoff = poll_until_state(source.as_mut(), &table, &mut state, &expected).await;
    let checkpoint = handoff
        .last_position
        .or(snapshot.last_position)
        .expect("a position");
    let at_checkpoint = state.clone();

    for round in 1..=3u32 {
        for id in 1..=4 {
            h.update(id, &val(id, round)).await;
            expected.insert(id, val(id, round));
        }
        h.delete(i64::from(round) + 5).await;
        expected.remove(&(i64::from(round) + 5));
        h.insert(100 + i64::from(round), &val(100 + i64::from(round), round))
            .await;
        expected.insert(100 + i64::from(round), val(100 + i64::from(round), round));
    }
    let tail = poll_until_state(source.as_mut(), &table, &mut state, &expected).await;
    let head = tail.last_position.expect("a position after the writes");
    drop(source);

    // Replay onto the final state: must not change it.
    let mut source = h.make_source().await;
    source
        .start(Some(checkpoint.clone()))
        .await
        .expect("restart");
    let mut replayed = state.clone();
    let replay = poll_until_position(source.as_mut(), &table, &mut replayed, &head).await;
    assert!(
        !replay.changes.is_empty(),
        "nothing replayed from {checkpoint}, but changes followed it"
    );
    assert_eq!(
        replayed, expected,
        "replaying onto the final state changed it"
    );
    drop(source);

    // Replay onto the state at the checkpoint: must reach the final state.
    let mut source = h.make_source().await;
    source.start(Some(checkpoint)).await.expect("restart");
    let mut from_checkpoint = at_checkpoint;
    poll_until_position(source.as_mut(), &table, &mut from_checkpoint, &head).await;
    assert_eq!(from_checkpoint, expected);
}
