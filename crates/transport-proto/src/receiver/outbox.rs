//! What the receiver hands the application: the stream's new bytes as `(offset, bytes)`
//! pieces, in one buffer, to be stored wherever the application keeps the stream.

use crate::Sink;
use std::io;

/// Bytes the receiver holds for the application before it drops data unread (unacknowledged,
/// so the sender sends it again): a burst of 64 full datagrams fits.
pub(super) const OUTBOX_BYTES: usize = 4 * 1024 * 1024;
/// Pieces it holds (each packet that does not continue the one before starts one).
pub(super) const OUTBOX_PIECES: usize = 8192;

/// Stream data to store: pieces `(offset, bytes)` in the order they arrived, a piece that
/// continues the one before merged into it. Taken from the receiver with
/// [`crate::Receiver::take_data`]; an emptied batch can be handed back to be filled again,
/// so that its buffer is reused.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    bytes: Vec<u8>,
    /// Offset in the stream and length of each piece; each piece's bytes follow the previous
    /// one's in `bytes`.
    pieces: Vec<(u64, usize)>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes in all pieces.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True if there is nothing to store.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The pieces, as `(offset, bytes)`.
    pub fn pieces(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let mut at = 0;
        self.pieces.iter().map(move |&(offset, len)| {
            let bytes = &self.bytes[at..at + len];
            at += len;
            (offset, bytes)
        })
    }

    /// Writes every piece into `sink` (not flushed).
    pub fn write_to(&self, sink: &mut (impl Sink + ?Sized)) -> io::Result<()> {
        for (offset, bytes) in self.pieces() {
            sink.write_at(offset, bytes)?;
        }
        Ok(())
    }

    /// Empties the batch, keeping its buffer.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.pieces.clear();
    }

    /// True if `len` more bytes do not fit.
    pub(super) fn is_full(&self, len: usize) -> bool {
        self.bytes.len() + len > OUTBOX_BYTES || self.pieces.len() >= OUTBOX_PIECES
    }

    pub(super) fn push(&mut self, offset: u64, data: &[u8]) {
        match self.pieces.last_mut() {
            Some((at, len)) if *at + *len as u64 == offset => *len += data.len(),
            _ => self.pieces.push((offset, data.len())),
        }
        self.bytes.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_that_follow_each_other_merge_and_others_stay_apart() {
        let mut batch = Batch::new();
        batch.push(10, b"abc");
        batch.push(13, b"de");
        batch.push(100, b"x");
        batch.push(5, b"hello");
        let pieces: Vec<(u64, Vec<u8>)> = batch.pieces().map(|(o, b)| (o, b.to_vec())).collect();
        assert_eq!(
            pieces,
            [
                (10, b"abcde".to_vec()),
                (100, b"x".to_vec()),
                (5, b"hello".to_vec())
            ]
        );
        assert_eq!(batch.len(), 11);
        let mut sink = Vec::new();
        batch.write_to(&mut sink).unwrap();
        assert_eq!(&sink[5..15], b"helloabcde");
        batch.clear();
        assert!(batch.is_empty());
        assert_eq!(batch.pieces().count(), 0);
    }

    #[test]
    fn a_full_batch_takes_no_more() {
        let mut batch = Batch::new();
        assert!(!batch.is_full(OUTBOX_BYTES));
        assert!(batch.is_full(OUTBOX_BYTES + 1));
        for i in 0..OUTBOX_PIECES as u64 {
            batch.push(i * 2, b"a"); // none follows another
        }
        assert!(batch.is_full(1), "as many pieces as it holds");
    }
}
