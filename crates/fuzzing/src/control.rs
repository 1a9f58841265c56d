//! The TCP control channel's decoders: the length-prefixed framing and the JSON messages.

use crate::choice::position;
use crate::messages::Message;
pub use crate::messages::{ClientMsgChoice, ServerMsgChoice};
use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;
use wire::{FrameCodec, FrameError, MAX_FRAME_LEN, encode_frame};

const HEADER_LEN: usize = 4;

/// How a byte stream splits into frames, read the obvious way: what [`FrameCodec`] must agree
/// with, however the stream is cut into reads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Split<'a> {
    /// The payloads, in order.
    pub(crate) frames: Vec<&'a [u8]>,
    /// How the stream ends after them.
    pub(crate) end: End,
}

/// What follows the last whole frame of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Nothing.
    Clean,
    /// The start of a frame that never completes (a part of a header, or a header and part of
    /// its payload).
    Partial,
    /// A header announcing this length, outside `1..=max`.
    BadLength(u64),
}

/// Splits `stream` into frames of at most `max` bytes.
pub(crate) fn split(stream: &[u8], max: usize) -> Split<'_> {
    let mut frames = Vec::new();
    let mut rest = stream;
    let end = loop {
        let Some(header) = rest.get(..HEADER_LEN) else {
            break if rest.is_empty() {
                End::Clean
            } else {
                End::Partial
            };
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if len == 0 || len as usize > max {
            break End::BadLength(u64::from(len));
        }
        let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + len as usize) else {
            break End::Partial;
        };
        frames.push(payload);
        rest = &rest[HEADER_LEN + len as usize..];
    };
    Split { frames, end }
}

/// The input of [`control_frame`].
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct FrameInput {
    /// The frame cap.
    pub cap: FrameCap,
    /// How the stream is cut into reads: 0 for one read of everything, else reads of that
    /// many bytes.
    pub read: u8,
    /// The stream, piece by piece.
    pub stream: Vec<Piece>,
}

/// The largest frame the codec takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum FrameCap {
    /// 1 plus this modulo 64 bytes, so that oversized frames are common.
    Small(u8),
    /// The real cap, [`MAX_FRAME_LEN`].
    Real,
}

/// A piece of a byte stream on the control channel.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Piece {
    /// Any bytes.
    Bytes(Vec<u8>),
    /// A frame around any payload (an empty one has a length of zero).
    Frame(Vec<u8>),
    /// A length header alone.
    Header(u32),
    /// A client message, framed.
    Message(ClientMsgChoice),
}

impl Piece {
    /// Appends the piece's bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Piece::Bytes(bytes) => out.extend_from_slice(bytes),
            Piece::Frame(payload) if payload.is_empty() => out.extend_from_slice(&[0; 4]),
            Piece::Frame(payload) => out.extend_from_slice(&encode_frame(payload)),
            Piece::Header(len) => out.extend_from_slice(&len.to_be_bytes()),
            Piece::Message(msg) => out.extend_from_slice(&msg.msg().to_frame()),
        }
    }
}

/// The framing codec against the obvious reading of the same stream.
///
/// The input picks a frame cap (a tiny one half the time, so oversized frames are common),
/// how the stream is cut into reads, and the stream: any bytes, frames, bare headers and
/// framed messages, one after the other. Checks: the codec yields exactly the frames `split`
/// finds, however the stream is cut; every frame is 1 to `max` bytes and re-encodes to the
/// bytes it came from; an oversized or empty length is an error that reserves no memory; a
/// stream that ends inside a frame is an error at the end of input, a clean one is not.
pub fn control_frame(input: &FrameInput) {
    let max = match input.cap {
        FrameCap::Small(n) => 1 + usize::from(n % 64),
        FrameCap::Real => MAX_FRAME_LEN,
    };
    let read = usize::from(input.read);
    let mut stream = Vec::new();
    for piece in &input.stream {
        piece.write(&mut stream);
    }
    let stream = &stream[..];
    let expected = split(stream, max);

    let mut codec = FrameCodec::new(max);
    let mut buf = BytesMut::new();
    let mut frames: Vec<Bytes> = Vec::new();
    let mut error = None;
    let reads: Vec<&[u8]> = if read == 0 {
        vec![stream]
    } else {
        stream.chunks(read).collect()
    };
    'reads: for piece in reads {
        buf.extend_from_slice(piece);
        loop {
            let capacity = buf.capacity();
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(err) => {
                    assert_eq!(
                        buf.capacity(),
                        capacity,
                        "a refused header must not reserve memory"
                    );
                    error = Some(err);
                    break 'reads;
                }
            }
        }
    }
    for frame in &frames {
        assert!(
            (1..=max).contains(&frame.len()),
            "a frame of {} bytes with a cap of {max}",
            frame.len()
        );
        let encoded = encode_frame(frame);
        assert_eq!(&encoded[HEADER_LEN..], &frame[..]);
        assert_eq!(
            u32::from_be_bytes([encoded[0], encoded[1], encoded[2], encoded[3]]) as usize,
            frame.len()
        );
    }
    let got: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
    assert_eq!(
        got, expected.frames,
        "the codec split the stream differently"
    );
    match (expected.end, error) {
        (End::BadLength(len), Some(FrameError::BadLength { len: got, max: cap })) => {
            assert_eq!((got, cap), (len, max));
        }
        (End::BadLength(len), None) => panic!("a header announcing {len} bytes was accepted"),
        (_, Some(err)) => panic!("a well-formed stream was refused: {err}"),
        (end, None) => {
            // The stream is over: what is left must be nothing, or an error.
            let at_eof = codec.decode_eof(&mut buf);
            match (end, at_eof) {
                (End::Clean, Ok(None)) => {}
                (End::Partial, Err(FrameError::Io(_))) => {}
                (end, other) => panic!("stream ending {end:?} gave {other:?} at its end"),
            }
        }
    }
}

