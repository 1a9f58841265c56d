//! The endpoint targets' bench: a [`netsim::Pair`] (a real sender and a real receiver joined by
//! two queues of datagrams, in virtual time), the typed operations the input drives it with,
//! and taps that check every datagram on the way.
//!
//! Every datagram is sealed. The taps hold, next to each end, a copy of that end's keys that
//! opens every datagram the end is handed, in the same order (so with the same replay window):
//! it tells the targets what the end saw in each datagram, if anything, and checks that the
//! end counted each one that did not open. Two more copies open every datagram an end sends,
//! in the order sent: each must open, once (a packet number used twice would reuse a nonce).

use crate::choice::End;
use crate::packet::PacketChoice;
use crate::sealed::{SECRET, Spoil, open, receiver_keys, sender_keys};
use arbitrary::Arbitrary;
use netsim::{Observer, Pair, Side, Transfer};
use std::time::{Duration, Instant};
use transport::{Config, Event, Keys, MIN_DATAGRAM, Stats, Suite};

/// The connection id the receiver picks in the endpoint targets.
pub const CONN_ID: u64 = 0x6d65_7373_656e_6765;

/// Most virtual time the input may spend before the clean run: well inside the idle timeout,
/// so that a stall in the clean run is the endpoints' fault, never the input's.
pub const INPUT_TIME: Duration = Duration::from_secs(10);

/// Most operations of one input.
pub const MAX_OPS: usize = 500;

/// How many of each end's latest datagrams the input may copy.
const RECENT: usize = 16;

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

/// The transfer an endpoint target's input runs: the stream, where the receiver resumes, and
/// the settings.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct Setup {
    /// The stream's length (modulo 20 000).
    pub len: u16,
    /// Its pattern.
    pub pattern: u8,
    /// Where the receiver asks it from.
    pub resume: Resume,
    /// The datagram size: [`MIN_DATAGRAM`] plus this modulo 400.
    pub datagram: u16,
    /// The window: 1200 plus this modulo 64 000.
    pub window: u16,
    /// The sender's first packet number.
    pub first_pn: FirstPn,
    /// The suite of every packet after the HELLO.
    pub suite: crate::choice::SuiteChoice,
}

/// Where the receiver asks the stream from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Resume {
    /// Its start.
    Start,
    /// This far in (modulo the length plus 2: at the end, or past it).
    At(u16),
}

/// The sender's first packet number: the driver draws one at random below 2^62.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum FirstPn {
    /// 0.
    Zero,
    /// Next to the top of the range the driver draws from.
    NearTop,
    /// Anywhere in it (this, shifted right by 2).
    Spread(u64),
}

impl Setup {
    /// The stream's length.
    pub fn stream_len(&self) -> u64 {
        u64::from(self.len % 20_000)
    }

    /// The resume offset.
    pub fn offset(&self) -> u64 {
        match self.resume {
            Resume::Start => 0,
            Resume::At(at) => u64::from(at) % (self.stream_len() + 2),
        }
    }

    /// The settings of both ends.
    pub fn config(&self) -> Config {
        Config {
            max_datagram: MIN_DATAGRAM + usize::from(self.datagram % 400),
            window: 1200 + u64::from(self.window % 64_000),
            first_packet_number: match self.first_pn {
                FirstPn::Zero => 0,
                FirstPn::NearTop => (u64::MAX >> 2) - 1000,
                FirstPn::Spread(n) => n >> 2,
            },
            suite: self.suite.suite(),
            ..Config::default()
        }
    }
}

/// What the network does next: the operations both endpoint targets share.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Net {
    /// The end sends everything it has to send now.
    Pump(End),
    /// The oldest datagram on its way to the end arrives.
    Deliver(End),
    /// It is lost.
    Lose(End),
    /// It arrives twice (a second copy goes behind the others).
    Duplicate(End),
    /// It is held back behind this many others (modulo the queue's length plus one).
    Reorder(End, u16),
    /// Time passes: this many milliseconds, modulo 3000 (and within `INPUT_TIME`).
    Wait(u16),
    /// A good stretch of network: everything queued arrives, both ways.
    DeliverAll,
}

/// A datagram made up by someone on the path, towards one end.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Injection {
    /// Any bytes (up to 1500).
    Garbage(Vec<u8>),
    /// A well-formed packet sealed with the keys of the end's peer (what someone who knows
    /// the transfer's secret can send), then spoiled or not.
    Forged {
        /// Its connection.
        conn: Conn,
        /// The packet.
        packet: PacketChoice,
        /// What becomes of it.
        spoil: Spoil,
    },
    /// A copy of one of the peer's latest datagrams, changed or not.
    Copy {
        /// Which (modulo how many are kept).
        which: u8,
        /// What is changed.
        change: Change,
    },
}

