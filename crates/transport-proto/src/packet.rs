//! The UDP packets' plaintext form, byte by byte (see docs/TRANSPORT.md): what [`crate::Keys`]
//! seals and opens. Decoding never panics: every read is bounds-checked and a malformed packet
//! is an error the connection ignores.

/// Protocol version carried by every packet (2: every packet sealed).
pub const VERSION: u8 = 2;
/// Bytes of the common header: version, type, connection id, packet number.
pub const HEADER_LEN: usize = 1 + 1 + 8 + 8;
/// Bytes a DATA packet adds before its payload: the offset.
pub const DATA_HEADER_LEN: usize = 8;
/// Most ACK ranges one ACK carries (the newest).
pub const MAX_ACK_RANGES: usize = 64;

/// Why a packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than its fields.
    #[error("truncated packet")]
    Truncated,
    /// Another protocol version.
    #[error("unknown version {0}")]
    Version(u8),
    /// Unknown packet type.
    #[error("unknown packet type {0}")]
    Type(u8),
    /// Fields that contradict each other.
    #[error("malformed packet")]
    Malformed,
}

/// A decoded packet's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Receiver to sender: open the flow.
    Hello {
        /// The [`crate::Suite`] code of every later packet, both ways.
        suite: u8,
        /// First byte wanted (resume).
        offset: u64,
        /// Flow control: the sender may send bytes below this offset.
        max_offset: u64,
        /// Largest datagram the receiver accepts.
        max_datagram: u16,
    },
    /// Sender to receiver: the flow is open.
    HelloAck {
        /// Total length of the stream.
        total: u64,
        /// First byte the sender will send.
        offset: u64,
    },
    /// Stream bytes at `offset`.
    Data {
        /// Where the payload belongs in the stream.
        offset: u64,
        /// The bytes.
        payload: &'a [u8],
    },
    /// Acknowledgement of packet numbers, plus the flow control limit.
    Ack {
        /// Microseconds the receiver held the ack for the largest packet.
        ack_delay_us: u32,
        /// Flow control: the sender may send bytes below this offset.
        max_offset: u64,
        /// Received packet-number ranges `[start, end]`, newest (highest) first.
        ranges: Vec<(u64, u64)>,
    },
    /// Receiver to sender: every byte is here.
    Done,
    /// Sender to receiver: confirms Done, with the stream's last byte.
    Close {
        /// Length of the stream.
        total: u64,
        /// Its last byte, if it is not empty.
        last_byte: Option<u8>,
    },
    /// Either side gives up.
    Abort {
        /// Why (see [`crate::AbortReason`]).
        reason: u16,
    },
    /// Keepalive; the peer answers with an ack.
    Ping,
}

pub(crate) const T_HELLO: u8 = 1;
const T_HELLO_ACK: u8 = 2;
const T_DATA: u8 = 3;
const T_ACK: u8 = 4;
const T_DONE: u8 = 5;
const T_CLOSE: u8 = 6;
const T_ABORT: u8 = 7;
const T_PING: u8 = 8;

/// A decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The connection it belongs to.
    pub conn_id: u64,
    /// Its packet number (never reused by the sender of the packet).
    pub pn: u64,
    /// What it carries.
    pub frame: Frame<'a>,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
}

/// True if `datagram` says, in its clear header, that it is a HELLO of this version (whether
/// it opens is another matter).
pub fn is_hello(datagram: &[u8]) -> bool {
    datagram.get(..2) == Some(&[VERSION, T_HELLO])
}

/// Decodes one datagram.
pub fn decode(datagram: &[u8]) -> Result<Packet<'_>, DecodeError> {
    let mut r = Reader { buf: datagram };
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let kind = r.u8()?;
    let conn_id = r.u64()?;
    let pn = r.u64()?;
    let frame = match kind {
        T_HELLO => Frame::Hello {
            suite: r.u8()?,
            offset: r.u64()?,
            max_offset: r.u64()?,
            max_datagram: r.u16()?,
        },
        T_HELLO_ACK => Frame::HelloAck {
            total: r.u64()?,
            offset: r.u64()?,
        },
        T_DATA => {
            let offset = r.u64()?;
            let payload = r.buf;
            if payload.is_empty() || offset.checked_add(payload.len() as u64).is_none() {
                return Err(DecodeError::Malformed);
            }
            Frame::Data { offset, payload }
        }
        T_ACK => {
            let ack_delay_us = r.u32()?;
            let max_offset = r.u64()?;
            let count = usize::from(r.u16()?);
            if count == 0 || count > MAX_ACK_RANGES {
                return Err(DecodeError::Malformed);
            }
            let mut ranges = Vec::with_capacity(count);
            // The first range may end anywhere, u64::MAX included.
            let mut below = None;
            for _ in 0..count {
                let (start, end) = (r.u64()?, r.u64()?);
                // Newest first, disjoint, each well formed.
                if start > end || below.is_some_and(|below| end >= below) {
                    return Err(DecodeError::Malformed);
                }
                below = Some(start);
                ranges.push((start, end));
            }
            Frame::Ack {
                ack_delay_us,
                max_offset,
                ranges,
            }
        }
        T_DONE => Frame::Done,
        T_CLOSE => {
            let total = r.u64()?;
            let last_byte = match r.u8()? {
                0 => None,
                1 => Some(r.u8()?),
                _ => return Err(DecodeError::Malformed),
            };
            Frame::Close { total, last_byte }
        }
        T_ABORT => Frame::Abort { reason: r.u16()? },
        T_PING => Frame::Ping,
        other => return Err(DecodeError::Type(other)),
    };
    Ok(Packet { conn_id, pn, frame })
}

