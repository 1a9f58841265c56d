//! The UDP packet decoder: packet protection (see [`crate::protection`]), then the plaintext
//! form; and the typed packets every UDP target builds its datagrams from.

use crate::choice::{End, Number, SuiteChoice, position};
use crate::protection::{Replays, SealChoice, open_anything, replays, seal_and_open};
use crate::sealed::{SECRET, in_clear};
use crate::sealed::{Spoil, receiver_keys, sender_keys};
use arbitrary::Arbitrary;
use transport::packet::{
    self, DATA_HEADER_LEN, DecodeError, Frame, HEADER_LEN, MAX_ACK_RANGES, Packet, VERSION,
};

/// A well-formed packet (one the decoder accepts) but for its connection id, with fields
/// often at their edges.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct PacketChoice {
    /// The packet number.
    pub pn: Number,
    /// What it carries.
    pub frame: FrameChoice,
}

/// A frame of any type.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum FrameChoice {
    /// A receiver's HELLO, with any suite code and datagram size.
    Hello {
        /// Suite code (known or not).
        suite: u8,
        /// Where the stream is to start.
        offset: Number,
        /// The first window.
        max_offset: Number,
        /// Largest datagram the receiver accepts.
        max_datagram: u16,
    },
    /// The sender's answer.
    HelloAck {
        /// The stream's length.
        total: Number,
        /// Where it starts.
        offset: Number,
    },
    /// Stream bytes (up to 1400; one zero byte if none).
    Data {
        /// Where (kept so that the payload ends by `u64::MAX`).
        offset: Number,
        /// The bytes.
        payload: Vec<u8>,
    },
    /// An acknowledgement.
    Ack {
        /// The ack delay.
        ack_delay_us: u32,
        /// The window.
        max_offset: Number,
        /// The ranges acknowledged.
        ranges: Ranges,
    },
    /// The receiver has everything.
    Done,
    /// The sender has sent everything.
    Close {
        /// The stream's length.
        total: Number,
        /// Its last byte.
        last_byte: Option<u8>,
    },
    /// Either end gives up.
    Abort {
        /// The reason code.
        reason: u16,
    },
    /// A probe.
    Ping,
}

/// Disjoint ack ranges, highest first, 1 to [`MAX_ACK_RANGES`] of them, worked downwards from
/// a top that is often near an edge.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct Ranges {
    /// The newest packet number acknowledged.
    pub top: Top,
    /// Each range's length (modulo 16) and the gap below it (2 plus modulo 8); one range of
    /// one packet if none.
    pub spans: Vec<(u8, u8)>,
}

/// Where the newest ack range ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Top {
    /// This far below `u64::MAX`.
    NearMax(u8),
    /// A small packet number.
    Low(u16),
    /// Any.
    Any(u64),
}

impl Ranges {
    /// The ranges.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        let mut top = match self.top {
            Top::NearMax(below) => u64::MAX - u64::from(below),
            Top::Low(pn) => u64::from(pn),
            Top::Any(pn) => pn,
        };
        let spans: &[(u8, u8)] = if self.spans.is_empty() {
            &[(0, 0)]
        } else {
            &self.spans[..self.spans.len().min(MAX_ACK_RANGES)]
        };
        let mut ranges = Vec::with_capacity(spans.len());
        for &(len, gap) in spans {
            let end = top;
            let start = end.saturating_sub(u64::from(len % 16));
            ranges.push((start, end));
            match start.checked_sub(2 + u64::from(gap % 8)) {
                Some(next) => top = next,
                None => break,
            }
        }
        ranges
    }
}

impl PacketChoice {
    /// The packet, of connection `conn_id`.
    pub fn packet(&self, conn_id: u64) -> Packet<'_> {
        let frame = match &self.frame {
            FrameChoice::Hello {
                suite,
                offset,
                max_offset,
                max_datagram,
            } => Frame::Hello {
                suite: *suite,
                offset: offset.0,
                max_offset: max_offset.0,
                max_datagram: *max_datagram,
            },
            FrameChoice::HelloAck { total, offset } => Frame::HelloAck {
                total: total.0,
                offset: offset.0,
            },
            FrameChoice::Data { offset, payload } => {
                let payload = match &payload[..payload.len().min(1400)] {
                    [] => &[0u8][..],
                    bytes => bytes,
                };
                // The decoder refuses payloads that would end past u64::MAX.
                let offset = offset.0.min(u64::MAX - payload.len() as u64);
                Frame::Data { offset, payload }
            }
            FrameChoice::Ack {
                ack_delay_us,
                max_offset,
                ranges,
            } => Frame::Ack {
                ack_delay_us: *ack_delay_us,
                max_offset: max_offset.0,
                ranges: ranges.ranges(),
            },
            FrameChoice::Done => Frame::Done,
            FrameChoice::Close { total, last_byte } => Frame::Close {
                total: total.0,
                last_byte: *last_byte,
            },
            FrameChoice::Abort { reason } => Frame::Abort { reason: *reason },
            FrameChoice::Ping => Frame::Ping,
        };
        Packet {
            conn_id,
            pn: self.pn.0,
            frame,
        }
    }
}

