//! Whether a queue falls: the lowest RTT of the last rounds.

use std::time::Duration;

/// The lowest RTT of the current round and of the two before, to see whether a queue falls.
#[derive(Debug)]
pub(super) struct QueueTrend {
    round: Duration,
    last: Duration,
    before: Duration,
}

impl QueueTrend {
    pub(super) fn new() -> Self {
        Self {
            round: Duration::MAX,
            last: Duration::MAX,
            before: Duration::MAX,
        }
    }

    pub(super) fn on_rtt(&mut self, rtt: Duration) {
        self.round = self.round.min(rtt);
    }

    pub(super) fn end_round(&mut self) {
        self.before = self.last;
        self.last = std::mem::replace(&mut self.round, Duration::MAX);
    }

    /// True if the last round's lowest RTT is below the one before by more than noise (an
    /// eighth of the queueing delay), or if it is too early to tell.
    pub(super) fn falling(&self, min_rtt: Duration) -> bool {
        if self.before == Duration::MAX || self.last == Duration::MAX {
            return true;
        }
        let queue = self.before.saturating_sub(min_rtt);
        self.last + queue / 8 < self.before
    }
}
