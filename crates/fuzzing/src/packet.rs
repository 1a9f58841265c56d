//! The UDP packet decoder: packet protection (see [`crate::protection`]), then the plaintext
//! form.

use crate::Input;
use crate::control::u64_from;
use crate::protection::{open_anything, replays, seal_and_open};
use transport::packet::{
    self, DATA_HEADER_LEN, DecodeError, Frame, HEADER_LEN, MAX_ACK_RANGES, Packet, VERSION,
};

/// UDP packets, sealed and in their plaintext form, two ways.
///
/// The input as a datagram: opened by either end's keys, it is refused for the right reason
/// (malformed or forged), or it is exactly what the other end sealed and opens only once. As a
/// plaintext packet, a packet it decodes to re-encodes to a prefix of the datagram (the
/// decoder neither invents nor skips bytes), a DATA payload lies inside the datagram, and a
/// refusal names the right reason (version, type, length).
///
/// The input as the recipe for a well-formed packet: it encodes exactly when the buffer is
/// large enough, decodes back unchanged, and any cut of it short of its end is refused as
/// truncated (a DATA packet's payload may be cut down to one byte). Sealed by either end in
/// either suite, it opens with the other end's keys, once, to what was sealed, and with no
/// other keys; with a bit flipped, cut or extended, it does not open, and that leaves its
/// packet number unused. Then a sequence of packets numbered as the input says: each opens
/// exactly if its number was not opened before and is not too far below the largest.
pub fn udp_packet(data: &[u8]) {
    decode_datagram(data);
    let _ = open_anything(data);

    let mut input = Input::new(data);
    let conn_id = input.u64();
    let packet = packet_from(&mut input, conn_id);
    let room = input.below(1500) as usize;
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
    for _ in 0..3 {
        let cut = input.below(len as u64) as usize;
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
    seal_and_open(&mut input, &packet, encoded);
    replays(&mut input);
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

/// A well-formed packet of connection `conn_id` (one that the decoder accepts), with fields
/// from the input. DATA payloads are taken from the input too.
pub(crate) fn packet_from<'a>(input: &mut Input<'a>, conn_id: u64) -> Packet<'a> {
    let pn = u64_from(input);
    let frame = match input.u8() % 8 {
        0 => Frame::Hello {
            suite: input.u8(),
            offset: u64_from(input),
            max_offset: u64_from(input),
            max_datagram: input.u16(),
        },
        1 => Frame::HelloAck {
            total: u64_from(input),
            offset: u64_from(input),
        },
        2 => {
            let payload = match input.chunk(1400) {
                [] => &[0u8][..],
                bytes => bytes,
            };
            // The decoder refuses payloads that would end past u64::MAX.
            let offset = u64_from(input).min(u64::MAX - payload.len() as u64);
            Frame::Data { offset, payload }
        }
        3 => Frame::Ack {
            ack_delay_us: input.u32(),
            max_offset: u64_from(input),
            ranges: ranges_from(input),
        },
        4 => Frame::Done,
        5 => Frame::Close {
            total: u64_from(input),
            last_byte: input.bool().then(|| input.u8()),
        },
        6 => Frame::Abort {
            reason: input.u16(),
        },
        _ => Frame::Ping,
    };
    Packet { conn_id, pn, frame }
}

/// Disjoint ack ranges, highest first, 1 to [`MAX_ACK_RANGES`] of them.
pub(crate) fn ranges_from(input: &mut Input<'_>) -> Vec<(u64, u64)> {
    let count = 1 + input.below(MAX_ACK_RANGES as u64) as usize;
    let mut ranges = Vec::with_capacity(count);
    // Work downwards from a top that is often near an edge.
    let mut top = match input.u8() % 3 {
        0 => u64::MAX - u64::from(input.u8()),
        1 => u64::from(input.u16()),
        _ => input.u64(),
    };
    for _ in 0..count {
        let len = u64::from(input.u8() % 16);
        let end = top;
        let start = end.saturating_sub(len);
        ranges.push((start, end));
        let gap = 2 + u64::from(input.u8() % 8);
        match start.checked_sub(gap) {
            Some(next) => top = next,
            None => break,
        }
        if input.is_empty() {
            break;
        }
    }
    ranges
}