/// A datagram for the decoders: raw bytes, or a packet's plaintext form or sealed form, then
/// spoiled.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Datagram {
    /// Any bytes, opened by the keys the opener picks.
    Raw {
        /// The bytes.
        bytes: Vec<u8>,
        /// The suite of the keys that open it.
        suite: SuiteChoice,
        /// For a type both ends send (or an unknown one), the end whose keys open it.
        end: End,
    },
    /// A packet's plaintext form, maybe spoiled, opened as [`Datagram::Raw`] is.
    Plain {
        /// Its connection id.
        conn_id: u64,
        /// The packet.
        packet: PacketChoice,
        /// A cut, a flipped bit or trailing bytes.
        spoil: Spoil,
        /// The suite of the keys that open it.
        suite: SuiteChoice,
        /// As in [`Datagram::Raw`].
        end: End,
    },
    /// A packet sealed by `by` in `suite` (in clear if `by` may not seal it), maybe spoiled,
    /// opened by the other end.
    Sealed {
        /// Its connection id.
        conn_id: u64,
        /// The packet.
        packet: PacketChoice,
        /// Who sealed it.
        by: End,
        /// In which suite.
        suite: SuiteChoice,
        /// What became of it.
        spoil: Spoil,
    },
}

impl Datagram {
    /// The bytes, and the suite and end whose keys open them (an end for a packet type both
    /// ends get).
    pub fn bytes(&self) -> (Vec<u8>, SuiteChoice, End) {
        match self {
            Datagram::Raw { bytes, suite, end } => (bytes.clone(), *suite, *end),
            Datagram::Plain {
                conn_id,
                packet,
                spoil,
                suite,
                end,
            } => {
                let mut plain = in_clear(&packet.packet(*conn_id));
                plain.truncate(plain.len() - transport::TAG_LEN);
                (spoil_plain(plain, spoil), *suite, *end)
            }
            Datagram::Sealed {
                conn_id,
                packet,
                by,
                suite,
                spoil,
            } => {
                let keys = match by {
                    End::Sender => sender_keys(&SECRET, suite.suite()),
                    End::Receiver => receiver_keys(&SECRET, suite.suite()),
                };
                let injected = spoil.apply(&keys, by.role(), &packet.packet(*conn_id));
                let opener = match by {
                    End::Sender => End::Receiver,
                    End::Receiver => End::Sender,
                };
                (injected.wire, *suite, opener)
            }
        }
    }
}

/// A plaintext form spoiled as a sealed one would be (sealing aside).
fn spoil_plain(mut plain: Vec<u8>, spoil: &Spoil) -> Vec<u8> {
    match spoil {
        Spoil::Intact | Spoil::InClear | Spoil::OtherSecret => {}
        Spoil::BitFlipped { at, bit } => {
            let at = position(*at, plain.len());
            plain[at] ^= 1 << (bit % 8);
        }
        Spoil::Cut { at } => plain.truncate(position(*at, plain.len())),
        Spoil::Trailing(extra) => plain.extend_from_slice(&extra[..extra.len().min(16)]),
    }
    plain
}

/// The input of [`udp_packet`].
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct PacketInput {
    /// A datagram for the decoder and the opener.
    pub datagram: Datagram,
    /// The connection id of the packet built.
    pub conn_id: u64,
    /// A packet to encode, cut, seal and open.
    pub packet: PacketChoice,
    /// The room it is encoded into (modulo 1500).
    pub room: u16,
    /// Three cuts of the encoded packet (each modulo its length).
    pub cuts: [u16; 3],
    /// How it is sealed and spoiled.
    pub seal: SealChoice,
    /// A sequence of packet numbers for the replay window.
    pub replays: Replays,
}

