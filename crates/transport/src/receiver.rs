//! The receiving end: opens the flow with a HELLO sealed with the transfer's secret, writes the stream into a
//! [`Sink`] as it arrives (in any order), acknowledges packets and grants flow-control window.

use crate::crypto::{Keys, Secret};
use crate::packet::{self, Frame, MAX_ACK_RANGES, Packet};
use crate::ranges::RangeSet;
use crate::rtt::RttEstimator;
use crate::{AbortReason, Config, Event, Sink, Stats};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Longest we hold an ack for a lone packet.
const ACK_DELAY: Duration = Duration::from_millis(2);
/// Ack at once after this many data packets.
const ACK_EVERY: u32 = 2;
/// Retry interval of HELLOs, DONEs and repeated acks (HELLOs and acks double it up to 1 s).
const RETRY: Duration = Duration::from_millis(200);
/// DONEs sent without a CLOSE before we finish anyway: we have every byte.
const DONE_TRIES: u32 = 30;
/// Acks repeated while paused before data flowed, before the keepalive takes over.
const PAUSED_TRIES: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Open,
    /// Every byte is here; DONE sent, waiting for CLOSE.
    Done,
    Closed,
}

/// The receiving end of one connection.
#[derive(Debug)]
pub struct Receiver<K: Sink> {
    config: Config,
    conn_id: u64,
    keys: Keys,
    sink: K,
    total: Option<u64>,
    /// What has been written: a prefix plus islands, at most [`Config::max_islands`] of them.
    written: RangeSet,
    paused: bool,
    /// The end of the furthest data seen, and the byte just before it.
    tail: Option<(u64, u8)>,
    /// First byte asked for.
    start: u64,
    /// When the first and the latest data arrived.
    data_times: Option<(Instant, Instant)>,
    /// Pause by itself once every byte below this offset is here.
    pause_at: Option<u64>,
    granted: u64,
    next_pn: u64,
    /// Received packet numbers, `[start, end]`, highest first.
    received: Vec<(u64, u64)>,
    largest_time: Option<Instant>,
    unacked: u32,
    ack_deadline: Option<Instant>,
    retry_at: Option<Instant>,
    retry_every: Duration,
    tries: u32,
    ping_at: Option<Instant>,
    /// The receiver's own RTT view, for statistics: from HELLO to HELLO_ACK, and from each
    /// keepalive PING to the sender's answer. It sends nothing extra to measure it (the
    /// sender's estimate, from every ack, is the one congestion control uses).
    rtt: RttEstimator,
    /// When our outstanding RTT probe (a HELLO or keepalive PING) left.
    probe_sent: Option<Instant>,
    /// Sender packet numbers skipped and not (yet) filled in: packets lost on the way here.
    missing: u64,
    abort: Option<AbortReason>,
    state: State,
    last_recv: Instant,
    events: VecDeque<Event>,
    stats: Stats,
}

impl<K: Sink> Receiver<K> {
    /// Starts a connection that asks for the stream from `offset` (the bytes before it are
    /// already in `sink`), with the transfer's `secret`; every packet after the HELLO is
    /// protected with `config.suite`.
    pub fn new(
        now: Instant,
        conn_id: u64,
        secret: &Secret,
        offset: u64,
        sink: K,
        config: Config,
    ) -> Self {
        let granted = offset.saturating_add(config.window);
        let mut keys = Keys::for_receiver(secret, config.suite);
        if config.unprotected {
            keys = keys.unprotected();
        }
        Self {
            conn_id,
            keys,
            sink,
            total: None,
            written: RangeSet::starting_at(offset, config.max_islands),
            paused: false,
            tail: None,
            start: offset,
            data_times: None,
            pause_at: None,
            granted,
            next_pn: 0,
            received: Vec::new(),
            largest_time: None,
            unacked: 0,
            ack_deadline: None,
            retry_at: Some(now),
            retry_every: RETRY,
            tries: 0,
            ping_at: None,
            rtt: RttEstimator::default(),
            probe_sent: None,
            missing: 0,
            abort: None,
            state: State::Connecting,
            last_recv: now,
            events: VecDeque::new(),
            stats: Stats::default(),
            config,
        }
    }

