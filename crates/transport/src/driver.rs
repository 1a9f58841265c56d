//! The thin tokio layer: one UDP socket, the clock, and a state machine. The stream's file
//! work runs on blocking threads ([`crate::storage`]): the task only moves datagrams and
//! messages.

use crate::Refused;
use crate::packet;
use crate::storage::{Reader, Writer};
use crate::{AbortReason, Config, Event, Keys, Receiver, Secret, Sender, Sink, Source, Stats, udp};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Socket buffers we ask for: a fast link needs several MiB to ride out scheduling hiccups.
const SOCKET_BUFFER: usize = 8 * 1024 * 1024;
/// How often a transfer's sender traces its controller's state (when asked to).
const TRACE_EVERY: Duration = Duration::from_millis(20);
/// How often a fetch reports progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Asks the OS for large socket buffers (it may grant less).
pub fn tune_socket(socket: &UdpSocket) {
    let sock = socket2::SockRef::from(socket);
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
}

/// The datagram size to use towards `peer`: the largest on loopback, a safe one elsewhere.
/// (An IPv4 peer of an IPv6 socket comes IPv4-mapped, and may be on loopback too.)
pub fn datagram_size_for(peer: SocketAddr) -> usize {
    if peer.ip().to_canonical().is_loopback() {
        crate::MAX_DATAGRAM
    } else {
        crate::SAFE_DATAGRAM
    }
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The final event: finished or aborted.
    pub event: Event,
    /// Statistics at the end.
    pub stats: Stats,
}

