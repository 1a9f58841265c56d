//! Join and leave notices, gathered for a moment and then handed to every recipient at once.
//!
//! Every join is news to everyone online, so n users joining make n^2 notices. Queued one by one,
//! each notice costs every recipient a queue slot, a wake-up of its writer and a socket write.
//! Gathered, the notices of a short interval are laid end to end in one buffer that every
//! recipient shares: one queue entry, one wake-up and (usually) one write per recipient per
//! interval. The bytes on the wire do not change: the buffer holds ordinary `joined` and `left`
//! frames, so clients cannot tell a batch from notices that happened to arrive together.

use bytes::{Bytes, BytesMut};

/// Notices not yet delivered, in the order they happened. Each has a sequence number, so that a
/// user who joined in the middle of a batch gets only the notices after its own join (its
/// welcome already listed everyone before).
#[derive(Debug)]
pub(crate) struct Notices {
    frames: BytesMut,
    /// Where each pending notice starts in `frames`.
    starts: Vec<usize>,
    /// Sequence number of the first pending notice.
    first_seq: u64,
}

impl Default for Notices {
    fn default() -> Self {
        Self {
            frames: BytesMut::new(),
            starts: Vec::new(),
            // 0 is "has seen nothing yet".
            first_seq: 1,
        }
    }
}

impl Notices {
    /// Appends one encoded frame; returns its sequence number.
    pub(crate) fn push(&mut self, frame: &[u8]) -> u64 {
        let seq = self.first_seq + self.starts.len() as u64;
        self.starts.push(self.frames.len());
        self.frames.extend_from_slice(frame);
        seq
    }

    /// The sequence number of the latest notice (delivered or not).
    pub(crate) fn last_seq(&self) -> u64 {
        self.first_seq + self.starts.len() as u64 - 1
    }

    /// True when nothing waits for delivery.
    pub(crate) fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Bytes waiting for delivery.
    pub(crate) fn byte_len(&self) -> usize {
        self.frames.len()
    }

    /// Takes everything pending as one batch; later notices start a new one.
    pub(crate) fn take(&mut self) -> Batch {
        let batch = Batch {
            frames: self.frames.split().freeze(),
            starts: std::mem::take(&mut self.starts),
            first_seq: self.first_seq,
        };
        self.first_seq += batch.starts.len() as u64;
        // Start the next batch in a fresh buffer rather than the tail of this one, which every
        // recipient's queue still refers to.
        self.frames = BytesMut::new();
        batch
    }
}

/// Notices taken for delivery, in one buffer shared by every recipient.
#[derive(Debug)]
pub(crate) struct Batch {
    frames: Bytes,
    starts: Vec<usize>,
    first_seq: u64,
}

impl Batch {
    /// The part of the batch for a recipient that has seen every notice up to `seen`, or `None`
    /// when it has seen them all. Never copies: the part is a slice of the shared buffer.
    pub(crate) fn after(&self, seen: u64) -> Option<Bytes> {
        let skip = usize::try_from(seen.saturating_add(1).saturating_sub(self.first_seq))
            .unwrap_or(usize::MAX);
        let start = *self.starts.get(skip)?;
        Some(self.frames.slice(start..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_holds_the_frames_end_to_end_and_a_newcomer_gets_only_later_ones() {
        let mut notices = Notices::default();
        let a = notices.push(b"aa");
        let b = notices.push(b"bbb");
        let c = notices.push(b"c");
        assert_eq!((a, b, c), (1, 2, 3));
        let batch = notices.take();
        assert!(notices.is_empty());
        assert_eq!(batch.after(0).as_deref(), Some(&b"aabbbc"[..]));
        assert_eq!(batch.after(a).as_deref(), Some(&b"bbbc"[..]));
        assert_eq!(batch.after(b).as_deref(), Some(&b"c"[..]));
        assert_eq!(batch.after(c), None);
        // Numbers go on across batches, and an old member gets a whole later batch.
        assert_eq!(notices.push(b"d"), 4);
        assert_eq!(notices.take().after(a).as_deref(), Some(&b"d"[..]));
    }
}
