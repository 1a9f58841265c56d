//! The sender driven packet by packet, smoltcp style: what goes out after each ack or timer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};
use transport::packet::{self, Frame, Packet};
use transport::{Config, Event, Keys, Receiver, Secret, Sender, Suite};

const SECRET: Secret = Secret([1; 32]);
const CONN: u64 = 77;

/// A packet from the receiver of the transfer, sealed as it would seal it.
fn encode(pn: u64, frame: Frame<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let n = packet::encode(
        &Packet {
            conn_id: CONN,
            pn,
            frame,
        },
        &mut buf,
    )
    .unwrap();
    let n = Keys::for_receiver(&SECRET, Suite::Aes256Gcm)
        .seal(&mut buf, n)
        .unwrap();
    buf.truncate(n);
    buf
}

/// A packet from the sender, opened as its receiver would open it.
fn open(datagram: &[u8]) -> Vec<u8> {
    let mut datagram = datagram.to_vec();
    let n = Keys::for_receiver(&SECRET, Suite::Aes256Gcm)
        .open(&mut datagram)
        .expect("the sender's packet opens");
    datagram.truncate(n);
    datagram
}

/// The sender's keys for the transfer.
fn sender_keys() -> Keys {
    Keys::for_sender(&SECRET)
}

fn ack(pn: u64, ranges: &[(u64, u64)], max_offset: u64) -> Vec<u8> {
    encode(
        pn,
        Frame::Ack {
            ack_delay_us: 0,
            max_offset,
            ranges: ranges.to_vec(),
        },
    )
}

/// A sender of `len` bytes in 1200-byte datagrams whose HELLO_ACK (pn 0) is already acked at
/// `t0 + 10 ms`, with flow control up to `window`.
fn open_sender(t0: Instant, len: usize, window: u64) -> Sender {
    open_sender_with(t0, len, window, |_| {})
}

/// As [`open_sender`], with `tweak` applied to the sender's config.
fn open_sender_with(
    t0: Instant,
    len: usize,
    window: u64,
    tweak: impl FnOnce(&mut Config),
) -> Sender {
    let mut hello = encode(
        0,
        Frame::Hello {
            suite: Suite::Aes256Gcm.code(),
            offset: 0,
            max_offset: window,
            max_datagram: 1200,
        },
    );
    let mut config = Config {
        max_datagram: 1200,
        ..Config::default()
    };
    tweak(&mut config);
    let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let mut sender = Sender::accept(t0, &mut hello, sender_keys(), len as u64, config).unwrap();
    sender.read_from(&mut data.clone());
    let mut buf = vec![0u8; 2048];
    let n = sender.poll_transmit(t0, &mut buf).unwrap();
    let hello_ack = open(&buf[..n]);
    let hello_ack = packet::decode(&hello_ack).unwrap();
    assert!(matches!(hello_ack.frame, Frame::HelloAck { .. }));
    assert_eq!(
        sender.poll_transmit(t0, &mut buf),
        None,
        "nothing but HELLO_ACK before the ack"
    );
    sender.handle_datagram(
        t0 + Duration::from_millis(10),
        &mut ack(1, &[(0, 0)], window),
    );
    sender
}

/// Every data packet the sender may send at `now`: (packet number, offset).
fn drain(sender: &mut Sender, now: Instant) -> Vec<(u64, u64)> {
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::new();
    while let Some(n) = sender.poll_transmit(now, &mut buf) {
        if let Frame::Data { offset, .. } = packet::decode(&open(&buf[..n])).unwrap().frame {
            out.push((packet::decode(&open(&buf[..n])).unwrap().pn, offset));
        }
    }
    out
}

#[test]
fn lost_data_is_resent_under_a_new_packet_number() {
    let t0 = Instant::now();
    let mut sender = open_sender(t0, 4 * 1158, 1 << 20);
    let t1 = t0 + Duration::from_millis(10);
    let sent = drain(&mut sender, t1);
    assert_eq!(sent, vec![(1, 0), (2, 1158), (3, 2316), (4, 3474)]);
    // Packets 2, 3 and 4 arrive, 1 does not: three later packets acked, so 1 is lost.
    sender.handle_datagram(
        t1 + Duration::from_millis(10),
        &mut ack(2, &[(2, 4), (0, 0)], 1 << 20),
    );
    let resent = drain(&mut sender, t1 + Duration::from_millis(10));
    assert_eq!(resent, vec![(5, 0)], "offset 0 again, packet number 5");
    assert_eq!(sender.stats().packets_lost, 1);
    assert_eq!(sender.stats().packets_retransmitted, 1);
}

