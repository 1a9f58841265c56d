//! A model-based controller in the style of BBR: it estimates the bottleneck bandwidth (the
//! highest delivery rate of this round trip and the eight before, rounds of draining not
//! counted) and the minimum RTT, paces at the bandwidth times a gain that cycles to probe for
//! more, and bounds what is in flight to twice the bandwidth-delay product.
//!
//! Alone, or with other flows like it, it is BBR v1: random loss is not a congestion signal
//! (the delivery rate already shows real congestion), so a lossy link still runs near its
//! capacity, and flows converge to fair shares within seconds. But v1 ignores loss altogether,
//! and a loss-based flow (TCP CUBIC, the default of most hosts) sharing a buffer with it keeps
//! losing, backing off and handing its share over: in the lab such a TCP flow kept 12 % of the
//! link. So, as BBR v3 does, heavy loss with a long queue (a buffer someone else keeps full)
//! engages short-term bounds ([`LossBounds`]): while they hold, the flow stops probing for
//! more and each round with such loss cuts the rate and the data in flight it allows. They
//! lapse after 2-3 s, or after as many round trips as a Reno flow of our size takes between
//! losses, and probing resumes: the loss-based flow gets the time to grow back that it would
//! have beside one of its kind. Random loss (nothing queues, or only a few per cent of a
//! round are lost) never engages them.
//!
//! Acks do not come back as smoothly as the packets left: a receiver that takes in a run of
//! datagrams at once (GRO) acks them together, and a busy host answers late. As BBR does
//! (draft-cardwell-ccwg-bbr, "ACK aggregation" and "offload budget"), the window allows for the
//! largest such bunching seen in the last rounds and for a few of the bursts we send in one
//! system call; without it, a fast path with a tiny minimum RTT (loopback: 15 us) gets a window
//! of a few packets and the flow stalls on every late ack.

mod loss_bounds;
mod min_max;
mod queue;
#[cfg(test)]
mod tests;

use super::{AckSample, Controller};
use crate::rtt::RttEstimator;
use loss_bounds::{HOLD_BASE, HOLD_RANDOM, LossBounds};
use min_max::RoundMax;
use queue::QueueTrend;
use std::time::{Duration, Instant};

const STARTUP_GAIN: f64 = 2.77;
const CWND_GAIN: f64 = 2.0;
const CYCLE: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
const BW_WINDOW_ROUNDS: u64 = 8;
const INITIAL_PACKETS: u64 = 10;
const MIN_PACKETS_PER_RTT: f64 = 4.0;
/// The smallest window, in packets, whatever the model or the bounds say.
const MIN_WINDOW_PACKETS: f64 = 4.0;
/// Rounds over which the largest ack aggregation is remembered.
const EXTRA_ACKED_ROUNDS: u64 = 10;
/// Longest ack aggregation allowed for, in time at the estimated bandwidth.
const EXTRA_ACKED_MAX: Duration = Duration::from_millis(100);
/// What the sender hands the kernel at once: up to this long at the pacing rate...
const SEND_QUANTUM_TIME: Duration = Duration::from_millis(1);
/// ...and at most a segmented send's worth.
const MAX_SEND_QUANTUM: f64 = 64.0 * 1024.0;
/// Longest drain phase, in minimum RTTs: enough for several flows like us to drain what they
/// queued in turn.
const MAX_DRAIN_RTTS: u32 = 12;
/// Queueing delay below which a loss is taken for random, unless a third of the minimum RTT
/// is longer (see [`Bbr::loss_is_congestion`]).
const QUEUE_DELAY_FLOOR: Duration = Duration::from_millis(1);
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Startup,
    Drain,
    ProbeBw,
}

/// BBR-style congestion control.
#[derive(Debug)]
pub struct Bbr {
    mss: f64,
    mode: Mode,
    /// Delivery rates in bytes/s; the max over the window is the estimate.
    bw_samples: RoundMax,
    round: u64,
    /// Rounds as the bandwidth filter counts them: drain rounds do not age out the last probe.
    bw_round: u64,
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
    bounds: LossBounds,
    queue: QueueTrend,
    /// For the random part of the bounds' hold (xorshift).
    rng: u64,
    output: Output,
}

