//! Packet protection, the half of the packet decoder in front of [`transport::packet::decode`]:
//! [`transport::Keys::seal`] and [`transport::Keys::open`] held to their contract, as part of
//! the `udp_packet` target.

use crate::choice::{End, Number, SuiteChoice, position};
use crate::sealed::{OTHER_SECRET, SECRET, receiver_keys, sender_keys, with_shared_keys};
use arbitrary::Arbitrary;
use std::collections::HashSet;
use transport::crypto::{OpenError, Role};
use transport::packet::{self, Frame, HEADER_LEN, Packet, VERSION};
use transport::{Keys, Suite, TAG_LEN};

/// Packet numbers the replay window spans below the largest one opened (docs/TRANSPORT.md).
const REPLAY_WINDOW: u64 = 4096;

/// The keys of `role` for the transfer with [`SECRET`].
fn keys(role: Role, suite: Suite) -> Keys {
    match role {
        Role::Sender => sender_keys(&SECRET, suite),
        Role::Receiver => receiver_keys(&SECRET, suite),
    }
}

/// `f` with the keys of `role` for the transfer with [`SECRET`], derived once: keys that only
/// seal, or must refuse what they are given.
fn shared<R>(role: Role, suite: Suite, f: impl FnOnce(&mut Keys) -> R) -> R {
    with_shared_keys(&SECRET, role, suite, f)
}

/// The other end.
fn peer(role: Role) -> Role {
    match role {
        Role::Sender => Role::Receiver,
        Role::Receiver => Role::Sender,
    }
}

/// `data` as a datagram, opened by fresh keys in `suite` of the end that gets packets of its
/// type (`end`, for the types both send and unknown ones): nothing panics; a datagram too short or of another version is
/// malformed, any other that does not open is forged (fresh keys have seen no packet number);
/// one that opens was sealed by the peer exactly (sealing its plaintext again gives the same
/// bytes), keeps its header and opens only once. Returns whether it opened.
pub(crate) fn open_anything(data: &[u8], suite: SuiteChoice, end: End) -> bool {
    let suite = suite.suite();
    // HELLO_ACK, DATA and CLOSE come from the sender; HELLO, ACK and DONE from the receiver.
    let role = match data.get(1) {
        Some(2 | 3 | 6) => Role::Receiver,
        Some(1 | 4 | 5) => Role::Sender,
        _ => end.role(),
    };
    let mut opener = keys(role, suite);
    let mut copy = data.to_vec();
    match opener.open(&mut copy) {
        Ok(n) => {
            assert_eq!(n + TAG_LEN, data.len(), "the plaintext's length");
            assert_eq!(copy[..HEADER_LEN], data[..HEADER_LEN], "the header changed");
            let mut again = copy[..n].to_vec();
            again.resize(data.len(), 0);
            let sealed = shared(peer(role), suite, |keys| keys.seal(&mut again, n));
            assert!(
                sealed == Some(data.len()) && again == data,
                "the {role:?}'s keys opened what its peer did not seal: {data:02x?}"
            );
            assert_eq!(
                opener.open(&mut data.to_vec()),
                Err(OpenError::Replayed),
                "a packet opened twice"
            );
            return true;
        }
        Err(OpenError::Malformed) => assert!(
            data.len() < HEADER_LEN + TAG_LEN || data[0] != VERSION,
            "a packet of this version, long enough, refused as malformed"
        ),
        Err(OpenError::Forged) => assert!(
            data.len() >= HEADER_LEN + TAG_LEN && data[0] == VERSION,
            "a malformed packet refused as forged"
        ),
        Err(OpenError::Replayed) => panic!("fresh keys refused a packet as a replay"),
    }
    false
}

/// How `seal_and_open` seals a packet and spoils copies of it.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct SealChoice {
    /// The suite.
    pub suite: SuiteChoice,
    /// The end that seals it (always the receiver for a HELLO).
    pub by: End,
    /// Where a bit is flipped (modulo the length), and which (modulo 8).
    pub flip: (u16, u8),
    /// Where a copy is cut (modulo the length).
    pub cut: u16,
    /// How many bytes follow another copy (1 plus modulo 16).
    pub trailing: u8,
}

