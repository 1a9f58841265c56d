//! The sending end: moves the stream to the receiver, with loss recovery, congestion control,
//! pacing and the receiver's flow control. It asks the application for the bytes it needs
//! ([`Sender::poll_read`]) and is handed them ([`Sender::supply`]): it reads nothing itself.

mod recovery;
mod stream;
mod transmit;

use stream::SendBuffer;
pub use stream::{READ_BLOCK, ReadRequest};

use crate::cc::Controller;
use crate::crypto::{Keys, Suite};
use crate::pacer::Pacer;
use crate::packet::{self, Frame};
use crate::rtt::RttEstimator;
use crate::{AbortReason, Config, Event, Stats};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// The receiver acks within this long (it acks every second packet sooner).
const MAX_ACK_DELAY: Duration = Duration::from_millis(5);
/// Acks held longer than this by the receiver give no RTT sample (its own acks go out within
/// 2 ms; older ones are repeats).
const STALE_ACK_DELAY: Duration = Duration::from_millis(25);
/// Longest probe timeout after backoff (unless one RTT alone is longer).
const MAX_PTO: Duration = Duration::from_secs(2);
/// Lost packet numbers remembered to spot spurious retransmissions.
const LOST_MEMORY: usize = 4096;
/// Bytes a receiver must acknowledge (or all that is left) in every [`Config::max_pause`] not
/// to count as paused: an honest transfer moves far more, a port squatter granting a byte at a
/// time far less.
const PAUSE_FLOOR: u64 = 1024;

#[derive(Debug, Clone, Copy)]
struct Sent {
    time: Instant,
    size: u64,
    data: Option<(u64, u64)>,
    delivered: u64,
    delivered_time: Instant,
    first_sent_time: Instant,
    app_limited: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// The receiver has everything; we answer its DONEs until `until`.
    Finishing {
        until: Instant,
    },
    Closed,
}

/// What [`Sender::accept`] gives back when a datagram does not open a connection.
#[derive(Debug)]
pub struct Refused {
    /// The keys, for the next try.
    pub keys: Keys,
}

/// The sending end of one connection.
#[derive(Debug)]
pub struct Sender {
    config: Config,
    keys: Keys,
    conn_id: u64,
    /// The stream's bytes from the first unacknowledged block to the last one supplied.
    buffer: SendBuffer,
    total: u64,
    /// First byte the receiver asked for.
    start: u64,
    next_offset: u64,
    max_offset: u64,
    flow_pn: u64,
    mss: usize,
    /// Our first packet number: acks for anything below it, or at `next_pn` and above, are
    /// for packets we never sent.
    first_pn: u64,
    next_pn: u64,
    sent: BTreeMap<u64, Sent>,
    in_flight: u64,
    largest_acked: Option<u64>,
    retransmit: VecDeque<(u64, u64)>,
    lost: BTreeSet<u64>,
    /// The ranges of the last ack handled.
    prev_ranges: Vec<(u64, u64)>,
    rtt: RttEstimator,
    cc: Box<dyn Controller>,
    pacer: Pacer,
    next_pace: Option<Instant>,
    /// Bytes of packets acknowledged so far (datagram sizes, as `in_flight` counts them).
    delivered: u64,
    delivered_time: Instant,
    /// When the most recently acked packet was sent.
    first_sent_time: Instant,
    last_eliciting_sent: Option<Instant>,
    pto_count: u32,
    probes: u32,
    loss_time: Option<Instant>,
    send_hello_ack: bool,
    /// When the latest HELLO_ACK left, until the peer acks it: the address is not proven to
    /// be the peer's before, so nothing but HELLO_ACKs goes there.
    unvalidated_since: Option<Instant>,
    /// Packet number of the latest HELLO_ACK.
    hello_ack_pn: u64,
    /// A DONE came before the address was proven: it is answered once it is (a receiver
    /// resuming at the very end sends it right after the HELLO_ACK, before its ack).
    done_unproven: bool,
    /// When the address was proven and data could start.
    flowing_since: Option<Instant>,
    /// When the current period of progress began, and the bytes acknowledged then (see
    /// [`Sender::note_paused`]).
    progress: (Instant, u64),
    send_close: bool,
    send_ping: bool,
    abort: Option<AbortReason>,
    state: State,
    last_recv: Instant,
    events: VecDeque<Event>,
    stats: Stats,
}

