//! The decision that opens a UDP flow: [`transport::Sender::accept`], which the driver calls
//! on every datagram that reaches a transfer's port before the flow is open.

use crate::Input;
use crate::control::u64_from;
use crate::net::CONN_ID;
use crate::packet::packet_from;
use crate::sealed::{Injected, SECRET, Spoil, open, receiver_keys, seal};
use std::time::Instant;
use transport::crypto::Role;
use transport::packet::{self, Frame, HEADER_LEN, Packet, VERSION};
use transport::{Config, Event, Keys, MIN_DATAGRAM, Refused, Sender, Suite};

/// What a HELLO that must open a flow asks for.
#[derive(Debug, Clone, Copy)]
struct Hello {
    conn_id: u64,
    offset: u64,
    max_datagram: u16,
    suite: Suite,
}

impl Hello {
    /// The HELLO in `plain` (a packet's plaintext form), if it is one that opens a flow: well
    /// formed, naming a known suite, accepting datagrams of at least [`MIN_DATAGRAM`] bytes.
    fn valid(plain: &[u8]) -> Option<Self> {
        match packet::decode(plain) {
            Ok(Packet {
                conn_id,
                frame:
                    Frame::Hello {
                        suite,
                        offset,
                        max_datagram,
                        ..
                    },
                ..
            }) if usize::from(max_datagram) >= MIN_DATAGRAM => Some(Self {
                conn_id,
                offset,
                max_datagram,
                suite: Suite::from_code(suite)?,
            }),
            _ => None,
        }
    }
}

/// A datagram built from a packet: the packet's plaintext form, and what became of it.
#[derive(Debug)]
struct Built {
    plain: Vec<u8>,
    spoil: Spoil,
}

/// Datagrams at a transfer's port before the flow is open.
///
/// The input picks the stream, the datagram size and a datagram: raw bytes, raw bytes behind
/// a HELLO's header, or a packet built from the input (a HELLO, often, with any suite code and
/// datagram size) sealed with the receiver's keys and then left intact, sent in clear, sealed
/// with another transfer's keys, changed by one bit anywhere, cut, or given trailing bytes.
///
/// Checks: a flow opens exactly for a datagram that the transfer's keys open to a well-formed
/// HELLO naming a known suite and accepting datagrams of at least [`MIN_DATAGRAM`] bytes; a
/// packet built from the input opens to exactly what was sealed if it is intact, and not at
/// all otherwise. A refused datagram gives the source back untouched, and the keys back so
/// that the honest HELLO that follows still opens the flow (unless the refused one opened and
/// took its packet number). An opened flow announces the stream from where the HELLO asked (or
/// its end), answers with one HELLO_ACK no larger than the HELLO that opens with the
/// receiver's keys in the suite the HELLO named, and then sends nothing, not even on its
/// timers, until the peer proves its address; its datagram size stays within what both sides
/// allow.
pub fn handshake(data: &[u8]) {
    run(data);
}

/// Runs one input; returns whether its datagram opened a flow.
fn run(data: &[u8]) -> bool {
    let mut input = Input::new(data);
    let total = input.below(20_000);
    let _pattern = input.u8(); // the stream's bytes: the handshake reads none of them
    let config = Config {
        max_datagram: match input.u8() % 4 {
            0 => 0,
            1 => transport::SAFE_DATAGRAM,
            2 => usize::from(input.u16()),
            _ => transport::MAX_DATAGRAM + 1,
        },
        ..Config::default()
    };
    let (datagram, built) = datagram_from(&mut input);

    // What the sender's keys find in the datagram, opened apart from the sender.
    let mut shadow = Keys::for_sender(&SECRET);
    let opened = open(&mut shadow, &datagram);
    if let Some(built) = &built {
        match built.spoil {
            Spoil::Intact => assert!(
                opened.as_ref() == Some(&built.plain),
                "an intact sealed packet opened as {opened:02x?}, not {:02x?}",
                built.plain
            ),
            spoil => assert!(
                opened.is_none(),
                "a packet ({spoil:?}) opened: {datagram:02x?}"
            ),
        }
    }
    let hello = opened.as_deref().and_then(Hello::valid);

    let now = Instant::now();
    let keys = Keys::for_sender(&SECRET);
    let accepted = Sender::accept(now, &mut datagram.clone(), keys, total, config.clone());
    let Refused { keys } = match accepted {
        Ok(sender) => {
            let Some(hello) = hello else {
                panic!("a flow opened without a sealed, valid HELLO: {datagram:02x?}");
            };
            check_flow(sender, hello, datagram.len(), total, &config, now);
            return true;
        }
        Err(refused) => refused,
    };
    assert!(
        hello.is_none(),
        "a sealed HELLO naming a known suite and a legal datagram size was refused: {hello:?}"
    );

    // The honest HELLO comes next, with the next packet number if the refused one opened.
    let refused_pn = opened.as_deref().map(packet_number);
    let pn = refused_pn.map_or(0, |pn| pn.wrapping_add(1));
    let honest = Hello {
        conn_id: CONN_ID,
        offset: 0,
        max_datagram: 1452,
        suite: Suite::ChaCha20Poly1305,
    };
    let Some(wire) = seal(
        &receiver_keys(&SECRET, honest.suite),
        &Packet {
            conn_id: honest.conn_id,
            pn,
            frame: Frame::Hello {
                suite: honest.suite.code(),
                offset: honest.offset,
                max_offset: 1 << 20,
                max_datagram: honest.max_datagram,
            },
        },
    ) else {
        panic!("a HELLO does not seal");
    };
    // Only a packet number that wrapped around is below the window the refused one left.
    let opens = refused_pn != Some(u64::MAX);
    assert_eq!(
        open(&mut shadow, &wire).is_some(),
        opens,
        "the honest HELLO after one numbered {refused_pn:?}"
    );
    match Sender::accept(now, &mut wire.clone(), keys, total, config.clone()) {
        Ok(sender) => {
            assert!(opens, "a HELLO opened the flow under a used packet number");
            check_flow(sender, honest, wire.len(), total, &config, now);
        }
        Err(_) => assert!(
            !opens,
            "the honest HELLO was refused after the refused datagram {datagram:02x?}"
        ),
    }
    false
}

