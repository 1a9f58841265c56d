//! Where the stream comes from and goes to: positional reads and writes, so no side ever holds
//! the whole stream. The state machines never call these: the application (or a simulator)
//! serves the sender's reads and stores the receiver's data through them.

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

/// The receiver's destination.
pub trait Sink {
    /// Writes `data` at `offset`. Data may arrive out of order. A sink may hold data back (to
    /// write it in larger pieces) until [`Sink::flush`].
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// Writes out whatever is held back. Data counts as stored (and the receiver may tell the
    /// sender that every byte arrived) only once it has been flushed.
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
