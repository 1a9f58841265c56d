//! Round-trip time estimation as in RFC 9002 section 5.

use std::time::Duration;

/// Smoothed RTT, its variation and the minimum seen.
#[derive(Debug, Clone, Copy)]
pub struct RttEstimator {
    latest: Duration,
    smoothed: Option<Duration>,
    var: Duration,
    min: Duration,
}

/// RTT assumed before the first sample (RFC 9002: 333 ms).
pub const INITIAL_RTT: Duration = Duration::from_millis(333);

impl Default for RttEstimator {
    fn default() -> Self {
        Self {
            latest: INITIAL_RTT,
            smoothed: None,
            var: INITIAL_RTT / 2,
            min: Duration::MAX,
        }
    }
}

impl RttEstimator {
    /// Takes a sample: `rtt` measured for the newest acked packet, `ack_delay` as the peer
    /// reported it.
    pub fn update(&mut self, rtt: Duration, ack_delay: Duration) {
        self.latest = rtt;
        self.min = self.min.min(rtt);
        let adjusted = if rtt >= self.min + ack_delay {
            rtt - ack_delay
        } else {
            rtt
        };
        match self.smoothed {
            None => {
                self.smoothed = Some(adjusted);
                self.var = adjusted / 2;
            }
            Some(smoothed) => {
                let diff = smoothed.abs_diff(adjusted);
                self.var = (self.var * 3 + diff) / 4;
                self.smoothed = Some((smoothed * 7 + adjusted) / 8);
            }
        }
    }

    /// Smoothed RTT.
    pub fn smoothed(&self) -> Duration {
        self.smoothed.unwrap_or(INITIAL_RTT)
    }

    /// Latest sample.
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// Smallest sample, or the initial RTT before any.
    pub fn min(&self) -> Duration {
        if self.min == Duration::MAX {
            INITIAL_RTT
        } else {
            self.min
        }
    }

    /// True once a sample was taken.
    pub fn has_sample(&self) -> bool {
        self.smoothed.is_some()
    }

    /// Probe timeout: smoothed + max(4 var, 1 ms) + the peer's max ack delay.
    pub fn pto(&self, max_ack_delay: Duration) -> Duration {
        self.smoothed() + (self.var * 4).max(Duration::from_millis(1)) + max_ack_delay
    }

    /// Time after which an unacked packet older than an acked one counts as lost: 9/8 of the
    /// larger of smoothed and latest RTT, at least 1 ms (RFC 9002 section 6.1.2).
    pub fn loss_delay(&self) -> Duration {
        (self.smoothed().max(self.latest) * 9 / 8).max(Duration::from_millis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooths_and_tracks_the_minimum() {
        let mut rtt = RttEstimator::default();
        rtt.update(Duration::from_millis(100), Duration::ZERO);
        assert_eq!(rtt.smoothed(), Duration::from_millis(100));
        rtt.update(Duration::from_millis(20), Duration::ZERO);
        assert_eq!(rtt.min(), Duration::from_millis(20));
        assert_eq!(rtt.smoothed(), Duration::from_millis(90));
    }

    #[test]
    fn ack_delay_is_subtracted_only_above_the_minimum() {
        let mut rtt = RttEstimator::default();
        rtt.update(Duration::from_millis(50), Duration::ZERO);
        rtt.update(Duration::from_millis(60), Duration::from_millis(10));
        assert_eq!(rtt.smoothed(), Duration::from_millis(50));
    }
}
