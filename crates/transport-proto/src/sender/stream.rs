//! The stream's bytes as the sender holds them: asked of the application in blocks a little
//! ahead of what has been sent, and kept until the receiver has acknowledged them, so that a
//! lost packet is sent again from memory. The sender never reads a file itself: it says which
//! bytes it needs ([`ReadRequest`]) and is handed them.

use crate::ranges::RangeSet;
use std::collections::VecDeque;

/// Bytes the sender asks for at a time: large enough that reading costs a system call per
/// megabyte, not per datagram.
pub const READ_BLOCK: usize = 1 << 20;
/// How far past what it has sent the sender asks for data, so that a read is always done
/// before the bytes are needed.
const READ_AHEAD: u64 = 4 * READ_BLOCK as u64;
/// Blocks let go of and kept for the application to read into again (a fresh megabyte costs
/// its page faults).
const SPARE_BLOCKS: usize = 4;

/// Bytes `[offset, offset + len)` of the stream that the sender needs: the application reads
/// them and hands them over with [`crate::Sender::supply`], in the order they were asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRequest {
    /// First byte.
    pub offset: u64,
    /// How many bytes (short of [`READ_BLOCK`] only at the stream's end).
    pub len: usize,
}

/// The supplied part of the stream, in blocks of [`READ_BLOCK`] bytes (the last may be
/// shorter), from the block holding the first unacknowledged byte to the last one supplied.
#[derive(Debug)]
pub(super) struct SendBuffer {
    total: u64,
    /// Offset of `blocks[0]`.
    at: u64,
    blocks: VecDeque<Vec<u8>>,
    /// End of the bytes supplied, and of those asked for.
    supplied: u64,
    requested: u64,
    /// The stream bytes the receiver has acknowledged; below its prefix nothing is kept.
    acked: RangeSet,
    last_byte: Option<u8>,
    /// Blocks let go of, for [`SendBuffer::spare`].
    spare: Vec<Vec<u8>>,
}

/// [`SendBuffer::supply`] was handed something other than what was asked for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NotAsked;

impl SendBuffer {
    /// A buffer for a stream of `total` bytes sent from `start`. A flow that starts at the
    /// end still asks for the last byte: the CLOSE reports it.
    pub(super) fn new(start: u64, total: u64, max_islands: usize) -> Self {
        let first = if start >= total {
            total.saturating_sub(1)
        } else {
            start
        };
        Self {
            total,
            at: first,
            blocks: VecDeque::new(),
            supplied: first,
            requested: first,
            acked: RangeSet::starting_at(start, max_islands),
            last_byte: None,
            spare: Vec::new(),
        }
    }

    /// Every byte below this has been acknowledged.
    pub(super) fn acked(&self) -> u64 {
        self.acked.contiguous()
    }

    /// Every byte below this is here to send.
    pub(super) fn supplied(&self) -> u64 {
        self.supplied
    }

    /// Bytes held in memory.
    pub(super) fn held(&self) -> u64 {
        self.blocks.iter().map(|b| b.len() as u64).sum()
    }

    /// The last byte of the stream, once it has been supplied.
    pub(super) fn last_byte(&self) -> Option<u8> {
        self.last_byte
    }

    /// The next read to ask for, if the sender is not far enough ahead of `sent` (the end of
    /// the new data sent so far).
    pub(super) fn next_read(&mut self, sent: u64) -> Option<ReadRequest> {
        if self.requested >= self.total || self.requested >= sent.saturating_add(READ_AHEAD) {
            return None;
        }
        let len = (self.total - self.requested).min(READ_BLOCK as u64);
        let offset = self.requested;
        self.requested += len;
        Some(ReadRequest {
            offset,
            len: len as usize,
        })
    }

    /// Takes the bytes of the oldest outstanding read.
    pub(super) fn supply(&mut self, offset: u64, data: Vec<u8>) -> Result<(), NotAsked> {
        let want = (self.total - self.supplied).min(READ_BLOCK as u64);
        if offset != self.supplied || self.supplied >= self.requested || data.len() as u64 != want {
            return Err(NotAsked);
        }
        self.supplied += want;
        if self.supplied == self.total {
            self.last_byte = data.last().copied();
        }
        self.blocks.push_back(data);
        self.release();
        Ok(())
    }

    /// Copies the bytes from `offset` into `out`; false if any of them is not held (below the
    /// acknowledged prefix, or not supplied yet).
    pub(super) fn copy(&self, offset: u64, out: &mut [u8]) -> bool {
        let end = offset.saturating_add(out.len() as u64);
        if offset < self.at || end > self.supplied {
            return false;
        }
        let mut done = 0;
        while done < out.len() {
            let rel = offset + done as u64 - self.at;
            let (index, within) = (
                (rel / READ_BLOCK as u64) as usize,
                (rel % READ_BLOCK as u64) as usize,
            );
            let Some(block) = self.blocks.get(index) else {
                return false;
            };
            let Some(from) = block.get(within..) else {
                return false;
            };
            let n = from.len().min(out.len() - done);
            out[done..done + n].copy_from_slice(&from[..n]);
            done += n;
        }
        true
    }

    /// The receiver acknowledged `[start, end)`: blocks wholly below the acknowledged prefix
    /// are let go. (At most one island per packet in flight or awaiting a resend, so the set
    /// stays far below its bound while the sender holds at most its send buffer.)
    pub(super) fn on_acked(&mut self, start: u64, end: u64) {
        let _ = self.acked.insert(start, end);
        self.release();
    }

