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
/// A round counts as one with congestion loss when more than this share of what it sent was
/// lost with a long queue: random loss of 1 % that happens to meet our own probe's queue stays
/// below it (at 5 % about half the rounds pass it, and only the RTT test, no long queue, tells
/// that loss from congestion), a probe into a buffer someone else keeps full loses a fifth.
const LOSS_RATE: f64 = 0.05;
/// Per round with congestion loss, the bounds are cut to this share of themselves...
const BETA: f64 = 0.7;
/// ...but not below this share of what the last round delivered: from the delivery itself we
/// know that much gets through now.
const LATEST_FLOOR: f64 = 0.75;
/// The bounds engage on the second episode of congestion loss this close to the one before
/// (one alone is likely a newcomer's startup, which passes; a loss-based flow comes back).
const EPISODE_WINDOW: Duration = Duration::from_secs(10);
/// How long the bounds hold: the base and a random part on top (flows that probe in step
/// converge slowly)...
const HOLD_BASE: Duration = Duration::from_secs(2);
const HOLD_RANDOM: Duration = Duration::from_secs(1);
/// ...unless a Reno flow of our size would probe sooner: it takes as many rounds as it has
/// packets in flight, here at most this many.
const HOLD_MAX_ROUNDS: u64 = 63;

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

/// Short-term bounds on the rate and on the data in flight, from congestion loss (BBR v3's
/// `bw_lo` and `inflight_lo`, engaged and held as the module comment says). Infinite when
/// not engaged.
#[derive(Debug)]
struct LossBounds {
    bw: f64,
    inflight: f64,
    /// The largest delivery rate and delivered volume of the round so far, and of the last one.
    round_bw: f64,
    round_inflight: f64,
    latest_bw: f64,
    latest_inflight: f64,
    /// Bytes lost to congestion and acked in the round so far.
    round_lost: f64,
    round_acked: f64,
    loss_in_last_round: bool,
    /// When the last episode of congestion loss (rounds with loss in a row) began.
    last_episode: Option<Instant>,
    /// When the bounds engaged, the rounds since, and how long they hold.
    since: Instant,
    rounds: u64,
    hold: Duration,
}

impl LossBounds {
    fn new(now: Instant) -> Self {
        Self {
            bw: f64::INFINITY,
            inflight: f64::INFINITY,
            round_bw: 0.0,
            round_inflight: 0.0,
            latest_bw: 0.0,
            latest_inflight: 0.0,
            round_lost: 0.0,
            round_acked: 0.0,
            loss_in_last_round: false,
            last_episode: None,
            since: now,
            rounds: 0,
            hold: HOLD_BASE,
        }
    }

    fn engaged(&self) -> bool {
        self.bw.is_finite() || self.inflight.is_finite()
    }

    /// A rate sample: what one acked packet shows was delivered, and how fast.
    fn on_sample(&mut self, rate: f64, delivered: f64, bytes: f64) {
        self.round_acked += bytes;
        self.round_bw = self.round_bw.max(rate);
        self.round_inflight = self.round_inflight.max(delivered);
    }

    /// A round ended. If it saw congestion loss and `may_cut` (not Startup nor a round paced
    /// above the estimate: as in BBR v3, a probe must be free to push what is in flight up),
    /// the bounds engage (on a second episode) or are cut. An episode counts only when it
    /// begins in such a round: one that begins while the flow starts up or probes is most
    /// likely its own overshoot (counting those too, tried 2026-12-01, took a late starter in
    /// the simulator from 91 % of its fair share to 56 %, the mean of 8 seeds). `bw` and
    /// `window` are the model's, where newly engaged bounds start; `hold` how long they hold.
    fn end_round(&mut self, now: Instant, may_cut: bool, bw: f64, window: f64, hold: Duration) {
        let lost = std::mem::take(&mut self.round_lost);
        let acked = std::mem::take(&mut self.round_acked);
        let loss = lost > 0.0 && lost > LOSS_RATE * (lost + acked);
        let episode_start = loss && !self.loss_in_last_round;
        self.loss_in_last_round = loss;
        self.latest_bw = std::mem::take(&mut self.round_bw);
        self.latest_inflight = std::mem::take(&mut self.round_inflight);
        self.rounds += 1;
        if !loss || !may_cut {
            return;
        }
        if !self.engaged() {
            if !episode_start {
                return;
            }
            let again = self
                .last_episode
                .is_some_and(|t| now.saturating_duration_since(t) <= EPISODE_WINDOW);
            self.last_episode = Some(now);
            if !again {
                return;
            }
            self.bw = bw;
            self.inflight = window;
            self.since = now;
            self.rounds = 0;
            self.hold = hold;
        }
        self.bw = (LATEST_FLOOR * self.latest_bw).max(BETA * self.bw);
        self.inflight = (LATEST_FLOOR * self.latest_inflight).max(BETA * self.inflight);
    }