/// The input of [`client_msg`] and [`server_msg`]: a payload for the decoder and a message
/// for the encoder.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct MsgInput<M> {
    /// Bytes the decoder gets.
    pub payload: Payload<M>,
    /// A message that must survive encoding and decoding.
    pub msg: M,
}

/// A payload for a message decoder.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Payload<M> {
    /// Any bytes.
    Raw(Vec<u8>),
    /// A message's JSON, then spoiled.
    Spoiled {
        /// The message.
        msg: M,
        /// What is done to its JSON.
        spoil: JsonSpoil,
    },
}

/// A change to a JSON text, of the kinds that find the decoder's corners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum JsonSpoil {
    /// None.
    None,
    /// One bit flipped (where modulo the length, which bit modulo 8).
    Flip(u16, u8),
    /// Cut (where modulo the length).
    Cut(u16),
    /// A token of the protocol (index modulo `JSON_TOKENS`) inserted.
    Insert(u16, u8),
    /// A token written over the bytes there.
    Overwrite(u16, u8),
}

/// Tokens of the control protocol: JSON syntax, message types, field names, odd values.
pub const JSON_TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"\"",
    b":",
    b",",
    b"[]",
    b"null",
    b"true",
    b"\"type\"",
    b"\"hello\"",
    b"\"send_all\"",
    b"\"download\"",
    b"\"error\"",
    b"\"req\"",
    b"\"text\"",
    b"\"name\"",
    b"\"version\"",
    b"\"code\"",
    b"\"id\"",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-1",
    b"1e999",
    b"0.5",
    b"\\u0000",
    b"\\ud800",
    b"\\udc00\\ud800",
    b"\\\"",
    b"\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
];

impl JsonSpoil {
    /// `json`, spoiled.
    pub fn apply(self, mut json: Vec<u8>) -> Vec<u8> {
        let token = |i: u8| JSON_TOKENS[usize::from(i) % JSON_TOKENS.len()];
        match self {
            JsonSpoil::None => {}
            JsonSpoil::Flip(at, bit) => {
                let at = position(at, json.len());
                if let Some(byte) = json.get_mut(at) {
                    *byte ^= 1 << (bit % 8);
                }
            }
            JsonSpoil::Cut(at) => json.truncate(position(at, json.len())),
            JsonSpoil::Insert(at, i) => {
                let at = position(at, json.len() + 1);
                json.splice(at..at, token(i).iter().copied());
            }
            JsonSpoil::Overwrite(at, i) => {
                let at = position(at, json.len());
                let end = (at + token(i).len()).min(json.len());
                json.splice(at..end, token(i).iter().copied());
            }
        }
        json
    }
}

impl<M: Message> Payload<M> {
    /// The bytes.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Payload::Raw(bytes) => bytes.clone(),
            Payload::Spoiled { msg, spoil } => spoil.apply(M::frame(&msg.msg())[4..].to_vec()),
        }
    }
}

/// Every payload that decodes survives encoding and decoding unchanged, and so does every
/// message built from the input (odd strings, extreme numbers), framed.
fn round_trips<M: Message>(input: &MsgInput<M>) {
    let payload = input.payload.bytes();
    if let Some(msg) = M::decode(&payload) {
        let again = M::decode(&self::payload(&M::frame(&msg)));
        assert_eq!(again.as_ref(), Some(&msg), "decode(encode(decode(x)))");
    }
    let msg = input.msg.msg();
    let decoded = M::decode(&self::payload(&M::frame(&msg)));
    assert_eq!(decoded.as_ref(), Some(&msg), "decode(encode(x))");
}

/// Client messages: every payload that decodes (any bytes, or a message's JSON spoiled)
/// survives encoding and decoding unchanged, and so does every message built from the input
/// (odd strings, extreme numbers), framed.
pub fn client_msg(input: &MsgInput<ClientMsgChoice>) {
    round_trips(input);
}

/// Server messages, as the client decodes them: the same properties as [`client_msg`].
pub fn server_msg(input: &MsgInput<ServerMsgChoice>) {
    round_trips(input);
}

/// The payload of a frame that must be exactly one well-formed frame.
fn payload(frame: &Bytes) -> Bytes {
    let mut buf = BytesMut::from(&frame[..]);
    let payload = FrameCodec::default().decode(&mut buf);
    assert!(buf.is_empty(), "bytes left after an encoded message");
    match payload {
        Ok(Some(payload)) => payload,
        other => panic!("an encoded message is not one frame: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_split_reads_frames_and_their_end() {
        let mut stream = encode_frame(b"ab").to_vec();
        stream.extend_from_slice(&encode_frame(b"c"));
        assert_eq!(
            split(&stream, 8),
            Split {
                frames: vec![b"ab", b"c"],
                end: End::Clean
            }
        );
        assert_eq!(split(&stream[..7], 8).end, End::Partial);
        assert_eq!(split(&stream, 1).end, End::BadLength(2));
        assert_eq!(split(&[0, 0, 0, 0], 8).end, End::BadLength(0));
    }
}