impl Sender {
    /// Opens a connection for a stream of `total` bytes if `datagram` is a HELLO sealed with
    /// this transfer's `keys` (made with [`Keys::for_sender`]) that accepts datagrams of at
    /// least [`crate::MIN_DATAGRAM`] bytes; anything else gives the keys back and must be
    /// ignored (nothing is ever sent to an address that has not shown it knows the secret).
    /// `datagram` is opened in place.
    // The refusal hands the keys back by value, once per datagram tried before the flow
    // opens: its size costs nothing that matters.
    #[allow(clippy::result_large_err)]
    pub fn accept(
        now: Instant,
        datagram: &mut [u8],
        mut keys: Keys,
        total: u64,
        config: Config,
    ) -> Result<Self, Refused> {
        if config.unprotected && !keys.is_unprotected() {
            keys = keys.unprotected();
        }
        let Ok(plain) = keys.open(datagram) else {
            return Err(Refused { keys });
        };
        let Ok(packet) = packet::decode(&datagram[..plain]) else {
            return Err(Refused { keys });
        };
        let Frame::Hello {
            suite,
            offset,
            max_offset,
            max_datagram,
        } = packet.frame
        else {
            return Err(Refused { keys });
        };
        let Some(suite) = Suite::from_code(suite) else {
            return Err(Refused { keys });
        };
        // A receiver that cannot take our smallest datagram is broken or a probe for an
        // amplifier: no answer at all (an honest one always offers at least the minimum).
        if usize::from(max_datagram) < crate::MIN_DATAGRAM {
            return Err(Refused { keys });
        }
        keys.set_suite(suite);
        let mss = config.datagram().min(usize::from(max_datagram));
        let seed = packet.conn_id ^ config.first_packet_number;
        let cc = config.algorithm.build(mss as u64, now, seed);
        let start = offset.min(total);
        Ok(Self {
            keys,
            conn_id: packet.conn_id,
            buffer: SendBuffer::new(start, total, config.max_islands),
            total,
            start,
            next_offset: start,
            max_offset,
            flow_pn: packet.pn,
            mss,
            first_pn: config.first_packet_number,
            next_pn: config.first_packet_number,
            sent: BTreeMap::new(),
            in_flight: 0,
            largest_acked: None,
            retransmit: VecDeque::new(),
            lost: BTreeSet::new(),
            prev_ranges: Vec::new(),
            rtt: RttEstimator::default(),
            cc,
            pacer: Pacer::new(),
            next_pace: None,
            delivered: 0,
            delivered_time: now,
            first_sent_time: now,
            last_eliciting_sent: None,
            pto_count: 0,
            probes: 0,
            loss_time: None,
            send_hello_ack: true,
            unvalidated_since: Some(now),
            hello_ack_pn: 0,
            done_unproven: false,
            flowing_since: None,
            progress: (now, 0),
            send_close: false,
            send_ping: false,
            abort: None,
            state: State::Open,
            last_recv: now,
            events: VecDeque::from([Event::Connected {
                total,
                offset: start,
            }]),
            stats: Stats::default(),
            config,
        })
    }

    /// True once the receiver has acknowledged our HELLO_ACK, which proves that it receives at
    /// the address it sends from (before, nothing but HELLO_ACKs goes there).
    pub fn is_address_proven(&self) -> bool {
        self.unvalidated_since.is_none()
    }

    /// Largest datagram this connection sends: [`Sender::poll_transmit`] needs a buffer this
    /// large.
    pub fn max_datagram(&self) -> usize {
        self.mss
    }

    /// Length of the stream.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Stream bytes sent so far, retransmissions included (as [`Stats::bytes_sent`], cheaply).
    pub fn bytes_sent(&self) -> u64 {
        self.stats.bytes_sent
    }

