//! A windowed maximum over round trips: the bandwidth filter and the ack-aggregation
//! estimate of [`super::Bbr`].

use std::collections::VecDeque;

/// The largest value seen over the last `rounds` round trips, keeping one entry per round
/// (that round's largest), so it stays small.
#[derive(Debug)]
pub(super) struct RoundMax {
    rounds: u64,
    samples: VecDeque<(u64, f64)>,
}

impl RoundMax {
    pub(super) fn new(rounds: u64) -> Self {
        Self {
            rounds,
            samples: VecDeque::new(),
        }
    }

    /// Records `value`, seen in `round`.
    pub(super) fn record(&mut self, round: u64, value: f64) {
        match self.samples.back_mut() {
            Some((r, best)) if *r == round => *best = best.max(value),
            _ => self.samples.push_back((round, value)),
        }
    }

    /// Forgets the rounds that are out of the window as of `round`.
    pub(super) fn expire(&mut self, round: u64) {
        while self
            .samples
            .front()
            .is_some_and(|&(r, _)| r + self.rounds < round)
        {
            self.samples.pop_front();
        }
    }

    /// The largest value in the window, 0 if none.
    pub(super) fn max(&self) -> f64 {
        self.samples.iter().map(|&(_, v)| v).fold(0.0, f64::max)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}
