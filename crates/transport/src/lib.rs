//! messenger's reliable UDP transport: the protocol of `transport-proto` (re-exported here
//! whole) run on tokio sockets by [`driver`], with batched UDP I/O (GSO and GRO) in `udp`.
//!
//! The protocol crate is sans-IO; everything that touches the outside world (sockets, the
//! clock, randomness, files) lives in this crate.
#![forbid(unsafe_code)]

pub mod driver;
mod udp;

pub use transport_proto::*;

/// A fresh, unguessable transfer secret (256 bits from the operating system's generator).
pub fn random_secret() -> Secret {
    Secret(rand::random())
}

/// A file as the stream a [`Sender`] serves: positional reads, so no side ever holds the whole
/// file.
#[derive(Debug)]
pub struct FileSource(pub std::fs::File);

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.0.metadata().map(|m| m.len()).unwrap_or(0)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match std::os::unix::fs::FileExt::read_at(
                &self.0,
                &mut buf[filled..],
                offset + filled as u64,
            ) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
}
