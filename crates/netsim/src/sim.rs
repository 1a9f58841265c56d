//! The dumbbell: every flow's sender sits on one side of a shared bottleneck, its receiver on
//! the other; data crosses the forward link, acks the reverse one. Time is virtual and only
//! moves from one event to the next, so a minute of a fast link simulates in a fraction of a
//! second, and the same seed always gives the same run.

use crate::data::{CheckingSink, PatternSource};
use crate::link::{Link, LinkConfig};
use crate::rng::Rng;
use crate::transfer::{Side, Transfer};
use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap};
use std::time::{Duration, Instant};
use transport::{Config, Event, Stats};

/// Granularity of the per-flow goodput timeline.
pub const TIMELINE_STEP: Duration = Duration::from_millis(100);
/// How often the sender's RTT estimate is sampled.
const RTT_SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// One transfer.
#[derive(Debug, Clone)]
pub struct FlowSpec {
    /// Length of the stream.
    pub size: u64,
    /// First byte the receiver asks for (resume).
    pub offset: u64,
    /// When the receiver opens the flow.
    pub start: Duration,
    /// Transport settings of both ends.
    pub config: Config,
    /// Pause the receiver at the first time and resume it at the second.
    pub pause: Option<(Duration, Duration)>,
}

impl FlowSpec {
    /// A transfer of `size` bytes starting at time zero with the default settings and the
    /// datagram size of real networks ([`transport::SAFE_DATAGRAM`]).
    pub fn new(size: u64) -> Self {
        Self {
            size,
            offset: 0,
            start: Duration::ZERO,
            config: Config {
                max_datagram: transport::SAFE_DATAGRAM,
                ..Config::default()
            },
            pause: None,
        }
    }
}

/// A whole simulation: links, flows, the seed and how long to run at most.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Sender to receiver (data).
    pub forward: LinkConfig,
    /// Receiver to sender (acks).
    pub reverse: LinkConfig,
    /// The transfers sharing the links.
    pub flows: Vec<FlowSpec>,
    /// Seeds every random choice.
    pub seed: u64,
    /// Virtual time after which the run stops, finished or not.
    pub until: Duration,
}

/// What happened to one flow.
#[derive(Debug, Clone)]
pub struct FlowReport {
    /// Seed of the stream's bytes (see [`crate::byte_at`]).
    pub stream_seed: u64,
    /// The receiver's final event, if any.
    pub receiver_event: Option<Event>,
    /// The sender's final event, if any.
    pub sender_event: Option<Event>,
    /// When the receiver finished, from the start of the run.
    pub finished_at: Option<Duration>,
    /// Stream bytes in order at the receiver at the end.
    pub contiguous: u64,
    /// Bytes that differed from what the sender had (must be 0).
    pub wrong_bytes: u64,
    /// Bytes written below the requested offset (must be 0).
    pub written_below_offset: u64,
    /// The sender's statistics at the end.
    pub sender_stats: Stats,
    /// Datagrams the sender sent while the receiver was paused.
    pub sent_while_paused: u64,
    /// `contiguous` at every [`TIMELINE_STEP`] from the start of the run.
    pub timeline: Vec<u64>,
    /// The sender's smoothed RTT, sampled every 10 ms once data flows.
    pub rtt_samples: Vec<Duration>,
}

impl FlowReport {
    /// Goodput in bits per second between two times of the run (timeline resolution).
    pub fn goodput_between(&self, from: Duration, to: Duration) -> f64 {
        let at = |t: Duration| {
            let i = (t.as_nanos() / TIMELINE_STEP.as_nanos()) as usize;
            self.timeline
                .get(i)
                .or(self.timeline.last())
                .copied()
                .unwrap_or(0)
        };
        let secs = (to - from).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        at(to).saturating_sub(at(from)) as f64 * 8.0 / secs
    }

