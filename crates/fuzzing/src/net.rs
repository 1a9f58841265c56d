//! A sender and a receiver joined by two queues of datagrams, in virtual time: the bench on
//! which the endpoint targets let the input drop, duplicate, reorder and forge datagrams.
//!
//! Every datagram is sealed. The bench holds, next to each end, a copy of that end's keys that
//! opens every datagram the end is handed, in the same order (so with the same replay window):
//! it tells the targets what the end saw in each datagram, if anything, and checks that the
//! end counted each one that did not open. Two more copies open every datagram an end sends,
//! in the order sent: each must open, once (a packet number used twice would reuse a nonce).

use crate::Input;
use crate::sealed::{SECRET, open, receiver_keys, sender_keys};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use transport::{Config, Event, Keys, MIN_DATAGRAM, Receiver, Refused, Sender, Suite};

/// The connection id the receiver picks in the endpoint targets.
pub const CONN_ID: u64 = 0x6d65_7373_656e_6765;

/// A stream of `len` bytes in which every byte depends on its position, so that a byte written
/// in the wrong place shows.
pub fn stream(len: u64, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let x = (i ^ (u64::from(seed) << 56)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (x >> 56) as u8
        })
        .collect()
}

/// Most virtual time the input may spend before the clean run: well inside the idle timeout,
/// so that a stall in the clean run is the endpoints' fault, never the input's.
pub const INPUT_TIME: Duration = Duration::from_secs(10);

/// What a target checks while [`Pair::run_clean`] moves the datagrams.
pub trait Watch {
    /// The sender sent `datagram`.
    fn sent(&mut self, _pair: &Pair, _datagram: &Sent) {}
    /// The sender heard `wire` (from the receiver), which opened as `plain` if it opened.
    fn heard(&mut self, _wire: &[u8], _plain: Option<&[u8]>) {}
}

/// A datagram an end sent: as it went on the wire, and its plaintext form (header, then body)
/// as the other end's keys open it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The sealed datagram.
    pub wire: Vec<u8>,
    /// What it says.
    pub plain: Vec<u8>,
}

/// Watches nothing.
impl Watch for () {}

/// One transfer between a real sender and a real receiver.
pub struct Pair {
    /// The virtual clock.
    pub now: Instant,
    /// When the transfer began.
    pub start: Instant,
    /// The receiving end.
    pub receiver: Receiver,
    /// What the receiver handed out, stored as soon as it is (the bytes before the offset
    /// it asked from are there from the start).
    pub sink: Vec<u8>,
    /// The sending end, once a HELLO sealed with the transfer's keys reached it.
    pub sender: Option<Sender>,
    /// The sender's keys until a HELLO opens the flow (each refusal gives them back).
    sender_keys: Option<Keys>,
    /// What the sender opens, opened alongside it.
    at_sender: Keys,
    /// What the receiver opens, opened alongside it.
    at_receiver: Keys,
    /// What the sender sends, opened in the order sent, with the receiver's keys.
    from_sender: Keys,
    /// What the receiver sends, opened in the order sent, with the sender's keys.
    from_receiver: Keys,
    /// The stream the sender serves.
    pub source: Vec<u8>,
    /// Where the receiver asked the stream to start.
    pub offset: u64,
    config: Config,
    /// Datagrams on their way to the sender.
    pub to_sender: VecDeque<Vec<u8>>,
    /// Datagrams on their way to the receiver.
    pub to_receiver: VecDeque<Vec<u8>>,
    /// Every event of the receiver so far.
    pub receiver_events: Vec<Event>,
    /// Every event of the sender so far.
    pub sender_events: Vec<Event>,
    buf: Vec<u8>,
}

/// How a scenario ended in an endpoint target (for tests of the targets themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The input forged packets or aborted: only the safety checks applied.
    Hostile,
    /// An end aborted (the input waited too long, say).
    Aborted,
    /// The transfer finished while the input ran.
    Finished,
    /// The transfer finished in the clean run after the input.
    FinishedClean,
}