/// A connection id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Conn {
    /// Ours (the receiver's connection id in every endpoint target).
    Ours,
    /// Another.
    Other(u64),
}

impl Conn {
    /// The id.
    pub fn id(self) -> u64 {
        match self {
            Conn::Ours => CONN_ID,
            Conn::Other(id) => id,
        }
    }
}

/// A change to a copy of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Change {
    /// None: a replay, or a duplicate the network made.
    None,
    /// Cut (where modulo the length).
    Cut(u16),
    /// A byte xored with a non-zero value.
    Xor(u16, u8),
    /// A byte set to any value.
    Set(u16, u8),
}

impl Change {
    /// A copy of `original`, changed.
    pub fn apply(self, original: &[u8]) -> Vec<u8> {
        let mut d = original.to_vec();
        let len = d.len();
        let at = |at: u16| crate::choice::position(at, len);
        match self {
            Change::None => {}
            Change::Cut(n) => d.truncate(at(n)),
            Change::Xor(n, x) => {
                if let Some(byte) = d.get_mut(at(n)) {
                    *byte ^= x.max(1);
                }
            }
            Change::Set(n, v) => {
                if let Some(byte) = d.get_mut(at(n)) {
                    *byte = v;
                }
            }
        }
        d
    }
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

/// The pair's transfer, as the endpoint targets run it.
pub type Ends = Transfer<Vec<u8>, Vec<u8>>;

/// What a target checks as the network moves datagrams.
pub trait Watch {
    /// `side` sent `datagram`.
    fn sent(&mut self, _ends: &Ends, _side: Side, _datagram: &Sent) {}
    /// `side` was handed `wire` by the network, which opened as `plain` if it opened.
    fn handed(&mut self, _side: Side, _wire: &[u8], _plain: Option<&[u8]>) {}
}

/// Watches nothing.
impl Watch for () {}

/// The shadow keys, and the latest datagrams of each end.
struct Taps {
    /// What the sender opens, opened alongside it.
    at_sender: Keys,
    /// What the receiver opens, opened alongside it.
    at_receiver: Keys,
    /// What the sender sends, opened in the order sent, with the receiver's keys.
    from_sender: Keys,
    /// What the receiver sends, opened in the order sent, with the sender's keys.
    from_receiver: Keys,
    /// The latest datagrams each end sent: the sender's, then the receiver's.
    recent: [Vec<Vec<u8>>; 2],
    /// What the last datagram handed to an end opened as.
    last_plain: Option<Vec<u8>>,
}

fn index(side: Side) -> usize {
    match side {
        Side::Sender => 0,
        Side::Receiver => 1,
    }
}

/// The taps and a target's watch, as the pair's observer.
struct Watched<'a, W> {
    taps: &'a mut Taps,
    watch: &'a mut W,
}

impl<W: Watch> Observer<Vec<u8>, Vec<u8>> for Watched<'_, W> {
    fn sent(&mut self, ends: &Ends, side: Side, datagram: &[u8]) {
        let tap = match side {
            Side::Sender => &mut self.taps.from_sender,
            Side::Receiver => &mut self.taps.from_receiver,
        };
        let Some(plain) = open(tap, datagram) else {
            panic!(
                "the {side:?} sent a datagram that does not open (or reused a packet number): \
                 {datagram:02x?}"
            );
        };
        let recent = &mut self.taps.recent[index(side)];
        if recent.len() == RECENT {
            recent.remove(0);
        }
        recent.push(datagram.to_vec());
        let sent = Sent {
            wire: datagram.to_vec(),
            plain,
        };
        self.watch.sent(ends, side, &sent);
    }

    fn handed(&mut self, side: Side, datagram: &[u8], rejected: Option<u64>) {
        let tap = match side {
            Side::Sender => &mut self.taps.at_sender,
            Side::Receiver => &mut self.taps.at_receiver,
        };
        let plain = open(tap, datagram);
        if let Some(rejected) = rejected {
            assert_eq!(
                rejected,
                u64::from(plain.is_none()),
                "the {side:?} counted {rejected} of one datagram that {} as rejected",
                if plain.is_some() {
                    "opened"
                } else {
                    "did not open"
                }
            );
        }
        self.watch.handed(side, datagram, plain.as_deref());
        self.taps.last_plain = plain;
    }
}

/// One transfer between a real sender and a real receiver, driven by typed operations.
pub struct Bench {
    /// The transfer and its network.
    pub pair: Pair<Vec<u8>, Vec<u8>>,
    taps: Taps,
    /// Where the receiver asked the stream to start.
    pub offset: u64,
}

