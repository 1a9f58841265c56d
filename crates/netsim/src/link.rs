//! One direction of a link: a drop-tail queue in front of a serializer of a given rate, then a
//! wire with delay, jitter, random and burst loss, reordering and duplication.

use crate::rng::Rng;
use std::time::Duration;

/// Burst loss as a Gilbert-Elliott channel: a good and a bad state, each with its loss rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstLoss {
    /// Per packet, chance of going from good to bad.
    pub enter_bad: f64,
    /// Per packet, chance of going from bad back to good.
    pub leave_bad: f64,
    /// Loss rate in the bad state (the good state uses [`LinkConfig::loss`]).
    pub bad_loss: f64,
}

/// What a link does to packets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// Serialization rate, bits per second (counting UDP payload bytes).
    pub rate_bps: u64,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Extra delay, uniform in `[0, jitter)`, per packet (packets may then reorder).
    pub jitter: Duration,
    /// Random loss rate, 0 to 1.
    pub loss: f64,
    /// Burst loss, if any.
    pub burst: Option<BurstLoss>,
    /// Chance a packet is held back by `reorder_delay` and overtaken.
    pub reorder: f64,
    /// How long a reordered packet is held back.
    pub reorder_delay: Duration,
    /// Chance a packet is delivered twice.
    pub duplicate: f64,
    /// Drop-tail queue size in bytes.
    pub queue_bytes: u64,
}

impl LinkConfig {
    /// A clean link of `rate_bps` and one-way `delay`, with a queue of one bandwidth-delay
    /// product of the round trip (twice the one-way delay).
    pub fn new(rate_bps: u64, delay: Duration) -> Self {
        let bdp = (rate_bps as u128 * 2 * delay.as_nanos() / 8 / 1_000_000_000) as u64;
        Self {
            rate_bps,
            delay,
            jitter: Duration::ZERO,
            loss: 0.0,
            burst: None,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            duplicate: 0.0,
            queue_bytes: bdp.max(64 * 1024),
        }
    }
}

/// A link in one direction, with its queue and channel state.
#[derive(Debug, Clone)]
pub struct Link {
    config: LinkConfig,
    /// When the serializer is free again.
    busy_until: Duration,
    bad: bool,
    /// Packets dropped by the full queue.
    pub queue_drops: u64,
    /// Packets lost on the wire (random or burst).
    pub wire_losses: u64,
}

impl Link {
    /// An idle link.
    pub fn new(config: LinkConfig) -> Self {
        Self {
            config,
            busy_until: Duration::ZERO,
            bad: false,
            queue_drops: 0,
            wire_losses: 0,
        }
    }

    /// Sends a packet of `size` bytes at `now`: the times (none, one or two) it arrives at the
    /// far end.
    pub fn send(&mut self, now: Duration, size: usize, rng: &mut Rng) -> Vec<Duration> {
        let c = self.config;
        let start = self.busy_until.max(now);
        let backlog = bytes_in(start - now, c.rate_bps);
        if backlog + size as u64 > c.queue_bytes && start > now {
            self.queue_drops += 1;
            return Vec::new();
        }
        self.busy_until = start + serialization(size, c.rate_bps);
        let loss = match c.burst {
            Some(b) => {
                self.bad = if self.bad {
                    !rng.chance(b.leave_bad)
                } else {
                    rng.chance(b.enter_bad)
                };
                if self.bad { b.bad_loss } else { c.loss }
            }
            None => c.loss,
        };
        if rng.chance(loss) {
            self.wire_losses += 1;
            return Vec::new();
        }
        let mut arrive = self.busy_until + c.delay;
        if c.jitter > Duration::ZERO {
            arrive += c.jitter.mul_f64(rng.next_f64());
        }
        if rng.chance(c.reorder) {
            arrive += c.reorder_delay;
        }
        let mut out = vec![arrive];
        if rng.chance(c.duplicate) {
            out.push(arrive + Duration::from_micros(100));
        }
        out
    }
}

/// How long `size` bytes take at `rate_bps`.
fn serialization(size: usize, rate_bps: u64) -> Duration {
    Duration::from_nanos((size as u128 * 8 * 1_000_000_000 / rate_bps.max(1) as u128) as u64)
}

/// How many bytes `rate_bps` moves in `d`.
fn bytes_in(d: Duration, rate_bps: u64) -> u64 {
    (d.as_nanos() * rate_bps as u128 / 8 / 1_000_000_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_the_tail() {
        let mut config = LinkConfig::new(8_000_000, Duration::from_millis(10)); // 1 MB/s
        config.queue_bytes = 3000;
        let mut link = Link::new(config);
        let mut rng = Rng::new(1);
        let arrivals: Vec<usize> = (0..6)
            .map(|_| link.send(Duration::ZERO, 1000, &mut rng).len())
            .collect();
        // The queue counts the packet being serialized too.
        assert_eq!(arrivals, vec![1, 1, 1, 0, 0, 0]);
        assert_eq!(link.queue_drops, 3);
    }

    #[test]
    fn packets_arrive_after_serialization_and_delay() {
        let mut link = Link::new(LinkConfig::new(8_000_000, Duration::from_millis(10)));
        let mut rng = Rng::new(1);
        assert_eq!(
            link.send(Duration::ZERO, 1000, &mut rng),
            vec![Duration::from_millis(11)]
        );
        assert_eq!(
            link.send(Duration::ZERO, 1000, &mut rng),
            vec![Duration::from_millis(12)]
        );
    }
}