#[test]
fn a_packet_is_lost_after_nine_eighths_of_an_rtt_without_three_later_acks() {
    let t0 = Instant::now();
    let mut sender = open_sender(t0, 2 * 1158, 1 << 20);
    let t1 = t0 + Duration::from_millis(10);
    assert_eq!(drain(&mut sender, t1).len(), 2);
    // Only packet 2 is acked: 1 is not lost yet (one later packet), but a timer is set.
    let t2 = t1 + Duration::from_millis(10);
    sender.handle_datagram(t2, &mut ack(2, &[(2, 2), (0, 0)], 1 << 20));
    assert!(drain(&mut sender, t2).is_empty());
    let deadline = sender.poll_timeout().unwrap();
    assert!(deadline <= t1 + Duration::from_micros(11_250) + Duration::from_millis(1));
    sender.handle_timeout(deadline);
    assert_eq!(drain(&mut sender, deadline), vec![(3, 0)]);
}

#[test]
fn window_zero_stops_new_data_and_reopening_resumes() {
    let t0 = Instant::now();
    let mut sender = open_sender(t0, 10 * 1158, 2 * 1158);
    let t1 = t0 + Duration::from_millis(10);
    assert_eq!(
        drain(&mut sender, t1).len(),
        2,
        "flow control allows two packets"
    );
    // Acked, but the window stays where it is: a pause.
    sender.handle_datagram(
        t1 + Duration::from_millis(10),
        &mut ack(2, &[(1, 2), (0, 0)], 2 * 1158),
    );
    assert!(drain(&mut sender, t1 + Duration::from_millis(10)).is_empty());
    assert_eq!(
        sender
            .poll_timeout()
            .map(|t| t > t1 + Duration::from_secs(20)),
        Some(true),
        "only the idle timer is left"
    );
    // Reopened.
    sender.handle_datagram(
        t1 + Duration::from_secs(1),
        &mut ack(3, &[(1, 2), (0, 0)], 1 << 20),
    );
    assert!(!drain(&mut sender, t1 + Duration::from_secs(1)).is_empty());
}

#[test]
fn packets_of_another_connection_do_not_touch_the_receiver() {
    let t0 = Instant::now();
    let mut receiver = Receiver::new(t0, CONN, &SECRET, 0, Config::default());
    let mut buf = vec![0u8; 2048];
    let n = receiver.poll_transmit(t0, &mut buf).unwrap();
    let n = sender_keys().open(&mut buf[..n]).unwrap();
    assert!(matches!(
        packet::decode(&buf[..n]).unwrap().frame,
        Frame::Hello { offset: 0, .. }
    ));
    // As the sender would seal them: the receiver asked for the default suite.
    let mut keys = sender_keys();
    keys.set_suite(Config::default().suite);
    let mut sealed = |conn_id, pn| {
        let n = packet::encode(
            &Packet {
                conn_id,
                pn,
                frame: Frame::HelloAck {
                    total: 5,
                    offset: 0,
                },
            },
            &mut buf,
        )
        .unwrap();
        let n = keys.seal(&mut buf, n).unwrap();
        buf[..n].to_vec()
    };
    let mut other = sealed(CONN + 1, 0);
    let mut ours = sealed(CONN, 1);
    receiver.handle_datagram(t0, &mut other);
    assert_eq!(receiver.poll_event(), None);
    receiver.handle_datagram(t0, &mut ours);
    assert_eq!(
        receiver.poll_event(),
        Some(Event::Connected {
            total: 5,
            offset: 0
        })
    );
}

