//! The server's identity as people compare it: `SHA256:` and the unpadded base64 of the
//! SHA-256 of the certificate's SubjectPublicKeyInfo, the form OpenSSH prints for host keys.
//!
//! The hash covers the public key, not the whole certificate, so a certificate renewed with
//! the same key keeps its fingerprint and the clients that trusted it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use std::fmt;
use std::str::FromStr;

/// The prefix of every fingerprint, naming its hash.
const PREFIX: &str = "SHA256:";

/// A server key's fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a public key, given as its DER-encoded SubjectPublicKeyInfo (the
    /// whole SEQUENCE, tag and length included).
    pub fn of_public_key(spki_der: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    /// The 32 bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a text is not a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a fingerprint like SHA256:<43 base64 characters>")]
pub struct FingerprintError(String);

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    /// Reads `SHA256:` followed by 43 characters of standard base64 (a padding `=` is
    /// tolerated, as some tools print one).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || FingerprintError(text.chars().take(80).collect());
        let b64 = text.strip_prefix(PREFIX).ok_or_else(bad)?;
        let b64 = b64.strip_suffix('=').unwrap_or(b64);
        if b64.len() != 43 {
            return Err(bad());
        }
        let bytes = STANDARD_NO_PAD.decode(b64).map_err(|_| bad())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_openssh_does() {
        // SHA-256 of the empty string, as `ssh-keygen -l` would print it.
        let fp = Fingerprint::of_public_key(b"");
        assert_eq!(
            fp.to_string(),
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[test]
    fn parses_what_it_prints_and_nothing_else() {
        let fp = Fingerprint::of_public_key(b"some key");
        assert_eq!(fp.to_string().parse::<Fingerprint>(), Ok(fp));
        assert_eq!(format!("{fp}=").parse::<Fingerprint>(), Ok(fp));
        for bad in [
            "",
            "SHA256:",
            "sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "MD5:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF",
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFUU",
            "SHA256:47DEQpj8HBSa-_TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFü",
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad:?}");
        }
    }
}
