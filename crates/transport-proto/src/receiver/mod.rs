//! The receiving end: opens the flow with a HELLO sealed with the transfer's secret, writes the stream into a
//! [`Sink`] as it arrives (in any order), acknowledges packets and grants flow-control window.

mod acks;
mod transmit;

use crate::crypto::{Keys, Secret};
use crate::packet::Frame;
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
}

#[cfg(test)]
mod tests;
