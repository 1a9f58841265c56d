//! BBR v3-style short-term bounds from congestion loss (see [`super`]'s module comment).

use std::time::{Duration, Instant};

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
pub(super) const HOLD_BASE: Duration = Duration::from_secs(2);
pub(super) const HOLD_RANDOM: Duration = Duration::from_secs(1);
/// ...unless a Reno flow of our size would probe sooner: it takes as many rounds as it has
/// packets in flight, here at most this many.
const HOLD_MAX_ROUNDS: u64 = 63;

/// Short-term bounds on the rate and on the data in flight, from congestion loss (BBR v3's
/// `bw_lo` and `inflight_lo`, engaged and held as the module comment says). Infinite when
/// not engaged.
#[derive(Debug)]
pub(super) struct LossBounds {
    pub(super) bw: f64,
    pub(super) inflight: f64,
    /// The largest delivery rate and delivered volume of the round so far, and of the last one.
    pub(super) round_bw: f64,
    pub(super) round_inflight: f64,
    pub(super) latest_bw: f64,
    pub(super) latest_inflight: f64,
    /// Bytes lost to congestion and acked in the round so far.
    pub(super) round_lost: f64,
    pub(super) round_acked: f64,
    pub(super) loss_in_last_round: bool,
    /// When the last episode of congestion loss (rounds with loss in a row) began.
    pub(super) last_episode: Option<Instant>,
    /// When the bounds engaged, the rounds since, and how long they hold.
    pub(super) since: Instant,
    pub(super) rounds: u64,
    pub(super) hold: Duration,
}

impl LossBounds {
    pub(super) fn new(now: Instant) -> Self {
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

    pub(super) fn engaged(&self) -> bool {
        self.bw.is_finite() || self.inflight.is_finite()
    }

    /// A rate sample: what one acked packet shows was delivered, and how fast.
    pub(super) fn on_sample(&mut self, rate: f64, delivered: f64, bytes: f64) {
        self.round_acked += bytes;
        self.round_bw = self.round_bw.max(rate);
        self.round_inflight = self.round_inflight.max(delivered);
    }

    /// A round ended. If it saw congestion loss and `may_cut` (not Startup nor a round paced
    /// above the estimate: as in BBR v3, a probe must be free to push what is in flight up),
    /// the bounds engage (on a second episode) or are cut. An episode counts only when it
    /// begins in such a round: one that begins while the flow starts up or probes is most
    /// likely its own overshoot (counting those too took a late starter in
    /// the simulator from 91 % of its fair share to 56 %, the mean of 8 seeds). `bw` and
    /// `window` are the model's, where newly engaged bounds start; `hold` how long they hold.
    pub(super) fn end_round(
        &mut self,
        now: Instant,
        may_cut: bool,
        bw: f64,
        window: f64,
        hold: Duration,
    ) {
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
    pub(super) fn expire(&mut self, now: Instant, reno_rounds: u64) {
        if self.engaged()
            && (now.saturating_duration_since(self.since) >= self.hold
                || self.rounds >= reno_rounds.clamp(1, HOLD_MAX_ROUNDS))
        {
            self.bw = f64::INFINITY;
            self.inflight = f64::INFINITY;
        }
    }
}