#[test]
fn only_an_ack_of_our_hello_ack_proves_the_address_and_forged_acks_move_nothing() {
    let t0 = Instant::now();
    let first = 1_000_000;
    let mut hello = encode(
        0,
        Frame::Hello {
            suite: Suite::Aes256Gcm.code(),
            offset: 0,
            max_offset: 1 << 20,
            max_datagram: 1200,
        },
    );
    let config = Config {
        max_datagram: 1200,
        first_packet_number: first,
        ..Config::default()
    };
    let mut sender = Sender::accept(t0, &mut hello, sender_keys(), 100_000, config).unwrap();
    sender.read_from(&mut vec![7u8; 100_000]);
    let mut buf = vec![0u8; 2048];
    let n = sender.poll_transmit(t0, &mut buf).unwrap();
    let hello_ack = open(&buf[..n]);
    let hello_ack = packet::decode(&hello_ack).unwrap();
    assert!(matches!(hello_ack.frame, Frame::HelloAck { .. }));
    assert_eq!(
        hello_ack.pn, first,
        "the first packet number is the configured one"
    );
    // Someone who forged the client's address never saw the HELLO_ACK: whatever they guess,
    // no data goes out.
    let t = t0 + Duration::from_millis(10);
    for guess in [
        vec![(0, 0)],
        vec![(0, u64::MAX)],
        vec![(first - 1, first)],
        vec![(first, first + 1)],
        vec![(first + 1, first + 5)],
    ] {
        sender.handle_datagram(t, &mut ack(1, &guess, 1 << 20));
        assert!(
            drain(&mut sender, t).is_empty(),
            "an ack of {guess:?} started the data"
        );
    }
    // The real client acks the HELLO_ACK it received: data flows, numbered after it.
    sender.handle_datagram(t, &mut ack(2, &[(first, first)], 1 << 20));
    let sent = drain(&mut sender, t);
    assert!(!sent.is_empty(), "the real ack did not start the data");
    assert!(sent.iter().all(|&(pn, _)| pn > first));
}

/// A HELLO asking for the stream from `offset`, offering datagrams of `max_datagram` bytes.
fn hello(offset: u64, max_datagram: u16) -> Vec<u8> {
    encode(
        0,
        Frame::Hello {
            suite: Suite::Aes256Gcm.code(),
            offset,
            max_offset: 1 << 20,
            max_datagram,
        },
    )
}

/// Every datagram the sender sends at `now`, whatever it carries, opened.
fn outgoing(sender: &mut Sender, now: Instant) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; sender.max_datagram()];
    std::iter::from_fn(|| sender.poll_transmit(now, &mut buf).map(|n| open(&buf[..n]))).collect()
}

fn frame(datagram: &[u8]) -> Frame<'_> {
    packet::decode(datagram).unwrap().frame
}

#[test]
fn before_its_hello_ack_is_acked_an_address_hears_nothing_but_the_hello_ack() {
    // Someone with a valid token forges a victim's address: HELLO, then PINGs and DONEs that
    // a sender would answer (a PING with a PING, a DONE with a larger CLOSE).
    let t0 = Instant::now();
    let first = 5_000;
    let config = Config {
        max_datagram: 1200,
        first_packet_number: first,
        ..Config::default()
    };
    let mut sender =
        Sender::accept(t0, &mut hello(0, 1200), sender_keys(), 10_000, config).unwrap();
    sender.read_from(&mut vec![9u8; 10_000]);
    let answer = outgoing(&mut sender, t0);
    assert_eq!(answer.len(), 1);
    assert!(matches!(frame(&answer[0]), Frame::HelloAck { .. }));
    let mut heard = 0;
    let mut t = t0;
    for pn in 1..=20 {
        t += Duration::from_millis(100);
        let mut probe = encode(
            pn,
            if pn % 2 == 0 {
                Frame::Ping
            } else {
                Frame::Done
            },
        );
        heard += probe.len();
        sender.handle_datagram(t, &mut probe);
        let sent = outgoing(&mut sender, t);
        assert!(
            sent.is_empty(),
            "answered {:?} with {:?}",
            frame(&probe),
            frame(&sent[0])
        );
    }
    assert!(heard > 0);
    // Nor do its timers send anything; the flow dies of silence, as nobody acked.
    while let Some(at) = sender.poll_timeout() {
        t = at.max(t);
        sender.handle_timeout(t);
        assert!(
            outgoing(&mut sender, t).is_empty(),
            "a timer sent to an unproven address"
        );
    }
    assert!(
        t <= t0 + Duration::from_secs(31),
        "PINGs and DONEs from an unproven address kept the flow alive"
    );
    let events: Vec<Event> = std::iter::from_fn(|| sender.poll_event()).collect();
    assert!(
        !events.iter().any(|e| matches!(e, Event::Finished { .. })),
        "an unproven DONE finished the transfer: {events:?}"
    );
}

