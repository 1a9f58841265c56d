//! The receiver's unit tests.
use super::*;
use crate::packet::{self, Packet};

const SECRET: Secret = Secret([1; 32]);

/// `frame` as the sender of the transfer with [`SECRET`] would seal it.
fn packet(pn: u64, frame: Frame<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 65_536];
    let n = packet::encode(
        &Packet {
            conn_id: 9,
            pn,
            frame,
        },
        &mut buf,
    )
    .unwrap();
    let mut keys = Keys::for_sender(&SECRET);
    keys.set_suite(Config::default().suite);
    let n = keys.seal(&mut buf, n).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn the_handshake_times_the_round_trip_and_gaps_count_as_lost() {
    let t0 = Instant::now();
    let mut rx = Receiver::new(t0, 9, &SECRET, 0, Config::default());
    let mut buf = vec![0u8; 2048];
    assert!(rx.poll_transmit(t0, &mut buf).is_some(), "the HELLO");
    let t1 = t0 + Duration::from_millis(30);
    rx.handle_datagram(
        t1,
        &mut packet(
            0,
            Frame::HelloAck {
                total: 100,
                offset: 0,
            },
        ),
    );
    assert_eq!(rx.stats().min_rtt, Duration::from_millis(30));
    for pn in [1, 2, 4, 5, 8] {
        let offset = pn * 10;
        rx.handle_datagram(
            t1,
            &mut packet(
                pn,
                Frame::Data {
                    offset,
                    payload: &[7; 10],
                },
            ),
        );
    }
    assert_eq!(rx.stats().packets_lost, 3, "3, 6 and 7 never came");
    rx.handle_datagram(
        t1,
        &mut packet(
            6,
            Frame::Data {
                offset: 60,
                payload: &[7; 10],
            },
        ),
    );
    rx.handle_datagram(
        t1,
        &mut packet(
            6,
            Frame::Data {
                offset: 60,
                payload: &[7; 10],
            },
        ),
    );
    assert_eq!(
        rx.stats().packets_lost,
        2,
        "a late packet is not lost; a duplicate counts once"
    );
}

#[test]
fn data_beyond_the_window_is_never_written() {
    // Found by fuzzing (transport_receiver): a DATA packet far out before the HELLO_ACK
    // made the sink allocate up to there (a capacity-overflow panic or an out-of-memory
    // abort for a Vec, a huge sparse write for a file).
    let t0 = Instant::now();
    let config = Config {
        window: 10_000,
        ..Config::default()
    };
    let mut rx = Receiver::new(t0, 9, &SECRET, 0, config);
    let far = |pn, offset| {
        packet(
            pn,
            Frame::Data {
                offset,
                payload: &[7; 10],
            },
        )
    };
    rx.handle_datagram(t0, &mut far(1, u64::MAX - 100));
    rx.handle_datagram(t0, &mut far(2, 9_991));
    let mut sink = Vec::new();
    rx.write_to(t0, &mut sink).unwrap();
    assert!(sink.is_empty());
    rx.handle_datagram(t0, &mut far(3, 9_990));
    rx.write_to(t0, &mut sink).unwrap();
    assert_eq!(sink.len(), 10_000, "the window's last bytes are welcome");
}

#[test]
fn the_prefix_already_here_is_never_written_again() {
    let t0 = Instant::now();
    let mut rx = Receiver::new(t0, 9, &SECRET, 0, Config::default());
    let data = |pn, offset, byte| {
        packet(
            pn,
            Frame::Data {
                offset,
                payload: &[byte; 10],
            },
        )
    };
    rx.handle_datagram(t0, &mut data(1, 0, 1));
    // A resend straddling the prefix, with other bytes in it: only its new part lands.
    rx.handle_datagram(t0, &mut data(2, 5, 2));
    assert_eq!(rx.contiguous(), 15);
    let mut sink = Vec::new();
    rx.write_to(t0, &mut sink).unwrap();
    assert_eq!(sink[..], [[1u8; 10], [2; 10]].concat()[..15]);
}

#[test]
fn the_highest_packet_number_overflows_nothing() {
    // Found by libFuzzer (transport_receiver): after packet number u64::MAX, the next
    // packet overflowed `largest + 1` (a panic with overflow checks, a bogus loss count
    // without).
    let t0 = Instant::now();
    let mut rx = Receiver::new(t0, 9, &SECRET, 0, Config::default());
    for pn in [u64::MAX, 5, u64::MAX - 2, 0] {
        rx.handle_datagram(t0, &mut packet(pn, Frame::Ping));
    }
    assert_eq!(rx.stats().packets_lost, 0);
}