/// Writes `packet` into `buf`; returns its length, or `None` if `buf` is too small.
pub fn encode(packet: &Packet<'_>, buf: &mut [u8]) -> Option<usize> {
    let mut w = Writer { buf, len: 0 };
    w.u8(VERSION)?;
    let kind = match &packet.frame {
        Frame::Hello { .. } => T_HELLO,
        Frame::HelloAck { .. } => T_HELLO_ACK,
        Frame::Data { .. } => T_DATA,
        Frame::Ack { .. } => T_ACK,
        Frame::Done => T_DONE,
        Frame::Close { .. } => T_CLOSE,
        Frame::Abort { .. } => T_ABORT,
        Frame::Ping => T_PING,
    };
    w.u8(kind)?;
    w.u64(packet.conn_id)?;
    w.u64(packet.pn)?;
    match &packet.frame {
        Frame::Hello {
            suite,
            offset,
            max_offset,
            max_datagram,
        } => {
            w.u8(*suite)?;
            w.u64(*offset)?;
            w.u64(*max_offset)?;
            w.u16(*max_datagram)?;
        }
        Frame::HelloAck { total, offset } => {
            w.u64(*total)?;
            w.u64(*offset)?;
        }
        Frame::Data { offset, payload } => {
            w.u64(*offset)?;
            w.bytes(payload)?;
        }
        Frame::Ack {
            ack_delay_us,
            max_offset,
            ranges,
        } => {
            w.u32(*ack_delay_us)?;
            w.u64(*max_offset)?;
            w.u16(u16::try_from(ranges.len()).ok()?)?;
            for (start, end) in ranges {
                w.u64(*start)?;
                w.u64(*end)?;
            }
        }
        Frame::Done | Frame::Ping => {}
        Frame::Close { total, last_byte } => {
            w.u64(*total)?;
            match last_byte {
                None => w.u8(0)?,
                Some(b) => {
                    w.u8(1)?;
                    w.u8(*b)?;
                }
            }
        }
        Frame::Abort { reason } => w.u16(*reason)?,
    }
    Some(w.len)
}

/// Writes the header of a DATA packet; the caller then fills the payload right after it.
pub fn encode_data_header(conn_id: u64, pn: u64, offset: u64, buf: &mut [u8]) -> Option<usize> {
    let mut w = Writer { buf, len: 0 };
    w.u8(VERSION)?;
    w.u8(T_DATA)?;
    w.u64(conn_id)?;
    w.u64(pn)?;
    w.u64(offset)?;
    Some(w.len)
}

struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) -> Option<()> {
        let end = self.len.checked_add(b.len())?;
        self.buf.get_mut(self.len..end)?.copy_from_slice(b);
        self.len = end;
        Some(())
    }
    fn u8(&mut self, v: u8) -> Option<()> {
        self.bytes(&[v])
    }
    fn u16(&mut self, v: u16) -> Option<()> {
        self.bytes(&v.to_be_bytes())
    }
    fn u32(&mut self, v: u32) -> Option<()> {
        self.bytes(&v.to_be_bytes())
    }
    fn u64(&mut self, v: u64) -> Option<()> {
        self.bytes(&v.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: Frame<'_>) {
        let packet = Packet {
            conn_id: 7,
            pn: 42,
            frame,
        };
        let mut buf = [0u8; 2048];
        let n = encode(&packet, &mut buf).unwrap();
        assert_eq!(decode(&buf[..n]).unwrap(), packet);
    }

    #[test]
    fn every_frame_round_trips() {
        round_trip(Frame::Hello {
            suite: 1,
            offset: 5,
            max_offset: 1 << 40,
            max_datagram: 1452,
        });
        round_trip(Frame::HelloAck {
            total: 10,
            offset: 5,
        });
        round_trip(Frame::Data {
            offset: 3,
            payload: b"abc",
        });
        round_trip(Frame::Ack {
            ack_delay_us: 250,
            max_offset: 99,
            ranges: vec![(10, 12), (3, 5), (0, 0)],
        });
        round_trip(Frame::Done);
        round_trip(Frame::Close {
            total: 3,
            last_byte: Some(255),
        });
        round_trip(Frame::Close {
            total: 0,
            last_byte: None,
        });
        round_trip(Frame::Abort { reason: 2 });
        round_trip(Frame::Ping);
    }

    #[test]
    fn overlapping_or_unordered_ack_ranges_are_refused() {
        for ranges in [vec![(3, 5), (4, 9)], vec![(0, 1), (3, 4)], vec![(5, 3)]] {
            let packet = Packet {
                conn_id: 1,
                pn: 1,
                frame: Frame::Ack {
                    ack_delay_us: 0,
                    max_offset: 0,
                    ranges,
                },
            };
            let mut buf = [0u8; 256];
            let n = encode(&packet, &mut buf).unwrap();
            assert_eq!(decode(&buf[..n]), Err(DecodeError::Malformed));
        }
    }

    #[test]
    fn an_ack_of_the_highest_packet_number_round_trips() {
        // Found by fuzzing (udp_packet): the encoder wrote it, the decoder refused it, so a
        // receiver that had seen packet number u64::MAX sent only acks its sender dropped.
        round_trip(Frame::Ack {
            ack_delay_us: 0,
            max_offset: 0,
            ranges: vec![(u64::MAX, u64::MAX), (0, 3)],
        });
    }

    #[test]
    fn other_versions_and_short_packets_are_refused() {
        assert_eq!(decode(&[]), Err(DecodeError::Truncated));
        assert_eq!(decode(&[1, 3]), Err(DecodeError::Version(1)));
        assert_eq!(decode(&[2, 3, 0]), Err(DecodeError::Truncated));
    }
}