    /// Bytes from the start of the stream known to be written.
    pub fn contiguous(&self) -> u64 {
        self.written.contiguous()
    }

    /// Bytes written in all (in order or not).
    pub fn received_bytes(&self) -> u64 {
        self.written.total()
    }

    /// Length of the stream, once the sender said.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// The sink, e.g. to flush it.
    pub fn sink(&self) -> &K {
        &self.sink
    }

    /// The sink back, once the connection is over.
    pub fn into_sink(self) -> K {
        self.sink
    }

    /// True once the connection is over and nothing is left to send.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed && self.abort.is_none()
    }

    /// True while paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Statistics so far.
    pub fn stats(&self) -> Stats {
        let mut stats = self.stats;
        stats.bytes_delivered = self.written.contiguous();
        stats.packets_lost = self.missing;
        if self.rtt.has_sample() {
            stats.min_rtt = self.rtt.min();
            stats.smoothed_rtt = self.rtt.smoothed();
        }
        stats.goodput_bps = self.data_times.map_or(0, |(first, last)| {
            let bytes = self.written.contiguous().saturating_sub(self.start);
            crate::sender::rate_bps(bytes, last.saturating_duration_since(first))
        });
        stats
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Pauses (stop granting window) or resumes. While paused the sender finishes what is in
    /// flight and then sends nothing; we ping now and then so the flow stays open.
    pub fn set_paused(&mut self, now: Instant, paused: bool) {
        if paused == self.paused {
            return;
        }
        self.paused = paused;
        if paused {
            // Grant nothing beyond what has arrived (the holes below it may still be filled).
            self.granted = self.written.highest();
            self.ping_at = Some(now + self.config.keepalive);
            // What arrived is on disk while we wait (a restart resumes from it).
            self.flush_sink();
        } else {
            self.granted = self.window_limit();
            self.ping_at = None;
            if self.state == State::Open {
                // Repeat the reopened window until data flows again.
                self.retry_at = Some(now + RETRY);
                self.retry_every = RETRY;
                self.tries = 0;
            }
        }
        self.ack_deadline = Some(now); // tell the sender at once
    }

    /// Pauses by itself once every byte below `offset` has arrived (and emits
    /// [`Event::PauseReached`]). The window never reaches past it, so the sender stops there
    /// exactly.
    pub fn set_pause_at(&mut self, offset: Option<u64>) {
        self.pause_at = offset.filter(|&o| o > self.written.contiguous());
        if let Some(at) = self.pause_at {
            self.granted = self.granted.min(at);
        }
    }

    fn window_limit(&self) -> u64 {
        let open = self.written.contiguous().saturating_add(self.config.window);
        self.pause_at.map_or(open, |at| open.min(at))
    }

    /// Gives up, telling the sender why.
    pub fn abort(&mut self, reason: AbortReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.abort = Some(reason);
            self.events.push_back(Event::Aborted {
                reason,
                by_peer: false,
            });
        }
    }

    /// Feeds one datagram from the peer; it is opened in place.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &mut [u8]) {
        if self.state == State::Closed {
            return;
        }
        let Some(packet) = self
            .keys
            .open_packet(datagram, &mut self.stats.packets_rejected)
        else {
            return;
        };
        if packet.conn_id != self.conn_id {
            return;
        }
        self.last_recv = now;
        self.stats.packets_received += 1;
        match packet.frame {
            Frame::HelloAck { total, offset } => {
                // Acking it proves to the sender that we are at this address.
                self.on_packet(now, packet.pn);
                self.ack_deadline = Some(now);
                if self.state == State::Connecting {
                    self.rtt_sample(now);
                    self.total = Some(total);
                    // Data may have come before this answer: keep what it filled in. The
                    // sender starts where we asked (`offset`), or at the end if we asked beyond
                    // it.
                    self.written.truncate(total);
                    self.state = State::Open;
                    // Until data flows, repeat our ack of it: if it is lost the sender waits.
                    self.retry_at = Some(now + RETRY);
                    self.retry_every = RETRY;
                    self.tries = 0;
                    self.events.push_back(Event::Connected { total, offset });
                    self.check_done(now);
                }
            }
            Frame::Data { offset, payload } => {
                if self.on_data(now, offset, payload) {
                    self.on_packet(now, packet.pn);
                }
            }
            Frame::Close { total, last_byte } => {
                if matches!(self.state, State::Done | State::Open)
                    && self.total == Some(total)
                    && self.written.contiguous() == total
                {
                    self.finish(last_byte);
                }
            }
            Frame::Abort { reason } => {
                self.state = State::Closed;
                self.events.push_back(Event::Aborted {
                    reason: AbortReason::from_code(reason),
                    by_peer: true,
                });
            }
            Frame::Ping => {
                self.on_packet(now, packet.pn);
                self.ack_deadline = Some(now);
                self.rtt_sample(now); // the sender answers our pings with one
            }
            Frame::Hello { .. } | Frame::Ack { .. } | Frame::Done => {}
        }
    }

    fn finish(&mut self, last_byte: Option<u8>) {
        self.state = State::Closed;
        self.events.push_back(Event::Finished {
            total: self.written.contiguous(),
            last_byte,
        });
    }

    /// Closes the outstanding RTT probe, if any, with a sample.
    fn rtt_sample(&mut self, now: Instant) {
        if let Some(sent) = self.probe_sent.take() {
            self.rtt
                .update(now.saturating_duration_since(sent), Duration::ZERO);
        }
    }

    /// Records an ack-eliciting packet number.
    fn on_packet(&mut self, now: Instant, pn: u64) {
        let largest = self.received.first().map(|r| r.1);
        let seen = self
            .received
            .iter()
            .any(|&(start, end)| start <= pn && pn <= end);
        // A peer may send any packet number, u64::MAX included: no arithmetic may overflow.
        match largest {
            Some(l) if pn > l.saturating_add(1) => {
                self.missing = self.missing.saturating_add(pn - l - 1);
            }
            Some(l) if pn < l && !seen => self.missing = self.missing.saturating_sub(1),
            _ => {}
        }
        let in_order = largest.is_none_or(|l| l.checked_add(1) == Some(pn));
        insert_pn(&mut self.received, pn);
        if largest.is_none_or(|l| pn > l) {
            self.largest_time = Some(now);
        }
        self.unacked += 1;
        if !in_order || self.unacked >= ACK_EVERY {
            self.ack_deadline = Some(now); // out of order: tell the sender at once
        } else if self.ack_deadline.is_none() {
            self.ack_deadline = Some(now + ACK_DELAY);
        }
    }

    /// Takes in the data of one packet; false when it was dropped unread, so that the packet
    /// must not be acknowledged (the sender then sends it again later).
    fn on_data(&mut self, now: Instant, offset: u64, payload: &[u8]) -> bool {
        let first = self.data_times.map_or(now, |(first, _)| first);
        self.data_times = Some((first, now));
        let Some(end) = offset.checked_add(payload.len() as u64) else {
            return true; // beyond any stream: a broken or hostile sender
        };
        if self.total.is_some_and(|total| end > total) {
            return true; // beyond the stream: a broken or hostile sender
        }
        if end > self.written.contiguous().saturating_add(self.config.window) {
            // Beyond any window we granted (each was at most the window past what we had
            // then): a broken or hostile sender. Never written, so no peer can make the sink
            // grow past the window, even before the HELLO_ACK tells the stream's length.
            return true;
        }
        if end <= self.written.contiguous() {
            return true; // a duplicate
        }
        // The prefix we have is never written again: whatever is already verified or hashed
        // there stays what the file holds (a resend that overlaps it brings nothing new, and a
        // hostile one could bring other bytes).
        let skip = self.written.contiguous().saturating_sub(offset);
        let (offset, payload) = match usize::try_from(skip) {
            Ok(skip) if skip < payload.len() => (offset + skip as u64, &payload[skip..]),
            _ => return true,
        };
        if self.written.insert(offset, end).is_err() {
            // As many holes as we keep track of: the data waits until they fill. A sender that
            // slices the stream into islands on purpose (one byte at every other offset) gets
            // nowhere, and costs us a bounded map whose updates are O(log n).
            self.stats.islands_refused += 1;
            return false;
        }
        if let Err(err) = self.sink.write_at(offset, payload) {
            tracing::warn!(%err, "cannot write the stream");
            self.abort(AbortReason::SinkFailed);
            return true;
        }
        if self.state == State::Open && !self.paused {
            self.retry_at = None; // data flows: nothing to repeat
        }
        self.stats.bytes_received += payload.len() as u64;
        if let Some(&last) = payload.last()
            && self.tail.is_none_or(|(e, _)| end > e)
        {
            self.tail = Some((end, last));
        }
        if self
            .pause_at
            .is_some_and(|at| self.written.contiguous() >= at)
        {
            self.pause_at = None;
            self.set_paused(now, true);
            self.events.push_back(Event::PauseReached {
                offset: self.written.contiguous(),
            });
        }
        if !self.paused {
            let granted = self.window_limit();
            if granted >= self.granted + self.config.window / 8 {
                self.ack_deadline = Some(now); // a window update worth sending now
            }
            self.granted = self.granted.max(granted);
        }
        self.check_done(now);
        true
    }

    /// Writes out what the sink holds back; if it cannot, the transfer cannot succeed.
    fn flush_sink(&mut self) {
        if let Err(err) = self.sink.flush() {
            tracing::warn!(%err, "cannot write the stream");
            self.abort(AbortReason::SinkFailed);
        }
    }

    fn check_done(&mut self, now: Instant) {
        if self.state == State::Open && self.total == Some(self.written.contiguous()) {
            // Every byte must be written before we say so.
            self.flush_sink();
            if self.state == State::Closed {
                return;
            }
            self.state = State::Done;
            self.retry_at = Some(now);
            self.retry_every = RETRY;
            self.tries = 0;
            self.ack_deadline = Some(now);
        }
    }

    /// When [`Receiver::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        [
            Some(self.last_recv + self.config.idle_timeout),
            self.ack_deadline,
            self.retry_at,
            self.ping_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if now >= self.last_recv + self.config.idle_timeout {
            self.state = State::Closed;
            self.events.push_back(Event::Aborted {
                reason: AbortReason::IdleTimeout,
                by_peer: false,
            });
        }
        if self.state == State::Done
            && self.tries >= DONE_TRIES
            && self.retry_at.is_some_and(|t| now >= t)
        {
            // We have every byte and said so many times: the CLOSEs must have been lost. The
            // last byte passed through here, so we know it anyway.
            let last_byte = self
                .tail
                .filter(|&(end, _)| Some(end) == self.total)
                .map(|(_, b)| b);
            self.finish(last_byte);
        }
    }

    /// Writes the next datagram to send into `buf` and returns its length, or `None` when
    /// nothing is due.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if let Some(reason) = self.abort.take() {
            return self.encode(
                Frame::Abort {
                    reason: reason.code(),
                },
                buf,
            );
        }
        if self.state == State::Closed {
            return None;
        }
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = Some(now + self.retry_every);
            // HELLOs and acks back off; DONEs do not: they are tiny and few, and the sender
            // lingers only a few PTOs after the last one it heard.
            if self.state != State::Done {
                self.retry_every = (self.retry_every * 2).min(Duration::from_secs(1));
            }
            self.tries += 1;
            match self.state {
                State::Connecting => {
                    let frame = Frame::Hello {
                        suite: self.keys.suite().code(),
                        offset: self.written.contiguous(),
                        max_offset: self.granted,
                        max_datagram: u16::try_from(self.config.datagram()).unwrap_or(u16::MAX),
                    };
                    // The latest HELLO times the first round trip (a retry restarts it).
                    self.probe_sent = Some(now);
                    return self.encode(frame, buf);
                }
                State::Done => return self.encode(Frame::Done, buf),
                // The sender has not started (or restarted after a pause): repeat the ack and
                // the window it carries.
                State::Open => {
                    self.ack_deadline = Some(now);
                    if self.paused && self.tries >= PAUSED_TRIES {
                        // Paused before data flowed: the keepalive takes over (the sender's
                        // answers to it are acked, with the window).
                        self.retry_at = None;
                    }
                }
                State::Closed => {}
            }
        }
        if self.ack_deadline.is_some_and(|t| now >= t) && !self.received.is_empty() {
            self.ack_deadline = None;
            self.unacked = 0;
            let ack_delay = self
                .largest_time
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
            let frame = Frame::Ack {
                ack_delay_us: u32::try_from(ack_delay.as_micros()).unwrap_or(u32::MAX),
                max_offset: self.granted,
                ranges: self.received.clone(),
            };
            return self.encode(frame, buf);
        }
        if self.ack_deadline.is_some_and(|t| now >= t) {
            // A window change before any packet arrived: say it in a ping-free way, as a HELLO
            // retry would; nothing else to tell.
            self.ack_deadline = None;
        }
        if self.ping_at.is_some_and(|t| now >= t) {
            // Ping every keepalive; once the sender has missed answering one, every second,
            // so that a lossy path does not run into the idle timeout.
            let silent = now.saturating_duration_since(self.last_recv) > self.config.keepalive;
            let next = if silent {
                self.config.keepalive.min(Duration::from_secs(1))
            } else {
                self.config.keepalive
            };
            self.ping_at = Some(now + next);
            self.probe_sent.get_or_insert(now);
            return self.encode(Frame::Ping, buf);
        }
        None
    }

    fn encode(&mut self, frame: Frame<'_>, buf: &mut [u8]) -> Option<usize> {
        let n = packet::encode(
            &Packet {
                conn_id: self.conn_id,
                pn: self.next_pn,
                frame,
            },
            buf,
        )?;
        let n = self.keys.seal(buf, n)?;
        self.next_pn += 1;
        self.stats.packets_sent += 1;
        Some(n)
    }
}

