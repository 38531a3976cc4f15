//! Exponential backoff with jitter for transient errors (from `backon`), retried until the
//! pipeline stops.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// An endless sequence of growing, jittered delays.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    inner: backon::ExponentialBackoff,
}

impl Backoff {
    /// Delays from about `min` doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            inner: Self::build(min, max),
        }
    }

    fn build(min: Duration, max: Duration) -> backon::ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// The next delay, never above `max` (backon adds its jitter after its own cap, up to
    /// twice the maximum).
    pub fn next_delay(&mut self) -> Duration {
        self.inner.next().unwrap_or(self.max).min(self.max)
    }

    /// Start again from the shortest delay (after a success).
    pub fn reset(&mut self) {
        self.inner = Self::build(self.min, self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(100));
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(10) && delays[0] <= Duration::from_millis(20));
        assert!(
            delays.iter().all(|d| *d <= Duration::from_millis(100)),
            "{delays:?}"
        );
        assert!(delays[8] >= Duration::from_millis(100), "{delays:?}");
    }
}
