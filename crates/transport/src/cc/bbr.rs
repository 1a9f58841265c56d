//! A model-based controller in the style of BBR (v1): it estimates the bottleneck bandwidth
//! (the highest delivery rate of the last ten round trips) and the minimum RTT, paces at the
//! bandwidth times a gain that cycles to probe for more, and bounds what is in flight to twice
//! the bandwidth-delay product. Random loss is not a congestion signal for it, so it does not
//! collapse on a lossy link the way loss-based controllers do.
//!
//! Acks do not come back as smoothly as the packets left: a receiver that takes in a run of
//! datagrams at once (GRO) acks them together, and a busy host answers late. As BBR does
//! (draft-cardwell-ccwg-bbr, "ACK aggregation" and "offload budget"), the window allows for the
//! largest such bunching seen in the last rounds and for a few of the bursts we send in one
//! system call; without it, a fast path with a tiny minimum RTT (loopback: 15 us) gets a window
//! of a few packets and the flow stalls on every late ack.

use super::{AckSample, Controller};
use crate::rtt::RttEstimator;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const STARTUP_GAIN: f64 = 2.77;
const CWND_GAIN: f64 = 2.0;
const CYCLE: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
const BW_WINDOW_ROUNDS: u64 = 8;
const INITIAL_PACKETS: u64 = 10;
const MIN_PACKETS_PER_RTT: f64 = 4.0;
/// Rounds over which the largest ack aggregation is remembered.
const EXTRA_ACKED_ROUNDS: u64 = 10;
/// Longest ack aggregation allowed for, in time at the estimated bandwidth.
const EXTRA_ACKED_MAX: Duration = Duration::from_millis(100);
/// What the sender hands the kernel at once: up to this long at the pacing rate...
const SEND_QUANTUM_TIME: Duration = Duration::from_millis(1);
/// ...and at most a segmented send's worth.
const MAX_SEND_QUANTUM: f64 = 64.0 * 1024.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Startup,
    Drain,
    ProbeBw,
}

/// The largest value seen over the last `rounds` round trips, keeping one entry per round
/// (that round's largest), so it stays small.
#[derive(Debug)]
struct RoundMax {
    rounds: u64,
    samples: VecDeque<(u64, f64)>,
}

impl RoundMax {
    fn new(rounds: u64) -> Self {
        Self {
            rounds,
            samples: VecDeque::new(),
        }
    }

    /// Records `value`, seen in `round`.
    fn record(&mut self, round: u64, value: f64) {
        match self.samples.back_mut() {
            Some((r, best)) if *r == round => *best = best.max(value),
            _ => self.samples.push_back((round, value)),
        }
    }

    /// Forgets the rounds that are out of the window as of `round`.
    fn expire(&mut self, round: u64) {
        while self
            .samples
            .front()
            .is_some_and(|&(r, _)| r + self.rounds < round)
        {
            self.samples.pop_front();
        }
    }

    /// The largest value in the window, 0 if none.
    fn max(&self) -> f64 {
        self.samples.iter().map(|&(_, v)| v).fold(0.0, f64::max)
    }

    fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// BBR-style congestion control.
#[derive(Debug)]
pub struct Bbr {
    mss: f64,
    mode: Mode,
    /// Delivery rates in bytes/s; the max over the window is the estimate.
    bw_samples: RoundMax,
    round: u64,
    /// `delivered` at the start of the current round.
    round_start_delivered: u64,
    full_bw: f64,
    full_bw_rounds: u32,
    cycle_index: usize,
    cycle_start: Instant,
    min_rtt: Duration,
    /// Bytes acked beyond what the bandwidth explains.
    extra_acked: RoundMax,
    /// Start of the current aggregation interval, and the bytes acked since.
    aggregation_start: Instant,
    aggregation_acked: f64,
}

impl Bbr {
    /// A controller in startup, for packets of `mss` bytes.
    pub fn new(mss: u64, now: Instant) -> Self {
        Self {
            mss: mss as f64,
            mode: Mode::Startup,
            bw_samples: RoundMax::new(BW_WINDOW_ROUNDS),
            round: 0,
            round_start_delivered: 0,
            full_bw: 0.0,
            full_bw_rounds: 0,
            cycle_index: 0,
            cycle_start: now,
            min_rtt: crate::rtt::INITIAL_RTT,
            extra_acked: RoundMax::new(EXTRA_ACKED_ROUNDS),
            aggregation_start: now,
            aggregation_acked: 0.0,
        }
    }

