//! The driver's UDP socket: many datagrams per system call where Linux allows it.
//!
//! Sending, consecutive datagrams of one size go out in one `sendmsg` with `UDP_SEGMENT`
//! (generic segmentation offload: the kernel, or the network card, cuts them apart).
//! Receiving, `UDP_GRO` lets the kernel hand over a run of datagrams of one size from one peer
//! in one `recvmsg`. At 1452-byte datagrams this replaces some forty system calls, and as many
//! wake-ups, with one. Where either is missing (another OS, an old kernel, a device that
//! refuses), datagrams go one per call, unchanged on the wire.
//!
//! A socket bound to a wildcard address (`0.0.0.0`, `[::]`) can be asked to answer from the
//! address each peer wrote to ([`Socket::answering`]): the kernel says where a datagram was
//! sent (`IP_PKTINFO`, `IPV6_PKTINFO`, in the same `recvmsg`) and our sends name that address
//! as their source (in the same `sendmsg`). Otherwise the kernel picks the source by its routes,
//! and a client that wrote to 127.0.0.2 or to one of a host's several addresses would get its
//! answers from another address, and drop them.

use std::io;
use std::net::{IpAddr, SocketAddr};
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

/// What one receive returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received {
    /// Bytes that arrived.
    pub(crate) len: usize,
    /// The size of each datagram in them (all but the last are that size).
    pub(crate) segment: usize,
    /// Who sent them.
    pub(crate) from: SocketAddr,
    /// The address they were sent to, on a socket made with [`Socket::answering`] that is bound
    /// to a wildcard address (elsewhere the socket's own address is the only one, and `None`).
    pub(crate) to: Option<IpAddr>,
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

    /// As [`Socket::new`], for a socket that answers whoever writes to it: if it is bound to a
    /// wildcard address, every receive also says which of our addresses the datagrams were
    /// sent to ([`Received::to`]), so that the answers can leave from it.
    pub(crate) fn answering(io: &'a UdpSocket) -> Self {
        if io.local_addr().is_ok_and(|a| a.ip().is_unspecified()) && !os::enable_pktinfo(io) {
            tracing::debug!("no destination addresses: answers leave from the kernel's choice");
        }
        Self::new(io)
    }

    /// Sends the datagrams of `batch` to `peer` (the one waiting to start the next batch
    /// stays), from our address `from` if given (one a receive said, see [`Received::to`]),
    /// else from the kernel's choice. A datagram the network refuses is dropped, as the network
    /// may drop any (loss recovery resends its data).
    pub(crate) async fn send(&mut self, batch: &mut Batch, peer: SocketAddr, from: Option<IpAddr>) {
        if batch.is_empty() {
            return;
        }
        let mut done = false;
        if self.gso && batch.count > 1 {
            let data = &batch.buf[..batch.len];
            match os::send(self.io, data, Some(batch.segment), peer, from).await {
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
                let sent = match from {
                    None => self.io.send_to(datagram, peer).await.map(drop),
                    Some(_) => os::send(self.io, datagram, None, peer, from).await,
                };
                if let Err(err) = sent {
                    tracing::debug!(%err, "send failed");
                    break;
                }
            }
        }
        batch.sent();
    }

    /// Waits for datagrams in `buf`.
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        os::recv(self.io, buf).await
    }

    /// As [`Socket::recv`], without waiting (`WouldBlock` when nothing is there).
    pub(crate) fn try_recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        os::try_recv(self.io, buf)
    }
}

/// Splits what one receive returned into its datagrams.
pub(crate) fn datagrams(buf: &[u8], segment: usize) -> impl Iterator<Item = &[u8]> {
    buf.chunks(segment.max(1))
}

/// Splits what one receive returned into its datagrams, to be opened in place.
pub(crate) fn datagrams_mut(buf: &mut [u8], segment: usize) -> impl Iterator<Item = &mut [u8]> {
    buf.chunks_mut(segment.max(1))
}

#[cfg(target_os = "linux")]
mod os {
    use super::Received;
    use nix::errno::Errno;
    use nix::libc;
    use nix::sys::socket::{
        ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, sendmsg,
        setsockopt, sockopt,
    };
    use std::io::{self, IoSlice, IoSliceMut};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;
    use tokio::io::Interest;
    use tokio::net::UdpSocket;

    /// Turns on receive coalescing; returns whether segmented sends are worth trying (the
    /// same kernels have both).
    pub(super) fn enable_gro(io: &UdpSocket) -> bool {
        setsockopt(io, sockopt::UdpGroSegment, &true).is_ok()
    }

