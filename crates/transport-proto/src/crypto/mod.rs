//! Sealing and opening packets (see docs/TRANSPORT.md, "Packet protection").
//!
//! Each transfer has a fresh 256-bit secret, which the application hands over on its own
//! encrypted channel. Both ends derive from it, with HKDF-SHA256, one key and IV per direction
//! and one for the HELLO. Every packet is sealed with an AEAD: its 18-byte header stays in the
//! clear as associated data, the body is encrypted in place and a 16-byte tag follows it; the
//! nonce is the direction's IV XOR the packet number, as in QUIC (RFC 9001, section 5.3).
//! Packet numbers are never reused in a direction, so no nonce is either, and a window of
//! recently seen numbers drops replays.

use crate::packet::{self, HEADER_LEN};
use aws_lc_rs::aead::{
    AES_256_GCM, Aad, Algorithm, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey,
};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};

/// Bytes of the authentication tag at the end of every packet.
pub const TAG_LEN: usize = 16;
/// Bytes of a transfer's secret.
pub const SECRET_LEN: usize = 32;
/// Bytes every packet adds to its plaintext form: the tag.
pub const OVERHEAD: usize = TAG_LEN;

/// The HKDF salt of every transfer.
pub const SALT: &[u8] = b"messenger transfer v2";
/// HKDF-Expand labels (the `info` parameter, these bytes exactly).
pub const LABEL_HELLO_KEY: &[u8] = b"messenger hello key";
/// See [`LABEL_HELLO_KEY`].
pub const LABEL_HELLO_IV: &[u8] = b"messenger hello iv";
/// See [`LABEL_HELLO_KEY`].
pub const LABEL_RECEIVER_KEY: &[u8] = b"messenger receiver key";
/// See [`LABEL_HELLO_KEY`].
pub const LABEL_RECEIVER_IV: &[u8] = b"messenger receiver iv";
/// See [`LABEL_HELLO_KEY`].
pub const LABEL_SENDER_KEY: &[u8] = b"messenger sender key";
/// See [`LABEL_HELLO_KEY`].
pub const LABEL_SENDER_IV: &[u8] = b"messenger sender iv";

/// A transfer's secret: 32 random bytes, known only to its two ends.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub [u8; SECRET_LEN]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The AEAD that protects every packet after the HELLO (the HELLO always uses AES-256-GCM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// AES-256-GCM: the choice wherever the CPU has AES instructions.
    Aes256Gcm,
    /// ChaCha20-Poly1305: faster in software, for CPUs without them.
    ChaCha20Poly1305,
}

impl Suite {
    /// The wire code (in the HELLO).
    pub fn code(self) -> u8 {
        match self {
            Self::Aes256Gcm => 1,
            Self::ChaCha20Poly1305 => 2,
        }
    }

    /// From the wire code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Aes256Gcm),
            2 => Some(Self::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// The faster one on this CPU: AES-256-GCM with AES and carry-less multiply instructions,
    /// ChaCha20-Poly1305 without.
    pub fn for_this_cpu() -> Self {
        if has_aes_instructions() {
            Self::Aes256Gcm
        } else {
            Self::ChaCha20Poly1305
        }
    }

    fn algorithm(self) -> &'static Algorithm {
        match self {
            Self::Aes256Gcm => &AES_256_GCM,
            Self::ChaCha20Poly1305 => &CHACHA20_POLY1305,
        }
    }
}

impl Default for Suite {
    fn default() -> Self {
        Self::for_this_cpu()
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn has_aes_instructions() -> bool {
    std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(target_arch = "aarch64")]
fn has_aes_instructions() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull")
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
fn has_aes_instructions() -> bool {
    false
}

/// Which end of the transfer we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends the stream (the server).
    Sender,
    /// Receives it and sends the HELLO (the client).
    Receiver,
}

/// Why a datagram was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Shorter than a header and a tag, or of another version.
    #[error("not a packet of this version")]
    Malformed,
    /// Its packet number was seen before, or is too old to tell.
    #[error("replayed packet")]
    Replayed,
    /// The tag does not match: forged, modified, truncated, or another transfer's.
    #[error("packet does not open")]
    Forged,
}

struct Direction {
    key: LessSafeKey,
    iv: [u8; NONCE_LEN],
}

/// A direction's key and IV as HKDF gave them, before they are bound to a suite.
#[derive(Clone)]
struct Material {
    key: [u8; 32],
    iv: [u8; NONCE_LEN],
}

impl Material {
    fn derive(prk: &aws_lc_rs::hkdf::Prk, key_label: &[u8], iv_label: &[u8]) -> Self {
        let mut key = [0u8; 32];
        let mut iv = [0u8; NONCE_LEN];
        expand(prk, key_label, &mut key);
        expand(prk, iv_label, &mut iv);
        Self { key, iv }
    }

    fn bind(&self, suite: Suite) -> Direction {
        let key = match UnboundKey::new(suite.algorithm(), &self.key) {
            Ok(key) => LessSafeKey::new(key),
            // Both algorithms take 32-byte keys: this cannot fail.
            Err(_) => unreachable!("a 32-byte key for a 256-bit AEAD"),
        };
        Direction { key, iv: self.iv }
    }
}