/// `packet`, whose plaintext form is `plain`, sealed by the end the input picks (the receiver,
/// for a HELLO) in the suite it picks: the seal needs room for exactly a tag more, keeps the
/// header, hides the body, and opens with the peer's keys, once, to exactly `plain`; not with
/// the sealing end's own keys, another transfer's or (but for the HELLO, always in AES-256-GCM)
/// another suite's; and not at all once a bit anywhere is flipped, it is cut anywhere, or bytes
/// follow it.
pub(crate) fn seal_and_open(choice: &SealChoice, packet: &Packet<'_>, plain: &[u8]) {
    let hello = matches!(packet.frame, Frame::Hello { .. });
    let suite = choice.suite.suite();
    let by = if hello {
        Role::Receiver
    } else {
        choice.by.role()
    };
    let len = plain.len();
    let mut buf = plain.to_vec();
    buf.resize(len + TAG_LEN - 1, 0);
    let short = shared(by, suite, |sealer| sealer.seal(&mut buf, len));
    assert_eq!(short, None, "sealed without room for a tag");
    buf.push(0);
    let sealed_len = shared(by, suite, |sealer| sealer.seal(&mut buf, len));
    assert_eq!(sealed_len, Some(len + TAG_LEN), "{packet:?}");
    let sealed = buf;
    if hello {
        let mut copy = sealed.clone();
        copy[len..].fill(0);
        let by_sender = shared(Role::Sender, suite, |sender| sender.seal(&mut copy, len));
        assert_eq!(by_sender, None, "a sender sealed a HELLO");
    }
    assert_eq!(
        sealed[..HEADER_LEN],
        plain[..HEADER_LEN],
        "the header is clear"
    );
    if len - HEADER_LEN >= 8 {
        assert_ne!(
            sealed[HEADER_LEN..len],
            plain[HEADER_LEN..],
            "the body is clear"
        );
    }

    let mut opener = keys(peer(by), suite);
    // Spoiled copies first: that they do not open must leave the packet number unused.
    let mut flipped = sealed.clone();
    let at = position(choice.flip.0, sealed.len());
    flipped[at] ^= 1 << (choice.flip.1 % 8);
    let cut = position(choice.cut, sealed.len());
    let mut trailing = sealed.clone();
    trailing.extend_from_slice(&[0; 16][..1 + usize::from(choice.trailing % 16)]);
    for (spoil, mut datagram) in [
        ("with a bit flipped", flipped),
        ("cut", sealed[..cut].to_vec()),
        ("with trailing bytes", trailing),
    ] {
        assert!(
            opener.open(&mut datagram).is_err(),
            "a packet {spoil} opened: {packet:?}"
        );
    }
    let mut datagram = sealed.clone();
    assert_eq!(
        opener.open(&mut datagram),
        Ok(len),
        "{packet:?} does not open"
    );
    assert_eq!(datagram[..len], *plain, "opened to other bytes");
    assert_eq!(
        opener.open(&mut sealed.clone()),
        Err(OpenError::Replayed),
        "a packet opened twice"
    );

    let other_suite = match suite {
        Suite::Aes256Gcm => Suite::ChaCha20Poly1305,
        Suite::ChaCha20Poly1305 => Suite::Aes256Gcm,
    };
    let mut others = vec![
        ("the sealing end's own", &SECRET, by, suite),
        ("another transfer's", &OTHER_SECRET, peer(by), suite),
    ];
    if !hello {
        others.push(("another suite's", &SECRET, peer(by), other_suite));
    }
    for (whose, secret, role, suite) in others {
        let got = with_shared_keys(secret, role, suite, |keys| keys.open(&mut sealed.clone()));
        assert_eq!(
            got,
            Err(OpenError::Forged),
            "{whose} keys opened {packet:?}"
        );
    }
}

/// A sequence of packet numbers for `replays`.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct Replays {
    /// The suite.
    pub suite: SuiteChoice,
    /// The end that seals them.
    pub by: End,
    /// The first number.
    pub first: Number,
    /// The numbers after it (up to 64), each maybe preceded by a changed copy.
    pub steps: Vec<ReplayStep>,
}

/// One packet of [`Replays`].
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct ReplayStep {
    /// Its number.
    pub pn: NextPn,
    /// A copy with a byte changed, sent first: where (modulo the length) and the change (a
    /// non-zero xor).
    pub forged: Option<(u16, u8)>,
}

/// A packet number relative to the last one and to the largest opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum NextPn {
    /// The last one again.
    Same,
    /// One past the largest.
    Next,
    /// Up to 65535 past the largest.
    Ahead(u16),
    /// Up to 8191 below the largest.
    Behind(u16),
    /// At the edge of the replay window (0 to 2 past it).
    EdgeOfWindow(u8),
    /// Any number.
    Any(Number),
    /// Up to 3 past the last one.
    Near(u8),
}