#[test]
fn a_done_that_overtakes_the_ack_of_the_hello_ack_is_answered_once_the_address_is_proven() {
    // A receiver resuming at the very end sends DONE right after the HELLO_ACK, before its ack.
    let t0 = Instant::now();
    let first = 9_000;
    let config = Config {
        max_datagram: 1200,
        first_packet_number: first,
        ..Config::default()
    };
    let data = vec![1u8, 2, 3];
    let mut sender = Sender::accept(t0, &mut hello(3, 1200), sender_keys(), 3, config).unwrap();
    sender.read_from(&mut data.clone());
    assert_eq!(
        sender.poll_event(),
        Some(Event::Connected {
            total: 3,
            offset: 3
        })
    );
    assert_eq!(outgoing(&mut sender, t0).len(), 1, "the HELLO_ACK");
    let t1 = t0 + Duration::from_millis(1);
    sender.handle_datagram(t1, &mut encode(1, Frame::Done));
    assert!(outgoing(&mut sender, t1).is_empty());
    sender.handle_datagram(t1, &mut ack(2, &[(first, first)], 1 << 20));
    let sent = outgoing(&mut sender, t1);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        frame(&sent[0]),
        Frame::Close {
            total: 3,
            last_byte: Some(3)
        }
    );
    assert_eq!(
        sender.poll_event(),
        Some(Event::Finished {
            total: 3,
            last_byte: Some(3)
        })
    );
}

#[test]
fn a_hello_offering_datagrams_below_1200_bytes_is_refused() {
    let t0 = Instant::now();
    for size in [0, 1, 600, 1199] {
        let opened = Sender::accept(
            t0,
            &mut hello(0, size),
            sender_keys(),
            100,
            Config::default(),
        );
        assert!(
            opened.is_err(),
            "a HELLO offering {size}-byte datagrams opened a flow"
        );
    }
    let Ok(sender) = Sender::accept(
        t0,
        &mut hello(0, 1200),
        sender_keys(),
        100,
        Config::default(),
    ) else {
        panic!("the smallest legal HELLO was refused");
    };
    assert_eq!(sender.max_datagram(), 1200);
}

#[test]
fn a_receiver_paused_longer_than_max_pause_loses_its_flow_and_a_slow_one_does_not() {
    let max_pause = Duration::from_secs(1);
    let t0 = Instant::now();
    let tweak = |c: &mut Config| c.max_pause = Some(max_pause);
    let mut paused = open_sender_with(t0, 10 * 1158, 2 * 1158, tweak);
    let mut slow = open_sender_with(t0, 10 * 1158, 1158, tweak);
    let t1 = t0 + Duration::from_millis(10);
    assert_eq!(drain(&mut paused, t1).len(), 2);
    assert_eq!(drain(&mut slow, t1).len(), 1);
    // Everything sent is acked, and the window stays where it is: a pause.
    let t2 = t1 + Duration::from_millis(10);
    paused.handle_datagram(t2, &mut ack(2, &[(0, 2)], 2 * 1158));
    assert_eq!(paused.poll_timeout(), Some(t2 + max_pause));
    paused.handle_timeout(t2 + max_pause);
    let mut buf = vec![0u8; 2048];
    let n = paused.poll_transmit(t2 + max_pause, &mut buf).unwrap();
    assert_eq!(
        packet::decode(&open(&buf[..n])).unwrap().frame,
        Frame::Abort { reason: 6 }
    );
    let events: Vec<Event> = std::iter::from_fn(|| paused.poll_event()).collect();
    assert_eq!(
        events.last(),
        Some(&Event::Aborted {
            reason: transport::AbortReason::PauseTooLong,
            by_peer: false
        })
    );
    // A slow receiver acks at once but opens one more packet of window only every 900 ms:
    // paused each time for less than a second, never for a whole one.
    let mut now = t2;
    let mut ack_pn = 2;
    for sent in 1..8u64 {
        slow.handle_datagram(now, &mut ack(ack_pn, &[(0, sent)], sent * 1158));
        ack_pn += 1;
        now += Duration::from_millis(900);
        slow.handle_timeout(now);
        slow.handle_datagram(now, &mut ack(ack_pn, &[(0, sent)], (sent + 1) * 1158));
        ack_pn += 1;
        assert_eq!(drain(&mut slow, now).len(), 1, "after {sent}");
    }
    assert!(!slow.is_closed());
}