#[test]
fn a_sender_slicing_the_stream_into_islands_is_held_to_the_bound() {
    // The islands attack: one byte at every other offset. Past the bound the data is
    // dropped and its packet not acked; once the holes fill, the rest is welcome again.
    let t0 = Instant::now();
    let config = Config {
        max_islands: 1000,
        ..Config::default()
    };
    let mut rx = Receiver::new(t0, 9, &SECRET, 0, config);
    let byte = |pn: u64, offset: u64| {
        packet(
            pn,
            Frame::Data {
                offset,
                payload: &[7],
            },
        )
    };
    for i in 0..5000u64 {
        rx.handle_datagram(t0, &mut byte(i, 2 * i + 1));
    }
    assert_eq!(rx.written.islands(), 1000);
    assert_eq!(rx.received_bytes(), 1000);
    assert_eq!(rx.stats().islands_refused, 4000);
    // The refused packets are not acknowledged: the sender will send them again.
    let mut buf = vec![0u8; 65_536];
    let mut keys = Keys::for_sender(&SECRET);
    let ranges = std::iter::from_fn(|| rx.poll_transmit(t0, &mut buf).map(|n| buf[..n].to_vec()))
        .filter_map(|mut datagram| {
            let n = keys.open(&mut datagram).ok()?;
            datagram.truncate(n);
            Some(datagram)
        })
        .find_map(|datagram| match packet::decode(&datagram) {
            Ok(Packet {
                frame: Frame::Ack { ranges, .. },
                ..
            }) => Some(ranges),
            _ => None, // the HELLO
        })
        .expect("an ack");
    assert_eq!(ranges, vec![(0, 999)]);
    // Filling the holes merges everything into the prefix, and new data lands again.
    for i in 0..1000u64 {
        rx.handle_datagram(t0, &mut byte(5000 + i, 2 * i));
    }
    assert_eq!((rx.contiguous(), rx.written.islands()), (2000, 0));
    rx.handle_datagram(t0, &mut byte(6000, 4001));
    assert_eq!(rx.received_bytes(), 2001);
}

/// DATA packets carrying `payload` at each offset, from packet number `pn` on.
fn data_packets(pn: u64, offsets: impl IntoIterator<Item = u64>, payload: &[u8]) -> Vec<Vec<u8>> {
    offsets
        .into_iter()
        .enumerate()
        .map(|(i, offset)| packet(pn + i as u64, Frame::Data { offset, payload }))
        .collect()
}

/// The frames the receiver sends now, opened.
fn sent_frames(rx: &mut Receiver, now: Instant) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 65_536];
    let mut keys = Keys::for_sender(&SECRET);
    keys.set_suite(Config::default().suite);
    std::iter::from_fn(|| rx.poll_transmit(now, &mut buf).map(|n| buf[..n].to_vec()))
        .filter_map(|mut datagram| {
            let n = keys.open(&mut datagram).ok()?;
            datagram.truncate(n);
            Some(datagram)
        })
        .collect()
}

fn is_done(datagram: &[u8]) -> bool {
    matches!(
        packet::decode(datagram),
        Ok(Packet {
            frame: Frame::Done,
            ..
        })
    )
}

#[test]
fn every_byte_is_said_to_be_here_only_once_the_application_stored_it() {
    let t0 = Instant::now();
    let mut rx = Receiver::new(t0, 9, &SECRET, 0, Config::default());
    rx.handle_datagram(
        t0,
        &mut packet(
            0,
            Frame::HelloAck {
                total: 30,
                offset: 0,
            },
        ),
    );
    for mut d in data_packets(1, [0, 10, 20], &[5; 10]) {
        rx.handle_datagram(t0, &mut d);
    }
    assert_eq!(rx.contiguous(), 30);
    let t1 = t0 + Duration::from_millis(1);
    assert!(
        !sent_frames(&mut rx, t1).iter().any(|d| is_done(d)),
        "not taken yet"
    );
    let mut batch = Batch::new();
    rx.take_data(&mut batch);
    assert_eq!(batch.pieces().collect::<Vec<_>>(), [(0, &[5u8; 30][..])]);
    rx.stored(t1, 20);
    assert!(
        !sent_frames(&mut rx, t1).iter().any(|d| is_done(d)),
        "not all stored"
    );
    rx.stored(t1, 30);
    assert!(sent_frames(&mut rx, t1).iter().any(|d| is_done(d)));
}

#[test]
fn an_application_that_falls_behind_makes_data_wait_unacknowledged() {
    // The outbox is bounded: what does not fit is dropped unread and not acked, so the
    // sender resends it once the application has taken what it holds.
    let t0 = Instant::now();
    let mut rx = Receiver::new(t0, 9, &SECRET, 0, Config::default());
    let payload = vec![3u8; 60_000];
    let fit = (outbox::OUTBOX_BYTES / payload.len()) as u64;
    let offsets = (0..fit + 5).map(|i| i * payload.len() as u64);
    for mut d in data_packets(0, offsets, &payload) {
        rx.handle_datagram(t0, &mut d);
    }
    assert_eq!(rx.pending_data(), fit as usize * payload.len());
    assert_eq!(rx.stats().backlog_refused, 5);
    assert_eq!(rx.contiguous(), fit * payload.len() as u64);
    let mut batch = Batch::new();
    rx.take_data(&mut batch);
    assert_eq!(rx.pending_data(), 0);
    assert_eq!(rx.unstored(), batch.len() as u64);
    let mut d = packet(
        fit + 100,
        Frame::Data {
            offset: fit * payload.len() as u64,
            payload: &payload,
        },
    );
    rx.handle_datagram(t0, &mut d);
    assert_eq!(rx.pending_data(), payload.len(), "welcome again once taken");
}