/// What the controller tells the sender: worked out once per ack.
#[derive(Debug, Clone, Copy)]
struct Output {
    window: u64,
    /// `None` before the first bandwidth sample: then the rate follows the smoothed RTT.
    pacing_rate: Option<f64>,
}

impl Output {
    fn initial(mss: f64) -> Self {
        Self {
            window: (INITIAL_PACKETS as f64 * mss) as u64,
            pacing_rate: None,
        }
    }
}

impl Bbr {
    /// A controller in startup, for packets of `mss` bytes; `seed` varies its random choices
    /// from one connection to another.
    pub fn new(mss: u64, now: Instant, seed: u64) -> Self {
        Self {
            mss: mss as f64,
            mode: Mode::Startup,
            bw_samples: RoundMax::new(BW_WINDOW_ROUNDS),
            round: 0,
            bw_round: 0,
            round_start_delivered: 0,
            full_bw: 0.0,
            full_bw_rounds: 0,
            cycle_index: 0,
            cycle_start: now,
            min_rtt: crate::rtt::INITIAL_RTT,
            extra_acked: RoundMax::new(EXTRA_ACKED_ROUNDS),
            aggregation_start: now,
            aggregation_acked: 0.0,
            bounds: LossBounds::new(now),
            queue: QueueTrend::new(),
            rng: seed | 1,
            output: Output::initial(mss as f64),
        }
    }

    /// A number in [0, 1).
    fn random(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
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

    /// The window the model asks for, before the bounds from loss. Startup paces at 2.77x but
    /// caps inflight at 2 BDP like the other modes (as BBRv2 does): the overshoot that fills a
    /// one-BDP queue and drops is then bounded. On top: the acks' bunching, and room for three
    /// of our own bursts.
    fn model_window(&self) -> f64 {
        let quantum =
            (self.bw() * SEND_QUANTUM_TIME.as_secs_f64()).clamp(self.mss, MAX_SEND_QUANTUM);
        (self.cwnd_for_bdp() + self.extra_acked()).max(3.0 * quantum)
    }

    /// Twice the bandwidth-delay product, at least a few packets.
    fn cwnd_for_bdp(&self) -> f64 {
        (CWND_GAIN * self.bdp()).max(MIN_WINDOW_PACKETS * self.mss)
    }

    /// The bandwidth the model uses: the recent maximum, bounded by what congestion loss
    /// allows now.
    fn bw(&self) -> f64 {
        self.bw_samples.max().min(self.bounds.bw)
    }

    fn bdp(&self) -> f64 {
        self.bw() * self.min_rtt.as_secs_f64()
    }

    fn pacing_gain(&self) -> f64 {
        match self.mode {
            Mode::Startup => STARTUP_GAIN,
            Mode::Drain => 1.0 / STARTUP_GAIN,
            // While the bounds hold, hold the level they allow: no probing for more.
            Mode::ProbeBw if self.bounds.engaged() => CYCLE[self.cycle_index].min(1.0),
            Mode::ProbeBw => CYCLE[self.cycle_index],
        }
    }

    /// The window and pacing rate the model gives now (asked for at every packet sent, so
    /// worked out once per acknowledgement, however many packets it covers).
    fn compute_output(&self) -> Output {
        let bw = self.bw();
        if self.bw_samples.is_empty() || bw == 0.0 {
            return Output::initial(self.mss);
        }
        // A floor of a few packets per min RTT: samples taken across a long stall (probe
        // timeouts in heavy loss) must not pace the flow down to nothing.
        let floor = MIN_PACKETS_PER_RTT * self.mss / self.min_rtt.as_secs_f64().max(1e-6);
        Output {
            // Bounds cut by a quarter or more per lossy round: never below a few packets.
            window: self
                .model_window()
                .min(self.bounds.inflight)
                .max(MIN_WINDOW_PACKETS * self.mss) as u64,
            pacing_rate: Some((self.pacing_gain() * bw).max(floor)),
        }
    }

    /// Moves through ProbeBW's cycle, a phase per minimum RTT. The drain phase (3/4 of the
    /// rate, after each probe) lasts until the queue we made while probing is gone: other flows
    /// like us drain theirs in turn, and waiting for the whole of it keeps the queue short and
    /// lets a newcomer in. But a queue someone else keeps full never drains, and waiting for
    /// it would pace us at 3/4 of our share for good (and our share down with it): the drain
    /// ends after 12 RTTs at most, and as soon as the queue stops falling once loss has shown
    /// a flow that fills it.
    fn advance_cycle(&mut self, now: Instant, new_round: bool, in_flight: u64) {
        let elapsed = now.saturating_duration_since(self.cycle_start);
        if elapsed < self.min_rtt {
            return;
        }
        let draining = CYCLE[self.cycle_index] < 1.0 && (in_flight as f64) > self.bdp();
        let give_up = elapsed >= self.min_rtt * MAX_DRAIN_RTTS
            || (self.bounds.engaged() && new_round && !self.queue.falling(self.min_rtt));
        if !draining || give_up {
            self.cycle_index = (self.cycle_index + 1) % CYCLE.len();
            self.cycle_start = now;
        }
    }
}

impl Controller for Bbr {
    fn on_ack(&mut self, now: Instant, ack: &AckSample, rtt: &RttEstimator, in_flight: u64) {
        self.min_rtt = rtt.min();
        self.queue.on_rtt(rtt.latest());
        // Packet-timed rounds: a round ends when a packet sent after it began is acked.
        let new_round = ack.delivered_at_send >= self.round_start_delivered;
        if new_round {
            self.round += 1;
            self.round_start_delivered = ack.delivered;
            if !(self.mode == Mode::ProbeBw && CYCLE[self.cycle_index] < 1.0) {
                self.bw_round += 1;
            }
            self.queue.end_round();
            let may_cut = self.mode == Mode::ProbeBw && self.pacing_gain() <= 1.0;
            let hold = HOLD_BASE + HOLD_RANDOM.mul_f64(self.random());
            let (bw, window) = (self.bw(), self.model_window());
            self.bounds.end_round(now, may_cut, bw, window, hold);
            let reno_rounds = (self.bdp().min(self.bounds.inflight) / self.mss) as u64;
            self.bounds.expire(now, reno_rounds);
        }
        // Over the longer of the send and the ack intervals: acks that come bunched (a delay
        // line, a busy receiver) must not make the path look faster than we sent.
        let interval = now
            .saturating_duration_since(ack.delivered_time_at_send)
            .max(ack.sent.saturating_duration_since(ack.first_sent_at_send));
        if interval > Duration::ZERO {
            let delivered = (ack.delivered - ack.delivered_at_send) as f64;
            let rate = delivered / interval.as_secs_f64();
            // An application-limited sample says little unless it beats the estimate.
            if !ack.app_limited || rate >= self.bw_samples.max() {
                self.bw_samples.record(self.bw_round, rate);
            }
            self.bounds.on_sample(rate, delivered, ack.bytes as f64);
        }
        self.bw_samples.expire(self.bw_round);
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
            Mode::ProbeBw => self.advance_cycle(now, new_round, in_flight),
            _ => {}
        }
    }

