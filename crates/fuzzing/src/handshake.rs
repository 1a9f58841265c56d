//! The decision that opens a UDP flow: [`transport::Sender::accept`], which the driver calls
//! on every datagram that reaches a transfer's port before the flow is open.

use crate::Input;
use crate::control::u64_from;
use crate::net::{TOKEN, stream};
use std::time::Instant;
use transport::packet::{self, Frame, HEADER_LEN, Packet};
use transport::{Config, Event, MIN_DATAGRAM, Sender};

/// Datagrams at a transfer's port before the flow is open.
///
/// The input picks the stream, the datagram size and a datagram: raw bytes, a HELLO built from
/// the input (with the right token or a nearly right one), or raw bytes with the token where a
/// HELLO carries it. Checks: a flow opens exactly for a well-formed HELLO with the token that
/// accepts datagrams of at least [`MIN_DATAGRAM`] bytes, and otherwise the source comes back
/// untouched; an opened flow announces the stream from where the HELLO asked (or its end),
/// answers with one HELLO_ACK no larger than the HELLO and then sends nothing, not even on its
/// timers, until the peer proves its address; its datagram size stays within what both sides
/// allow.
pub fn handshake(data: &[u8]) {
    let mut input = Input::new(data);
    let total = input.below(20_000);
    let source = stream(total, input.u8());
    let config = Config {
        max_datagram: match input.u8() % 4 {
            0 => 0,
            1 => transport::SAFE_DATAGRAM,
            2 => usize::from(input.u16()),
            _ => transport::MAX_DATAGRAM + 1,
        },
        ..Config::default()
    };
    let datagram = match input.u8() % 3 {
        0 => input.rest().to_vec(),
        1 => {
            let mut token = TOKEN;
            if input.u8() < 32 {
                // Nearly the token: one byte off.
                let at = input.below(16) as usize;
                token[at] ^= input.u8().max(1);
            }
            let hello = Packet {
                conn_id: input.u64(),
                pn: u64_from(&mut input),
                frame: Frame::Hello {
                    token,
                    offset: u64_from(&mut input),
                    max_offset: u64_from(&mut input),
                    max_datagram: input.u16(),
                },
            };
            let mut buf = vec![0u8; 64];
            let n = packet::encode(&hello, &mut buf).unwrap_or(0);
            buf.truncate(n);
            // Trailing bytes, or a cut.
            match input.u8() % 4 {
                0 => buf.extend_from_slice(input.rest()),
                1 => buf.truncate(input.below(n as u64 + 1) as usize),
                _ => {}
            }
            buf
        }
        _ => {
            let mut raw = input.rest().to_vec();
            if raw.len() >= HEADER_LEN + 16 {
                raw[HEADER_LEN..HEADER_LEN + 16].copy_from_slice(&TOKEN);
            }
            raw
        }
    };

    let hello = match packet::decode(&datagram) {
        Ok(Packet {
            conn_id,
            frame:
                Frame::Hello {
                    token,
                    offset,
                    max_datagram,
                    ..
                },
            ..
        }) if token == TOKEN && usize::from(max_datagram) >= MIN_DATAGRAM => {
            Some((conn_id, offset, max_datagram))
        }
        _ => None,
    };
    let now = Instant::now();
    let mut sender = match Sender::accept(now, &datagram, &TOKEN, source.clone(), config.clone()) {
        Err(back) => {
            assert!(
                hello.is_none(),
                "a HELLO with the token and a legal datagram size was refused"
            );
            assert!(back == source, "a refused datagram changed the source");
            return;
        }
        Ok(sender) => sender,
    };
    let Some((conn_id, offset, max_datagram)) = hello else {
        panic!("a flow opened without a HELLO carrying the token: {datagram:02x?}");
    };
    let start = offset.min(total);
    assert_eq!(
        sender.poll_event(),
        Some(Event::Connected {
            total,
            offset: start
        })
    );
    let size = sender.max_datagram();
    assert!(
        size >= MIN_DATAGRAM && size <= config.datagram() && size <= usize::from(max_datagram),
        "datagram size {size} for a peer accepting {max_datagram}"
    );

    let mut buf = vec![0u8; size];
    let Some(n) = sender.poll_transmit(now, &mut buf) else {
        panic!("no answer to a HELLO");
    };
    assert!(
        n <= datagram.len(),
        "{n}-byte answer to a {}-byte HELLO",
        datagram.len()
    );
    assert_eq!(
        packet::decode(&buf[..n]).map(|p| (p.conn_id, p.frame)),
        Ok((
            conn_id,
            Frame::HelloAck {
                total,
                offset: start
            }
        ))
    );
    // Nothing more until the peer answers: the timers run out into the idle timeout.
    let mut at = now;
    for _ in 0..8 {
        assert_eq!(
            sender.poll_transmit(at, &mut buf),
            None,
            "sent to an unproven address"
        );
        let Some(next) = sender.poll_timeout() else {
            break;
        };
        at = next.max(at);
        sender.handle_timeout(at);
    }
    assert!(sender.poll_timeout().is_none(), "no idle timeout");
}
