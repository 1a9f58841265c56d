//! messenger's reliable UDP transport: the protocol, with no I/O of its own.
//!
//! One connection moves one byte stream from a [`Sender`] (the server) to a [`Receiver`] (the
//! client). Both are sans-IO state machines in the style of quinn-proto: feed them datagrams
//! and the current time, ask them for datagrams to send and for their next timeout. The
//! sender asks for the bytes it needs ([`Sender::poll_read`]) and is handed them; the receiver
//! hands out what arrived as `(offset, bytes)` pieces ([`Receiver::take_data`]) and is told
//! when they are stored. Nothing here opens a socket or a file, reads a clock, draws random
//! numbers or needs a runtime: the `transport` crate's driver does that, on tokio sockets,
//! with files read and written on blocking threads. [`Source`] and [`Sink`] serve streams in
//! memory (tests, simulators) through [`Sender::read_from`] and [`Receiver::write_to`].
//!
//! Packet numbers are never reused (lost data is resent in new packets); acks carry ranges
//! and the ack delay; loss is detected by packet and time thresholds with probe timeouts as in
//! RFC 9002; congestion control is pluggable ([`cc`]) and every packet is paced; the receiver
//! grants a flow-control window, and a window that stops growing is how a transfer pauses.
#![forbid(unsafe_code)]

pub mod cc;
pub mod crypto;
mod io;
mod pacer;
pub mod packet;
mod ranges;
mod receiver;
mod rtt;
mod sender;

pub use cc::Algorithm;
pub use crypto::{Keys, SECRET_LEN, Secret, Suite, TAG_LEN};
pub use io::{Sink, Source};
pub use ranges::{RangeSet, TooFragmented};
pub use receiver::Batch;
pub use receiver::Receiver;
pub use rtt::RttEstimator;
pub use sender::{READ_BLOCK, ReadRequest, Refused, Sender};

use std::time::Duration;

/// Settings shared by both ends.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest UDP payload to send or accept, 1200 to 65507 bytes. The default is the largest;
    /// the the driver lowers it to [`SAFE_DATAGRAM`] for peers that are not on loopback.
    pub max_datagram: usize,
    /// Congestion controller of the sender.
    pub algorithm: Algorithm,
    /// Bytes the receiver lets the sender have in flight beyond what it has in order.
    pub window: u64,
    /// Most bytes the sender holds beyond the receiver's acknowledged prefix (sent and not
    /// yet acknowledged, kept to be resent if lost): a receiver that never acknowledges an
    /// early packet makes it hold no more than this, and no flow has more than this in
    /// flight (16 MiB: 1.3 Gbit/s at 100 ms of round trip).
    pub send_buffer: u64,
    /// Close the connection after this long without hearing from the peer.
    pub idle_timeout: Duration,
    /// While paused, the receiver pings this often so the flow stays open.
    pub keepalive: Duration,
    /// The sender's first packet number. The the driver draws it at random for every flow:
    /// then only a peer that received our HELLO_ACK can acknowledge it, which proves it owns
    /// its address before any data goes there (someone who forges a victim's address with a
    /// valid token cannot make us stream a file at the victim).
    pub first_packet_number: u64,
    /// Most islands of data a receiver keeps beyond its contiguous prefix; data that would
    /// start another is dropped unacknowledged until holes fill (see [`RangeSet`]).
    pub max_islands: usize,
    /// A sender whose receiver acknowledges less than 1 KiB of new data (or all that is left)
    /// in this long (it is paused, or only pretends to move) ends the flow with
    /// [`AbortReason::PauseTooLong`]; `None` waits for ever. Servers set it so that paused
    /// flows do not hold a small pool of ports.
    pub max_pause: Option<Duration>,
    /// The AEAD a receiver asks for in its HELLO, for every later packet both ways (a sender
    /// uses whatever its receiver names). The default suits this CPU.
    pub suite: Suite,
    /// Benchmarks only: send and accept packets unprotected (the tag's room filled with
    /// zeros), to measure what protection costs. Both ends must agree; nothing in the product
    /// sets it, and a protected end opens nothing from such a peer.
    pub unprotected: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_datagram: MAX_DATAGRAM,
            algorithm: Algorithm::default(),
            window: 64 * 1024 * 1024,
            send_buffer: 16 * 1024 * 1024,
            idle_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(5),
            first_packet_number: 0,
            max_islands: RangeSet::DEFAULT_MAX_ISLANDS,
            max_pause: None,
            suite: Suite::for_this_cpu(),
            unprotected: false,
        }
    }
}