/// A sequence of packets, numbered as the input says (in order, repeated, old, far ahead,
/// at the edges of the range), some of them forged first: each opens exactly if its number
/// was not opened before and is not [`REPLAY_WINDOW`] or more below the largest opened, and a
/// forged packet never uses a number up.
pub(crate) fn replays(input: &Replays) {
    let suite = input.suite.suite();
    let by = input.by.role();
    let mut opener = keys(peer(by), suite);
    let mut opened: HashSet<u64> = HashSet::new();
    let mut largest: Option<u64> = None;
    let mut last = input.first.0;
    for step in input.steps.iter().take(64) {
        let top = largest.unwrap_or(last);
        let pn = match step.pn {
            NextPn::Same => last,
            NextPn::Next => top.wrapping_add(1),
            NextPn::Ahead(by) => top.wrapping_add(u64::from(by)),
            NextPn::Behind(by) => top.wrapping_sub(u64::from(by % 8192)),
            NextPn::EdgeOfWindow(past) => top.wrapping_sub(REPLAY_WINDOW - 1 + u64::from(past % 3)),
            NextPn::Any(pn) => pn.0,
            NextPn::Near(by) => last.wrapping_add(u64::from(by % 4)),
        };
        last = pn;
        let Some(mut datagram) = shared(by, suite, |sealer| seal_ping(sealer, pn)) else {
            panic!("a PING does not seal");
        };
        let fresh = match largest {
            None => true,
            Some(largest) => {
                pn > largest || (largest - pn < REPLAY_WINDOW && !opened.contains(&pn))
            }
        };
        if let Some((at, xor)) = step.forged {
            let mut forged = datagram.clone();
            let at = position(at, forged.len());
            forged[at] ^= xor.max(1);
            assert!(
                opener.open(&mut forged).is_err(),
                "a changed packet number {pn} opened"
            );
        }
        let got = opener.open(&mut datagram);
        if fresh {
            assert_eq!(got, Ok(HEADER_LEN), "packet number {pn} after {largest:?}");
            opened.insert(pn);
            largest = Some(largest.map_or(pn, |l| l.max(pn)));
        } else {
            assert_eq!(
                got,
                Err(OpenError::Replayed),
                "packet number {pn} after {largest:?}, seen before or too old"
            );
        }
    }
}

/// A PING numbered `pn`, sealed with `keys`.
fn seal_ping(keys: &Keys, pn: u64) -> Option<Vec<u8>> {
    let mut buf = [0u8; HEADER_LEN + TAG_LEN];
    let n = packet::encode(
        &Packet {
            conn_id: 7,
            pn,
            frame: Frame::Ping,
        },
        &mut buf,
    )?;
    let n = keys.seal(&mut buf, n)?;
    Some(buf[..n].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{FrameChoice, PacketChoice};
    use crate::sealed::{Spoil, seal};

    fn ack() -> Packet<'static> {
        Packet {
            conn_id: 5,
            pn: 7,
            frame: Frame::Ack {
                ack_delay_us: 250,
                max_offset: 1 << 20,
                ranges: vec![(9, 12), (3, 5)],
            },
        }
    }

    #[test]
    fn only_what_the_peer_sealed_opens() {
        let suite = SuiteChoice::ChaCha20Poly1305;
        let sealed = seal(&receiver_keys(&SECRET, suite.suite()), &ack()).unwrap();
        assert!(open_anything(&sealed, suite, End::Receiver));
        assert!(!open_anything(
            &sealed,
            SuiteChoice::Aes256Gcm,
            End::Receiver
        ));
        let mut flipped = sealed.clone();
        flipped[30] ^= 4;
        assert!(!open_anything(&flipped, suite, End::Receiver));
        let choice = PacketChoice {
            pn: Number(3),
            frame: FrameChoice::Ping,
        };
        let wire = Spoil::Intact.apply(
            &sender_keys(&SECRET, suite.suite()),
            Role::Sender,
            &choice.packet(5),
        );
        assert!(wire.intact);
        // A PING from the sender: opened by the receiver (the end picked for a type both send).
        assert!(open_anything(&wire.wire, suite, End::Receiver));
        assert!(!open_anything(&wire.wire, suite, End::Sender));
    }
}
