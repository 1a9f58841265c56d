//! The driver's UDP socket: many datagrams per system call where Linux allows it.
//!
//! Sending, consecutive datagrams of one size go out in one `sendmsg` with `UDP_SEGMENT`
//! (generic segmentation offload: the kernel, or the network card, cuts them apart).
//! Receiving, `UDP_GRO` lets the kernel hand over a run of datagrams of one size from one peer
//! in one `recvmsg`. At 1452-byte datagrams this replaces some forty system calls, and as many
//! wake-ups, with one. Where either is missing (another OS, an old kernel, a device that
//! refuses), datagrams go one per call, unchanged on the wire.

use std::io;
use std::net::SocketAddr;
use tokio::net::UdpSocket;

/// Most datagrams in one segmented send (the kernel's `UDP_MAX_SEGMENTS` is 64 or more).
const MAX_SEGMENTS: usize = 64;
/// Most bytes in one segmented send: an IP packet's 64 KiB, less headers, with room to spare.
const MAX_BATCH_BYTES: usize = 64_000;
/// Receive buffer: the largest datagram, or the most the kernel coalesces (64 KiB).
pub(crate) const RECV_BUFFER: usize = 1 << 16;

/// Datagrams waiting to be sent together: one size, except that the last may be shorter.
#[derive(Debug)]
pub(crate) struct Batch {
    buf: Vec<u8>,
    /// Bytes of datagrams in `buf`.
    len: usize,
    /// Size of every datagram but perhaps the last.
    segment: usize,
    count: usize,
    /// A shorter datagram ended the batch.
    closed: bool,
    /// A datagram written after the batch that could not join it (it is larger): it starts
    /// the next batch once this one is sent.
    overflow: Option<usize>,
}

impl Batch {
    /// Room for a full batch plus one datagram of up to `datagram` bytes.
    pub(crate) fn new(datagram: usize) -> Self {
        Self {
            buf: vec![0; MAX_BATCH_BYTES.max(datagram) + datagram],
            len: 0,
            segment: 0,
            count: 0,
            closed: false,
            overflow: None,
        }
    }

    /// Where the next datagram (of up to `datagram` bytes) is to be written, or `None` when
    /// the batch must be sent first.
    pub(crate) fn slot(&mut self, datagram: usize) -> Option<&mut [u8]> {
        let room = self.overflow.is_none()
            && (self.count == 0
                || (!self.closed
                    && self.count < MAX_SEGMENTS
                    && self.len + datagram <= MAX_BATCH_BYTES));
        room.then(|| &mut self.buf[self.len..self.len + datagram])
    }

    /// The datagram of `n` bytes just written into the slot joins the batch, or, if it is
    /// larger than the others, waits to start the next one.
    pub(crate) fn push(&mut self, n: usize) {
        if self.count > 0 && n > self.segment {
            self.overflow = Some(n);
            return;
        }
        if self.count == 0 {
            self.segment = n;
        } else if n < self.segment {
            self.closed = true;
        }
        self.len += n;
        self.count += 1;
    }

    /// The batch was sent: start the next one (with the datagram that did not fit, if any).
    fn sent(&mut self) {
        let overflow = self.overflow.take();
        let start = self.len;
        self.len = 0;
        self.segment = 0;
        self.count = 0;
        self.closed = false;
        if let Some(n) = overflow {
            self.buf.copy_within(start..start + n, 0);
            self.push(n);
        }
    }

    /// True when nothing waits to be sent.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The datagrams, each as its own slice.
    fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        datagrams(&self.buf[..self.len], self.segment)
    }
}

/// A UDP socket that sends [`Batch`]es and receives runs of datagrams.
pub(crate) struct Socket<'a> {
    io: &'a UdpSocket,
    /// Segmented sends work here (until the kernel says otherwise).
    gso: bool,
}

impl<'a> Socket<'a> {
    /// Wraps `io`, asking the kernel to coalesce what it receives.
    pub(crate) fn new(io: &'a UdpSocket) -> Self {
        let gso = os::enable_gro(io);
        Self { io, gso }
    }