impl Bench {
    /// The transfer `setup` describes; the receiver's sink holds what comes before the
    /// offset it asks from.
    pub fn new(setup: &Setup) -> Self {
        let source = stream(setup.stream_len(), setup.pattern);
        let offset = setup.offset();
        let have = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(source.len());
        let sink = source[..have].to_vec();
        let config = setup.config();
        let suite = config.suite;
        let now = Instant::now();
        let transfer = Transfer::new(now, CONN_ID, &SECRET, offset, config, source, sink);
        Self {
            pair: Pair::new(now, transfer),
            taps: Taps {
                at_sender: sender_keys(&SECRET, suite),
                at_receiver: receiver_keys(&SECRET, suite),
                from_sender: receiver_keys(&SECRET, suite),
                from_receiver: sender_keys(&SECRET, suite),
                recent: Default::default(),
                last_plain: None,
            },
            offset,
        }
    }

    /// The two ends.
    pub fn ends(&self) -> &Ends {
        &self.pair.transfer
    }

    /// The stream the sender serves.
    pub fn source(&self) -> &[u8] {
        &self.pair.transfer.source
    }

    /// What the receiver stored.
    pub fn sink(&self) -> &[u8] {
        &self.pair.transfer.sink
    }

    /// The suite of every packet after the HELLO.
    pub fn suite(&self) -> Suite {
        self.pair.transfer.config().suite
    }

    /// Does what `op` says, showing `watch` every datagram that moves.
    pub fn net(&mut self, op: &Net, watch: &mut impl Watch) {
        let mut observer = Watched {
            taps: &mut self.taps,
            watch,
        };
        let pair = &mut self.pair;
        match *op {
            Net::Pump(end) => {
                pair.pump(end.side(), &mut observer);
            }
            Net::Deliver(end) => {
                pair.deliver(end.side(), &mut observer);
            }
            Net::Lose(end) => pair.lose(end.side()),
            Net::Duplicate(end) => pair.duplicate(end.side()),
            Net::Reorder(end, behind) => pair.reorder(end.side(), usize::from(behind)),
            Net::Wait(ms) => {
                let limit = pair.start + INPUT_TIME;
                let by = Duration::from_millis(u64::from(ms % 3000));
                pair.advance(by.min(limit.saturating_duration_since(pair.now)));
            }
            Net::DeliverAll => pair.deliver_all(&mut observer),
        }
    }

    /// Hands `datagram` to `side`, as someone on the path; returns its plaintext form if that
    /// end's keys opened it.
    pub fn hand(&mut self, side: Side, datagram: &[u8]) -> Option<Vec<u8>> {
        let mut observer = Watched {
            taps: &mut self.taps,
            watch: &mut (),
        };
        self.pair.hand(side, datagram, &mut observer);
        self.taps.last_plain.take()
    }

    /// One of the latest datagrams `side` sent (`which` modulo how many there are).
    pub fn recent(&self, side: Side, which: u8) -> Option<&[u8]> {
        let recent = &self.taps.recent[index(side)];
        let n = recent.len();
        (n > 0).then(|| &recent[usize::from(which) % n][..])
    }

    /// Runs the transfer on a perfect network for up to `limit` of virtual time, showing
    /// `watch` every datagram, until the receiver finishes or either end aborts.
    pub fn run_clean(&mut self, limit: Duration, watch: &mut impl Watch) {
        let mut observer = Watched {
            taps: &mut self.taps,
            watch,
        };
        self.pair.run_clean(limit, &mut observer);
    }

    /// Every event of the receiver so far.
    pub fn receiver_events(&self) -> &[Event] {
        self.pair.events(Side::Receiver)
    }

    /// Every event of the sender so far.
    pub fn sender_events(&self) -> &[Event] {
        self.pair.events(Side::Sender)
    }

    /// True if the receiver asked for the stream from its end or beyond: no byte passes.
    pub fn resumed_at_end(&self) -> bool {
        self.offset >= self.source().len() as u64
    }
}

/// How a scenario ended in an endpoint target, as seen by the end under test (for tests of
/// the targets themselves and regression tests).
#[derive(Debug, Clone)]
pub struct Ending {
    /// How the scenario ended.
    pub outcome: Outcome,
    /// Every event of the end under test.
    pub events: Vec<Event>,
    /// Its statistics at the end.
    pub stats: Stats,
}

/// How a scenario ended in an endpoint target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The input forged packets or aborted: only the safety checks applied.
    Hostile,
    /// An end aborted (the input waited too long, say).
    Aborted,
    /// The transfer finished while the input ran.
    Finished,
    /// The transfer finished in the clean run after the input.
    FinishedClean,
}
