//! The streams the simulator moves: generated from a seed, so a multi-gigabyte transfer needs no
//! memory, and every write is checked byte for byte against what the sender had.

use std::io;

/// Byte `i` of the stream generated from `seed`.
pub fn byte_at(seed: u64, i: u64) -> u8 {
    word(seed, i / 8)[(i % 8) as usize]
}

/// The eight bytes starting at `8 * index`.
fn word(seed: u64, index: u64) -> [u8; 8] {
    // One multiply and a shift: cheap, and any corruption or misplaced write still shows.
    let x = (seed ^ index).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x ^ (x >> 29)).to_le_bytes()
}

/// Fills `buf` with the pattern from `offset`, eight bytes at a time where aligned.
fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let head = ((8 - offset % 8) % 8).min(buf.len() as u64) as usize;
    let (first, rest) = buf.split_at_mut(head);
    for (i, b) in first.iter_mut().enumerate() {
        *b = byte_at(seed, offset + i as u64);
    }
    let base = (offset + head as u64) / 8;
    let mut chunks = rest.chunks_exact_mut(8);
    let mut index = base;
    for chunk in &mut chunks {
        chunk.copy_from_slice(&word(seed, index));
        index += 1;
    }
    let tail = word(seed, index);
    let rem = chunks.into_remainder();
    let n = rem.len();
    rem.copy_from_slice(&tail[..n]);
}

/// A stream of `len` bytes generated from `seed`.
#[derive(Debug, Clone, Copy)]
pub struct PatternSource {
    /// Generates the bytes.
    pub seed: u64,
    /// Length of the stream.
    pub len: u64,
}

impl transport::Source for PatternSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.len.saturating_sub(offset).min(buf.len() as u64) as usize;
        fill(self.seed, offset, &mut buf[..n]);
        Ok(n)
    }
}

/// A sink that compares every write with the pattern and counts what it got.
#[derive(Debug, Clone, Default)]
pub struct CheckingSink {
    /// Seed of the expected pattern.
    pub seed: u64,
    /// Bytes written (duplicates included).
    pub written: u64,
    /// Bytes that differed from the pattern.
    pub wrong: u64,
    /// Bytes written below this offset (a resumed transfer must never write there).
    pub below_start: u64,
    /// First offset the transfer asked for.
    pub start: u64,
}

impl transport::Sink for CheckingSink {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.written += data.len() as u64;
        self.below_start += self.start.saturating_sub(offset).min(data.len() as u64);
        // Compare in packet-sized pieces against a freshly generated copy.
        let mut expected = [0u8; 2048];
        for (i, piece) in data.chunks(expected.len()).enumerate() {
            let at = offset + (i * expected.len()) as u64;
            let want = &mut expected[..piece.len()];
            fill(self.seed, at, want);
            if piece != want {
                self.wrong += piece
                    .iter()
                    .zip(want.iter())
                    .filter(|(a, b)| a != b)
                    .count() as u64;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use transport::{Sink, Source};

    #[test]
    fn reads_at_any_offset_match_the_pattern_and_pass_the_check() {
        let mut source = PatternSource { seed: 3, len: 100 };
        let mut sink = CheckingSink {
            seed: 3,
            ..CheckingSink::default()
        };
        for offset in [0, 1, 7, 8, 13, 95] {
            let mut buf = [0u8; 10];
            let n = source.read_at(offset, &mut buf).unwrap();
            assert_eq!(n, 10.min(100 - offset as usize));
            for (i, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, byte_at(3, offset + i as u64));
            }
            sink.write_at(offset, &buf[..n]).unwrap();
        }
        assert_eq!(sink.wrong, 0);
        sink.write_at(5, &[byte_at(3, 5) ^ 1]).unwrap();
        assert_eq!(sink.wrong, 1);
    }
}