    /// The largest recent ack aggregation, bytes.
    fn extra_acked(&self) -> f64 {
        self.extra_acked.max()
    }

    /// Measures how far acks run ahead of the estimated bandwidth (they come in bunches).
    fn update_ack_aggregation(&mut self, now: Instant, acked: f64) {
        let bw = self.bw();
        let mut expected = bw
            * now
                .saturating_duration_since(self.aggregation_start)
                .as_secs_f64();
        if self.aggregation_acked <= expected {
            // Acks are not ahead of the rate: a new interval starts here.
            self.aggregation_acked = 0.0;
            self.aggregation_start = now;
            expected = 0.0;
        }
        self.aggregation_acked += acked;
        // At most 100 ms at the current rate (Linux's bound), or a window: never unbounded.
        let cap = (bw * EXTRA_ACKED_MAX.as_secs_f64()).max(self.cwnd_for_bdp());
        let extra = (self.aggregation_acked - expected).min(cap);
        self.extra_acked.record(self.round, extra);
        self.extra_acked.expire(self.round);
    }

    /// Twice the bandwidth-delay product, at least a few packets.
    fn cwnd_for_bdp(&self) -> f64 {
        (CWND_GAIN * self.bdp()).max(4.0 * self.mss)
    }

    fn bw(&self) -> f64 {
        self.bw_samples.max()
    }

    fn bdp(&self) -> f64 {
        self.bw() * self.min_rtt.as_secs_f64()
    }

    fn pacing_gain(&self) -> f64 {
        match self.mode {
            Mode::Startup => STARTUP_GAIN,
            Mode::Drain => 1.0 / STARTUP_GAIN,
            Mode::ProbeBw => CYCLE[self.cycle_index],
        }
    }
}

impl Controller for Bbr {
    fn on_sent(&mut self, _now: Instant, _bytes: u64, _in_flight: u64) {}

    fn on_ack(&mut self, now: Instant, ack: &AckSample, rtt: &RttEstimator, in_flight: u64) {
        self.min_rtt = rtt.min();
        // Packet-timed rounds: a round ends when a packet sent after it began is acked.
        let new_round = ack.delivered_at_send >= self.round_start_delivered;
        if new_round {
            self.round += 1;
            self.round_start_delivered = ack.delivered;
        }
        // Over the longer of the send and the ack intervals: acks that come bunched (a delay
        // line, a busy receiver) must not make the path look faster than we sent.
        let interval = now
            .saturating_duration_since(ack.delivered_time_at_send)
            .max(ack.sent.saturating_duration_since(ack.first_sent_at_send));
        if interval > Duration::ZERO {
            let rate = (ack.delivered - ack.delivered_at_send) as f64 / interval.as_secs_f64();
            // An application-limited sample says little unless it beats the estimate.
            if !ack.app_limited || rate >= self.bw() {
                self.bw_samples.record(self.round, rate);
            }
        }
        self.bw_samples.expire(self.round);
        self.update_ack_aggregation(now, ack.bytes as f64);
        match self.mode {
            Mode::Startup if new_round && !ack.app_limited => {
                let bw = self.bw();
                if bw >= self.full_bw * 1.25 {
                    self.full_bw = bw;
                    self.full_bw_rounds = 0;
                } else {
                    self.full_bw_rounds += 1;
                    if self.full_bw_rounds >= 3 {
                        self.mode = Mode::Drain;
                    }
                }
            }
            Mode::Drain if (in_flight as f64) <= self.bdp() => {
                self.mode = Mode::ProbeBw;
                self.cycle_index = 2; // start cruising; probe next
                self.cycle_start = now;
            }
            Mode::ProbeBw if now.saturating_duration_since(self.cycle_start) >= self.min_rtt => {
                // Stay in the draining phase until the queue we made while probing is gone.
                let draining = CYCLE[self.cycle_index] < 1.0 && (in_flight as f64) > self.bdp();
                if !draining {
                    self.cycle_index = (self.cycle_index + 1) % CYCLE.len();
                    self.cycle_start = now;
                }
            }
            _ => {}
        }
    }