    /// Mean of the RTT samples.
    pub fn mean_rtt(&self) -> Duration {
        if self.rtt_samples.is_empty() {
            return Duration::ZERO;
        }
        self.rtt_samples.iter().sum::<Duration>() / self.rtt_samples.len() as u32
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// One per flow, in the scenario's order.
    pub flows: Vec<FlowReport>,
    /// Virtual time when the run ended.
    pub ended_at: Duration,
    /// Packets the bottleneck queue dropped.
    pub queue_drops: u64,
}

/// Jain's fairness index of `rates`: 1 when all are equal, 1/n when one takes everything.
pub fn jain(rates: &[f64]) -> f64 {
    let sum: f64 = rates.iter().sum();
    let squares: f64 = rates.iter().map(|r| r * r).sum();
    if squares == 0.0 {
        return 1.0;
    }
    sum * sum / (rates.len() as f64 * squares)
}

/// What happens at a scheduled time. Small and `Copy`, so the event heap moves little: packet
/// bytes wait in `Sim::packets`.
#[derive(Debug, Clone, Copy)]
enum What {
    Start(usize),
    Deliver {
        flow: usize,
        to: Side,
        slot: u32,
    },
    Wake {
        flow: usize,
        side: Side,
        at: Duration,
    },
    Pause {
        flow: usize,
        paused: bool,
    },
}

#[derive(Debug)]
struct Scheduled {
    at: Duration,
    seq: u64,
    what: What,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    // Earliest first in a max-heap.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct Flow {
    spec: FlowSpec,
    conn_id: u64,
    secret: transport::Secret,
    source: PatternSource,
    /// Both ends, from the moment the receiver opens the flow.
    transfer: Option<Transfer<PatternSource, CheckingSink>>,
    /// Wakes in the event queue for each end, so that a deadline already covered by an
    /// earlier wake is not queued again (the idle timer moves with every packet).
    receiver_wakes: BTreeSet<Duration>,
    sender_wakes: BTreeSet<Duration>,
    report: FlowReport,
    last_rtt_sample: Option<Duration>,
    paused: bool,
}

struct Sim {
    epoch: Instant,
    now: Duration,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    forward: Link,
    reverse: Link,
    rng: Rng,
    flows: Vec<Flow>,
    buf: Vec<u8>,
    /// Datagrams on the wire, by slot; `free` lists the slots to reuse.
    packets: Vec<Vec<u8>>,
    free: Vec<u32>,
}

/// Runs `scenario` to the end and reports on every flow.
pub fn run(scenario: &Scenario) -> Report {
    let mut rng = Rng::new(scenario.seed);
    let flows = scenario
        .flows
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let seed = rng.next_u64() ^ i as u64;
            let mut secret = [0u8; transport::SECRET_LEN];
            for chunk in secret.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next_u64().to_be_bytes());
            }
            let secret = transport::Secret(secret);
            Flow {
                spec: spec.clone(),
                conn_id: rng.next_u64(),
                secret,
                source: PatternSource {
                    seed,
                    len: spec.size,
                },
                transfer: None,
                receiver_wakes: BTreeSet::new(),
                sender_wakes: BTreeSet::new(),
                report: FlowReport {
                    stream_seed: seed,
                    receiver_event: None,
                    sender_event: None,
                    finished_at: None,
                    contiguous: 0,
                    wrong_bytes: 0,
                    written_below_offset: 0,
                    sender_stats: Stats::default(),
                    sent_while_paused: 0,
                    timeline: Vec::new(),
                    rtt_samples: Vec::new(),
                },
                last_rtt_sample: None,
                paused: false,
            }
        })
        .collect();
    let mut sim = Sim {
        epoch: Instant::now(),
        now: Duration::ZERO,
        seq: 0,
        queue: BinaryHeap::new(),
        forward: Link::new(scenario.forward),
        reverse: Link::new(scenario.reverse),
        rng,
        flows,
        buf: vec![0u8; transport::MAX_DATAGRAM],
        packets: Vec::new(),
        free: Vec::new(),
    };
    for (i, spec) in scenario.flows.iter().enumerate() {
        sim.schedule(spec.start, What::Start(i));
        if let Some((from, to)) = spec.pause {
            sim.schedule(
                from,
                What::Pause {
                    flow: i,
                    paused: true,
                },
            );
            sim.schedule(
                to,
                What::Pause {
                    flow: i,
                    paused: false,
                },
            );
        }
    }
    while let Some(next) = sim.queue.pop() {
        if next.at > scenario.until {
            break;
        }
        sim.now = next.at;
        sim.step(next.what);
    }
    sim.finish(scenario.until)
}