impl Pair {
    /// The pair an endpoint target's input describes first: the stream's length and pattern,
    /// where the receiver resumes, and the settings. Returns it with the stream's length.
    pub(crate) fn from_input(input: &mut Input<'_>) -> (Self, u64) {
        let len = input.below(20_000);
        let source = stream(len, input.u8());
        let offset = match input.u8() % 4 {
            0 => input.below(len + 2),
            _ => 0,
        };
        let config = Config {
            max_datagram: MIN_DATAGRAM + input.below(400) as usize,
            window: 1200 + input.below(64_000),
            // As the driver does, a first packet number far from 0 (drawn from what the input
            // already chose, so the seeds keep their meaning), sometimes next to the top of
            // the range the driver draws from.
            first_packet_number: first_packet_number(len),
            // Both suites, from what the input already chose.
            suite: if len % 2 == 1 {
                Suite::ChaCha20Poly1305
            } else {
                Suite::Aes256Gcm
            },
            ..Config::default()
        };
        (Self::new(source, offset, config), len)
    }

    /// A receiver asking for `source` from `offset`, its sink holding what comes before; the
    /// sender opens when the receiver's HELLO reaches it.
    pub fn new(source: Vec<u8>, offset: u64, config: Config) -> Self {
        let now = Instant::now();
        let have = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(source.len());
        let sink = source[..have].to_vec();
        let receiver = Receiver::new(now, CONN_ID, &SECRET, offset, config.clone());
        let suite = config.suite;
        Self {
            now,
            start: now,
            receiver,
            sink,
            sender: None,
            sender_keys: None,
            at_sender: sender_keys(&SECRET, suite),
            at_receiver: receiver_keys(&SECRET, suite),
            from_sender: receiver_keys(&SECRET, suite),
            from_receiver: sender_keys(&SECRET, suite),
            source,
            offset,
            config,
            to_sender: VecDeque::new(),
            to_receiver: VecDeque::new(),
            receiver_events: Vec::new(),
            sender_events: Vec::new(),
            buf: vec![0u8; transport::MAX_DATAGRAM],
        }
    }

    /// The suite of every packet after the HELLO.
    pub fn suite(&self) -> Suite {
        self.config.suite
    }

    /// Everything the sender has to send now, queued for the receiver and returned.
    pub fn pump_sender(&mut self) -> Vec<Sent> {
        let mut out = Vec::new();
        if let Some(sender) = &mut self.sender {
            let size = sender.max_datagram();
            // A bounded number: a sender that never stops would hang the target.
            for _ in 0..1000 {
                sender.read_from(&mut self.source);
                let Some(n) = sender.poll_transmit(self.now, &mut self.buf[..size]) else {
                    break;
                };
                out.push(sent(&mut self.from_sender, &self.buf[..n], "sender"));
            }
        }
        self.to_receiver.extend(out.iter().map(|d| d.wire.clone()));
        self.drain_events();
        out
    }

    /// Everything the receiver has to send now, queued for the sender and returned.
    pub fn pump_receiver(&mut self) -> Vec<Sent> {
        let mut out = Vec::new();
        for _ in 0..1000 {
            let Some(n) = self.receiver.poll_transmit(self.now, &mut self.buf) else {
                break;
            };
            out.push(sent(&mut self.from_receiver, &self.buf[..n], "receiver"));
        }
        self.to_sender.extend(out.iter().map(|d| d.wire.clone()));
        self.drain_events();
        out
    }

    /// Hands `datagram` to the sender, opening the flow with it if it is not open yet (as the
    /// driver does); returns its plaintext form if the sender's keys opened it.
    pub fn deliver_to_sender(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        self.drain_events();
        let plain = open(&mut self.at_sender, datagram);
        let mut datagram = datagram.to_vec();
        match &mut self.sender {
            Some(sender) => {
                let before = sender.stats().packets_rejected;
                sender.handle_datagram(self.now, &mut datagram);
                let after = sender.stats().packets_rejected;
                if !ended(&self.sender_events) {
                    assert_eq!(
                        after - before,
                        u64::from(plain.is_none()),
                        "the sender counted {} of one datagram that {} as rejected",
                        after - before,
                        if plain.is_some() {
                            "opened"
                        } else {
                            "did not open"
                        }
                    );
                }
            }
            None => {
                let total = self.source.len() as u64;
                let keys = self
                    .sender_keys
                    .take()
                    .unwrap_or_else(|| Keys::for_sender(&SECRET));
                match Sender::accept(self.now, &mut datagram, keys, total, self.config.clone()) {
                    Ok(sender) => self.sender = Some(sender),
                    Err(Refused { keys, .. }) => self.sender_keys = Some(keys),
                }
            }
        }
        self.drain_events();
        plain
    }