#[test]
fn a_receiver_that_dodges_the_pause_by_inches_or_by_never_acking_loses_its_flow() {
    let max_pause = Duration::from_secs(1);
    let t0 = Instant::now();
    let tweak = |c: &mut Config| c.max_pause = Some(max_pause);
    let t1 = t0 + Duration::from_millis(10);
    // Opens its window one byte at a time, every 900 ms.
    let mut inches = open_sender_with(t0, 10 * 1158, 1158, tweak);
    assert_eq!(drain(&mut inches, t1).len(), 1);
    let mut now = t1;
    let mut pn = 2;
    let mut window = 1158;
    while !inches.is_closed() && now < t1 + Duration::from_secs(10) {
        inches.handle_datagram(now, &mut ack(pn, &[(0, pn - 1)], window));
        drain(&mut inches, now);
        now += Duration::from_millis(900);
        inches.handle_timeout(now);
        pn += 1;
        window += 1;
    }
    assert!(inches.is_closed(), "a byte at a time kept the flow");
    assert!(
        now <= t1 + Duration::from_secs(3),
        "closed only at {:?}",
        now - t1
    );
    // Never acknowledges data, only pings now and then.
    let mut silent = open_sender_with(t0, 10 * 1158, 10 * 1158, tweak);
    assert!(!drain(&mut silent, t1).is_empty());
    let mut now = t1;
    for pn in 2..20u64 {
        now += Duration::from_millis(300);
        silent.handle_datagram(now, &mut encode(pn, Frame::Ping));
        silent.handle_timeout(now);
        drain(&mut silent, now);
    }
    assert!(silent.is_closed(), "pings without acks kept the flow");
}

#[test]
fn a_receiver_that_never_acknowledges_the_first_packet_makes_the_sender_hold_no_more_than_its_send_buffer()
 {
    // A hostile receiver acks everything but the first data packet (and every resend of it),
    // with an open window: each acked byte sits above a hole, so nothing may be let go.
    const MIB: u64 = 1 << 20;
    let len = 24 * MIB as usize;
    let mut data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let t0 = Instant::now();
    let mut sender = open_sender_with(t0, len, 1 << 40, |c| c.send_buffer = 2 * MIB);
    let (mut now, mut ack_pn, mut furthest, mut most_held) = (t0, 2, 0, 0);
    for _ in 0..3000 {
        now += Duration::from_millis(1);
        sender.handle_timeout(now);
        sender.read_from(&mut data);
        let sent = drain(&mut sender, now);
        furthest = sent
            .iter()
            .map(|&(_, o)| o)
            .max()
            .unwrap_or(0)
            .max(furthest);
        most_held = most_held.max(sender.held_bytes());
        // Newest first; the packets that carry offset 0 stay holes.
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for &(pn, offset) in sent.iter().rev() {
            if offset == 0 {
                continue;
            }
            match ranges.last_mut() {
                Some(r) if r.0 == pn + 1 => r.0 = pn,
                _ => ranges.push((pn, pn)),
            }
        }
        ranges.truncate(16);
        if !ranges.is_empty() {
            sender.handle_datagram(now, &mut ack(ack_pn, &ranges, 1 << 40));
            ack_pn += 1;
        }
    }
    assert!(
        furthest >= 2 * MIB - 1158,
        "the sender never reached its bound (sent up to {furthest})"
    );
    // The send buffer, plus what it reads ahead and the block it is in.
    assert!(most_held <= 7 * MIB, "held {most_held} bytes");
    assert!(
        furthest < 3 * MIB,
        "new data went past the bound: {furthest}"
    );
}
