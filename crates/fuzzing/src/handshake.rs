//! The decision that opens a UDP flow: [`transport::Sender::accept`], which the driver calls
//! on every datagram that reaches a transfer's port before the flow is open.

use crate::bench::CONN_ID;
use crate::choice::Number;
use crate::packet::PacketChoice;
use crate::sealed::{SECRET, Spoil, open, receiver_keys, seal};
use arbitrary::Arbitrary;
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
    intact: bool,
}

/// The input of [`handshake`].
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct HandshakeInput {
    /// The stream's length (modulo 20 000).
    pub total: u16,
    /// The sender's datagram setting.
    pub max_datagram: DatagramSetting,
    /// The datagram at the port.
    pub datagram: FirstDatagram,
}

/// The sender's `max_datagram` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum DatagramSetting {
    /// 0 (the default).
    Zero,
    /// [`transport::SAFE_DATAGRAM`].
    Safe,
    /// Any.
    Any(u16),
    /// One more than [`transport::MAX_DATAGRAM`].
    TooLarge,
}

/// The first datagram at a transfer's port.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum FirstDatagram {
    /// Any bytes.
    Raw(Vec<u8>),
    /// A HELLO, sealed with the receiver's keys, then spoiled or not.
    Hello {
        /// Its connection id.
        conn_id: u64,
        /// Its packet number.
        pn: Number,
        /// The suite it names.
        suite: SuiteCode,
        /// Where it asks the stream from.
        offset: Number,
        /// Its window.
        max_offset: Number,
        /// The largest datagram it accepts.
        max_datagram: u16,
        /// What becomes of it.
        spoil: Spoil,
    },
    /// Any packet, sealed with the receiver's keys, then spoiled or not.
    Packet {
        /// Its connection id.
        conn_id: u64,
        /// The packet.
        packet: PacketChoice,
        /// What becomes of it.
        spoil: Spoil,
    },
    /// Any bytes behind a HELLO's version and type: garbage all the way to the tag check.
    BehindHelloHeader(Vec<u8>),
}

/// The suite a HELLO names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum SuiteCode {
    /// AES-256-GCM.
    Aes256Gcm,
    /// ChaCha20-Poly1305.
    ChaCha20Poly1305,
    /// Any code, known or not.
    Other(u8),
}

/// Datagrams at a transfer's port before the flow is open.
///
/// The input picks the stream, the datagram size and a datagram: raw bytes, raw bytes behind
/// a HELLO's header, or a packet built from the input (a HELLO, with any suite code and
/// datagram size, or any other) sealed with the receiver's keys and then left intact, sent in clear, sealed
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
pub fn handshake(input: &HandshakeInput) {
    run(input);
}