/// Adds packet number `pn` to `ranges` (highest first), keeping at most the newest
/// [`MAX_ACK_RANGES`].
fn insert_pn(ranges: &mut Vec<(u64, u64)>, pn: u64) {
    // The first range starting at or below `pn` (ranges are sorted highest first).
    let i = ranges
        .iter()
        .position(|&(start, _)| start <= pn)
        .unwrap_or(ranges.len());
    if ranges.get(i).is_some_and(|&(_, end)| pn <= end) {
        return; // a duplicate
    }
    let joins_below = ranges.get(i).is_some_and(|&(_, end)| end + 1 == pn);
    let joins_above = i > 0 && ranges[i - 1].0 == pn + 1;
    match (joins_below, joins_above) {
        (true, true) => {
            ranges[i - 1].0 = ranges[i].0;
            ranges.remove(i);
        }
        (true, false) => ranges[i].1 = pn,
        (false, true) => ranges[i - 1].0 = pn,
        (false, false) => ranges.insert(i, (pn, pn)),
    }
    ranges.truncate(MAX_ACK_RANGES);
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: Secret = Secret([1; 32]);

    /// `frame` as the sender of the transfer with [`SECRET`] would seal it.
    fn packet(pn: u64, frame: Frame<'_>) -> Vec<u8> {
        let mut buf = vec![0u8; 2048];
        let n = packet::encode(
            &Packet {
                conn_id: 9,
                pn,
                frame,
            },
            &mut buf,
        )
        .unwrap();
        let mut keys = Keys::for_sender(&SECRET);
        keys.set_suite(Config::default().suite);
        let n = keys.seal(&mut buf, n).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn the_handshake_times_the_round_trip_and_gaps_count_as_lost() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(t0, 9, &SECRET, 0, Vec::new(), Config::default());
        let mut buf = vec![0u8; 2048];
        assert!(rx.poll_transmit(t0, &mut buf).is_some(), "the HELLO");
        let t1 = t0 + Duration::from_millis(30);
        rx.handle_datagram(
            t1,
            &mut packet(
                0,
                Frame::HelloAck {
                    total: 100,
                    offset: 0,
                },
            ),
        );
        assert_eq!(rx.stats().min_rtt, Duration::from_millis(30));
        for pn in [1, 2, 4, 5, 8] {
            let offset = pn * 10;
            rx.handle_datagram(
                t1,
                &mut packet(
                    pn,
                    Frame::Data {
                        offset,
                        payload: &[7; 10],
                    },
                ),
            );
        }
        assert_eq!(rx.stats().packets_lost, 3, "3, 6 and 7 never came");
        rx.handle_datagram(
            t1,
            &mut packet(
                6,
                Frame::Data {
                    offset: 60,
                    payload: &[7; 10],
                },
            ),
        );
        rx.handle_datagram(
            t1,
            &mut packet(
                6,
                Frame::Data {
                    offset: 60,
                    payload: &[7; 10],
                },
            ),
        );
        assert_eq!(
            rx.stats().packets_lost,
            2,
            "a late packet is not lost; a duplicate counts once"
        );
    }

    #[test]
    fn data_beyond_the_window_is_never_written() {
        // Found by fuzzing (transport_receiver): a DATA packet far out before the HELLO_ACK
        // made the sink allocate up to there (a capacity-overflow panic or an out-of-memory
        // abort for a Vec, a huge sparse write for a file).
        let t0 = Instant::now();
        let config = Config {
            window: 10_000,
            ..Config::default()
        };
        let mut rx = Receiver::new(t0, 9, &SECRET, 0, Vec::new(), config);
        let far = |pn, offset| {
            packet(
                pn,
                Frame::Data {
                    offset,
                    payload: &[7; 10],
                },
            )
        };
        rx.handle_datagram(t0, &mut far(1, u64::MAX - 100));
        rx.handle_datagram(t0, &mut far(2, 9_991));
        assert!(rx.sink().is_empty());
        rx.handle_datagram(t0, &mut far(3, 9_990));
        assert_eq!(
            rx.sink().len(),
            10_000,
            "the window's last bytes are welcome"
        );
    }

    #[test]
    fn the_prefix_already_here_is_never_written_again() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(t0, 9, &SECRET, 0, Vec::new(), Config::default());
        let data = |pn, offset, byte| {
            packet(
                pn,
                Frame::Data {
                    offset,
                    payload: &[byte; 10],
                },
            )
        };
        rx.handle_datagram(t0, &mut data(1, 0, 1));
        // A resend straddling the prefix, with other bytes in it: only its new part lands.
        rx.handle_datagram(t0, &mut data(2, 5, 2));
        assert_eq!(rx.contiguous(), 15);
        assert_eq!(rx.sink()[..], [[1u8; 10], [2; 10]].concat()[..15]);
    }

    #[test]
    fn the_highest_packet_number_overflows_nothing() {
        // Found by libFuzzer (transport_receiver): after packet number u64::MAX, the next
        // packet overflowed `largest + 1` (a panic with overflow checks, a bogus loss count
        // without).
        let t0 = Instant::now();
        let mut rx = Receiver::new(t0, 9, &SECRET, 0, Vec::new(), Config::default());
        for pn in [u64::MAX, 5, u64::MAX - 2, 0] {
            rx.handle_datagram(t0, &mut packet(pn, Frame::Ping));
        }
        assert_eq!(rx.stats().packets_lost, 0);
    }

    #[test]
    fn a_sender_slicing_the_stream_into_islands_is_held_to_the_bound() {
        // The islands attack: one byte at every other offset. Past the bound the data is
        // dropped and its packet not acked; once the holes fill, the rest is welcome again.
        let t0 = Instant::now();
        let config = Config {
            max_islands: 1000,
            ..Config::default()
        };
        let mut rx = Receiver::new(t0, 9, &SECRET, 0, Vec::new(), config);
        let byte = |pn: u64, offset: u64| {
            packet(
                pn,
                Frame::Data {
                    offset,
                    payload: &[7],
                },
            )
        };
        for i in 0..5000u64 {
            rx.handle_datagram(t0, &mut byte(i, 2 * i + 1));
        }
        assert_eq!(rx.written.islands(), 1000);
        assert_eq!(rx.received_bytes(), 1000);
        assert_eq!(rx.stats().islands_refused, 4000);
        // The refused packets are not acknowledged: the sender will send them again.
        let mut buf = vec![0u8; 65_536];
        let mut keys = Keys::for_sender(&SECRET);
        let ranges =
            std::iter::from_fn(|| rx.poll_transmit(t0, &mut buf).map(|n| buf[..n].to_vec()))
                .filter_map(|mut datagram| {
                    let n = keys.open(&mut datagram).ok()?;
                    datagram.truncate(n);
                    Some(datagram)
                })
                .find_map(|datagram| match packet::decode(&datagram) {
                    Ok(Packet {
                        frame: Frame::Ack { ranges, .. },
                        ..
                    }) => Some(ranges),
                    _ => None, // the HELLO
                })
                .expect("an ack");
        assert_eq!(ranges, vec![(0, 999)]);
        // Filling the holes merges everything into the prefix, and new data lands again.
        for i in 0..1000u64 {
            rx.handle_datagram(t0, &mut byte(5000 + i, 2 * i));
        }
        assert_eq!((rx.contiguous(), rx.written.islands()), (2000, 0));
        rx.handle_datagram(t0, &mut byte(6000, 4001));
        assert_eq!(rx.received_bytes(), 2001);
    }

    fn ranges_of(pns: &[u64]) -> Vec<(u64, u64)> {
        let mut ranges = Vec::new();
        for &pn in pns {
            insert_pn(&mut ranges, pn);
        }
        ranges
    }

    #[test]
    fn packet_numbers_become_ranges_highest_first() {
        assert_eq!(ranges_of(&[0, 1, 2]), vec![(0, 2)]);
        assert_eq!(ranges_of(&[0, 1, 5, 6, 3]), vec![(5, 6), (3, 3), (0, 1)]);
        assert_eq!(ranges_of(&[0, 2, 1]), vec![(0, 2)]);
        assert_eq!(ranges_of(&[5, 3, 4, 4]), vec![(3, 5)]);
        assert_eq!(
            ranges_of(&[10, 2, 6, 4]),
            vec![(10, 10), (6, 6), (4, 4), (2, 2)]
        );
        assert_eq!(ranges_of(&[4, 6, 5]), vec![(4, 6)]);
    }

    #[test]
    fn ranges_are_capped_to_the_newest() {
        let pns: Vec<u64> = (0..200).map(|i| i * 2).collect();
        let ranges = ranges_of(&pns);
        assert_eq!(ranges.len(), MAX_ACK_RANGES);
        assert_eq!(ranges[0], (398, 398));
    }
}