    /// Lifts the bounds once they have held long enough: `reno_rounds` is how many rounds a
    /// Reno flow of our size takes between losses (at least one: a flow of less than a packet
    /// per round trip still holds them past the round they engaged in).
    fn expire(&mut self, now: Instant, reno_rounds: u64) {
        if self.engaged()
            && (now.saturating_duration_since(self.since) >= self.hold
                || self.rounds >= reno_rounds.clamp(1, HOLD_MAX_ROUNDS))
        {
            self.bw = f64::INFINITY;
            self.inflight = f64::INFINITY;
        }
    }
}

/// The lowest RTT of the current round and of the two before, to see whether a queue falls.
#[derive(Debug)]
struct QueueTrend {
    round: Duration,
    last: Duration,
    before: Duration,
}

impl QueueTrend {
    fn new() -> Self {
        Self {
            round: Duration::MAX,
            last: Duration::MAX,
            before: Duration::MAX,
        }
    }

    fn on_rtt(&mut self, rtt: Duration) {
        self.round = self.round.min(rtt);
    }

    fn end_round(&mut self) {
        self.before = self.last;
        self.last = std::mem::replace(&mut self.round, Duration::MAX);
    }

    /// True if the last round's lowest RTT is below the one before by more than noise (an
    /// eighth of the queueing delay), or if it is too early to tell.
    fn falling(&self, min_rtt: Duration) -> bool {
        if self.before == Duration::MAX || self.last == Duration::MAX {
            return true;
        }
        let queue = self.before.saturating_sub(min_rtt);
        self.last + queue / 8 < self.before
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

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u64 = 1000;
    const MS: Duration = Duration::from_millis(1);

    /// Packets sent 1 ms apart (1 MB/s) over a 20 ms path, where the acks of ten of them are
    /// held up 10 ms (jitter on the way back): a packet sent just after such a late ack, and
    /// acked on time, must not see the path as faster than we sent.
    #[test]
    fn late_acks_never_make_the_path_look_faster_than_we_sent() {
        let t0 = Instant::now();
        let mut bbr = Bbr::new(MSS, t0, 1);
        let mut rtt = RttEstimator::default();
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
            let now = t0 + MS * now_ms;
            // Acks that arrive now, oldest packet first; then this millisecond's packet leaves.
            for k in (0..now_ms.min(200)).filter(|&k| arrival[k as usize] == now_ms) {
                let sent = t0 + MS * k;
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
        let sending_rate = MSS as f64 / MS.as_secs_f64();
        let estimate = bbr.bw_samples.max();
        assert!(
            estimate <= sending_rate * 1.01,
            "estimate {estimate:.0} B/s, sent at {sending_rate:.0} B/s"
        );
        assert!(estimate >= sending_rate * 0.3, "estimate {estimate:.0} B/s");
    }

    /// A steady flow of one packet per millisecond (1 MB/s) over a path whose minimum RTT is
    /// `min_rtt` (and whose RTT is `path_rtt`, the same unless a queue is added): every
    /// millisecond the packet sent one RTT ago is acked. Drives the controller open loop, which
    /// is all its bookkeeping of rounds, phases and bounds needs.
    struct Steady {
        bbr: Bbr,
        rtt: RttEstimator,
        min_rtt: Duration,
        path_rtt: Duration,
        t0: Instant,
        ms: u32,
        delivered: u64,
        /// `delivered` and its time as each packet left.
        at_send: VecDeque<(u64, Instant)>,
    }

    impl Steady {
        fn new(min_rtt_ms: u32) -> Self {
            let t0 = Instant::now();
            Self {
                bbr: Bbr::new(MSS, t0, 7),
                rtt: RttEstimator::default(),
                min_rtt: MS * min_rtt_ms,
                path_rtt: MS * min_rtt_ms,
                t0,
                ms: 0,
                delivered: 0,
                at_send: VecDeque::new(),
            }
        }

        fn now(&self) -> Instant {
            self.t0 + MS * self.ms
        }

        /// One millisecond: this one's packet leaves, the one of an RTT ago is acked.
        fn step(&mut self) {
            let now = self.now();
            self.at_send.push_back((self.delivered, now));
            let rtt_ms = self.path_rtt.as_millis() as usize;
            if self.at_send.len() > rtt_ms {
                let (d, dt) = self.at_send.pop_front().unwrap_or((0, now));
                let sent = now - self.path_rtt;
                self.rtt.update(self.path_rtt, Duration::ZERO);
                self.delivered += MSS;
                let ack = AckSample {
                    sent,
                    bytes: MSS,
                    delivered: self.delivered,
                    delivered_at_send: d,
                    delivered_time_at_send: dt.max(sent),
                    first_sent_at_send: sent - MS,
                    app_limited: false,
                };
                // In flight: a packet per millisecond of the RTT.
                let in_flight = self.path_rtt.as_millis() as u64 * MSS;
                self.bbr.on_ack(now, &ack, &self.rtt, in_flight);
            }
            self.ms += 1;
        }

        /// Runs for `ms` milliseconds; returns whether it probed (paced above the estimate).
        fn run(&mut self, ms: u32) -> bool {
            let mut probed = false;
            for _ in 0..ms {
                self.step();
                probed |= self.bbr.pacing_gain() > 1.0;
            }
            probed
        }

        /// Loses a tenth of a round's data in the next round that does not probe, with the
        /// queue long: a probe into a full buffer.
        fn heavy_loss_episode(&mut self) {
            while self.bbr.pacing_gain() > 1.0 {
                self.step();
            }
            self.heavy_loss_round();
        }

        /// Loses a tenth of a round's data in this round, whatever its phase.
        fn heavy_loss_round(&mut self) {
            let round = self.bbr.round;
            let lost = self.min_rtt.as_millis() as u64 * MSS / 10;
            self.bbr.on_loss(self.now(), self.now(), lost, 0);
            while self.bbr.round == round {
                self.step();
            }
        }
    }

    #[test]
    fn only_loss_with_a_long_queue_is_congestion() {
        let mut rtt = RttEstimator::default();
        rtt.update(20 * MS, Duration::ZERO);
        let bbr = Bbr::new(MSS, Instant::now(), 1);
        assert!(!bbr.loss_is_congestion(&rtt), "no queue: random loss");
        rtt.update(25 * MS, Duration::ZERO);
        assert!(!bbr.loss_is_congestion(&rtt), "our own probe's queue");
        rtt.update(40 * MS, Duration::ZERO);
        assert!(bbr.loss_is_congestion(&rtt), "a full buffer of one BDP");
    }

    #[test]
    fn heavy_loss_twice_in_ten_seconds_stops_probing_until_the_bounds_lapse() {
        // 100 ms: a Reno flow of our size (100 packets) would wait more than 63 rounds, so the
        // wall-clock hold of 2-3 s is the one that applies.
        let mut flow = Steady::new(100);
        assert!(flow.run(4000), "it probes once past startup");
        assert_eq!(flow.bbr.mode, Mode::ProbeBw);
        // One episode is not enough (a newcomer's startup passes).
        flow.heavy_loss_episode();
        assert!(!flow.bbr.bounds.engaged());
        assert!(flow.run(2000), "still probing after a single episode");
        // A second one, within 10 s: the bounds hold, and the flow no longer probes.
        let bw = flow.bbr.bw_samples.max();
        flow.heavy_loss_episode();
        assert!(flow.bbr.bounds.engaged());
        assert!(flow.bbr.bw() < bw, "rate cut: {} of {bw}", flow.bbr.bw());
        assert!(!flow.run(1900), "probed while bounded");
        // 2-3 s after they engaged they lapse, and probing resumes.
        flow.run(1200);
        assert!(!flow.bbr.bounds.engaged());
        assert!(flow.run(2000), "probing resumed");
    }

    #[test]
    fn an_episode_that_begins_in_a_probe_round_does_not_count() {
        let mut flow = Steady::new(100);
        flow.run(4000);
        flow.heavy_loss_episode();
        flow.run(2000);
        // An episode whose first round probes (no cut then) and whose second does not.
        while flow.bbr.pacing_gain() <= 1.0 {
            flow.step();
        }
        flow.heavy_loss_round();
        assert!(!flow.bbr.bounds.engaged(), "cut in a probe round");
        flow.heavy_loss_round();
        assert!(
            !flow.bbr.bounds.engaged(),
            "engaged by the probe's own overshoot"
        );
        // A second episode that begins in a round that does not probe engages them.
        flow.run(500);
        flow.heavy_loss_episode();
        assert!(flow.bbr.bounds.engaged());
    }

    #[test]
    fn the_bounds_of_a_small_flow_lapse_as_soon_as_a_reno_flow_would_probe() {
        // 20 packets in flight: a Reno flow would reach its next loss in 20 rounds (400 ms).
        let mut flow = Steady::new(20);
        flow.run(2000);
        flow.heavy_loss_episode();
        flow.run(500);
        flow.heavy_loss_episode();
        assert!(flow.bbr.bounds.engaged());
        flow.run(500);
        assert!(!flow.bbr.bounds.engaged());
    }

    #[test]
    fn bounds_cut_round_after_round_leave_the_window_a_few_packets() {
        let mut flow = Steady::new(20);
        flow.run(2000);
        flow.bbr.bounds.inflight = 0.5 * MSS as f64;
        let window = flow.bbr.compute_output().window;
        assert!(window >= 4 * MSS, "window {window} bytes");
    }

    #[test]
    fn bounds_engaged_on_a_path_of_under_a_packet_per_round_hold_past_that_round() {
        let t0 = Instant::now();
        let mut bounds = LossBounds::new(t0);
        bounds.inflight = 500.0;
        bounds.since = t0;
        bounds.rounds = 0;
        bounds.expire(t0, 0); // the BDP is under one packet
        assert!(bounds.engaged());
        bounds.rounds = 1;
        bounds.expire(t0, 0);
        assert!(!bounds.engaged());
    }

    #[test]
    fn light_loss_with_a_queue_never_stops_probing() {
        let mut flow = Steady::new(40);
        flow.run(2000);
        // One packet of the forty in every other round (each a new episode), handed to the
        // controller as congestion loss (as if a queue stood): 2.4 %, well under 5 %.
        let mut probed = false;
        for i in 0..300 {
            let round = flow.bbr.round;
            if i % 2 == 0 {
                flow.bbr.on_loss(flow.now(), flow.now(), MSS, 0);
            }
            while flow.bbr.round == round {
                flow.step();
                probed |= flow.bbr.pacing_gain() > 1.0;
            }
        }
        assert!(!flow.bbr.bounds.engaged());
        assert!(probed);
    }

    #[test]
    fn a_queue_that_is_not_ours_ends_the_drain_phase() {
        let mut flow = Steady::new(20);
        flow.run(2000);
        // Someone else now keeps 20 ms of queue: acks take 40 ms, and 40 packets are in
        // flight against a BDP of 20, whatever we do.
        flow.path_rtt = 40 * MS;
        let mut longest = Duration::ZERO;
        let mut since = None;
        for _ in 0..5000 {
            flow.step();
            let draining = CYCLE[flow.bbr.cycle_index] < 1.0;
            match (draining, since) {
                (true, None) => since = Some(flow.now()),
                (false, Some(start)) => {
                    longest = longest.max(flow.now() - start);
                    since = None;
                }
                _ => {}
            }
        }
        let min_rtt = flow.bbr.min_rtt;
        assert!(longest > Duration::ZERO, "it drained at all");
        assert!(
            longest <= min_rtt * (MAX_DRAIN_RTTS + 2),
            "drained for {longest:?} (min RTT {min_rtt:?})"
        );
    }
}