fn aborted(reason: AbortReason) -> Outcome {
    Outcome {
        event: Event::Aborted {
            reason,
            by_peer: false,
        },
        stats: Stats::default(),
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Receives taken in one go before the loop sends again (so that a flood of datagrams cannot
/// keep a connection from sending and running its timers).
const MAX_RECEIVES: usize = 64;

/// Sends to `peer` (from our address `from`, if given), in batches, every datagram `poll`
/// writes into the slot it is given (of `datagram` bytes), until it has nothing more.
async fn transmit(
    io: &mut udp::Socket<'_>,
    batch: &mut udp::Batch,
    datagram: usize,
    (peer, from): (SocketAddr, Option<IpAddr>),
    mut poll: impl FnMut(&mut [u8]) -> Option<usize>,
) {
    loop {
        match batch.slot(datagram) {
            Some(slot) => match poll(slot) {
                Some(n) => batch.push(n),
                None => break,
            },
            None => io.send(batch, peer, from).await,
        }
    }
    while !batch.is_empty() {
        io.send(batch, peer, from).await;
    }
}

/// Hands `handle` every datagram from `peer`, with the time it was taken in: those of `first`
/// (a receive into `buf`), then what else is already waiting on the socket, up to
/// [`MAX_RECEIVES`] receives in all (the rest waits for the next call). Datagrams from
/// anyone else are dropped. The datagrams of one receive (a coalesced run) share one reading of
/// the clock: they arrived together.
fn deliver(
    io: &udp::Socket<'_>,
    buf: &mut [u8],
    first: std::io::Result<udp::Received>,
    peer: SocketAddr,
    mut handle: impl FnMut(std::time::Instant, &mut [u8]),
) {
    deliver_any(io, buf, first, |at, datagram, (from, _)| {
        if from == peer {
            handle(at, datagram);
        }
    });
}

/// As [`deliver`], for the datagrams from anyone, with where each came from and went to.
fn deliver_any(
    io: &udp::Socket<'_>,
    buf: &mut [u8],
    first: std::io::Result<udp::Received>,
    mut handle: impl FnMut(std::time::Instant, &mut [u8], (SocketAddr, Option<IpAddr>)),
) {
    let mut received = first;
    for taken in 1..=MAX_RECEIVES {
        let Ok(got) = received else {
            return;
        };
        let at = now();
        for datagram in udp::datagrams_mut(&mut buf[..got.len], got.segment) {
            handle(at, datagram, (got.from, got.to));
        }
        if taken == MAX_RECEIVES {
            return; // the rest stays on the socket for the next round
        }
        received = io.try_recv(buf);
    }
}

/// Serves `source` to the first peer whose HELLO opens with `secret` on `socket`, until the
/// transfer ends, `cancel` resolves, or nobody shows up within `config.idle_timeout`.
/// Everything goes to the peer from the address its HELLO was sent to, even on a socket bound
/// to a wildcard address. The source is read on a blocking thread, a few MiB ahead of what
/// is sent.
pub async fn serve<S: Source + Send + 'static>(
    socket: &UdpSocket,
    secret: &Secret,
    source: S,
    config: Config,
    cancel: impl std::future::Future<Output = ()>,
) -> Outcome {
    serve_counting(socket, secret, source, config, cancel, &AtomicU64::new(0)).await
}

/// As [`serve`], keeping `sent` at the stream bytes sent so far (retransmissions included).
pub async fn serve_counting<S: Source + Send + 'static>(
    socket: &UdpSocket,
    secret: &Secret,
    source: S,
    config: Config,
    cancel: impl std::future::Future<Output = ()>,
    sent: &AtomicU64,
) -> Outcome {
    let mut cancel = std::pin::pin!(cancel);
    let mut io = udp::Socket::answering(socket);
    let mut buf = vec![0u8; udp::RECV_BUFFER];
    let deadline = Instant::now() + config.idle_timeout;
    // Datagrams that did not open a connection (forged, replayed or another flow's).
    let mut rejected = 0u64;
    let total = source.len();
    let mut keys = Some(Keys::for_sender(secret));
    // Wait for a valid HELLO; everything else is dropped without a word.
    let (mut conn, mut path) = 'handshake: loop {
        let received = tokio::select! {
            r = io.recv(&mut buf) => r,
            () = tokio::time::sleep_until(deadline) => return aborted(AbortReason::IdleTimeout),
            () = &mut cancel => return aborted(AbortReason::Cancelled),
        };
        let Ok(udp::Received {
            len: n,
            segment,
            from: peer,
            to,
        }) = received
        else {
            continue;
        };
        let mut config = config.clone();
        config.max_datagram = config.max_datagram.min(datagram_size_for(peer));
        // Unguessable, and far from wrapping around in any transfer.
        config.first_packet_number = rand::random::<u64>() >> 2;
        for datagram in udp::datagrams_mut(&mut buf[..n], segment) {
            let Some(k) = keys.take() else {
                break;
            };
            match Sender::accept(now(), datagram, k, total, config.clone()) {
                Ok(conn) => break 'handshake (conn, (peer, to)),
                Err(Refused { keys: k }) => {
                    rejected += 1;
                    keys = Some(k);
                }
            }
        }
    };
    if rejected > 0 {
        tracing::debug!(rejected, "datagrams before the HELLO did not open");
    }
    let mut reader = Reader::spawn(source);
    let mut reading = true;
    let mut batch = udp::Batch::new(conn.max_datagram());
    let mut last = None;
    // RUST_LOG=transport::cc=trace: the controller's state every 20 ms.
    let trace = tracing::enabled!(target: "transport::cc", tracing::Level::TRACE);
    let trace_start = now();
    let mut trace_at = trace_start;
    let mut stopped = false;
    loop {
        let t = now();
        if trace && t >= trace_at {
            trace_at = t + TRACE_EVERY;
            let at = t.saturating_duration_since(trace_start).as_secs_f64();
            tracing::trace!(target: "transport::cc", "t={at:.3} {}", conn.trace_line());
        }
        let datagram = conn.max_datagram();
        transmit(&mut io, &mut batch, datagram, path, |slot| {
            conn.poll_transmit(t, slot)
        })
        .await;
        sent.store(conn.bytes_sent(), Ordering::Relaxed);
        reader.ask(&mut conn);
        while let Some(event) = conn.poll_event() {
            if matches!(event, Event::Finished { .. } | Event::Aborted { .. }) {
                last.get_or_insert(event);
            }
        }
        let Some(timeout) = conn.poll_timeout() else {
            break;
        };
        tokio::select! {
            r = io.recv(&mut buf) => {
                // Until the peer has acked our HELLO_ACK its address is not proven, and the
                // first HELLO may have been a copy raced in from elsewhere by someone on the
                // path: a HELLO from another address that opens (a replay does not) moves the
                // path there, so the real receiver's next HELLO wins it back. Nothing else
                // from another address is heard, ever: a copy of the receiver's ACK sent from
                // a victim's address must not prove that address and have data streamed at
                // it. Once proven, only the path's address is heard.
                deliver_any(&io, &mut buf, r, |at, d, came| {
                    if came.0 == path.0 {
                        conn.handle_datagram(at, d);
                    } else if !conn.is_address_proven() && packet::is_hello(d) {
                        let before = conn.stats().packets_received;
                        conn.handle_datagram(at, d);
                        if conn.stats().packets_received > before {
                            path = came;
                        }
                    }
                });
            }
            read = reader.recv(), if reading => {
                reading = read.is_some();
                reader.supply(&mut conn, read);
            }
            () = tokio::time::sleep_until(Instant::from_std(timeout)) => conn.handle_timeout(now()),
            // Once only: a finished `cancel` may not be polled again.
            () = &mut cancel, if !stopped => {
                stopped = true;
                conn.abort(AbortReason::Cancelled);
            }
        }
    }
    let mut stats = conn.stats();
    stats.packets_rejected += rejected;
    Outcome {
        event: last.unwrap_or(Event::Aborted {
            reason: AbortReason::Protocol,
            by_peer: false,
        }),
        stats,
    }
}

