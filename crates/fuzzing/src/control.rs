//! The TCP control channel's decoders: the length-prefixed framing and the JSON messages.

use crate::Input;
use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;
use wire::{
    ClientMsg, ErrorCode, FileEntry, FrameCodec, FrameError, MAX_FRAME_LEN, ServerMsg, encode_frame,
};

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

/// The framing codec against the obvious reading of the same stream.
///
/// The input picks a frame cap (a tiny one half the time, so oversized frames are common) and
/// how the stream is cut into reads; the rest is the stream. Checks: the codec yields exactly
/// the frames [`split`] finds, however the stream is cut; every frame is 1 to `max` bytes and
/// re-encodes to the bytes it came from; an oversized or empty length is an error that reserves
/// no memory; a stream that ends inside a frame is an error at the end of input, a clean one is
/// not.
pub fn control_frame(data: &[u8]) {
    let mut input = Input::new(data);
    let choice = input.u8();
    let max = if choice < 128 {
        1 + usize::from(choice % 64)
    } else {
        MAX_FRAME_LEN
    };
    // 0: the whole stream in one read; otherwise reads of 1 to 255 bytes.
    let read = usize::from(input.u8());
    let stream = input.rest();
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

/// Client messages: every payload that decodes survives encoding and decoding unchanged, and
/// so does every message built from the input (odd strings, extreme numbers), framed.
pub fn client_msg(data: &[u8]) {
    if let Ok(msg) = ClientMsg::decode(data) {
        let again = ClientMsg::decode(&payload(&msg.to_frame()));
        assert_eq!(again.ok().as_ref(), Some(&msg), "decode(encode(decode(x)))");
    }
    let msg = client_msg_from(&mut Input::new(data));
    let decoded = ClientMsg::decode(&payload(&msg.to_frame()));
    assert_eq!(decoded.ok().as_ref(), Some(&msg), "decode(encode(x))");
}

/// Server messages, as the client decodes them: the same properties as [`client_msg`].
pub fn server_msg(data: &[u8]) {
    if let Ok(msg) = ServerMsg::decode(data) {
        let again = ServerMsg::decode(&payload(&msg.to_frame()));
        assert_eq!(again.ok().as_ref(), Some(&msg), "decode(encode(decode(x)))");
    }
    let msg = server_msg_from(&mut Input::new(data));
    let decoded = ServerMsg::decode(&payload(&msg.to_frame()));
    assert_eq!(decoded.ok().as_ref(), Some(&msg), "decode(encode(x))");
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

/// Characters that trouble encoders: quotes, escapes, controls, separators JSON and
/// JavaScript disagree on, the edges of UTF-8.
const ODD_CHARS: &[char] = &[
    '"',
    '\\',
    '/',
    '\0',
    '\n',
    '\r',
    '\t',
    '\u{7f}',
    '\u{80}',
    'é',
    '\u{2028}',
    '\u{2029}',
    '\u{feff}',
    '\u{fffd}',
    '\u{ffff}',
    '😀',
    '\u{10ffff}',
    ' ',
    '{',
    '}',
];

/// Every close reason, the one a newer server might send included.
const REASONS: [wire::CloseReason; 7] = [
    wire::CloseReason::Quit,
    wire::CloseReason::Disconnected,
    wire::CloseReason::Timeout,
    wire::CloseReason::SlowConsumer,
    wire::CloseReason::ProtocolError,
    wire::CloseReason::ServerShutdown,
    wire::CloseReason::Unknown,
];

fn reason_from(input: &mut Input<'_>) -> wire::CloseReason {
    REASONS[input.below(REASONS.len() as u64) as usize]
}

/// A hash or secret: 32 bytes of input.
fn value_from(input: &mut Input<'_>) -> [u8; wire::HEX_VALUE_LEN] {
    std::array::from_fn(|_| input.u8())
}

/// A string of up to `max` characters: mostly ASCII, some odd ones.
pub(crate) fn string_from(input: &mut Input<'_>, max: usize) -> String {
    let len = input.below(max as u64 + 1) as usize;
    let mut out = String::new();
    for _ in 0..len {
        if input.is_empty() {
            break;
        }
        let b = input.u8();
        let c = match b {
            0..=0xbf => char::from(b'!' + b % 94),
            0xc0..=0xef => ODD_CHARS[usize::from(b) % ODD_CHARS.len()],
            _ => char::from_u32(input.u32() % 0x11_0000).unwrap_or('\u{fffd}'),
        };
        out.push(c);
    }
    out
}

/// An integer that is often at an edge.
pub(crate) fn u64_from(input: &mut Input<'_>) -> u64 {
    match input.u8() % 4 {
        0 => u64::from(input.u8()),
        1 => u64::MAX - u64::from(input.u8()),
        2 => 1 << (input.u8() % 64),
        _ => input.u64(),
    }
}

fn req_from(input: &mut Input<'_>) -> Option<u64> {
    input.bool().then(|| u64_from(input))
}

/// Any client message, with fields from the input.
pub(crate) fn client_msg_from(input: &mut Input<'_>) -> ClientMsg {
    match input.u8() % 9 {
        0 => ClientMsg::Hello {
            version: u64_from(input) as u32,
            name: string_from(input, 40),
        },
        1 => ClientMsg::SendAll {
            text: string_from(input, 64),
            req: req_from(input),
        },
        2 => ClientMsg::SendPrivate {
            to: string_from(input, 40),
            text: string_from(input, 64),
            req: req_from(input),
        },
        3 => ClientMsg::ListUsers {
            req: req_from(input),
        },
        4 => ClientMsg::ListFiles {
            req: req_from(input),
            after: None,
            limit: None,
        },
        5 => ClientMsg::Download {
            file: string_from(input, 40),
            req: req_from(input),
        },
        6 => ClientMsg::Cancel {
            id: u64_from(input),
            req: req_from(input),
        },
        7 => ClientMsg::Ping,
        _ => ClientMsg::Quit,
    }
}

const CODES: &[ErrorCode] = &[
    ErrorCode::NameTaken,
    ErrorCode::InvalidName,
    ErrorCode::NoSuchUser,
    ErrorCode::TooLong,
    ErrorCode::ServerFull,
    ErrorCode::UnknownCommand,
    ErrorCode::UnsupportedVersion,
    ErrorCode::BadRequest,
    ErrorCode::NoSuchFile,
    ErrorCode::Busy,
    ErrorCode::NoSuchTransfer,
    ErrorCode::RateLimited,
    ErrorCode::Internal,
    ErrorCode::Unknown,
];

fn names_from(input: &mut Input<'_>) -> Vec<String> {
    let n = input.below(5);
    (0..n).map(|_| string_from(input, 12)).collect()
}

/// Any server message, with fields from the input.
pub(crate) fn server_msg_from(input: &mut Input<'_>) -> ServerMsg {
    match input.u8() % 12 {
        0 => ServerMsg::Welcome {
            version: u64_from(input) as u32,
            name: string_from(input, 40),
            users: names_from(input),
            server: string_from(input, 20),
        },
        1 => ServerMsg::Joined {
            name: string_from(input, 40),
            time: u64_from(input),
        },
        2 => ServerMsg::Left {
            name: string_from(input, 40),
            time: u64_from(input),
            reason: reason_from(input),
        },
        3 => ServerMsg::Message {
            from: string_from(input, 40),
            text: string_from(input, 64),
            private: input.bool(),
            time: u64_from(input),
        },
        4 => ServerMsg::Users {
            req: req_from(input),
            names: names_from(input),
        },
        5 => {
            let req = req_from(input);
            let n = input.below(4);
            let files = (0..n)
                .map(|_| FileEntry {
                    name: string_from(input, 20),
                    size: u64_from(input),
                })
                .collect();
            ServerMsg::Files {
                req,
                files,
                next: None,
            }
        }
        6 => ServerMsg::Error {
            req: req_from(input),
            code: CODES[input.below(CODES.len() as u64) as usize],
            message: string_from(input, 40),
        },
        7 => ServerMsg::DownloadReady {
            req: req_from(input),
            id: u64_from(input),
            file: string_from(input, 40),
            size: u64_from(input),
            hash: wire::FileHash(value_from(input)),
            secret: wire::TransferSecret(value_from(input)),
            port: input.u16(),
        },
        8 => ServerMsg::DownloadQueued {
            req: req_from(input),
            id: u64_from(input),
            file: string_from(input, 40),
            position: u64_from(input) as u32,
            preparing: input.u8() & 1 == 1,
        },
        9 => ServerMsg::Cancelled {
            req: req_from(input),
            id: u64_from(input),
        },
        10 => ServerMsg::Pong,
        _ => ServerMsg::Bye {
            reason: reason_from(input),
            message: string_from(input, 40),
        },
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
