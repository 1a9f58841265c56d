//! The receiving end: opens the flow with a HELLO sealed with the transfer's secret, hands the
//! stream's bytes to the application as they arrive (in any order, as `(offset, bytes)`
//! pieces), acknowledges packets and grants flow-control window. It says that every byte
//! arrived only once the application has stored them all.

mod acks;
mod outbox;
mod transmit;

pub use outbox::Batch;

use crate::crypto::{Keys, Secret};
use crate::packet::Frame;
use crate::ranges::RangeSet;
use crate::rtt::RttEstimator;
use crate::{AbortReason, Config, Event, Sink, Stats};
use std::collections::VecDeque;
use std::io;
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
pub struct Receiver {
    config: Config,
    conn_id: u64,
    keys: Keys,
    /// New bytes for the application to store.
    out: Batch,
    /// Bytes taken from `out` by the application, and how many of them it has stored.
    handed: u64,
    stored: u64,
    total: Option<u64>,
    /// What has arrived: a prefix plus islands, at most [`Config::max_islands`] of them.
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

impl Receiver {
    /// Starts a connection that asks for the stream from `offset` (the application has the
    /// bytes before it), with the transfer's `secret`; every packet after the HELLO is
    /// protected with `config.suite`.
    pub fn new(now: Instant, conn_id: u64, secret: &Secret, offset: u64, config: Config) -> Self {
        let granted = offset.saturating_add(config.window);
        let mut keys = Keys::for_receiver(secret, config.suite);
        if config.unprotected {
            keys = keys.unprotected();
        }
        Self {
            conn_id,
            keys,
            out: Batch::new(),
            handed: 0,
            stored: 0,
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

    /// Bytes from the start of the stream that have arrived (handed to the application, or
    /// waiting to be taken).
    pub fn contiguous(&self) -> u64 {
        self.written.contiguous()
    }

    /// Bytes arrived in all (in order or not).
    pub fn received_bytes(&self) -> u64 {
        self.written.total()
    }

    /// Length of the stream, once the sender said.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// Bytes waiting for the application to take them ([`Receiver::take_data`]).
    pub fn pending_data(&self) -> usize {
        self.out.len()
    }

    /// Takes the bytes that arrived since the last call into `batch` (whose own contents are
    /// dropped; hand back an emptied one to reuse its buffer). Store them, then say so with
    /// [`Receiver::stored`]. While the application leaves too much untaken, new data is
    /// dropped unread and the sender sends it again later.
    pub fn take_data(&mut self, batch: &mut Batch) {
        batch.clear();
        std::mem::swap(&mut self.out, batch);
        self.handed += batch.len() as u64;
    }

    /// The application has stored (written and flushed) `bytes` of what it was handed, in
    /// all. Once it has stored everything and every byte arrived, the receiver tells the
    /// sender so.
    pub fn stored(&mut self, now: Instant, bytes: u64) {
        self.stored = self.stored.max(bytes.min(self.handed));
        self.check_done(now);
    }

    /// Bytes handed to the application and not yet stored.
    pub fn unstored(&self) -> u64 {
        self.handed - self.stored + self.out.len() as u64
    }

    /// Writes what arrived into `sink` and flushes it at once: for sinks in memory (tests,
    /// simulators). A driver stores on a blocking thread instead. A sink that fails aborts
    /// the flow.
    pub fn write_to(&mut self, now: Instant, sink: &mut (impl Sink + ?Sized)) -> io::Result<()> {
        let mut batch = Batch::new();
        self.take_data(&mut batch);
        if let Err(err) = batch.write_to(sink).and_then(|()| sink.flush()) {
            self.sink_failed();
            return Err(err);
        }
        self.stored(now, self.handed);
        Ok(())
    }

    /// The application could not store what it was handed: the transfer cannot succeed.
    pub fn sink_failed(&mut self) {
        self.abort(AbortReason::SinkFailed);
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
        let rejected = &mut self.stats.packets_rejected;
        let Some(packet) = self.keys.open_packet(datagram, self.conn_id, rejected) else {
            return;
        };
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
                    && self.unstored() == 0
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
        if self.out.is_full(payload.len()) {
            // The application is behind: the data waits (the sender sends it again) rather
            // than piling up here.
            self.stats.backlog_refused += 1;
            return false;
        }
        if self.written.insert(offset, end).is_err() {
            // As many holes as we keep track of: the data waits until they fill. A sender that
            // slices the stream into islands on purpose (one byte at every other offset) gets
            // nowhere, and costs us a bounded map whose updates are O(log n).
            self.stats.islands_refused += 1;
            return false;
        }
        self.out.push(offset, payload);
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

    fn check_done(&mut self, now: Instant) {
        // Every byte must be stored before we say so.
        if self.state == State::Open
            && self.total == Some(self.written.contiguous())
            && self.unstored() == 0
        {
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
