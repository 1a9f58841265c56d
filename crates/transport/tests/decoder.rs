//! The packet decoder and both endpoints take arbitrary bytes from the network without
//! panicking, and refuse packets of other connections, other versions and other secrets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use std::time::Instant;
use transport::packet::{self, DecodeError, Frame, Packet, VERSION};
use transport::{Config, Event, Keys, Receiver, Secret, Sender, Suite};

const SECRET: Secret = Secret([0x5a; 32]);

fn plain(conn_id: u64, pn: u64, frame: Frame<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let n = packet::encode(&Packet { conn_id, pn, frame }, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// `frame` sealed by the sender of the transfer with `secret`.
fn from_sender(secret: &Secret, conn_id: u64, pn: u64, frame: Frame<'_>) -> Vec<u8> {
    let mut buf = plain(conn_id, pn, frame);
    let n = buf.len();
    buf.resize(n + transport::TAG_LEN, 0);
    let mut keys = Keys::for_sender(secret);
    keys.set_suite(Config::default().suite);
    keys.seal(&mut buf, n).unwrap();
    buf
}

/// The receiver's HELLO for the transfer with `secret`.
fn hello(conn_id: u64, secret: &Secret) -> Vec<u8> {
    let mut buf = plain(
        conn_id,
        0,
        Frame::Hello {
            suite: Suite::Aes256Gcm.code(),
            offset: 0,
            max_offset: 1 << 30,
            max_datagram: 1452,
        },
    );
    let n = buf.len();
    buf.resize(n + transport::TAG_LEN, 0);
    Keys::for_receiver(secret, Suite::Aes256Gcm)
        .seal(&mut buf, n)
        .unwrap();
    buf
}

fn accept(datagram: &[u8], mut source: Vec<u8>) -> Option<Sender> {
    let mut datagram = datagram.to_vec();
    let mut sender = Sender::accept(
        Instant::now(),
        &mut datagram,
        Keys::for_sender(&SECRET),
        source.len() as u64,
        Config::default(),
    )
    .ok()?;
    sender.read_from(&mut source);
    Some(sender)
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = packet::decode(&bytes);
    }

    #[test]
    fn decoding_mutated_valid_packets_never_panics(
        pos in 0usize..64, byte in any::<u8>(), cut in 0usize..64,
    ) {
        let frame = Frame::Ack { ack_delay_us: 9, max_offset: 77, ranges: vec![(10, 12), (3, 5)] };
        let mut bytes = plain(1, 2, frame);
        let len = bytes.len();
        bytes[pos % len] = byte;
        bytes.truncate(len - cut.min(len));
        let _ = packet::decode(&bytes);
    }

    #[test]
    fn opening_arbitrary_bytes_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut keys = Keys::for_receiver(&SECRET, Suite::Aes256Gcm);
        prop_assert!(keys.open(&mut bytes).is_err());
    }

    #[test]
    fn endpoints_survive_arbitrary_datagrams(
        datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1500), 1..50),
    ) {
        let now = Instant::now();
        let mut sender = accept(&hello(9, &SECRET), vec![1u8; 5000]).unwrap();
        let mut receiver = Receiver::new(now, 9, &SECRET, 0, Config::default());
        let mut buf = vec![0u8; 2048];
        for d in &datagrams {
            sender.handle_datagram(now, &mut d.clone());
            receiver.handle_datagram(now, &mut d.clone());
            while sender.poll_transmit(now, &mut buf).is_some() {}
            while receiver.poll_transmit(now, &mut buf).is_some() {}
        }
    }

    #[test]
    fn a_hello_with_another_secret_gets_no_connection(secret in any::<[u8; 32]>(), conn_id in any::<u64>()) {
        prop_assume!(secret != SECRET.0);
        prop_assert!(accept(&hello(conn_id, &Secret(secret)), Vec::new()).is_none());
    }

    #[test]
    fn packets_of_another_connection_are_ignored(other in any::<u64>()) {
        prop_assume!(other != 9);
        let now = Instant::now();
        let mut receiver = Receiver::new(now, 9, &SECRET, 0, Config::default());
        receiver.handle_datagram(now, &mut from_sender(&SECRET, other, 0, Frame::HelloAck { total: 3, offset: 0 }));
        receiver.handle_datagram(now, &mut from_sender(&SECRET, other, 1, Frame::Data { offset: 0, payload: b"abc" }));
        receiver.handle_datagram(now, &mut from_sender(&SECRET, other, 2, Frame::Abort { reason: 1 }));
        prop_assert_eq!(receiver.poll_event(), None);
        prop_assert_eq!(receiver.contiguous(), 0);
    }

    #[test]
    fn packets_sealed_with_another_secret_are_dropped_and_counted(secret in any::<[u8; 32]>()) {
        prop_assume!(secret != SECRET.0);
        let now = Instant::now();
        let mut receiver = Receiver::new(now, 9, &SECRET, 0, Config::default());
        let other = Secret(secret);
        receiver.handle_datagram(now, &mut from_sender(&other, 9, 0, Frame::HelloAck { total: 3, offset: 0 }));
        receiver.handle_datagram(now, &mut from_sender(&other, 9, 1, Frame::Abort { reason: 1 }));
        prop_assert_eq!(receiver.poll_event(), None);
        prop_assert_eq!(receiver.stats().packets_rejected, 2);
    }

    #[test]
    fn other_versions_are_refused(version in any::<u8>()) {
        prop_assume!(version != VERSION);
        let mut bytes = plain(1, 0, Frame::Ping);
        bytes[0] = version;
        prop_assert_eq!(packet::decode(&bytes), Err(DecodeError::Version(version)));
        let mut sealed = hello(1, &SECRET);
        sealed[0] = version;
        prop_assert!(accept(&sealed, Vec::new()).is_none());
    }
}

#[test]
fn only_a_hello_with_the_secret_opens_a_connection_and_the_answer_is_tiny() {
    let now = Instant::now();
    // Sealed with the right keys, but not a HELLO; a HELLO in clear.
    let data = from_sender(
        &SECRET,
        1,
        0,
        Frame::Data {
            offset: 0,
            payload: b"x",
        },
    );
    assert!(accept(&data, vec![0u8; 10]).is_none());
    let mut clear = plain(
        1,
        0,
        Frame::Hello {
            suite: 1,
            offset: 0,
            max_offset: 1 << 30,
            max_datagram: 1452,
        },
    );
    clear.extend_from_slice(&[0; transport::TAG_LEN]); // a tag of zeros, as if unprotected
    assert!(accept(&clear, vec![0u8; 10]).is_none());
    let mut sender = accept(&hello(1, &SECRET), vec![0u8; 1 << 20]).unwrap();
    assert_eq!(
        sender.poll_event(),
        Some(Event::Connected {
            total: 1 << 20,
            offset: 0
        })
    );
    let mut buf = vec![0u8; 2048];
    let first = sender.poll_transmit(now, &mut buf).unwrap();
    let hello_len = hello(1, &SECRET).len();
    assert!(
        first <= hello_len,
        "the first answer ({first} B) is larger than the HELLO ({hello_len} B)"
    );
    let mut keys = Keys::for_receiver(&SECRET, Suite::Aes256Gcm);
    let n = keys.open(&mut buf[..first]).unwrap();
    assert!(matches!(
        packet::decode(&buf[..n]).unwrap().frame,
        Frame::HelloAck { .. }
    ));
}