    fn on_loss(&mut self, _now: Instant, _sent: Instant, _lost: u64, _in_flight: u64) {}

    fn window(&self) -> u64 {
        if self.bw_samples.is_empty() {
            return (INITIAL_PACKETS as f64 * self.mss) as u64;
        }
        // Startup paces at 2.77x but caps inflight at 2 BDP like the other modes (as BBRv2
        // does): the overshoot that fills a one-BDP queue and drops is then bounded. On top:
        // the acks' bunching, and room for three of our own bursts.
        let quantum =
            (self.bw() * SEND_QUANTUM_TIME.as_secs_f64()).clamp(self.mss, MAX_SEND_QUANTUM);
        (self.cwnd_for_bdp() + self.extra_acked()).max(3.0 * quantum) as u64
    }

    fn pacing_rate(&self, rtt: &RttEstimator) -> f64 {
        let bw = self.bw();
        if bw == 0.0 {
            let initial =
                INITIAL_PACKETS as f64 * self.mss / rtt.smoothed().as_secs_f64().max(1e-6);
            return STARTUP_GAIN * initial;
        }
        // A floor of a few packets per min RTT: samples taken across a long stall (probe
        // timeouts in heavy loss) must not pace the flow down to nothing.
        (self.pacing_gain() * bw)
            .max(MIN_PACKETS_PER_RTT * self.mss / self.min_rtt.as_secs_f64().max(1e-6))
    }

    fn name(&self) -> &'static str {
        "bbr"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u64 = 1000;

    /// Packets sent 1 ms apart (1 MB/s) over a 20 ms path, where the acks of ten of them are
    /// held up 10 ms (jitter on the way back): a packet sent just after such a late ack, and
    /// acked on time, must not see the path as faster than we sent.
    #[test]
    fn late_acks_never_make_the_path_look_faster_than_we_sent() {
        let t0 = Instant::now();
        let mut bbr = Bbr::new(MSS, t0);
        let mut rtt = RttEstimator::default();
        let ms = Duration::from_millis(1);
        // Acks stay in order: one held up holds up those behind it.
        let mut arrival = Vec::new();
        for k in 0..200u32 {
            let own = 20 + k + if (50..60).contains(&k) { 10 } else { 0 };
            arrival.push(own.max(arrival.last().copied().unwrap_or(0)));
        }
        // (delivered, delivered_time, first_sent) as each packet left.
        let mut at_send = Vec::new();
        let (mut delivered, mut delivered_time, mut first_sent) = (0, t0, t0);
        for now_ms in 0..220u32 {
            let now = t0 + ms * now_ms;
            // Acks that arrive now, oldest packet first; then this millisecond's packet leaves.
            for k in (0..now_ms.min(200)).filter(|&k| arrival[k as usize] == now_ms) {
                let sent = t0 + ms * k;
                let (d, dt, fs) = at_send[k as usize];
                rtt.update(now - sent, Duration::ZERO);
                delivered += MSS;
                let ack = AckSample {
                    sent,
                    bytes: MSS,
                    delivered,
                    delivered_at_send: d,
                    delivered_time_at_send: dt,
                    first_sent_at_send: fs,
                    app_limited: false,
                };
                bbr.on_ack(now, &ack, &rtt, 0);
                delivered_time = now;
                first_sent = sent;
            }
            if now_ms < 200 {
                at_send.push((delivered, delivered_time, first_sent));
            }
        }
        let sending_rate = MSS as f64 / ms.as_secs_f64();
        assert!(
            bbr.bw() <= sending_rate * 1.01,
            "estimate {:.0} B/s, sent at {sending_rate:.0} B/s",
            bbr.bw()
        );
        assert!(
            bbr.bw() >= sending_rate * 0.3,
            "estimate {:.0} B/s",
            bbr.bw()
        );
    }
}
