//! Framing: every message travels as a 4-byte big-endian length followed by that many bytes.
//!
//! The length is checked against a cap before any payload is buffered, so a peer announcing a
//! 4 GiB frame costs us four bytes of memory, not four gigabytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Largest frame payload either side accepts, in bytes. Chat texts are capped far lower
/// ([`crate::MAX_TEXT_LEN`]); the headroom is for file listings.
pub const MAX_FRAME_LEN: usize = 1024 * 1024;

const HEADER_LEN: usize = 4;

/// Why a byte stream could not be split into frames. Both variants end the connection: after
/// a bad length there is no way to find the next frame boundary.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer announced a frame longer than the cap (or an empty one).
    #[error("frame of {len} bytes is outside 1..={max}")]
    BadLength {
        /// The length the peer announced.
        len: u64,
        /// The cap in force.
        max: usize,
    },
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Length-prefixed framing as a `tokio_util` codec. Decodes to raw payloads (so the caller
/// decides how to parse them) and encodes ready-made frames from [`encode_frame`].
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_len: usize,
}

impl FrameCodec {
    /// A codec that refuses frames longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Self { max_len }
    }
}

/// The payload length the frame at the start of `buf` announces, once its header is there
/// (`None` before); an error if it is outside `1..=max_len`.
pub fn announced_len(buf: &[u8], max_len: usize) -> Result<Option<usize>, FrameError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let len_usize = len as usize;
    if len == 0 || len_usize > max_len {
        return Err(FrameError::BadLength {
            len: u64::from(len),
            max: max_len,
        });
    }
    Ok(Some(len_usize))
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(MAX_FRAME_LEN)
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(len_usize) = announced_len(src, self.max_len)? else {
            return Ok(None);
        };
        if src.len() < HEADER_LEN + len_usize {
            // Ask for exactly what the frame still needs, never more than the cap.
            src.reserve(HEADER_LEN + len_usize - src.len());
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        Ok(Some(src.split_to(len_usize).freeze()))
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    /// Writes an already-framed message (see [`encode_frame`]) as is.
    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.extend_from_slice(&frame);
        Ok(())
    }
}

/// Prefixes `payload` with its length. The result is what goes on the wire; building it once
/// lets the server hand the same bytes to every recipient of a broadcast.
pub fn encode_frame(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
    // Payloads come from our own encoders and are far below u32::MAX.
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(payload);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut FrameCodec, bytes: &[u8]) -> Result<Vec<Bytes>, FrameError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(frame) = codec.decode(&mut buf)? {
            out.push(frame);
        }
        Ok(out)
    }

    #[test]
    fn frames_split_at_their_announced_lengths() {
        let mut wire = encode_frame(b"hello").to_vec();
        wire.extend_from_slice(&encode_frame(b"x"));
        let frames = decode_all(&mut FrameCodec::default(), &wire).unwrap();
        assert_eq!(
            frames,
            vec![Bytes::from_static(b"hello"), Bytes::from_static(b"x")]
        );
    }

    #[test]
    fn partial_frame_waits_for_the_rest() {
        let wire = encode_frame(b"hello");
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&wire[..6]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&wire[6..]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), &b"hello"[..]);
    }

    #[test]
    fn a_4_gib_header_is_refused_before_buffering() {
        let mut codec = FrameCodec::default();
        let err = decode_all(&mut codec, &[0xff, 0xff, 0xff, 0xff, b'a']).unwrap_err();
        assert!(matches!(
            err,
            FrameError::BadLength {
                len: 0xffff_ffff,
                ..
            }
        ));
    }

    #[test]
    fn empty_frames_are_refused() {
        let err = decode_all(&mut FrameCodec::default(), &[0, 0, 0, 0]).unwrap_err();
        assert!(matches!(err, FrameError::BadLength { len: 0, .. }));
    }
}
