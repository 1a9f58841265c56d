//! The packet decoder and both endpoints take arbitrary bytes from the network without
//! panicking, and refuse packets of other connections, other versions and bad tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use std::time::Instant;
use transport::packet::{self, DecodeError, Frame, Packet, VERSION};
use transport::{Config, Event, Receiver, Sender};

const TOKEN: [u8; 16] = [0x5a; 16];

fn encode(conn_id: u64, pn: u64, frame: Frame<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let n = packet::encode(&Packet { conn_id, pn, frame }, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn hello(conn_id: u64, token: [u8; 16]) -> Vec<u8> {
    encode(
        conn_id,
        0,
        Frame::Hello {
            token,
            offset: 0,
            max_offset: 1 << 30,
            max_datagram: 1452,
        },
    )
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
        let mut bytes = encode(1, 2, frame);
        let len = bytes.len();
        bytes[pos % len] = byte;
        bytes.truncate(len - cut.min(len));
        let _ = packet::decode(&bytes);
    }

    #[test]
    fn endpoints_survive_arbitrary_datagrams(
        datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1500), 1..50),
    ) {
        let now = Instant::now();
        let mut sender = Sender::accept(now, &hello(9, TOKEN), &TOKEN, vec![1u8; 5000], Config::default()).unwrap();
        let mut receiver = Receiver::new(now, 9, TOKEN, 0, Vec::new(), Config::default());
        let mut buf = vec![0u8; 2048];
        for d in &datagrams {
            sender.handle_datagram(now, d);
            receiver.handle_datagram(now, d);
            while sender.poll_transmit(now, &mut buf).is_some() {}
            while receiver.poll_transmit(now, &mut buf).is_some() {}
        }
    }

    #[test]
    fn a_hello_with_another_token_gets_no_connection(token in any::<[u8; 16]>(), conn_id in any::<u64>()) {
        prop_assume!(token != TOKEN);
        let accepted = Sender::accept(Instant::now(), &hello(conn_id, token), &TOKEN, Vec::<u8>::new(), Config::default());
        prop_assert!(accepted.is_err());
    }

    #[test]
    fn packets_of_another_connection_are_ignored(other in any::<u64>()) {
        prop_assume!(other != 9);
        let now = Instant::now();
        let mut receiver = Receiver::new(now, 9, TOKEN, 0, Vec::new(), Config::default());
        receiver.handle_datagram(now, &encode(other, 0, Frame::HelloAck { total: 3, offset: 0 }));
        receiver.handle_datagram(now, &encode(other, 1, Frame::Data { offset: 0, payload: b"abc" }));
        receiver.handle_datagram(now, &encode(other, 2, Frame::Abort { reason: 1 }));
        prop_assert_eq!(receiver.poll_event(), None);
        prop_assert_eq!(receiver.contiguous(), 0);
    }

    #[test]
    fn other_versions_are_refused(version in any::<u8>()) {
        prop_assume!(version != VERSION);
        let mut bytes = hello(1, TOKEN);
        bytes[0] = version;
        prop_assert_eq!(packet::decode(&bytes), Err(DecodeError::Version(version)));
        prop_assert!(Sender::accept(Instant::now(), &bytes, &TOKEN, Vec::<u8>::new(), Config::default()).is_err());
    }
}

#[test]
fn only_a_hello_with_the_token_opens_a_connection_and_the_answer_is_tiny() {
    let now = Instant::now();
    let data = encode(
        1,
        0,
        Frame::Data {
            offset: 0,
            payload: b"x",
        },
    );
    assert!(Sender::accept(now, &data, &TOKEN, vec![0u8; 10], Config::default()).is_err());
    let mut sender = Sender::accept(
        now,
        &hello(1, TOKEN),
        &TOKEN,
        vec![0u8; 1 << 20],
        Config::default(),
    )
    .unwrap();
    assert_eq!(
        sender.poll_event(),
        Some(Event::Connected {
            total: 1 << 20,
            offset: 0
        })
    );
    let mut buf = vec![0u8; 2048];
    let first = sender.poll_transmit(now, &mut buf).unwrap();
    let hello_len = hello(1, TOKEN).len();
    assert!(
        first <= hello_len,
        "the first answer ({first} B) is larger than the HELLO ({hello_len} B)"
    );
    assert!(matches!(
        packet::decode(&buf[..first]).unwrap().frame,
        Frame::HelloAck { .. }
    ));
}
