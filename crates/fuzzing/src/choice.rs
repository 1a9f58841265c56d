//! Values the typed inputs are made of, where `#[derive(Arbitrary)]` alone would rarely hit
//! what matters: numbers at their edges, strings with the characters encoders trip on, the
//! two suites and the two ends.

use arbitrary::{Arbitrary, Result, Unstructured};
use transport::Suite;
use transport::crypto::Role;

/// An integer that is often at an edge: small, just below `u64::MAX`, a power of two, or any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Number(pub u64);

impl<'a> Arbitrary<'a> for Number {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let kind = u8::arbitrary(u)?;
        Ok(Self(match kind % 4 {
            0 => u64::from(u8::arbitrary(u)?),
            1 => u64::MAX - u64::from(u8::arbitrary(u)?),
            2 => 1 << (u8::arbitrary(u)? % 64),
            _ => u64::arbitrary(u)?,
        }))
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (1, Some(9))
    }
}

/// Characters that trouble encoders: quotes, escapes, controls, separators JSON and
/// JavaScript disagree on, the edges of UTF-8.
const ODD_CHARS: &[char] = &[
    '"',
    '\\',
    '/',
    '\0',
    '\n',
    '\r',
    '\t',
    '\u{7f}',
    '\u{80}',
    'é',
    '\u{2028}',
    '\u{2029}',
    '\u{feff}',
    '\u{fffd}',
    '\u{ffff}',
    '😀',
    '\u{10ffff}',
    ' ',
    '{',
    '}',
];

/// Longest [`Text`].
pub const TEXT_MAX: usize = 64;

/// A string of up to `TEXT_MAX` characters: mostly printable ASCII, some odd ones, some from
/// anywhere in Unicode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl<'a> Arbitrary<'a> for Text {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let len = u.int_in_range(0..=TEXT_MAX)?;
        let mut out = String::new();
        for _ in 0..len {
            if u.is_empty() {
                break;
            }
            let b = u8::arbitrary(u)?;
            out.push(match b {
                0..=0xbf => char::from(b'!' + b % 94),
                0xc0..=0xef => ODD_CHARS[usize::from(b) % ODD_CHARS.len()],
                _ => char::from_u32(u32::arbitrary(u)? % 0x11_0000).unwrap_or('\u{fffd}'),
            });
        }
        Ok(Self(out))
    }
}

impl Text {
    /// The string.
    pub fn string(&self) -> String {
        self.0.clone()
    }
}

/// One of the two AEAD suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum SuiteChoice {
    /// AES-256-GCM.
    Aes256Gcm,
    /// ChaCha20-Poly1305.
    ChaCha20Poly1305,
}

impl SuiteChoice {
    /// The suite.
    pub fn suite(self) -> Suite {
        match self {
            Self::Aes256Gcm => Suite::Aes256Gcm,
            Self::ChaCha20Poly1305 => Suite::ChaCha20Poly1305,
        }
    }
}

/// One end of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum End {
    /// The end that serves the stream.
    Sender,
    /// The end that asked for it.
    Receiver,
}

impl End {
    /// The end as the key schedule names it.
    pub fn role(self) -> Role {
        match self {
            Self::Sender => Role::Sender,
            Self::Receiver => Role::Receiver,
        }
    }

    /// The end as the simulator names it.
    pub fn side(self) -> netsim::Side {
        match self {
            Self::Sender => netsim::Side::Sender,
            Self::Receiver => netsim::Side::Receiver,
        }
    }
}

/// `at` as a position in something of `len` bytes (0 for an empty one).
pub fn position(at: u16, len: usize) -> usize {
    if len == 0 { 0 } else { usize::from(at) % len }
}