/// What the application wants of a running fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Move data.
    Run,
    /// Stop granting window; keep the flow alive cheaply.
    Pause,
    /// Give up.
    Cancel,
}

/// A fetch's progress, reported a few times a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Bytes arrived, in order or not.
    pub bytes: u64,
    /// Bytes from the start that have arrived.
    pub contiguous: u64,
    /// Length of the stream, once known.
    pub total: Option<u64>,
    /// Goodput over the last interval, bits per second.
    pub rate_bps: u64,
    /// Connection statistics.
    pub stats: Stats,
    /// True while the receiver is paused (by the control or at its pause point).
    pub paused: bool,
    /// True when this report says the pause point was just reached (the fetch paused itself).
    pub reached_pause_point: bool,
}

/// Where and how to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The sender's address.
    pub server: SocketAddr,
    /// The transfer's secret, as the application received it from the sender.
    pub secret: Secret,
    /// First byte wanted (the sink has those before it).
    pub offset: u64,
    /// Pause by itself once every byte below this offset is here.
    pub pause_at: Option<u64>,
    /// Transport settings.
    pub config: Config,
}

/// Hand the writer what has arrived once this much waits, even in the middle of a burst of
/// receives (the receiver's outbox holds twice as much).
const HANDOFF: usize = 2 * 1024 * 1024;
/// Between bursts, hand the writer what has arrived once this much waits (smaller pieces would
/// be gathered again before they are written: a copy more), ...
const HAND_EAGER: usize = 1024 * 1024;
/// ... or once the oldest of it has waited this long, or every byte has arrived.
const HAND_WITHIN: Duration = Duration::from_millis(5);

