//! Where the stream comes from and goes to: positional reads and writes, so no side ever holds
//! the whole stream.

use std::io;

/// The sender's data: a file, or anything readable at an offset.
pub trait Source {
    /// Length of the stream.
    fn len(&self) -> u64;
    /// True if the stream is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` from `offset`; returns how many bytes were read (short only at the end).
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

/// Reads a [`Source`] ahead in large blocks, so that small datagrams do not cost a system
/// call each (a 1452-byte datagram would otherwise be one `pread`). Reads of 16 KiB or more go
/// straight through: a 64 KiB datagram read through the block would be copied twice.
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    block: Vec<u8>,
    /// Offset of `block[0]` in the stream, and how many bytes of `block` are valid.
    at: u64,
    valid: usize,
}

/// Bytes [`ReadAhead`] reads at a time.
const READ_AHEAD: usize = 1 << 20;
/// Reads this large go straight to the source.
const DIRECT_READ: usize = 16 * 1024;

impl<S: Source> ReadAhead<S> {
    /// Wraps `inner`; the block is allocated on the first small read.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            block: Vec::new(),
            at: 0,
            valid: 0,
        }
    }
}

impl<S: Source> Source for ReadAhead<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if buf.len() >= DIRECT_READ {
            return self.inner.read_at(offset, buf);
        }
        let cached = offset >= self.at && offset + buf.len() as u64 <= self.at + self.valid as u64;
        if !cached {
            self.block.resize(READ_AHEAD, 0);
            self.valid = 0; // if the read fails, nothing is cached
            self.valid = self.inner.read_at(offset, &mut self.block)?;
            self.at = offset;
        }
        // Within the block by construction; short only at the stream's end.
        let start = usize::try_from(offset - self.at).map_err(io::Error::other)?;
        let n = buf.len().min(self.valid.saturating_sub(start));
        buf[..n].copy_from_slice(&self.block[start..start + n]);
        Ok(n)
    }
}

/// The receiver's destination.
pub trait Sink {
    /// Writes `data` at `offset`. Data may arrive out of order and more than once. A sink may
    /// hold data back (to write it in larger pieces) until [`Sink::flush`].
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// Writes out whatever is held back. The receiver calls it before it tells the sender
    /// that every byte arrived, and when it pauses.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.as_slice().len());
        let n = buf.len().min(self.as_slice().len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

impl Sink for Vec<u8> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start + data.len();
        if self.len() < end {
            self.resize(end, 0);
        }
        self[start..end].copy_from_slice(data);
        Ok(())
    }
}

impl<T: Sink + ?Sized> Sink for &mut T {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        (**self).write_at(offset, data)
    }

    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that counts the reads that reach it.
    struct Counting {
        data: Vec<u8>,
        reads: usize,
    }

    impl Source for Counting {
        fn len(&self) -> u64 {
            self.data.len() as u64
        }

        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            self.data.read_at(offset, buf)
        }
    }

    #[test]
    fn small_reads_come_from_large_blocks_and_match_the_source() {
        let data: Vec<u8> = (0..3 * READ_AHEAD + 500).map(|i| (i % 253) as u8).collect();
        let mut source = ReadAhead::new(Counting {
            data: data.clone(),
            reads: 0,
        });
        let mut buf = [0u8; 1400];
        let mut offset = 0;
        while offset < data.len() {
            let n = source.read_at(offset as u64, &mut buf).unwrap();
            assert_eq!(&buf[..n], &data[offset..offset + n], "at {offset}");
            assert!(
                n == 1400 || offset + n == data.len(),
                "short only at the end"
            );
            offset += n;
        }
        assert!(source.inner.reads <= 5, "{} reads", source.inner.reads);
        // Going back (a retransmission) reads again from there; past the end reads nothing.
        assert_eq!(source.read_at(10, &mut buf).unwrap(), 1400);
        assert_eq!(&buf[..], &data[10..1410]);
        assert_eq!(source.read_at(data.len() as u64, &mut buf).unwrap(), 0);
        // A large read goes straight through, even inside the block, and leaves the block be.
        assert_eq!(source.read_at(0, &mut buf).unwrap(), 1400);
        let (before, block_at) = (source.inner.reads, source.at);
        let mut big = vec![0u8; DIRECT_READ];
        assert_eq!(source.read_at(7, &mut big).unwrap(), big.len());
        assert_eq!(&big[..], &data[7..7 + big.len()]);
        assert_eq!(source.inner.reads, before + 1);
        assert_eq!(source.at, block_at);
        // ...so a small read within the block after it costs no read.
        assert_eq!(source.read_at(2000, &mut buf).unwrap(), 1400);
        assert_eq!(&buf[..], &data[2000..3400]);
        assert_eq!(source.inner.reads, before + 1);
    }
}