    /// Hands `datagram` to the receiver; returns its plaintext form if the receiver's keys
    /// opened it.
    pub fn deliver_to_receiver(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        self.drain_events();
        let plain = open(&mut self.at_receiver, datagram);
        let before = self.receiver.stats().packets_rejected;
        self.receiver
            .handle_datagram(self.now, &mut datagram.to_vec());
        let _ = self.receiver.write_to(self.now, &mut self.sink); // a Vec never fails
        let after = self.receiver.stats().packets_rejected;
        if !ended(&self.receiver_events) {
            assert_eq!(
                after - before,
                u64::from(plain.is_none()),
                "the receiver counted {} of one datagram that {} as rejected",
                after - before,
                if plain.is_some() {
                    "opened"
                } else {
                    "did not open"
                }
            );
        }
        self.drain_events();
        plain
    }

    /// Moves the clock on by `by` (within [`INPUT_TIME`] of the start) and runs the timers due.
    pub fn advance(&mut self, by: Duration) {
        let limit = self.start + INPUT_TIME;
        self.now = (self.now + by).min(limit).max(self.now);
        self.run_timers();
    }

    fn run_timers(&mut self) {
        if self.receiver.poll_timeout().is_some_and(|t| t <= self.now) {
            self.receiver.handle_timeout(self.now);
        }
        if let Some(sender) = &mut self.sender
            && sender.poll_timeout().is_some_and(|t| t <= self.now)
        {
            sender.handle_timeout(self.now);
        }
        self.drain_events();
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.receiver.poll_event() {
            self.receiver_events.push(event);
        }
        if let Some(sender) = &mut self.sender {
            while let Some(event) = sender.poll_event() {
                self.sender_events.push(event);
            }
        }
    }

    /// True if the receiver asked for the stream from its end or beyond: no byte passes.
    pub fn resumed_at_end(&self) -> bool {
        self.offset >= self.source.len() as u64
    }

    /// True once either end gave up or was told to.
    pub fn aborted(&self) -> bool {
        self.receiver_events
            .iter()
            .chain(&self.sender_events)
            .any(|e| matches!(e, Event::Aborted { .. }))
    }

    /// True once the receiver finished.
    pub fn finished(&self) -> bool {
        self.receiver_events
            .iter()
            .any(|e| matches!(e, Event::Finished { .. }))
    }

    /// Runs the transfer on a perfect network for up to `limit` of virtual time, showing
    /// `watch` every datagram the sender sends and hears, until the receiver finishes or either
    /// end aborts.
    pub fn run_clean(&mut self, limit: Duration, watch: &mut dyn Watch) {
        let end = self.now + limit;
        for _ in 0..1_000_000 {
            if self.finished() || self.aborted() {
                return;
            }
            let mut moved = false;
            for datagram in self.pump_sender() {
                watch.sent(self, &datagram);
                moved = true;
            }
            moved |= !self.pump_receiver().is_empty();
            while let Some(d) = self.to_receiver.pop_front() {
                self.deliver_to_receiver(&d);
                moved = true;
            }
            while let Some(d) = self.to_sender.pop_front() {
                let plain = self.deliver_to_sender(&d);
                watch.heard(&d, plain.as_deref());
                moved = true;
            }
            if moved {
                continue;
            }
            let next = [
                self.receiver.poll_timeout(),
                self.sender.as_ref().and_then(|s| s.poll_timeout()),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else {
                return;
            };
            // Time always moves, even for a timer that is due and does nothing.
            self.now = next.max(self.now + Duration::from_micros(1));
            if self.now > end {
                return;
            }
            self.run_timers();
        }
    }
}

/// True once an end finished or gave up: it opens nothing more.
fn ended(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::Finished { .. } | Event::Aborted { .. }))
}

/// `datagram`, which `who` just sent, with its plaintext form: it must open with the other
/// end's keys `tap`, which have opened everything `who` sent before, in order.
fn sent(tap: &mut Keys, datagram: &[u8], who: &str) -> Sent {
    let Some(plain) = open(tap, datagram) else {
        panic!(
            "the {who} sent a datagram that does not open (or reused a packet number): \
             {datagram:02x?}"
        );
    };
    Sent {
        wire: datagram.to_vec(),
        plain,
    }
}

/// A first packet number for the sender of a stream of `len` bytes, spread over the range
/// the driver draws from (below 2^62), as the driver's random one is.
fn first_packet_number(len: u64) -> u64 {
    match len % 3 {
        0 => 0,
        1 => (u64::MAX >> 2) - 1000,
        _ => len.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 2,
    }
}