impl Direction {
    fn nonce(&self, pn: u64) -> Nonce {
        let mut nonce = self.iv;
        for (n, p) in nonce[NONCE_LEN - 8..].iter_mut().zip(pn.to_be_bytes()) {
            *n ^= p;
        }
        Nonce::assume_unique_for_key(nonce)
    }
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &aws_lc_rs::hkdf::Prk, label: &[u8], out: &mut [u8]) {
    let info = [label];
    let filled = prk
        .expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out));
    if filled.is_err() {
        // HKDF-SHA256 expands to 8160 bytes; we ask for 32 at most.
        unreachable!("HKDF-Expand of {} bytes", out.len());
    }
}

/// One end's keys for one transfer: what it seals with and what it opens with, plus the
/// window of packet numbers it has opened.
pub struct Keys {
    /// The HELLO's key (AES-256-GCM always): the receiver seals with it, the sender opens.
    hello: Direction,
    /// Our direction's key and IV, and the peer's, before binding (a sender binds them to the
    /// suite its receiver names in the HELLO).
    ours: Material,
    theirs: Material,
    seal: Direction,
    open: Direction,
    suite: Suite,
    role: Role,
    replay: ReplayWindow,
    /// Bench-only: no AEAD at all (the tag's room is sent as zeros).
    plaintext: bool,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("suite", &self.suite)
            .field("role", &self.role)
            .field("plaintext", &self.plaintext)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Derives the receiver's keys for a transfer from its secret; `suite` protects every
    /// packet after its HELLO, both ways.
    pub fn for_receiver(secret: &Secret, suite: Suite) -> Self {
        Self::new(secret, Role::Receiver, suite)
    }

    /// Derives the sender's keys for a transfer from its secret; the HELLO names the suite
    /// of every later packet ([`crate::Sender::accept`] applies it).
    pub fn for_sender(secret: &Secret) -> Self {
        Self::new(secret, Role::Sender, Suite::Aes256Gcm)
    }

    fn new(secret: &Secret, role: Role, suite: Suite) -> Self {
        let prk = Salt::new(HKDF_SHA256, SALT).extract(&secret.0);
        let hello = Material::derive(&prk, LABEL_HELLO_KEY, LABEL_HELLO_IV);
        let receiver = Material::derive(&prk, LABEL_RECEIVER_KEY, LABEL_RECEIVER_IV);
        let sender = Material::derive(&prk, LABEL_SENDER_KEY, LABEL_SENDER_IV);
        let (ours, theirs) = match role {
            Role::Receiver => (receiver, sender),
            Role::Sender => (sender, receiver),
        };
        Self {
            hello: hello.bind(Suite::Aes256Gcm),
            seal: ours.bind(suite),
            open: theirs.bind(suite),
            ours,
            theirs,
            suite,
            role,
            replay: ReplayWindow::default(),
            plaintext: false,
        }
    }

    /// Protects every packet after the HELLO with `suite`.
    pub fn set_suite(&mut self, suite: Suite) {
        if suite != self.suite {
            self.seal = self.ours.bind(suite);
            self.open = self.theirs.bind(suite);
            self.suite = suite;
        }
    }

    /// The same keys, but packets go unprotected: for benchmarks that measure what protection
    /// costs, and never on a network. Both ends must agree (a normal end opens nothing from
    /// such a peer).
    pub fn unprotected(mut self) -> Self {
        self.plaintext = true;
        self
    }

    /// The suite of every packet but the HELLO.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// True if packets go unprotected (see [`Keys::unprotected`]).
    pub fn is_unprotected(&self) -> bool {
        self.plaintext
    }

    /// Seals the plaintext packet `buf[..len]` (header, then body) in place and appends its
    /// tag; returns the datagram's length, or `None` if `buf` has no room for the tag.
    pub fn seal(&self, buf: &mut [u8], len: usize) -> Option<usize> {
        let end = len.checked_add(TAG_LEN)?;
        if len < HEADER_LEN || buf.len() < end {
            return None;
        }
        let (header, rest) = buf.split_at_mut(HEADER_LEN);
        let (body, tail) = rest.split_at_mut(len - HEADER_LEN);
        let tag_room = &mut tail[..TAG_LEN];
        if self.plaintext {
            tag_room.fill(0);
            return Some(end);
        }
        let (kind, pn) = header_fields(header)?;
        let direction = match (kind, self.role) {
            (packet::T_HELLO, Role::Receiver) => &self.hello,
            (packet::T_HELLO, Role::Sender) => return None,
            _ => &self.seal,
        };
        let tag = direction
            .key
            .seal_in_place_separate_tag(direction.nonce(pn), Aad::from(&*header), body)
            .ok()?;
        tag_room.copy_from_slice(tag.as_ref());
        Some(end)
    }