/// The datagram the input describes, and how it was built if it was built from a packet.
fn datagram_from(input: &mut Input<'_>) -> (Vec<u8>, Option<Built>) {
    let keys = receiver_keys(&SECRET, Suite::Aes256Gcm);
    let packet = match input.u8() % 4 {
        0 => return (input.rest().to_vec(), None),
        1 => Packet {
            conn_id: input.u64(),
            pn: u64_from(input),
            frame: Frame::Hello {
                suite: match input.u8() % 4 {
                    0 | 1 => Suite::Aes256Gcm.code(),
                    2 => Suite::ChaCha20Poly1305.code(),
                    _ => input.u8(),
                },
                offset: u64_from(input),
                max_offset: u64_from(input),
                max_datagram: input.u16(),
            },
        },
        2 => {
            let conn_id = input.u64();
            packet_from(input, conn_id)
        }
        _ => {
            // Garbage behind a HELLO's header: all the way to the tag check.
            let mut raw = input.rest().to_vec();
            if let [version, kind, ..] = &mut raw[..] {
                *version = VERSION;
                *kind = 1;
            }
            return (raw, None);
        }
    };
    let injected = Injected::from_input(input, &keys, Role::Receiver, &packet);
    let mut plain = vec![0u8; transport::MAX_DATAGRAM];
    let n = packet::encode(&packet, &mut plain).unwrap_or(0);
    plain.truncate(n);
    let built = Built {
        plain,
        spoil: injected.spoil,
    };
    (injected.wire, Some(built))
}

/// The packet number in the header of a packet's plaintext form.
fn packet_number(plain: &[u8]) -> u64 {
    let mut pn = [0u8; 8];
    if let Some(bytes) = plain.get(HEADER_LEN - 8..HEADER_LEN) {
        pn.copy_from_slice(bytes);
    }
    u64::from_be_bytes(pn)
}

/// Checks a flow that `hello`, a datagram of `hello_len` bytes, just opened.
fn check_flow(
    mut sender: Sender,
    hello: Hello,
    hello_len: usize,
    total: u64,
    config: &Config,
    now: Instant,
) {
    let start = hello.offset.min(total);
    assert_eq!(
        sender.poll_event(),
        Some(Event::Connected {
            total,
            offset: start
        })
    );
    let size = sender.max_datagram();
    let max_datagram = hello.max_datagram;
    assert!(
        size >= MIN_DATAGRAM && size <= config.datagram() && size <= usize::from(max_datagram),
        "datagram size {size} for a peer accepting {max_datagram}"
    );

    let mut buf = vec![0u8; size];
    let Some(n) = sender.poll_transmit(now, &mut buf) else {
        panic!("no answer to a HELLO");
    };
    assert!(
        n <= hello_len,
        "{n}-byte answer to a {hello_len}-byte HELLO"
    );
    let mut receiver = receiver_keys(&SECRET, hello.suite);
    let Some(answer) = open(&mut receiver, &buf[..n]) else {
        panic!(
            "the answer does not open with the receiver's keys in {:?}",
            hello.suite
        );
    };
    assert_eq!(
        packet::decode(&answer).map(|p| (p.conn_id, p.frame)),
        Ok((
            hello.conn_id,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_intact_sealed_hellos_among_the_seeds_open_a_flow() {
        let opened: Vec<&str> = crate::seeds::handshake()
            .into_iter()
            .filter(|(_, input)| run(input))
            .map(|(name, _)| name)
            .collect();
        assert_eq!(opened, ["hello", "hello-chacha", "raw-sealed-hello"]);
    }
}
