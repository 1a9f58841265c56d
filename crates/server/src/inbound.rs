//! Reading frames from a client within a memory budget shared by every connection.
//!
//! Each connection reads through a small buffer of its own ([`SMALL_FRAME`] bytes), enough for
//! any hello, ping or list request. A frame longer than that needs room for all of it; the room
//! is taken from one [`Budget`] for the whole server before the frame is buffered, and given
//! back as soon as the frame is complete. A connection that finds no room simply stops reading
//! until there is (TCP holds its sender back), so a crowd announcing megabyte frames and
//! trickling them costs at most the budget, not a megabyte each.

use bytes::{Buf, Bytes, BytesMut};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wire::FrameError;

/// Frames up to this size (header included) go through the connection's own buffer and take
/// nothing from the budget.
pub(crate) const SMALL_FRAME: usize = 4 * 1024;

const HEADER_LEN: usize = 4;

/// The bytes every connection together may hold in partly received frames.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    room: Arc<Semaphore>,
    total: usize,
}

impl Budget {
    /// A budget of `total` bytes.
    pub(crate) fn new(total: usize) -> Self {
        let total = total.min(Semaphore::MAX_PERMITS);
        Self {
            room: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Bytes taken now.
    pub(crate) fn held(&self) -> usize {
        self.total.saturating_sub(self.room.available_permits())
    }
}

/// Splits a connection's byte stream into frame payloads, like `FrameCodec` over `FramedRead`,
/// with big frames buffered only within the [`Budget`].
#[derive(Debug)]
pub(crate) struct FrameReader<R> {
    rd: R,
    buf: BytesMut,
    max_len: usize,
    budget: Budget,
    /// The room the frame being received holds, if it is a big one.
    held: Option<OwnedSemaphorePermit>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames of at most `max_len` payload bytes from `rd`.
    pub(crate) fn new(rd: R, max_len: usize, budget: Budget) -> Self {
        Self {
            rd,
            buf: BytesMut::new(),
            max_len,
            budget,
            held: None,
        }
    }

    /// Reads and drops what the peer still sends, until it closes or `max` bytes came: after
    /// the server has stopped reading and said its last word. A connection closed with unread
    /// bytes in its buffer is reset, and the reset can destroy that last word before the
    /// client has read it; TLS makes this common, since a client closing sends a `close_notify`
    /// record the server never asked for.
    pub(crate) async fn drain(&mut self, max: usize) {
        self.buf.clear();
        self.held = None;
        let mut scrap = [0u8; 1024];
        let mut left = max;
        while left > 0 {
            match self.rd.read(&mut scrap).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    }

    /// The length the frame at the front announces, once its header is in; an error if it is
    /// outside `1..=max_len`.
    fn announced(&self) -> Result<Option<usize>, FrameError> {
        wire::announced_len(&self.buf, self.max_len)
    }

    /// The next frame's payload; `None` when the connection ended between frames, an error
    /// when it ended in the middle of one. Cancel-safe: what was read stays buffered for the
    /// next call.
    pub(crate) async fn next(&mut self) -> Option<Result<Bytes, FrameError>> {
        loop {
            let len = match self.announced() {
                Ok(len) => len,
                Err(err) => return Some(Err(err)),
            };
            let need = len.map_or(SMALL_FRAME, |len| HEADER_LEN + len);
            if let Some(len) = len
                && self.buf.len() >= need
            {
                self.buf.advance(HEADER_LEN);
                let frame = self.buf.split_to(len).freeze();
                if self.held.take().is_some() {
                    // The big buffer goes with the frame; the next frames start small again.
                    let rest = std::mem::take(&mut self.buf);
                    self.buf = BytesMut::with_capacity(SMALL_FRAME.max(rest.len()));
                    self.buf.extend_from_slice(&rest);
                }
                return Some(Ok(frame));
            }
            if need > SMALL_FRAME && self.held.is_none() {
                let permits = u32::try_from(need).unwrap_or(u32::MAX);
                let permit = Arc::clone(&self.budget.room)
                    .acquire_many_owned(permits)
                    .await
                    .ok()?;
                self.held = Some(permit);
                let mut big = BytesMut::with_capacity(need);
                big.extend_from_slice(&self.buf);
                self.buf = big;
            } else if self.buf.capacity() < need {
                self.buf.reserve(need - self.buf.len());
            }
            match self.rd.read_buf(&mut self.buf).await {
                // As `FramedRead` does: an end in the middle of a frame is an error, so the
                // peer hears why (during its hello) if it still reads.
                Ok(0) if !self.buf.is_empty() => {
                    self.buf.clear();
                    self.held = None;
                    return Some(Err(FrameError::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the connection ended in the middle of a frame",
                    ))));
                }
                Ok(0) => return None,
                Ok(_) => {}
                Err(err) => return Some(Err(FrameError::Io(err))),
            }
        }
    }
}