    /// True once the connection is over (finished or aborted).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed && self.abort.is_none()
    }

    /// Statistics so far.
    pub fn stats(&self) -> Stats {
        let mut stats = self.stats;
        stats.min_rtt = self.rtt.min();
        stats.smoothed_rtt = self.rtt.smoothed();
        stats.cwnd = self.cc.window();
        stats.pacing_bps = (self.cc.pacing_rate(&self.rtt) * 8.0) as u64;
        stats.goodput_bps = self.flowing_since.map_or(0, |since| {
            rate_bps(
                stats.bytes_delivered,
                self.delivered_time.saturating_duration_since(since),
            )
        });
        stats
    }

    /// The congestion controller's state in one line (window, pacing rate, RTTs, losses and
    /// the controller's own variables), for traces: the driver logs it at `trace` level.
    pub fn trace_line(&self) -> String {
        format!(
            "inflight={} cwnd={} pacing_mbit={:.1} srtt_us={} latest_us={} min_us={} lost={} delivered={} {}",
            self.in_flight,
            self.cc.window(),
            self.cc.pacing_rate(&self.rtt) * 8.0 / 1e6,
            self.rtt.smoothed().as_micros(),
            self.rtt.latest().as_micros(),
            self.rtt.min().as_micros(),
            self.stats.packets_lost,
            self.delivered,
            self.cc.describe()
        )
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Gives up, telling the receiver why.
    pub fn abort(&mut self, reason: AbortReason) {
        if self.state != State::Closed {
            self.close(reason, false);
        }
    }

    fn close(&mut self, reason: AbortReason, by_peer: bool) {
        self.state = State::Closed;
        if !by_peer {
            self.abort = Some(reason);
        }
        self.events.push_back(Event::Aborted { reason, by_peer });
    }

    /// Feeds one datagram from the peer; it is opened in place.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &mut [u8]) {
        self.on_datagram(now, datagram);
        self.note_paused(now);
    }

    /// Starts a new period of progress once the receiver has acknowledged [`PAUSE_FLOOR`]
    /// new bytes (or all that is left) since the current one began. A receiver that pauses,
    /// that never acknowledges data, or that opens its window a byte at a time makes no
    /// progress, and loses its flow after [`Config::max_pause`].
    fn note_paused(&mut self, now: Instant) {
        if self.state != State::Open || self.unvalidated_since.is_some() {
            // The period starts when the address is proven (the handshake has its own timer).
            self.progress = (now, self.stats.bytes_delivered);
            return;
        }
        let (_, then) = self.progress;
        let left = (self.total - self.start).saturating_sub(then);
        let moved = self.stats.bytes_delivered.saturating_sub(then);
        if moved >= PAUSE_FLOOR.min(left).max(1) {
            self.progress = (now, self.stats.bytes_delivered);
        }
    }

    /// When a receiver that has made no progress for [`Config::max_pause`] loses its flow.
    fn pause_deadline(&self) -> Option<Instant> {
        if self.state != State::Open || self.unvalidated_since.is_some() {
            return None;
        }
        Some(self.progress.0 + self.config.max_pause?)
    }

    fn on_datagram(&mut self, now: Instant, datagram: &mut [u8]) {
        if self.state == State::Closed {
            return;
        }
        let rejected = &mut self.stats.packets_rejected;
        let Some(packet) = self.keys.open_packet(datagram, self.conn_id, rejected) else {
            return;
        };
        if self.unvalidated_since.is_some() {
            // The address may be forged: any answer but the HELLO_ACK (a PING for a PING, a
            // CLOSE for a DONE) would go to a victim. Such packets neither get one nor keep
            // the flow alive; a DONE waits for the proof.
            match packet.frame {
                Frame::Ping => return,
                Frame::Done => {
                    self.done_unproven = true;
                    return;
                }
                _ => {}
            }
        }
        self.last_recv = now;
        self.stats.packets_received += 1;
        match packet.frame {
            Frame::Hello { max_offset, .. } => {
                self.send_hello_ack = true; // our answer was lost
                self.update_flow(packet.pn, max_offset);
            }
            Frame::Ack {
                ack_delay_us,
                max_offset,
                ranges,
            } => {
                // An ack of packets we never sent is forged (or broken): it proves nothing and
                // moves nothing. Before the address is proven we have sent nothing but
                // HELLO_ACKs, so a valid ack here is one for them.
                let sent_range = self.first_pn..self.next_pn;
                let for_sent = |&(s, e): &(u64, u64)| {
                    s <= e && sent_range.contains(&s) && sent_range.contains(&e)
                };
                if ranges.is_empty() || !ranges.iter().all(for_sent) {
                    return;
                }
                self.update_flow(packet.pn, max_offset);
                if let Some(sent) = self.unvalidated_since.take() {
                    self.flowing_since = Some(now);
                    // Only a peer that got our HELLO_ACK at its address can ack it. It also
                    // gives the first RTT sample.
                    // (Only if the ack is for it: the first ack to arrive may be for a later
                    // PING, long after.)
                    let ack_delay = Duration::from_micros(u64::from(ack_delay_us));
                    let for_hello_ack = ranges.first().is_some_and(|r| r.1 == self.hello_ack_pn);
                    if for_hello_ack && ack_delay <= STALE_ACK_DELAY {
                        self.rtt
                            .update(now.saturating_duration_since(sent), ack_delay);
                    }
                    self.delivered_time = now;
                }
                self.on_ack(now, Duration::from_micros(u64::from(ack_delay_us)), &ranges);
                if std::mem::take(&mut self.done_unproven) {
                    self.on_done(now);
                }
            }
            Frame::Done => self.on_done(now),
            Frame::Abort { reason } => self.close(AbortReason::from_code(reason), true),
            Frame::Ping => self.send_ping = true,
            Frame::HelloAck { .. } | Frame::Data { .. } | Frame::Close { .. } => {}
        }
    }

    /// The receiver says it has every byte: confirm with a CLOSE, and linger to confirm again
    /// if that CLOSE is lost.
    fn on_done(&mut self, now: Instant) {
        if self.total > 0 && self.last_byte().is_none() {
            // A flow that started at the very end has not been handed its last byte yet (the
            // CLOSE names it): the receiver repeats its DONE.
            return;
        }
        self.send_close = true;
        if let State::Finishing { until } = &mut self.state {
            // Still being asked: our CLOSE was lost; stay to answer the next DONE.
            *until = now + self.rtt.pto(MAX_ACK_DELAY) * 3;
        }
        if self.state == State::Open {
            let last_byte = self.last_byte();
            self.events.push_back(Event::Finished {
                total: self.total,
                last_byte,
            });
            self.stats.bytes_delivered = self.total - self.start;
            // Linger to answer a repeated DONE if our CLOSE is lost.
            let until = now + self.rtt.pto(MAX_ACK_DELAY) * 3;
            self.state = State::Finishing { until };
        }
    }

    fn last_byte(&self) -> Option<u8> {
        self.buffer.last_byte()
    }

    /// The next bytes of the stream to read for the sender, if it wants any now: hand them
    /// over with [`Sender::supply`], in the order asked. It asks a few blocks ahead of what
    /// it sends, and holds at most [`Config::send_buffer`] beyond what the receiver has
    /// acknowledged.
    pub fn poll_read(&mut self) -> Option<ReadRequest> {
        if self.state != State::Open {
            return None;
        }
        self.buffer.next_read(self.next_offset)
    }

    /// The bytes of the oldest read asked for by [`Sender::poll_read`]. Anything else (bytes
    /// at another offset, or fewer than asked: the source shrank) aborts the flow, since the
    /// receiver could never verify the stream.
    pub fn supply(&mut self, offset: u64, data: Vec<u8>) {
        if self.state == State::Closed {
            return;
        }
        if self.buffer.supply(offset, data).is_err() {
            self.abort(AbortReason::SourceFailed);
        }
    }

    /// A buffer the sender no longer needs (a block the receiver has acknowledged), to read
    /// the next request into instead of allocating one.
    pub fn spare_buffer(&mut self) -> Option<Vec<u8>> {
        self.buffer.spare()
    }

    /// The application could not read what was asked: the flow aborts.
    pub fn read_failed(&mut self) {
        self.abort(AbortReason::SourceFailed);
    }

    /// Serves every read the sender wants now from `source`, at once: for sources in memory
    /// (tests, simulators). A driver reads files off its event loop instead.
    pub fn read_from(&mut self, source: &mut impl crate::Source) {
        while let Some(read) = self.poll_read() {
            let mut data = vec![0u8; read.len];
            match source.read_at(read.offset, &mut data) {
                Ok(n) if n == read.len => self.supply(read.offset, data),
                _ => self.read_failed(),
            }
        }
    }

    /// Bytes of the stream held in memory (supplied, not yet acknowledged).
    pub fn held_bytes(&self) -> u64 {
        self.buffer.held()
    }

    /// When [`Sender::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Closed => return None,
            State::Finishing { until } => return Some(until),
            State::Open => {}
        }
        [
            Some(self.last_recv + self.config.idle_timeout),
            self.loss_time,
            self.pto_deadline(),
            self.next_pace,
            self.pause_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Closed => return,
            State::Finishing { until } => {
                if now >= until {
                    self.state = State::Closed;
                }
                return;
            }
            State::Open => {}
        }
        if now >= self.last_recv + self.config.idle_timeout {
            self.state = State::Closed;
            self.events.push_back(Event::Aborted {
                reason: AbortReason::IdleTimeout,
                by_peer: false,
            });
            return;
        }
        if self.pause_deadline().is_some_and(|t| now >= t) {
            // A paused flow holds a port of a small pool: it gives it back, and its receiver
            // asks again (from the offset it has) when it wants to go on.
            self.abort(AbortReason::PauseTooLong);
            return;
        }
        if self.loss_time.is_some_and(|t| now >= t) {
            self.detect_lost(now);
        }
        if self.pto_deadline().is_some_and(|t| now >= t) {
            self.pto_count += 1;
            self.probes = 2;
            self.last_eliciting_sent = Some(now);
        }
        if self.next_pace.is_some_and(|t| now >= t) {
            self.next_pace = None;
        }
    }
}

/// `bytes` over `time`, in bits per second (0 for no time).
pub(crate) fn rate_bps(bytes: u64, time: Duration) -> u64 {
    let secs = time.as_secs_f64();
    if secs > 0.0 {
        (bytes as f64 * 8.0 / secs) as u64
    } else {
        0
    }
}
