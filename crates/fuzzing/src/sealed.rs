//! Sealed datagrams from typed choices: the transfer's keys as each end holds them, and packets
//! sealed with them and then, as the input says, spoiled ([`Spoil`]), so that the endpoint
//! targets reach past the tag check and also prove that nothing spoiled gets through it.

use crate::choice::position;
use arbitrary::Arbitrary;
use std::cell::RefCell;
use transport::crypto::Role;
use transport::packet::{self, Packet};
use transport::{Keys, Secret, Suite, TAG_LEN};

/// The transfer's secret in every endpoint target.
pub const SECRET: Secret = Secret(*b"messenger fuzz transfer secret!!");
/// Another transfer's secret: what it seals opens nothing of ours.
pub const OTHER_SECRET: Secret = Secret(*b"messenger fuzz another transfer!");

/// The receiver's keys of the transfer with `secret`, every packet after the HELLO in `suite`.
pub fn receiver_keys(secret: &Secret, suite: Suite) -> Keys {
    Keys::for_receiver(secret, suite)
}

/// The sender's keys of the transfer with `secret`, once a HELLO named `suite`.
pub fn sender_keys(secret: &Secret, suite: Suite) -> Keys {
    let mut keys = Keys::for_sender(secret);
    keys.set_suite(suite);
    keys
}

/// The keys of `role` in `suite` for the transfer with `secret` ([`SECRET`] or
/// [`OTHER_SECRET`]), derived once per thread: for keys that only seal, or that must refuse
/// whatever they are given (so their replay window stays empty). Deriving keys costs more than
/// the rest of a `udp_packet` case.
pub(crate) fn with_shared_keys<R>(
    secret: &Secret,
    role: Role,
    suite: Suite,
    f: impl FnOnce(&mut Keys) -> R,
) -> R {
    thread_local! {
        static SHARED: RefCell<[Option<Keys>; 8]> = RefCell::new(Default::default());
    }
    let slot = usize::from(*secret == OTHER_SECRET) * 4
        + usize::from(role == Role::Receiver) * 2
        + usize::from(suite == Suite::ChaCha20Poly1305);
    SHARED.with(|shared| {
        let mut shared = shared.borrow_mut();
        let keys = shared[slot].get_or_insert_with(|| match role {
            Role::Sender => sender_keys(secret, suite),
            Role::Receiver => receiver_keys(secret, suite),
        });
        f(keys)
    })
}

/// `packet` encoded and sealed with `keys`: the datagram as it goes on the wire, or `None` if
/// it does not fit a datagram or `keys` may not seal it (a HELLO, by the sender).
pub fn seal(keys: &Keys, packet: &Packet<'_>) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; transport::MAX_DATAGRAM];
    let n = packet::encode(packet, &mut buf)?;
    let n = keys.seal(&mut buf, n)?;
    buf.truncate(n);
    Some(buf)
}

/// `packet` in its plaintext form followed by a tag's room of zeros: what an end that does
/// not protect its packets sends.
pub fn in_clear(packet: &Packet<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; transport::MAX_DATAGRAM];
    let n = packet::encode(packet, &mut buf).unwrap_or(0);
    buf.truncate(n + TAG_LEN);
    buf
}

/// What becomes of a packet on its way from the one who sealed it.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Spoil {
    /// Nothing: it is exactly what the right keys sealed.
    Intact,
    /// It is never sealed (see `in_clear`).
    InClear,
    /// Sealed with `OTHER_SECRET`'s keys.
    OtherSecret,
    /// One bit flipped, anywhere.
    BitFlipped {
        /// Where (modulo the length).
        at: u16,
        /// Which bit (modulo 8).
        bit: u8,
    },
    /// Cut short, anywhere.
    Cut {
        /// The length left (modulo the length).
        at: u16,
    },
    /// With bytes after its end (up to 16; a zero if none).
    Trailing(Vec<u8>),
}

/// A packet sealed, then spoiled, on its way to one end.
#[derive(Debug, Clone)]
pub struct Injected {
    /// The datagram.
    pub wire: Vec<u8>,
    /// True if it is exactly what the right keys sealed: nothing else may open.
    pub intact: bool,
}

impl Spoil {
    /// `packet` sealed with `keys`, the keys of the end `by`, then spoiled. A packet that
    /// `keys` may not seal (a HELLO, by the sender) goes in clear.
    pub fn apply(&self, keys: &Keys, by: Role, packet: &Packet<'_>) -> Injected {
        let sealed = match self {
            Spoil::InClear => None,
            Spoil::OtherSecret => {
                let wire =
                    with_shared_keys(&OTHER_SECRET, by, keys.suite(), |other| seal(other, packet));
                let wire = wire.unwrap_or_else(|| in_clear(packet));
                return Injected {
                    wire,
                    intact: false,
                };
            }
            _ => seal(keys, packet),
        };
        let Some(mut wire) = sealed else {
            return Injected {
                wire: in_clear(packet),
                intact: false,
            };
        };
        match self {
            Spoil::Intact | Spoil::InClear | Spoil::OtherSecret => {}
            Spoil::BitFlipped { at, bit } => {
                let at = position(*at, wire.len());
                wire[at] ^= 1 << (bit % 8);
            }
            Spoil::Cut { at } => wire.truncate(position(*at, wire.len())),
            Spoil::Trailing(extra) => match &extra[..extra.len().min(16)] {
                // Nothing to add: a zero, so that the datagram still changed.
                [] => wire.push(0),
                extra => wire.extend_from_slice(extra),
            },
        }
        Injected {
            wire,
            intact: *self == Spoil::Intact,
        }
    }
}

/// Opens a copy of `datagram` with `keys`: its plaintext form if it opens.
pub fn open(keys: &mut Keys, datagram: &[u8]) -> Option<Vec<u8>> {
    let mut copy = datagram.to_vec();
    let n = keys.open(&mut copy).ok()?;
    copy.truncate(n);
    Some(copy)
}