    /// Opens `datagram` in place; returns the length of its plaintext form (header, then
    /// body: decode `&datagram[..n]`). A packet number already opened, or too far below the
    /// largest, is refused before any work.
    pub fn open(&mut self, datagram: &mut [u8]) -> Result<usize, OpenError> {
        let Some(plain) = datagram
            .len()
            .checked_sub(TAG_LEN)
            .filter(|n| *n >= HEADER_LEN)
        else {
            return Err(OpenError::Malformed);
        };
        let (header, body) = datagram.split_at_mut(HEADER_LEN);
        let (kind, pn) = header_fields(header).ok_or(OpenError::Malformed)?;
        if !self.replay.is_fresh(pn) {
            return Err(OpenError::Replayed);
        }
        if !self.plaintext {
            let direction = match (kind, self.role) {
                (packet::T_HELLO, Role::Sender) => &self.hello,
                // A HELLO comes only from the receiver.
                (packet::T_HELLO, Role::Receiver) => return Err(OpenError::Forged),
                _ => &self.open,
            };
            direction
                .key
                .open_in_place(direction.nonce(pn), Aad::from(&*header), body)
                .map_err(|_| OpenError::Forged)?;
        }
        self.replay.mark(pn);
        Ok(plain)
    }
}

impl Keys {
    /// Opens `datagram` in place and decodes it: what both ends do with every datagram after
    /// the handshake. `None` if it does not open (or is a replay), which adds one to
    /// `rejected`, if its plaintext is malformed, or if it is another connection's.
    pub(crate) fn open_packet<'a>(
        &mut self,
        datagram: &'a mut [u8],
        conn_id: u64,
        rejected: &mut u64,
    ) -> Option<packet::Packet<'a>> {
        let Ok(plain) = self.open(datagram) else {
            *rejected += 1;
            return None;
        };
        let datagram: &'a [u8] = datagram;
        packet::decode(&datagram[..plain])
            .ok()
            .filter(|packet| packet.conn_id == conn_id)
    }

    /// Encodes `frame` as packet `pn` of connection `conn_id` into `buf` and seals it in place:
    /// what both ends do with every packet they send (the sender's data packets are built in
    /// place instead). Returns the datagram's length.
    pub(crate) fn seal_packet(
        &mut self,
        conn_id: u64,
        pn: u64,
        frame: packet::Frame<'_>,
        buf: &mut [u8],
    ) -> Option<usize> {
        let n = packet::encode(&packet::Packet { conn_id, pn, frame }, buf)?;
        self.seal(buf, n)
    }
}

/// The type and packet number of a header of this version.
fn header_fields(header: &[u8]) -> Option<(u8, u64)> {
    if header.len() < HEADER_LEN || header[0] != packet::VERSION {
        return None;
    }
    let mut pn = [0u8; 8];
    pn.copy_from_slice(&header[10..18]);
    Some((header[1], u64::from_be_bytes(pn)))
}

/// Packet numbers opened so far, as the largest one and a bitmap of the
/// [`ReplayWindow::SIZE`] numbers below it: a number already marked, or below the window, is
/// not fresh. A packet delayed by more than the window behind newer ones is dropped like a
/// replay (its data is sent again in a new packet).
#[derive(Debug, Clone)]
pub(crate) struct ReplayWindow {
    largest: Option<u64>,
    /// Bit `pn % SIZE` is set if `pn` (within the window) was opened.
    bits: Box<[u64; ReplayWindow::WORDS]>,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self {
            largest: None,
            bits: Box::new([0; Self::WORDS]),
        }
    }
}

impl ReplayWindow {
    /// Packet numbers the window spans below the largest (the largest included).
    pub(crate) const SIZE: u64 = 4096;
    const WORDS: usize = (Self::SIZE / 64) as usize;

    fn bit(pn: u64) -> (usize, u64) {
        let i = pn % Self::SIZE;
        ((i / 64) as usize, 1 << (i % 64))
    }

    pub(crate) fn is_fresh(&self, pn: u64) -> bool {
        let Some(largest) = self.largest else {
            return true;
        };
        if pn > largest {
            return true;
        }
        if largest - pn >= Self::SIZE {
            return false;
        }
        let (word, mask) = Self::bit(pn);
        self.bits[word] & mask == 0
    }

    pub(crate) fn mark(&mut self, pn: u64) {
        match self.largest {
            Some(largest) if pn <= largest => {}
            Some(largest) if pn - largest < Self::SIZE => {
                // The numbers between leave the window's far end: clear their bits.
                let mut n = largest + 1;
                while n < pn {
                    let (word, mask) = Self::bit(n);
                    if n % 64 == 0 && pn - n >= 64 {
                        self.bits[word] = 0;
                        n += 64;
                    } else {
                        self.bits[word] &= !mask;
                        n += 1;
                    }
                }
                let (word, mask) = Self::bit(pn);
                self.bits[word] &= !mask;
                self.largest = Some(pn);
            }
            _ => {
                self.bits.fill(0);
                self.largest = Some(pn);
            }
        }
        let (word, mask) = Self::bit(pn);
        self.bits[word] |= mask;
    }
}

#[cfg(test)]
mod tests;