    /// Sends the datagrams of `batch` to `peer` (the one waiting to start the next batch
    /// stays). A datagram the network refuses is dropped, as the network may drop any (loss
    /// recovery resends its data).
    pub(crate) async fn send(&mut self, batch: &mut Batch, peer: SocketAddr) {
        if batch.is_empty() {
            return;
        }
        let mut done = false;
        if self.gso && batch.count > 1 {
            match os::send_segmented(self.io, &batch.buf[..batch.len], batch.segment, peer).await {
                Ok(()) => done = true,
                Err(err) if os::gso_unsupported(&err) => {
                    tracing::debug!(%err, "segmentation offload refused; one datagram per call");
                    self.gso = false;
                }
                Err(err) => {
                    tracing::debug!(%err, "send failed");
                    done = true;
                }
            }
        }
        if !done {
            for datagram in batch.datagrams() {
                if let Err(err) = self.io.send_to(datagram, peer).await {
                    tracing::debug!(%err, "send failed");
                    break;
                }
            }
        }
        batch.sent();
    }

    /// Waits for datagrams: returns how many bytes arrived in `buf`, the size of each
    /// datagram in them (all but the last are that size) and who sent them.
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, usize, SocketAddr)> {
        os::recv(self.io, buf).await
    }

    /// As [`Socket::recv`], without waiting (`WouldBlock` when nothing is there).
    pub(crate) fn try_recv(&self, buf: &mut [u8]) -> io::Result<(usize, usize, SocketAddr)> {
        os::try_recv(self.io, buf)
    }
}

/// Splits what one receive returned into its datagrams.
pub(crate) fn datagrams(buf: &[u8], segment: usize) -> impl Iterator<Item = &[u8]> {
    buf.chunks(segment.max(1))
}

#[cfg(target_os = "linux")]
mod os {
    use nix::errno::Errno;
    use nix::sys::socket::{
        ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, sendmsg,
        setsockopt, sockopt,
    };
    use std::io::{self, IoSlice, IoSliceMut};
    use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;
    use tokio::io::Interest;
    use tokio::net::UdpSocket;

    /// Turns on receive coalescing; returns whether segmented sends are worth trying (the
    /// same kernels have both).
    pub(super) fn enable_gro(io: &UdpSocket) -> bool {
        setsockopt(io, sockopt::UdpGroSegment, &true).is_ok()
    }

    /// Errors by which a kernel or a device says it cannot segment.
    pub(super) fn gso_unsupported(err: &io::Error) -> bool {
        [Errno::EIO, Errno::EINVAL, Errno::ENOPROTOOPT]
            .iter()
            .any(|&e| err.raw_os_error() == Some(e as i32))
    }

    pub(super) async fn send_segmented(
        io: &UdpSocket,
        data: &[u8],
        segment: usize,
        peer: SocketAddr,
    ) -> io::Result<()> {
        let segment = u16::try_from(segment).map_err(io::Error::other)?;
        let to = SockaddrStorage::from(peer);
        let fd = io.as_raw_fd();
        io.async_io(Interest::WRITABLE, || {
            let iov = [IoSlice::new(data)];
            let cmsg = [ControlMessage::UdpGsoSegments(&segment)];
            sendmsg(fd, &iov, &cmsg, MsgFlags::empty(), Some(&to))
                .map(drop)
                .map_err(io::Error::from)
        })
        .await
    }

