//! The 256-bit values the protocol writes as 64 lowercase hex digits: a file's BLAKE3 hash and
//! a transfer's secret. Parsed once, where the message is decoded; a value that is not exactly
//! 64 lowercase hex digits makes the message malformed.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Bytes in a [`FileHash`] or a [`TransferSecret`].
pub const HEX_VALUE_LEN: usize = 32;

/// A text that is not 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 lowercase hex digits")]
pub struct HexError;

/// Writes `bytes` as lowercase hex.
fn write_hex(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// Reads exactly 64 lowercase hex digits.
fn parse_hex(text: &str) -> Result<[u8; HEX_VALUE_LEN], HexError> {
    fn digit(c: u8) -> Result<u8, HexError> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(HexError),
        }
    }
    let text = text.as_bytes();
    if text.len() != 2 * HEX_VALUE_LEN {
        return Err(HexError);
    }
    let mut out = [0u8; HEX_VALUE_LEN];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Ok(out)
}

/// Deserializes a hex string without copying it when the input allows.
struct HexVisitor;

impl Visitor<'_> for HexVisitor {
    type Value = [u8; HEX_VALUE_LEN];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("64 lowercase hex digits")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        parse_hex(text).map_err(|_| E::invalid_value(de::Unexpected::Str(text), &self))
    }
}

macro_rules! hex_value {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; HEX_VALUE_LEN]);

        impl $name {
            /// The value as 64 lowercase hex digits.
            pub fn to_hex(&self) -> String {
                HexDisplay(&self.0).to_string()
            }
        }

        impl FromStr for $name {
            type Err = HexError;

            fn from_str(text: &str) -> Result<Self, HexError> {
                parse_hex(text).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&HexDisplay(&self.0))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(HexVisitor).map(Self)
            }
        }
    };
}

struct HexDisplay<'a>(&'a [u8]);

impl fmt::Display for HexDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(self.0, f)
    }
}

hex_value! {
    /// The BLAKE3 hash of a whole file, as `download_ready.hash` carries it.
    FileHash
}

hex_value! {
    /// A transfer's 256-bit secret, as `download_ready.secret` carries it: every UDP packet of
    /// the transfer is sealed with keys derived from it (docs/TRANSPORT.md). Its `Debug` form
    /// hides it, so that no log of a message shows it; there is no `Display`.
    TransferSecret
}

impl fmt::Display for FileHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(&self.0, f)
    }
}

/// A hash equals its wire spelling, 64 lowercase hex digits.
impl PartialEq<str> for FileHash {
    fn eq(&self, other: &str) -> bool {
        other.parse::<Self>().is_ok_and(|parsed| parsed == *self)
    }
}

impl PartialEq<&str> for FileHash {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl fmt::Debug for FileHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileHash({self})")
    }
}

impl fmt::Debug for TransferSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransferSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00017f80ff0123456789abcdef00017f80ff0123456789abcdef0001020304ff";

    #[test]
    fn round_trips_through_json_as_lowercase_hex() {
        let hash: FileHash = HEX.parse().unwrap();
        assert_eq!(hash.0[..4], [0x00, 0x01, 0x7f, 0x80]);
        assert_eq!(hash.0[31], 0xff);
        assert_eq!(hash.to_string(), HEX);
        assert_eq!(hash.to_hex(), HEX);
        assert!(hash == HEX && hash != HEX.to_uppercase().as_str() && hash != "");
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, format!("\"{HEX}\""));
        assert_eq!(serde_json::from_str::<FileHash>(&json).unwrap(), hash);
        let secret: TransferSecret = serde_json::from_str(&json).unwrap();
        assert_eq!(secret.to_hex(), HEX);
        // Escaped JSON still decodes (serde hands over an owned string then).
        let escaped = format!("\"\\u0030{}\"", &HEX[1..]);
        assert_eq!(serde_json::from_str::<FileHash>(&escaped).unwrap(), hash);
    }

    #[test]
    fn anything_but_64_lowercase_hex_digits_is_refused() {
        let upper = HEX.to_uppercase();
        let bad = [
            "",
            &HEX[..63],
            &format!("{HEX}0"),
            &upper,
            &HEX.replacen('a', "g", 1),
            &"é".repeat(32), // 64 bytes, not ASCII: nothing may slice it
            &format!("+{}", &HEX[1..]),
        ];
        for text in bad {
            assert_eq!(text.parse::<FileHash>(), Err(HexError), "{text:?}");
            let json = serde_json::to_string(text).unwrap();
            assert!(
                serde_json::from_str::<TransferSecret>(&json).is_err(),
                "{text:?}"
            );
        }
        assert!(serde_json::from_str::<FileHash>("7").is_err());
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let secret: TransferSecret = HEX.parse().unwrap();
        let shown = format!("{secret:?}");
        assert!(!shown.contains("0123"), "{shown}");
        assert!(format!("{:?}", HEX.parse::<FileHash>().unwrap()).contains(HEX));
    }
}
