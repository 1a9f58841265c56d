//! Pacing: packets leave at the controller's rate, with a small burst allowance so that a
//! timer with millisecond resolution can keep a fast link busy.

use std::time::{Duration, Instant};

/// A token bucket in bytes.
#[derive(Debug, Clone)]
pub struct Pacer {
    tokens: f64,
    last: Option<Instant>,
}

/// The burst allowance: enough for this long at the current rate (timers are coarse), and
/// never less than a few packets.
const BURST_TIME: Duration = Duration::from_millis(2);
const BURST_PACKETS: f64 = 4.0;
/// Longest a packet waits for the pacer.
const MAX_WAIT: Duration = Duration::from_secs(1);

impl Pacer {
    /// A full bucket.
    pub fn new() -> Self {
        Self {
            tokens: f64::INFINITY,
            last: None,
        }
    }

    fn capacity(rate: f64, mss: f64) -> f64 {
        (rate * BURST_TIME.as_secs_f64()).max(BURST_PACKETS * mss)
    }

    fn refill(&mut self, now: Instant, rate: f64, mss: f64) {
        let cap = Self::capacity(rate, mss);
        if let Some(last) = self.last {
            self.tokens += now.saturating_duration_since(last).as_secs_f64() * rate;
        }
        self.tokens = self.tokens.min(cap);
        self.last = Some(now);
    }

    /// When a packet of `bytes` may leave: `now` if it may go now.
    pub fn next_send(&mut self, now: Instant, bytes: f64, rate: f64, mss: f64) -> Instant {
        self.refill(now, rate, mss);
        if self.tokens >= bytes || rate <= 0.0 {
            now
        } else {
            // Never a panic on a degenerate rate, and never more than a second of waiting.
            let wait =
                Duration::try_from_secs_f64((bytes - self.tokens) / rate).unwrap_or(MAX_WAIT);
            now + wait.min(MAX_WAIT)
        }
    }

    /// A packet of `bytes` left.
    pub fn on_sent(&mut self, bytes: f64) {
        self.tokens -= bytes;
    }
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_packets_at_the_rate_after_the_burst() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new();
        let (rate, mss) = (1_000_000.0, 1000.0); // 1 MB/s: burst cap 4 packets
        for _ in 0..4 {
            assert_eq!(pacer.next_send(t0, mss, rate, mss), t0);
            pacer.on_sent(mss);
        }
        let next = pacer.next_send(t0, mss, rate, mss);
        assert_eq!(next, t0 + Duration::from_millis(1));
    }
}