    /// Asks for every datagram's destination address. An IPv6 socket gets it for the IPv4
    /// datagrams it takes too (as IPv4-mapped addresses).
    pub(super) fn enable_pktinfo(io: &UdpSocket) -> bool {
        match io.local_addr() {
            Ok(SocketAddr::V4(_)) => setsockopt(io, sockopt::Ipv4PacketInfo, &true).is_ok(),
            Ok(SocketAddr::V6(_)) => setsockopt(io, sockopt::Ipv6RecvPacketInfo, &true).is_ok(),
            Err(_) => false,
        }
    }

    /// Errors by which a kernel or a device says it cannot segment.
    pub(super) fn gso_unsupported(err: &io::Error) -> bool {
        [Errno::EIO, Errno::EINVAL, Errno::ENOPROTOOPT]
            .iter()
            .any(|&e| err.raw_os_error() == Some(e as i32))
    }

    /// The source-address message for a send from `ip` on a socket of `peer`'s family (an
    /// IPv6 socket sends to IPv4 peers with IPv4-mapped addresses, and takes them as sources).
    enum Source {
        V4(libc::in_pktinfo),
        V6(libc::in6_pktinfo),
    }

    fn source(peer: SocketAddr, ip: IpAddr) -> Source {
        match (peer, ip) {
            (SocketAddr::V4(_), IpAddr::V4(v4)) => Source::V4(libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(v4).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            }),
            (_, ip) => {
                let v6 = match ip {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                    IpAddr::V6(v6) => v6,
                };
                Source::V6(libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: v6.octets(),
                    },
                    ipi6_ifindex: 0,
                })
            }
        }
    }

    /// One `sendmsg` to `peer`: `data` as one datagram, or cut into datagrams of `segment`
    /// bytes by the kernel; from `from` if given.
    pub(super) async fn send(
        io: &UdpSocket,
        data: &[u8],
        segment: Option<usize>,
        peer: SocketAddr,
        from: Option<IpAddr>,
    ) -> io::Result<()> {
        let segment = segment
            .map(u16::try_from)
            .transpose()
            .map_err(io::Error::other)?;
        let to = SockaddrStorage::from(peer);
        let from = from.map(|ip| source(peer, ip));
        let fd = io.as_raw_fd();
        let gso = segment.as_ref().map(ControlMessage::UdpGsoSegments);
        let src = from.as_ref().map(|from| match from {
            Source::V4(info) => ControlMessage::Ipv4PacketInfo(info),
            Source::V6(info) => ControlMessage::Ipv6PacketInfo(info),
        });
        // On the stack: this is every send of a transfer.
        let (cmsg, n) = match (gso, src) {
            (Some(a), Some(b)) => ([a, b], 2),
            (Some(a), None) | (None, Some(a)) => ([a, a], 1),
            (None, None) => return io.send_to(data, peer).await.map(drop),
        };
        io.async_io(Interest::WRITABLE, || {
            let iov = [IoSlice::new(data)];
            sendmsg(fd, &iov, &cmsg[..n], MsgFlags::empty(), Some(&to))
                .map(drop)
                .map_err(io::Error::from)
        })
        .await
    }

    fn recv_now(fd: i32, buf: &mut [u8]) -> io::Result<Received> {
        let mut cmsg = nix::cmsg_space!(i32, libc::in6_pktinfo);
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
            .map_err(io::Error::from)?;
        let len = msg.bytes;
        let mut segment = len;
        let mut to = None;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            match c {
                ControlMessageOwned::UdpGroSegments(size) => {
                    segment = usize::try_from(size).unwrap_or(len).max(1);
                }
                // Our address for this peer: `ipi_spec_dst`, which is the destination unless
                // that was a broadcast (then it is the receiving interface's address). The
                // kernel fills it in only for datagrams that arrived after the option was set
                // (a HELLO may come before `serve` starts); for those, the destination in the
                // header has to do.
                ControlMessageOwned::Ipv4PacketInfo(info) => {
                    let v4 = |a: libc::in_addr| Ipv4Addr::from(u32::from_be(a.s_addr));
                    let (spec, dst) = (v4(info.ipi_spec_dst), v4(info.ipi_addr));
                    to = if !spec.is_unspecified() {
                        Some(IpAddr::V4(spec))
                    } else {
                        let unicast =
                            !(dst.is_unspecified() || dst.is_broadcast() || dst.is_multicast());
                        unicast.then_some(IpAddr::V4(dst))
                    };
                }
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    let ip = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                    // A multicast destination cannot be a source: leave it to the kernel.
                    to = (!ip.is_multicast()).then(|| match ip.to_ipv4_mapped() {
                        Some(v4) => IpAddr::V4(v4),
                        None => IpAddr::V6(ip),
                    });
                }
                _ => {}
            }
        }
        let from = msg
            .address
            .as_ref()
            .and_then(to_std)
            .ok_or_else(|| io::Error::other("a datagram without a sender address"))?;
        Ok(Received {
            len,
            segment,
            from,
            to,
        })
    }

    fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
        if let Some(v4) = addr.as_sockaddr_in() {
            return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
        }
        addr.as_sockaddr_in6()
            .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
    }

    pub(super) async fn recv(io: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
        let fd = io.as_raw_fd();
        io.async_io(Interest::READABLE, || recv_now(fd, buf)).await
    }

    pub(super) fn try_recv(io: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
        let fd = io.as_raw_fd();
        io.try_io(Interest::READABLE, || recv_now(fd, buf))
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use super::Received;
    use std::io;
    use std::net::{IpAddr, SocketAddr};
    use tokio::net::UdpSocket;

    pub(super) fn enable_gro(_io: &UdpSocket) -> bool {
        false
    }

    pub(super) fn enable_pktinfo(_io: &UdpSocket) -> bool {
        false
    }

    pub(super) fn gso_unsupported(_err: &io::Error) -> bool {
        true
    }

    /// One datagram; never asked for a source here (no receive gives one).
    pub(super) async fn send(
        io: &UdpSocket,
        data: &[u8],
        segment: Option<usize>,
        peer: SocketAddr,
        _from: Option<IpAddr>,
    ) -> io::Result<()> {
        if segment.is_some() {
            return Err(io::ErrorKind::Unsupported.into());
        }
        io.send_to(data, peer).await.map(drop)
    }

    pub(super) async fn recv(io: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
        let (len, from) = io.recv_from(buf).await?;
        Ok(Received {
            len,
            segment: len,
            from,
            to: None,
        })
    }

    pub(super) fn try_recv(io: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
        let (len, from) = io.try_recv_from(buf)?;
        Ok(Received {
            len,
            segment: len,
            from,
            to: None,
        })
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
        tx.send(&mut batch, to, None).await;
        let mut got = Vec::new();
        let mut buf = vec![0u8; RECV_BUFFER];
        while got.len() < 10 {
            let r = rx.recv(&mut buf).await.unwrap();
            assert_eq!(r.from, a.local_addr().unwrap());
            got.extend(datagrams(&buf[..r.len], r.segment).map(<[u8]>::to_vec));
        }
        for (i, datagram) in got.iter().enumerate() {
            let size = if i == 9 { 100 } else { 1452 };
            assert_eq!(datagram, &vec![i as u8; size], "datagram {i}");
        }
    }

    /// A socket bound to `wildcard` gets a datagram that `client` sent to `dest` (at the
    /// socket's port), then answers with one datagram and with a segmented batch: every answer
    /// must come from `dest`.
    async fn answers_come_from(wildcard: &str, client: &str, dest: std::net::IpAddr) {
        let server = UdpSocket::bind(wildcard).await.unwrap();
        let port = server.local_addr().unwrap().port();
        let client = UdpSocket::bind(client).await.unwrap();
        let to = SocketAddr::new(dest, port);
        client.send_to(b"hello", to).await.unwrap();
        let mut io = Socket::answering(&server);
        let mut buf = vec![0u8; RECV_BUFFER];
        let r = io.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..r.len], b"hello");
        assert_eq!(r.to, Some(dest), "where the datagram was sent");
        let mut batch = Batch::new(1452);
        put(&mut batch, 100, 1);
        io.send(&mut batch, r.from, r.to).await;
        for i in 0..5 {
            put(&mut batch, 1452, i);
        }
        io.send(&mut batch, r.from, r.to).await;
        for _ in 0..6 {
            let (_, from) = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                client.recv_from(&mut buf),
            )
            .await
            .expect("no answer")
            .unwrap();
            assert_eq!(from, to, "an answer came from another address");
        }
    }

    #[tokio::test]
    async fn on_a_wildcard_bind_answers_come_from_the_address_the_peer_wrote_to() {
        let dest = std::net::IpAddr::from([127, 0, 0, 2]);
        answers_come_from("0.0.0.0:0", "127.0.0.1:0", dest).await;
    }

    #[tokio::test]
    async fn on_an_ipv6_wildcard_bind_answers_come_from_the_address_the_peer_wrote_to() {
        if std::net::UdpSocket::bind("[::1]:0").is_err() {
            eprintln!("no IPv6 loopback on this machine: test skipped");
            return;
        }
        answers_come_from("[::]:0", "[::1]:0", std::net::Ipv6Addr::LOCALHOST.into()).await;
        // IPv4 peers of a dual-stack socket, too.
        let dest = std::net::IpAddr::from([127, 0, 0, 2]);
        answers_come_from("[::]:0", "127.0.0.1:0", dest).await;
    }

    #[tokio::test]
    async fn a_socket_bound_to_one_address_needs_no_destination() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client
            .send_to(b"x", server.local_addr().unwrap())
            .await
            .unwrap();
        let io = Socket::answering(&server);
        let mut buf = vec![0u8; RECV_BUFFER];
        assert_eq!(io.recv(&mut buf).await.unwrap().to, None);
    }
}
