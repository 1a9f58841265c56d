//! The controller's unit tests.

use super::*;
use std::collections::VecDeque;

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