/// Receives a stream into `sink`, obeying `control` (applied whenever it changes), reporting on
/// `progress` a few times a second. Reports are dropped when the channel is full, except those
/// that change [`Progress::paused`]: every pause and resume is reported, in order with the
/// progress around it, by this one task (a second observer of `control` could see a resume
/// after the data it let through), and a pause only once what arrived is stored. The sink is
/// written on a blocking thread; the sender hears that every byte arrived only once all are
/// written and flushed. Returns how it ended and the sink.
pub async fn fetch<K: Sink + Send + 'static>(
    socket: &UdpSocket,
    opts: FetchOptions,
    sink: K,
    mut control: watch::Receiver<Control>,
    progress: Option<mpsc::Sender<Progress>>,
) -> (Outcome, K) {
    let mut store = Writer::spawn(sink);
    let FetchOptions {
        server,
        secret,
        offset,
        pause_at,
        mut config,
    } = opts;
    config.max_datagram = config.max_datagram.min(datagram_size_for(server));
    let conn_id: u64 = rand::random();
    let mut conn = Receiver::new(now(), conn_id, &secret, offset, config.clone());
    conn.set_pause_at(pause_at);
    let mut io = udp::Socket::new(socket);
    let mut buf = vec![0u8; udp::RECV_BUFFER];
    let datagram = config.datagram();
    let mut batch = udp::Batch::new(datagram);
    let mut last = None;
    let mut report_at = Instant::now() + PROGRESS_EVERY;
    let mut reported = (Instant::now(), conn.received_bytes());
    // The control is applied when it changes (and once at the start), never re-applied from
    // its value: a fetch that paused itself at its pause point stays paused until the
    // application changes the control, whatever it said before.
    let apply = |conn: &mut Receiver, state: Control| match state {
        Control::Run => conn.set_paused(now(), false),
        Control::Pause => conn.set_paused(now(), true),
        Control::Cancel => conn.abort(AbortReason::Cancelled),
    };
    let initial = *control.borrow_and_update();
    apply(&mut conn, initial);
    let mut reported_paused = false;
    // When what waits in the receiver's outbox must go to the writer at the latest.
    let mut hand_by: Option<Instant> = None;
    loop {
        if control.has_changed().unwrap_or(false) {
            let state = *control.borrow_and_update();
            apply(&mut conn, state);
        }
        if store.failed() {
            conn.sink_failed(); // the disk is full, say: no use receiving more
        }
        let complete = conn.total() == Some(conn.contiguous());
        // The writer's queue is full: wait for it (a timer would only spin).
        let mut blocked = false;
        if conn.pending_data() >= HAND_EAGER
            || complete
            || hand_by.is_some_and(|t| Instant::now() >= t)
        {
            blocked = !store.hand(&mut conn);
        }
        hand_by = match (conn.pending_data(), hand_by) {
            (0, _) => None,
            (_, Some(by)) => Some(by),
            (_, None) => Some(Instant::now() + HAND_WITHIN),
        };
        let t = now();
        transmit(&mut io, &mut batch, datagram, (server, None), |slot| {
            conn.poll_transmit(t, slot)
        })
        .await;
        let mut reached_pause_point = false;
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Finished { .. } | Event::Aborted { .. } => {
                    last.get_or_insert(event);
                }
                Event::PauseReached { .. } => reached_pause_point = true,
                Event::Connected { .. } => {}
            }
        }
        // Report when something moved (a paused transfer stays quiet), and always a pause or
        // resume.
        let moved = conn.received_bytes() != reported.1;
        let pause_changed = reached_pause_point || conn.is_paused() != reported_paused;
        if pause_changed && conn.is_paused() {
            // What arrived is on disk before anyone hears of the pause (a restart resumes
            // from it).
            store.settle(&mut conn, now).await;
        }
        if (pause_changed || (moved && Instant::now() >= report_at))
            && let Some(progress) = &progress
        {
            let (then, bytes_then) = reported;
            let bytes = conn.received_bytes();
            let secs = then.elapsed().as_secs_f64().max(1e-3);
            let rate_bps = ((bytes.saturating_sub(bytes_then)) as f64 * 8.0 / secs) as u64;
            let report = Progress {
                bytes,
                contiguous: conn.contiguous(),
                total: conn.total(),
                rate_bps,
                stats: conn.stats(),
                paused: conn.is_paused(),
                reached_pause_point,
            };
            if pause_changed {
                reported_paused = report.paused;
                let _ = progress.send(report).await;
            } else {
                let _ = progress.try_send(report);
            }
            reported = (Instant::now(), bytes);
            report_at = Instant::now() + PROGRESS_EVERY;
        }
        let Some(timeout) = conn.poll_timeout() else {
            break;
        };
        let mut wake = if moved {
            Instant::from_std(timeout).min(report_at)
        } else {
            Instant::from_std(timeout)
        };
        if let Some(by) = hand_by
            && !blocked
        {
            wake = wake.min(by);
        }
        tokio::select! {
            r = io.recv(&mut buf) => {
                deliver(&io, &mut buf, r, server, |at, d| {
                    conn.handle_datagram(at, d);
                    if conn.pending_data() >= HANDOFF {
                        let _ = store.hand(&mut conn); // if it cannot, the loop waits for it
                    }
                });
            }
            // What the writer did matters once every byte is here (the DONE waits for it; a
            // pause waits in `settle`) or when its queue is full: no wake for it otherwise.
            () = store.changed(), if complete || blocked => store.report(&mut conn, now()),
            () = tokio::time::sleep_until(wake) => conn.handle_timeout(now()),
            changed = control.changed() => {
                if changed.is_err() {
                    conn.abort(AbortReason::Cancelled); // nobody controls us any more
                } else {
                    // `changed()` marked the value seen: apply it at the top of the loop.
                    control.mark_changed();
                }
            }
        }
    }
    let (sink, stored) = store.finish(&mut conn).await;
    let stats = conn.stats();
    let event = match last {
        Some(Event::Finished { .. }) | None if !stored => Event::Aborted {
            reason: AbortReason::SinkFailed,
            by_peer: false,
        },
        Some(event) => event,
        None => Event::Aborted {
            reason: AbortReason::Protocol,
            by_peer: false,
        },
    };
    (Outcome { event, stats }, sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_flood_longer_than_one_round_of_receives_loses_no_datagram() {
        let ours = UdpSocket::bind("127.0.0.1:0").await;
        let theirs = UdpSocket::bind("127.0.0.1:0").await;
        let (Ok(ours), Ok(theirs)) = (ours, theirs) else {
            panic!("no loopback sockets");
        };
        let (Ok(our_addr), Ok(peer)) = (ours.local_addr(), theirs.local_addr()) else {
            panic!("no addresses");
        };
        let sent = 3 * MAX_RECEIVES + 5;
        for i in 0..sent {
            let n = theirs.send_to(&(i as u32).to_be_bytes(), our_addr).await;
            assert_eq!(n.ok(), Some(4), "datagram {i} not sent");
        }
        let io = udp::Socket::new(&ours);
        let mut buf = vec![0u8; udp::RECV_BUFFER];
        let mut seen = Vec::new();
        while seen.len() < sent {
            let first = tokio::time::timeout(Duration::from_secs(2), io.recv(&mut buf)).await;
            let Ok(first) = first else {
                break; // nothing more will come: the assertion below says what is missing
            };
            deliver(&io, &mut buf, first, peer, |_, d| {
                seen.push(u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
            });
        }
        let expected: Vec<u32> = (0..sent as u32).collect();
        assert_eq!(seen, expected);
    }
}