/// A datagram size that crosses real networks without fragmentation (IPv6 minimum MTU 1280
/// minus headers, with room for tunnels).
pub const SAFE_DATAGRAM: usize = 1452;
/// Smallest datagram size the transport accepts.
pub const MIN_DATAGRAM: usize = 1200;
/// Largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65507;

impl Config {
    /// `max_datagram` clamped to the supported range.
    pub fn datagram(&self) -> usize {
        self.max_datagram.clamp(MIN_DATAGRAM, MAX_DATAGRAM)
    }
}

/// Why a connection ended early, as carried by ABORT packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AbortReason {
    /// The application gave up (the user cancelled).
    #[error("cancelled")]
    Cancelled,
    /// The sender could not read its data.
    #[error("the sender could not read the file")]
    SourceFailed,
    /// The receiver could not write its data.
    #[error("the receiver could not write the file")]
    SinkFailed,
    /// Nothing was heard from the peer for too long.
    #[error("the peer went silent")]
    IdleTimeout,
    /// The peer broke the protocol.
    #[error("protocol violation")]
    Protocol,
    /// The receiver stayed paused longer than the sender allows, and the sender gave the
    /// flow's resources back (the server its UDP port). Nothing is wrong with the data: the
    /// receiver keeps what it has and asks again to continue from there.
    #[error("paused for longer than the sender allows")]
    PauseTooLong,
    /// A reason this version does not know.
    #[error("aborted by the peer (code {0})")]
    Other(u16),
}

impl AbortReason {
    /// The wire code.
    pub fn code(self) -> u16 {
        match self {
            Self::Cancelled => 1,
            Self::SourceFailed => 2,
            Self::SinkFailed => 3,
            Self::IdleTimeout => 4,
            Self::Protocol => 5,
            Self::PauseTooLong => 6,
            Self::Other(code) => code,
        }
    }

    /// From the wire code.
    pub fn from_code(code: u16) -> Self {
        match code {
            1 => Self::Cancelled,
            2 => Self::SourceFailed,
            3 => Self::SinkFailed,
            4 => Self::IdleTimeout,
            5 => Self::Protocol,
            6 => Self::PauseTooLong,
            other => Self::Other(other),
        }
    }
}

/// What happened on a connection, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed.
    Connected {
        /// Length of the stream.
        total: u64,
        /// First byte that will be sent.
        offset: u64,
    },
    /// The receiver reached its pause point and paused itself.
    PauseReached {
        /// Bytes from the start that are here.
        offset: u64,
    },
    /// Every byte arrived and the peer confirmed the end.
    Finished {
        /// Length of the stream.
        total: u64,
        /// The stream's last byte, `None` if empty. Also `None` on a receiver that resumed at
        /// the stream's very end (no byte passed through it) and never got the sender's CLOSE:
        /// it finishes anyway after many DONEs, without knowing that byte.
        last_byte: Option<u8>,
    },
    /// The connection ended without finishing.
    Aborted {
        /// Why.
        reason: AbortReason,
        /// True if the peer sent the abort, false if this side gave up.
        by_peer: bool,
    },
}

/// Per-connection statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// Datagrams sent.
    pub packets_sent: u64,
    /// Datagrams received.
    pub packets_received: u64,
    /// Stream bytes a sender sent, first copies and retransmissions (0 on a receiver).
    pub bytes_sent: u64,
    /// Stream bytes a receiver handed to the application: data past its in-order prefix, so a
    /// resend of an island it already holds counts again (0 on a sender).
    pub bytes_received: u64,
    /// Stream bytes delivered to the receiver in order (receiver) or acknowledged (sender).
    pub bytes_delivered: u64,
    /// Packets declared lost.
    pub packets_lost: u64,
    /// Data packets sent again.
    pub packets_retransmitted: u64,
    /// Packets declared lost that were acknowledged later.
    pub spurious_retransmits: u64,
    /// Smallest RTT seen.
    pub min_rtt: Duration,
    /// Smoothed RTT.
    pub smoothed_rtt: Duration,
    /// Congestion window in bytes.
    pub cwnd: u64,
    /// Pacing rate, bits per second.
    pub pacing_bps: u64,
    /// Stream bytes delivered per second since data began to flow, bits per second.
    pub goodput_bps: u64,
    /// Data packets a receiver dropped because they would have started an island past
    /// [`Config::max_islands`].
    pub islands_refused: u64,
    /// Data packets a receiver dropped unread because the application had not yet taken
    /// what it was handed (see [`Receiver::take_data`]).
    pub backlog_refused: u64,
    /// Datagrams dropped because they did not open (forged, modified, truncated, another
    /// transfer's) or were replays of packets already opened.
    pub packets_rejected: u64,
}