impl Sim {
    fn schedule(&mut self, at: Duration, what: What) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            what,
        });
    }

    fn instant(&self) -> Instant {
        self.epoch + self.now
    }

    fn step(&mut self, what: What) {
        let now = self.instant();
        match what {
            What::Start(i) => {
                let f = &mut self.flows[i];
                let sink = CheckingSink {
                    seed: f.source.seed,
                    start: f.spec.offset,
                    ..CheckingSink::default()
                };
                f.transfer = Some(Transfer::new(
                    now,
                    f.conn_id,
                    &f.secret,
                    f.spec.offset,
                    f.spec.config.clone(),
                    f.source,
                    sink,
                ));
                self.service(i, Side::Receiver);
            }
            What::Pause { flow, paused } => {
                let f = &mut self.flows[flow];
                f.paused = paused;
                if let Some(t) = &mut f.transfer {
                    t.receiver.set_paused(now, paused);
                }
                self.service(flow, Side::Receiver);
            }
            What::Deliver { flow, to, slot } => {
                let mut bytes = std::mem::take(&mut self.packets[slot as usize]);
                if let Some(t) = &mut self.flows[flow].transfer {
                    t.handle_datagram(to, now, &mut bytes);
                }
                // Keep the allocation for the next packet.
                self.packets[slot as usize] = bytes;
                self.free.push(slot);
                self.service(flow, to);
            }
            What::Wake { flow, side, at } => {
                // Early wakes are harmless: the endpoint finds nothing due.
                let f = &mut self.flows[flow];
                match side {
                    Side::Sender => f.sender_wakes.remove(&at),
                    Side::Receiver => f.receiver_wakes.remove(&at),
                };
                if let Some(t) = &mut f.transfer {
                    t.handle_timeout(side, now);
                }
                self.service(flow, side);
            }
        }
    }

    /// Sends what the endpoint has to send, collects its events and re-arms its timer.
    fn service(&mut self, i: usize, side: Side) {
        let now = self.instant();
        let mut buf = std::mem::take(&mut self.buf);
        loop {
            let f = &mut self.flows[i];
            // The application's side, at once: the stream is in memory.
            let n = f
                .transfer
                .as_mut()
                .and_then(|t| t.poll_transmit(side, now, &mut buf));
            let Some(n) = n else { break };
            let (link, to) = match side {
                Side::Sender => {
                    if f.paused {
                        f.report.sent_while_paused += 1;
                    }
                    (&mut self.forward, Side::Receiver)
                }
                Side::Receiver => (&mut self.reverse, Side::Sender),
            };
            for at in link.send(self.now, n, &mut self.rng) {
                let slot = match self.free.pop() {
                    Some(slot) => slot,
                    None => {
                        self.packets.push(Vec::new());
                        (self.packets.len() - 1) as u32
                    }
                };
                let packet = &mut self.packets[slot as usize];
                packet.clear();
                packet.extend_from_slice(&buf[..n]);
                self.schedule(at, What::Deliver { flow: i, to, slot });
            }
        }
        self.buf = buf;
        let now_d = self.now;
        let f = &mut self.flows[i];
        let timeout = match side {
            Side::Sender => {
                if let Some(s) = f.transfer.as_mut().and_then(|t| t.sender.as_mut()) {
                    while let Some(event) = s.poll_event() {
                        if matches!(event, Event::Finished { .. } | Event::Aborted { .. }) {
                            f.report.sender_event.get_or_insert(event);
                        }
                    }
                    f.report.sender_stats = s.stats();
                    let sampled = f
                        .last_rtt_sample
                        .is_some_and(|t| now_d < t + RTT_SAMPLE_EVERY);
                    if !sampled
                        && f.report.sender_stats.smoothed_rtt > Duration::ZERO
                        && f.report.sender_stats.bytes_delivered > 0
                    {
                        f.report
                            .rtt_samples
                            .push(f.report.sender_stats.smoothed_rtt);
                        f.last_rtt_sample = Some(now_d);
                    }
                }
                f.transfer.as_ref().and_then(|t| t.poll_timeout(side))
            }
            Side::Receiver => {
                if let Some(r) = f.transfer.as_mut().map(|t| &mut t.receiver) {
                    while let Some(event) = r.poll_event() {
                        if matches!(event, Event::Finished { .. } | Event::Aborted { .. }) {
                            if matches!(event, Event::Finished { .. }) {
                                f.report.finished_at.get_or_insert(now_d);
                            }
                            f.report.receiver_event.get_or_insert(event);
                        }
                    }
                    let step = (now_d.as_nanos() / TIMELINE_STEP.as_nanos()) as usize;
                    while f.report.timeline.len() <= step {
                        f.report.timeline.push(f.report.contiguous);
                    }
                    f.report.contiguous = r.contiguous();
                }
                f.transfer.as_ref().and_then(|t| t.poll_timeout(side))
            }
        };
        let at = timeout.map(|t| t.saturating_duration_since(self.epoch).max(now_d));
        let wakes = match side {
            Side::Sender => &mut f.sender_wakes,
            Side::Receiver => &mut f.receiver_wakes,
        };
        // A queued wake no later than the deadline covers it: when it fires the endpoint is
        // asked again.
        if let Some(at) = at
            && wakes.first().is_none_or(|&first| first > at)
        {
            wakes.insert(at);
            self.schedule(at, What::Wake { flow: i, side, at });
        }
    }

    fn finish(mut self, until: Duration) -> Report {
        let end = self.now.min(until);
        let steps = (end.as_nanos() / TIMELINE_STEP.as_nanos()) as usize;
        let flows = self
            .flows
            .iter_mut()
            .map(|f| {
                let mut report = f.report.clone();
                if let Some(t) = &f.transfer {
                    report.contiguous = t.receiver.contiguous();
                    report.wrong_bytes = t.sink.wrong;
                    report.written_below_offset = t.sink.below_start;
                }
                while report.timeline.len() <= steps {
                    report.timeline.push(report.contiguous);
                }
                report
            })
            .collect();
        Report {
            flows,
            ended_at: end,
            queue_drops: self.forward.queue_drops,
        }
    }
}
