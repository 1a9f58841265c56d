//! Sealed datagrams from fuzzer choices: the transfer's keys as each end holds them, and
//! packets sealed with them and then, as the input says, spoiled, so that the endpoint targets
//! reach past the tag check and also prove that nothing spoiled gets through it.

use crate::Input;
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

/// A suite from one byte of choice: both, equally often.
pub(crate) fn suite_from(input: &mut Input<'_>) -> Suite {
    if input.bool() {
        Suite::ChaCha20Poly1305
    } else {
        Suite::Aes256Gcm
    }
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

/// What became of a packet on its way from the one who sealed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spoil {
    /// Nothing: it is exactly what the right keys sealed.
    Intact,
    /// It was never sealed (see [`in_clear`]), or sealed by an end that may not seal it.
    InClear,
    /// Sealed with [`OTHER_SECRET`]'s keys.
    OtherSecret,
    /// One bit flipped, anywhere.
    BitFlipped,
    /// Cut short, anywhere.
    Cut,
    /// With bytes after its end.
    Trailing,
}

/// A packet built from choices, on its way to one end.
#[derive(Debug, Clone)]
pub struct Injected {
    /// The datagram.
    pub wire: Vec<u8>,
    /// How it differs from what the right keys sealed.
    pub spoil: Spoil,
}

impl Injected {
    /// `packet` sealed with `keys`, the keys of the end `by`, then spoiled as the input says.
    /// The first choice, modulo 8: 0 to 2 intact, 3 a bit flipped, 4 in clear, 5 sealed with
    /// another transfer's keys, 6 cut, 7 with trailing bytes.
    pub(crate) fn from_input(
        input: &mut Input<'_>,
        keys: &Keys,
        by: Role,
        packet: &Packet<'_>,
    ) -> Self {
        let choice = input.u8() % 8;
        let sealed = match choice {
            4 => None,
            5 => {
                let wire =
                    with_shared_keys(&OTHER_SECRET, by, keys.suite(), |other| seal(other, packet));
                let wire = wire.unwrap_or_else(|| in_clear(packet));
                return Self::new(wire, Spoil::OtherSecret);
            }
            _ => seal(keys, packet),
        };
        let Some(mut wire) = sealed else {
            return Self::new(in_clear(packet), Spoil::InClear);
        };
        let spoil = match choice {
            0..=2 => Spoil::Intact,
            3 => {
                let at = input.below(wire.len() as u64) as usize;
                wire[at] ^= 1 << (input.u8() % 8);
                Spoil::BitFlipped
            }
            6 => {
                wire.truncate(input.below(wire.len() as u64) as usize);
                Spoil::Cut
            }
            _ => {
                let len = 1 + input.below(16) as usize;
                match input.bytes(len) {
                    // Out of input: a zero, so that the datagram still changed.
                    [] => wire.push(0),
                    extra => wire.extend_from_slice(extra),
                }
                Spoil::Trailing
            }
        };
        Self::new(wire, spoil)
    }

    fn new(wire: Vec<u8>, spoil: Spoil) -> Self {
        Self { wire, spoil }
    }
}

/// Opens a copy of `datagram` with `keys`: its plaintext form if it opens.
pub fn open(keys: &mut Keys, datagram: &[u8]) -> Option<Vec<u8>> {
    let mut copy = datagram.to_vec();
    let n = keys.open(&mut copy).ok()?;
    copy.truncate(n);
    Some(copy)
}
