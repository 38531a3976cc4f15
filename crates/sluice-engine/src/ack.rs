//! Ack-then-checkpoint bookkeeping for one source.
//!
//! Every batch a source produces gets a sequence number and a count of sinks it was sent to.
//! A batch is done when every one of those sinks has durably written it. The checkpointable
//! position is the position of the last batch such that it and every batch before it are done:
//! acknowledgements can arrive out of order across sinks, but the checkpoint only moves over a
//! contiguous prefix, so it never covers a change some sink has not accepted.

use std::collections::BTreeMap;
use std::sync::Mutex;

use sluice_core::Position;
use tokio::sync::Notify;

#[derive(Debug)]
struct Pending {
    remaining: usize,
    position: Position,
    events: u64,
}

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    pending: BTreeMap<u64, Pending>,
    /// Position covered by the done prefix, and events in it, not yet saved.
    done: Option<(Position, u64)>,
    /// Last position saved to the checkpoint store, not yet confirmed to the source.
    saved_unconfirmed: Option<Position>,
}

/// Tracks in-flight batches of one source.
#[derive(Debug, Default)]
pub struct AckTracker {
    state: Mutex<State>,
    /// Woken whenever the done prefix advances.
    pub advanced: Notify,
}

impl AckTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock is a bug elsewhere; the state is still consistent
        // because every critical section is a few field updates.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Register a batch sent to `fanout` sinks; returns its sequence number. A batch with
    /// `fanout == 0` is done at once.
    pub fn register(&self, position: Position, fanout: usize, events: u64) -> u64 {
        let mut s = self.lock();
        let seq = s.next_seq;
        s.next_seq += 1;
        s.pending.insert(
            seq,
            Pending {
                remaining: fanout,
                position,
                events,
            },
        );
        Self::advance(&mut s);
        drop(s);
        self.advanced.notify_one();
        seq
    }

    /// One sink durably wrote batch `seq`.
    pub fn ack(&self, seq: u64) {
        let mut s = self.lock();
        if let Some(p) = s.pending.get_mut(&seq) {
            p.remaining = p.remaining.saturating_sub(1);
        }
        let moved = Self::advance(&mut s);
        drop(s);
        if moved {
            self.advanced.notify_one();
        }
    }

    fn advance(s: &mut State) -> bool {
        let mut moved = false;
        while let Some(entry) = s.pending.first_entry() {
            if entry.get().remaining > 0 {
                break;
            }
            let p = entry.remove();
            let events = s.done.as_ref().map_or(0, |(_, e)| *e) + p.events;
            s.done = Some((p.position, events));
            moved = true;
        }
        moved
    }

    /// Take the newest checkpointable position (and the events it covers since the last take).
    pub fn take_done(&self) -> Option<(Position, u64)> {
        self.lock().done.take()
    }

    /// Record that `position` is durably saved; the source may now be told.
    pub fn mark_saved(&self, position: Position) {
        self.lock().saved_unconfirmed = Some(position);
    }

    /// A saved position the source has not been told about yet.
    pub fn take_saved(&self) -> Option<Position> {
        self.lock().saved_unconfirmed.take()
    }

    /// Batches not yet acknowledged by every sink.
    pub fn in_flight(&self) -> usize {
        self.lock().pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::SqlitePosition;

    fn pos(seq: i64) -> Position {
        Position::Sqlite(SqlitePosition {
            seq,
            snapshot: false,
        })
    }

    #[test]
    fn checkpoint_moves_only_over_a_fully_acked_prefix() {
        let t = AckTracker::default();
        let a = t.register(pos(10), 2, 3);
        let b = t.register(pos(20), 2, 4);
        t.ack(b);
        t.ack(b);
        assert_eq!(t.take_done(), None, "batch b is done but a is not");
        t.ack(a);
        assert_eq!(t.take_done(), None, "a needs both sinks");
        t.ack(a);
        assert_eq!(t.take_done(), Some((pos(20), 7)));
        assert_eq!(t.in_flight(), 0);
        t.register(pos(30), 0, 1);
        assert_eq!(t.take_done(), Some((pos(30), 1)));
    }
}