/// Runs one input; returns whether its datagram opened a flow.
pub(crate) fn run(input: &HandshakeInput) -> bool {
    let total = u64::from(input.total % 20_000);
    let config = Config {
        max_datagram: match input.max_datagram {
            DatagramSetting::Zero => 0,
            DatagramSetting::Safe => transport::SAFE_DATAGRAM,
            DatagramSetting::Any(n) => usize::from(n),
            DatagramSetting::TooLarge => transport::MAX_DATAGRAM + 1,
        },
        ..Config::default()
    };
    let (datagram, built) = datagram_from(&input.datagram);

    // What the sender's keys find in the datagram, opened apart from the sender.
    let mut shadow = Keys::for_sender(&SECRET);
    let opened = open(&mut shadow, &datagram);
    if let Some(built) = &built {
        if built.intact {
            assert!(
                opened.as_ref() == Some(&built.plain),
                "an intact sealed packet opened as {opened:02x?}, not {:02x?}",
                built.plain
            );
        } else {
            assert!(
                opened.is_none(),
                "a packet ({:?}) opened: {datagram:02x?}",
                built.spoil
            );
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
fn datagram_from(choice: &FirstDatagram) -> (Vec<u8>, Option<Built>) {
    let keys = receiver_keys(&SECRET, Suite::Aes256Gcm);
    let (packet, spoil) = match choice {
        FirstDatagram::Raw(bytes) => return (bytes.clone(), None),
        FirstDatagram::BehindHelloHeader(bytes) => {
            let mut raw = bytes.clone();
            if let [version, kind, ..] = &mut raw[..] {
                *version = VERSION;
                *kind = 1;
            }
            return (raw, None);
        }
        FirstDatagram::Hello {
            conn_id,
            pn,
            suite,
            offset,
            max_offset,
            max_datagram,
            spoil,
        } => {
            let suite = match suite {
                SuiteCode::Aes256Gcm => Suite::Aes256Gcm.code(),
                SuiteCode::ChaCha20Poly1305 => Suite::ChaCha20Poly1305.code(),
                SuiteCode::Other(code) => *code,
            };
            let packet = Packet {
                conn_id: *conn_id,
                pn: pn.0,
                frame: Frame::Hello {
                    suite,
                    offset: offset.0,
                    max_offset: max_offset.0,
                    max_datagram: *max_datagram,
                },
            };
            (packet, spoil)
        }
        FirstDatagram::Packet {
            conn_id,
            packet,
            spoil,
        } => (packet.packet(*conn_id), spoil),
    };
    let injected = spoil.apply(&keys, Role::Receiver, &packet);
    let mut plain = vec![0u8; transport::MAX_DATAGRAM];
    let n = packet::encode(&packet, &mut plain).unwrap_or(0);
    plain.truncate(n);
    let built = Built {
        plain,
        spoil: spoil.clone(),
        intact: injected.intact,
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
    use crate::packet::FrameChoice;
    use crate::sealed::{SECRET, receiver_keys};

    fn hello(suite: SuiteCode, max_datagram: u16, spoil: Spoil) -> FirstDatagram {
        FirstDatagram::Hello {
            conn_id: CONN_ID,
            pn: Number(3),
            suite,
            offset: Number(100),
            max_offset: Number(1 << 20),
            max_datagram,
            spoil,
        }
    }

    fn sealed_hello() -> Vec<u8> {
        let packet = Packet {
            conn_id: CONN_ID,
            pn: 5,
            frame: Frame::Hello {
                suite: Suite::Aes256Gcm.code(),
                offset: 0,
                max_offset: 1 << 20,
                max_datagram: 1452,
            },
        };
        seal(&receiver_keys(&SECRET, Suite::Aes256Gcm), &packet).unwrap_or_default()
    }

    #[test]
    fn only_the_intact_sealed_hellos_open_a_flow() {
        use SuiteCode::{Aes256Gcm as Aes, ChaCha20Poly1305 as ChaCha};
        let datagrams = [
            ("hello", hello(Aes, 1452, Spoil::Intact)),
            ("hello-chacha", hello(ChaCha, 1452, Spoil::Intact)),
            (
                "unknown-suite",
                hello(SuiteCode::Other(9), 1452, Spoil::Intact),
            ),
            ("tiny-datagrams", hello(Aes, 100, Spoil::Intact)),
            (
                "bit-flipped",
                hello(Aes, 1452, Spoil::BitFlipped { at: 30, bit: 5 }),
            ),
            ("in-clear", hello(Aes, 1452, Spoil::InClear)),
            ("other-secret", hello(Aes, 1452, Spoil::OtherSecret)),
            ("cut", hello(Aes, 1452, Spoil::Cut { at: 40 })),
            ("trailing", hello(Aes, 1452, Spoil::Trailing(vec![0]))),
            (
                "sealed-data",
                FirstDatagram::Packet {
                    conn_id: CONN_ID,
                    packet: PacketChoice {
                        pn: Number(9),
                        frame: FrameChoice::Data {
                            offset: Number(0),
                            payload: b"x".to_vec(),
                        },
                    },
                    spoil: Spoil::Intact,
                },
            ),
            ("raw-sealed-hello", FirstDatagram::Raw(sealed_hello())),
            ("raw-garbage", FirstDatagram::Raw(vec![2, 3, 0, 0, 1])),
            (
                "garbage-behind-a-header",
                FirstDatagram::BehindHelloHeader(vec![1; 60]),
            ),
        ];
        let opened: Vec<&str> = datagrams
            .into_iter()
            .filter(|(_, datagram)| {
                run(&HandshakeInput {
                    total: 5000,
                    max_datagram: DatagramSetting::Safe,
                    datagram: datagram.clone(),
                })
            })
            .map(|(name, _)| name)
            .collect();
        assert_eq!(opened, ["hello", "hello-chacha", "raw-sealed-hello"]);
    }
}