    fn release(&mut self) {
        let acked = self.acked.contiguous();
        while let Some(block) = self.blocks.front() {
            let end = self.at + block.len() as u64;
            if end > acked || end > self.supplied {
                break;
            }
            self.at = end;
            if let Some(block) = self.blocks.pop_front()
                && self.spare.len() < SPARE_BLOCKS
            {
                self.spare.push(block);
            }
        }
    }

    /// A block let go of, to read the next one into.
    pub(super) fn spare(&mut self) -> Option<Vec<u8>> {
        self.spare.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Serves every read the buffer asks for, as if `sent` bytes had gone out.
    fn fill(buffer: &mut SendBuffer, data: &[u8], sent: u64) {
        while let Some(r) = buffer.next_read(sent) {
            let at = r.offset as usize;
            assert_eq!(
                buffer.supply(r.offset, data[at..at + r.len].to_vec()),
                Ok(())
            );
        }
    }

    #[test]
    fn reads_run_ahead_of_what_was_sent_by_a_bounded_amount() {
        let data = stream(10 * READ_BLOCK + 7);
        let mut buffer = SendBuffer::new(0, data.len() as u64, 16);
        fill(&mut buffer, &data, 0);
        assert_eq!(buffer.supplied(), READ_AHEAD);
        fill(&mut buffer, &data, READ_AHEAD + 1);
        assert_eq!(buffer.supplied(), 2 * READ_AHEAD + READ_BLOCK as u64);
        fill(&mut buffer, &data, data.len() as u64);
        assert_eq!(buffer.supplied(), data.len() as u64);
        assert_eq!(buffer.next_read(u64::MAX), None, "nothing past the end");
        assert_eq!(buffer.last_byte(), data.last().copied());
    }

    #[test]
    fn copies_across_blocks_and_lets_go_of_acknowledged_ones() {
        let data = stream(3 * READ_BLOCK + 100);
        let mut buffer = SendBuffer::new(0, data.len() as u64, 16);
        fill(&mut buffer, &data, data.len() as u64);
        let mut out = vec![0u8; 3000];
        let at = READ_BLOCK as u64 - 1000;
        assert!(buffer.copy(at, &mut out));
        assert_eq!(out[..], data[at as usize..at as usize + 3000]);
        // An island beyond the prefix frees nothing; filling the hole frees the first block.
        buffer.on_acked(10, READ_BLOCK as u64 + 5);
        assert_eq!(buffer.held(), data.len() as u64);
        buffer.on_acked(0, 10);
        assert_eq!(buffer.held(), data.len() as u64 - READ_BLOCK as u64);
        assert!(!buffer.copy(0, &mut out), "let go of");
        assert_eq!(
            buffer.spare().map(|b| b.len()),
            Some(READ_BLOCK),
            "kept to read into"
        );
        assert_eq!(buffer.spare(), None);
        assert!(buffer.copy(at + 1000, &mut out));
        assert_eq!(out[..], data[READ_BLOCK..READ_BLOCK + 3000]);
        let mut beyond = [0u8; 2];
        assert!(
            !buffer.copy(data.len() as u64 - 1, &mut beyond),
            "past the end"
        );
    }

    #[test]
    fn refuses_what_it_did_not_ask_for() {
        let data = stream(2 * READ_BLOCK);
        let mut buffer = SendBuffer::new(0, data.len() as u64, 16);
        assert_eq!(
            buffer.supply(0, vec![0; READ_BLOCK]),
            Err(NotAsked),
            "not asked yet"
        );
        let r = buffer.next_read(0).unwrap();
        assert_eq!(
            buffer.supply(r.offset, vec![0; r.len - 1]),
            Err(NotAsked),
            "short"
        );
        assert_eq!(
            buffer.supply(r.offset + 1, vec![0; r.len]),
            Err(NotAsked),
            "elsewhere"
        );
        assert_eq!(buffer.supply(r.offset, vec![0; r.len]), Ok(()));
        assert_eq!(
            buffer.supply(r.offset, vec![0; r.len]),
            Err(NotAsked),
            "twice"
        );
    }

    #[test]
    fn a_flow_that_starts_at_the_end_asks_for_the_last_byte_only() {
        let mut buffer = SendBuffer::new(500, 500, 16);
        let r = buffer.next_read(500).unwrap();
        assert_eq!((r.offset, r.len), (499, 1));
        assert_eq!(buffer.supply(499, vec![42]), Ok(()));
        assert_eq!(buffer.last_byte(), Some(42));
        assert_eq!(buffer.next_read(500), None);
        let mut empty = SendBuffer::new(0, 0, 16);
        assert_eq!(empty.next_read(0), None);
        assert_eq!(empty.last_byte(), None);
    }

    #[test]
    fn a_resumed_flow_reads_from_where_it_resumes() {
        let data = stream(READ_BLOCK + 200);
        let mut buffer = SendBuffer::new(123, data.len() as u64, 16);
        let r = buffer.next_read(123).unwrap();
        assert_eq!((r.offset, r.len), (123, READ_BLOCK));
        assert_eq!(
            buffer.supply(123, data[123..123 + READ_BLOCK].to_vec()),
            Ok(())
        );
        let mut out = [0u8; 10];
        assert!(!buffer.copy(100, &mut out), "before the start");
        assert!(buffer.copy(123, &mut out));
        assert_eq!(out[..], data[123..133]);
    }
}