    fn on_acks_done(&mut self) {
        self.output = self.compute_output();
    }

    /// Loss with the RTT near its minimum is random (a lossy link), not a full queue: a queue
    /// that overflows is long. Only loss with a queue of at least a third of the minimum RTT
    /// (and 1 ms) counts: our own probe queues a quarter for a round, and jitter adds some.
    /// Buffers shallower than that are not told apart from random loss.
    fn loss_is_congestion(&self, rtt: &RttEstimator) -> bool {
        let min = rtt.min();
        rtt.latest() > min + (min / 3).max(QUEUE_DELAY_FLOOR)
    }

    fn on_loss(&mut self, _now: Instant, _sent: Instant, lost: u64, _in_flight: u64) {
        self.bounds.round_lost += lost as f64;
    }

    fn window(&self) -> u64 {
        self.output.window
    }

    fn pacing_rate(&self, rtt: &RttEstimator) -> f64 {
        match self.output.pacing_rate {
            Some(rate) => rate,
            None => {
                let initial =
                    INITIAL_PACKETS as f64 * self.mss / rtt.smoothed().as_secs_f64().max(1e-6);
                STARTUP_GAIN * initial
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "mode={:?} cycle={} bw_mbit={:.1} lo_mbit={:.1} inflight_lo={:.0} extra={:.0}",
            self.mode,
            self.cycle_index,
            self.bw_samples.max() * 8.0 / 1e6,
            self.bounds.bw * 8.0 / 1e6,
            self.bounds.inflight,
            self.extra_acked(),
        )
    }
}