    fn recv_now(fd: i32, buf: &mut [u8]) -> io::Result<(usize, usize, SocketAddr)> {
        let mut cmsg = nix::cmsg_space!(i32);
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
            .map_err(io::Error::from)?;
        let len = msg.bytes;
        let mut segment = len;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::UdpGroSegments(size) = c {
                segment = usize::try_from(size).unwrap_or(len).max(1);
            }
        }
        let from = msg
            .address
            .as_ref()
            .and_then(to_std)
            .ok_or_else(|| io::Error::other("a datagram without a sender address"))?;
        Ok((len, segment, from))
    }

    fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
        if let Some(v4) = addr.as_sockaddr_in() {
            return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
        }
        addr.as_sockaddr_in6()
            .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
    }

    pub(super) async fn recv(
        io: &UdpSocket,
        buf: &mut [u8],
    ) -> io::Result<(usize, usize, SocketAddr)> {
        let fd = io.as_raw_fd();
        io.async_io(Interest::READABLE, || recv_now(fd, buf)).await
    }

    pub(super) fn try_recv(
        io: &UdpSocket,
        buf: &mut [u8],
    ) -> io::Result<(usize, usize, SocketAddr)> {
        let fd = io.as_raw_fd();
        io.try_io(Interest::READABLE, || recv_now(fd, buf))
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use std::io;
    use std::net::SocketAddr;
    use tokio::net::UdpSocket;

    pub(super) fn enable_gro(_io: &UdpSocket) -> bool {
        false
    }

    pub(super) fn gso_unsupported(_err: &io::Error) -> bool {
        true
    }

    pub(super) async fn send_segmented(
        _io: &UdpSocket,
        _data: &[u8],
        _segment: usize,
        _peer: SocketAddr,
    ) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(super) async fn recv(
        io: &UdpSocket,
        buf: &mut [u8],
    ) -> io::Result<(usize, usize, SocketAddr)> {
        let (n, from) = io.recv_from(buf).await?;
        Ok((n, n, from))
    }

    pub(super) fn try_recv(
        io: &UdpSocket,
        buf: &mut [u8],
    ) -> io::Result<(usize, usize, SocketAddr)> {
        let (n, from) = io.try_recv_from(buf)?;
        Ok((n, n, from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a datagram of `size` bytes of `fill` into the batch.
    fn put(batch: &mut Batch, size: usize, fill: u8) {
        batch.slot(1452).unwrap()[..size].fill(fill);
        batch.push(size);
    }

    fn contents(batch: &Batch) -> Vec<Vec<u8>> {
        batch.datagrams().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn equal_datagrams_share_a_batch_and_a_shorter_one_ends_it() {
        let mut batch = Batch::new(1452);
        for i in 0..3 {
            put(&mut batch, 1452, i);
        }
        put(&mut batch, 40, 7);
        assert!(
            batch.slot(1452).is_none(),
            "nothing may follow a shorter datagram"
        );
        let sizes: Vec<usize> = batch.datagrams().map(<[u8]>::len).collect();
        assert_eq!(sizes, [1452, 1452, 1452, 40]);
        batch.sent();
        assert!(batch.is_empty());
    }

    #[test]
    fn a_larger_datagram_waits_for_the_next_batch() {
        let mut batch = Batch::new(1452);
        put(&mut batch, 40, 1);
        put(&mut batch, 1000, 9);
        assert_eq!(
            contents(&batch),
            [vec![1u8; 40]],
            "larger than the first: not in it"
        );
        assert!(batch.slot(1452).is_none(), "the batch must go first");
        batch.sent();
        assert_eq!(contents(&batch), [vec![9u8; 1000]]);
        put(&mut batch, 1000, 3);
        assert_eq!(contents(&batch), [vec![9u8; 1000], vec![3u8; 1000]]);
    }

    #[test]
    fn a_batch_stops_at_the_segment_and_byte_limits() {
        let mut batch = Batch::new(1200);
        let mut n = 0;
        while let Some(slot) = batch.slot(1200) {
            slot.fill(0);
            batch.push(1200);
            n += 1;
        }
        assert_eq!(n, MAX_BATCH_BYTES / 1200);
        let mut big = Batch::new(65_507);
        assert!(
            big.slot(65_507).is_some(),
            "one datagram fits, however large"
        );
        big.push(65_507);
        assert!(big.slot(65_507).is_none());
    }

    #[tokio::test]
    async fn a_batch_arrives_as_separate_datagrams_of_the_right_sizes() {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = b.local_addr().unwrap();
        let mut tx = Socket::new(&a);
        let rx = Socket::new(&b);
        let mut batch = Batch::new(1452);
        for i in 0..10u8 {
            put(&mut batch, if i == 9 { 100 } else { 1452 }, i);
        }
        tx.send(&mut batch, to).await;
        let mut got = Vec::new();
        let mut buf = vec![0u8; RECV_BUFFER];
        while got.len() < 10 {
            let (n, segment, from) = rx.recv(&mut buf).await.unwrap();
            assert_eq!(from, a.local_addr().unwrap());
            got.extend(datagrams(&buf[..n], segment).map(<[u8]>::to_vec));
        }
        for (i, datagram) in got.iter().enumerate() {
            let size = if i == 9 { 100 } else { 1452 };
            assert_eq!(datagram, &vec![i as u8; size], "datagram {i}");
        }
    }
}