/// UDP packets, sealed and in their plaintext form, two ways.
///
/// A datagram (any bytes, or a packet's plaintext or sealed form, spoiled or not): opened by
/// either end's keys, it is refused for the right reason (malformed or forged), or it is
/// exactly what the other end sealed and opens only once. As a plaintext packet, a packet it
/// decodes to re-encodes to a prefix of the datagram (the decoder neither invents nor skips
/// bytes), a DATA payload lies inside the datagram, and a refusal names the right reason
/// (version, type, length).
///
/// A well-formed packet: it encodes exactly when the buffer is large enough, decodes back
/// unchanged, and any cut of it short of its end is refused as truncated (a DATA packet's
/// payload may be cut down to one byte). Sealed by either end in either suite, it opens with
/// the other end's keys, once, to what was sealed, and with no other keys; with a bit flipped,
/// cut or extended, it does not open, and that leaves its packet number unused. Then a sequence
/// of packets numbered as the input says: each opens exactly if its number was not opened
/// before and is not too far below the largest.
pub fn udp_packet(input: &PacketInput) {
    let (datagram, suite, end) = input.datagram.bytes();
    decode_datagram(&datagram);
    let _ = open_anything(&datagram, suite, end);

    let packet = input.packet.packet(input.conn_id);
    let room = usize::from(input.room % 1500);
    let mut big = vec![0u8; 2048];
    let len = packet::encode(&packet, &mut big);
    let Some(len) = len else {
        panic!("{packet:?} does not encode into 2048 bytes");
    };
    let mut small = vec![0u8; room];
    match packet::encode(&packet, &mut small) {
        Some(n) => {
            assert_eq!(n, len);
            assert_eq!(small[..n], big[..n], "the encoding depends on the buffer");
        }
        None => assert!(room < len, "{len} bytes did not fit into {room}"),
    }
    let encoded = &big[..len];
    assert_eq!(
        packet::decode(encoded).as_ref(),
        Ok(&packet),
        "decode(encode(x))"
    );
    for cut in input.cuts {
        let cut = position(cut, len);
        let short = packet::decode(&encoded[..cut]);
        match (&packet.frame, short) {
            (Frame::Data { .. }, Ok(p)) if cut > HEADER_LEN + DATA_HEADER_LEN => {
                let Frame::Data { payload, .. } = p.frame else {
                    panic!("a cut DATA packet decoded as {p:?}");
                };
                assert_eq!(payload.len(), cut - HEADER_LEN - DATA_HEADER_LEN);
            }
            (Frame::Data { .. }, Err(DecodeError::Malformed))
                if cut == HEADER_LEN + DATA_HEADER_LEN => {}
            (_, Err(DecodeError::Truncated)) => {}
            (_, other) => panic!("{packet:?} cut to {cut} bytes decoded as {other:?}"),
        }
    }
    seal_and_open(&input.seal, &packet, encoded);
    replays(&input.replays);
}

/// The decoder on arbitrary bytes.
fn decode_datagram(data: &[u8]) {
    match packet::decode(data) {
        Ok(packet) => {
            if let Frame::Data { payload, .. } = &packet.frame {
                let inside = data.as_ptr_range();
                let range = payload.as_ptr_range();
                assert!(
                    inside.start <= range.start && range.end <= inside.end,
                    "a DATA payload outside its datagram"
                );
            }
            let mut buf = vec![0u8; data.len()];
            let Some(n) = packet::encode(&packet, &mut buf) else {
                panic!(
                    "{packet:?} decoded from {} bytes takes more to encode",
                    data.len()
                );
            };
            assert_eq!(buf[..n], data[..n], "decoding changed the bytes it read");
            assert_eq!(
                packet::decode(&data[..n]).as_ref(),
                Ok(&packet),
                "bytes after the packet changed it"
            );
        }
        Err(err) => {
            let expected_first = match data {
                [] => Some(DecodeError::Truncated),
                [version, ..] if *version != VERSION => Some(DecodeError::Version(*version)),
                _ if data.len() < HEADER_LEN => Some(DecodeError::Truncated),
                [_, kind, ..] if !(1..=8).contains(kind) => Some(DecodeError::Type(*kind)),
                _ => None,
            };
            if let Some(expected) = expected_first {
                assert_eq!(err, expected, "the wrong reason for refusing {data:02x?}");
            } else {
                assert!(
                    matches!(err, DecodeError::Truncated | DecodeError::Malformed),
                    "{err:?} for a packet of a known version and type"
                );
            }
        }
    }
}
