//! Whom the client believes it reached: a server whose certificate chains to a trusted CA, or
//! whose key this user trusted before (trust on first use, as OpenSSH does), or the one key
//! pinned for it.
//!
//! The TLS handshake proves the server holds the key of the certificate it presented; this
//! module decides, after that, whether that key is the server's. A key that changed is always
//! refused.

use crate::ClientError;
use crate::known_servers::{self, Known};
use std::path::PathBuf;
use wire::Fingerprint;

/// How the client decides to trust a server; every front end builds one and passes it to
/// [`crate::Client::connect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// Accept this key and no other, whatever else says (`--fingerprint`): nothing is read or
    /// written then.
    pub pin: Option<Fingerprint>,
    /// Trust certificates that chain to the platform's roots (and match the host).
    pub native_roots: bool,
    /// A PEM file of more CA certificates to trust (`--ca`).
    pub ca_file: Option<PathBuf>,
    /// The `known_servers` file of keys trusted on first use; `None` refuses every server that
    /// is neither pinned nor certified by a CA.
    pub known_servers: Option<PathBuf>,
    /// What to do with a key seen for the first time.
    pub new_key: NewKey,
}

/// What to do when a server's key is new: not certified by a trusted CA, not pinned, and not in
/// `known_servers` (no line names the server at all; one naming it with another key means the
/// key changed, which is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewKey {
    /// Trust it and remember it: for scripts, which say so (`server_key` with status `new`).
    Accept,
    /// Refuse it with [`ClientError::NewServerKey`], so a front end can show the fingerprint
    /// to a person and, if they say yes, connect again with [`NewKey::Approved`].
    Ask,
    /// Trust this key, which a person approved, and remember it; any other key is refused as
    /// changed (it changed since the person saw it).
    Approved(Fingerprint),
}

impl Trust {
    /// Trusts exactly `fingerprint` (for tests and the benchmarks, which know the key).
    pub fn pinned(fingerprint: Fingerprint) -> Self {
        Self {
            pin: Some(fingerprint),
            native_roots: false,
            ca_file: None,
            known_servers: None,
            new_key: NewKey::Ask,
        }
    }

    /// The usual trust of a user: the platform's roots, and keys trusted on first use in the
    /// `known_servers` of the user's config folder ([`default_known_servers`]).
    pub fn for_user(new_key: NewKey) -> Self {
        Self {
            pin: None,
            native_roots: true,
            ca_file: None,
            known_servers: default_known_servers(),
            new_key,
        }
    }
}

impl From<Fingerprint> for Trust {
    fn from(fingerprint: Fingerprint) -> Self {
        Self::pinned(fingerprint)
    }
}

/// The usual place of the `known_servers` file: `$XDG_CONFIG_HOME/messenger/known_servers`,
/// else `~/.config/messenger/known_servers`; `None` when neither variable is set.
pub fn default_known_servers() -> Option<PathBuf> {
    known_servers::default_path()
}

/// Why the server's key was trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Seen for the first time, trusted (by a script, or by a person who approved it) and
    /// recorded in `known_servers`.
    New,
    /// The key `known_servers` has for the server, or the pinned one.
    Known,
    /// The certificate chains to a trusted CA and names the host.
    Ca,
}

impl KeyStatus {
    /// As the `server_key` event spells it: `new`, `known` or `ca`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Known => "known",
            Self::Ca => "ca",
        }
    }
}

/// The key of the server we are connected to, and why it was trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerKey {
    /// The fingerprint of its certificate's key.
    pub fingerprint: Fingerprint,
    /// Why it was trusted.
    pub status: KeyStatus,
    /// The file it was recorded in, when it is [`KeyStatus::New`].
    pub recorded_in: Option<PathBuf>,
}

/// Where the key the client expected came from, for the message refusing another one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedFrom {
    /// Line `line` of the `known_servers` file `path`.
    KnownServers {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The pinned key (`--fingerprint`).
    Pin,
    /// The key a person approved moments before.
    Approved,
}

/// What [`decide`] concluded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Trusted as it is.
    Trusted(KeyStatus),
    /// Trusted as new: to be recorded in this file before going on.
    Record(PathBuf),
}

/// Decides about key `found` of `server` (`HOST:PORT`): `ca_ok` says whether its certificate
/// chains to a trusted root and names the host, and `known` is the text of the
/// `known_servers` file (empty if there is none). Pure, so every rule has a one-line test.
pub(crate) fn decide(
    trust: &Trust,
    server: &str,
    found: Fingerprint,
    ca_ok: bool,
    known: &str,
) -> Result<Verdict, ClientError> {
    let changed =
        |expected: Option<Fingerprint>, from: ExpectedFrom| ClientError::ServerKeyChanged {
            server: server.to_owned(),
            found,
            expected,
            from,
        };
    if let Some(pin) = trust.pin {
        return if pin == found {
            Ok(Verdict::Trusted(KeyStatus::Known))
        } else {
            Err(changed(Some(pin), ExpectedFrom::Pin))
        };
    }
    if ca_ok {
        return Ok(Verdict::Trusted(KeyStatus::Ca));
    }
    let Some(path) = &trust.known_servers else {
        return Err(ClientError::UntrustedServer {
            server: server.to_owned(),
            found,
        });
    };
    match known_servers::lookup(known, server, &found) {
        Known::Trusted => Ok(Verdict::Trusted(KeyStatus::Known)),
        Known::Other { line, fingerprint } => Err(changed(
            fingerprint,
            ExpectedFrom::KnownServers {
                path: path.clone(),
                line,
            },
        )),
        Known::Unknown => match trust.new_key {
            NewKey::Accept => Ok(Verdict::Record(path.clone())),
            NewKey::Approved(approved) if approved == found => Ok(Verdict::Record(path.clone())),
            NewKey::Approved(approved) => Err(changed(Some(approved), ExpectedFrom::Approved)),
            NewKey::Ask => Err(ClientError::NewServerKey {
                server: server.to_owned(),
                fingerprint: found,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(seed: &[u8]) -> Fingerprint {
        Fingerprint::of_public_key(seed)
    }

    fn tofu(new_key: NewKey) -> Trust {
        Trust {
            known_servers: Some("/k".into()),
            ..Trust::for_user(new_key)
        }
    }

    const S: &str = "h:1";

    fn is_changed(result: Result<Verdict, ClientError>) -> bool {
        matches!(result, Err(ClientError::ServerKeyChanged { .. }))
    }

    #[test]
    fn a_pin_accepts_its_key_and_refuses_every_other_even_a_ca_certified_one() {
        let trust = Trust::pinned(fp(b"a"));
        let got = decide(&trust, S, fp(b"a"), false, "").unwrap();
        assert_eq!(got, Verdict::Trusted(KeyStatus::Known));
        assert!(is_changed(decide(&trust, S, fp(b"b"), true, "")));
    }

    #[test]
    fn a_certificate_from_a_trusted_ca_is_accepted_whatever_known_servers_says() {
        let known = format!("{S} {}\n", fp(b"old"));
        let got = decide(&tofu(NewKey::Ask), S, fp(b"a"), true, &known).unwrap();
        assert_eq!(got, Verdict::Trusted(KeyStatus::Ca));
    }

    #[test]
    fn a_known_key_is_trusted_and_a_changed_one_refused_with_the_line_to_edit() {
        let known = format!("other:1 {}\n{S} {}\n", fp(b"x"), fp(b"a"));
        let got = decide(&tofu(NewKey::Accept), S, fp(b"a"), false, &known).unwrap();
        assert_eq!(got, Verdict::Trusted(KeyStatus::Known));
        let err = decide(&tofu(NewKey::Accept), S, fp(b"b"), false, &known).unwrap_err();
        let text = err.to_string();
        for part in [
            fp(b"a").to_string(),
            fp(b"b").to_string(),
            "/k".into(),
            "line 2".into(),
        ] {
            assert!(text.contains(&part), "{text:?} lacks {part:?}");
        }
        assert_eq!(err.code(), Some(wire::ErrorCode::ServerKeyChanged));
    }

    #[test]
    fn a_new_key_is_recorded_by_scripts_asked_about_by_people_and_held_to_once_approved() {
        let path = PathBuf::from("/k");
        let new = decide(&tofu(NewKey::Accept), S, fp(b"a"), false, "").unwrap();
        assert_eq!(new, Verdict::Record(path.clone()));
        let ask = decide(&tofu(NewKey::Ask), S, fp(b"a"), false, "");
        assert!(
            matches!(ask, Err(ClientError::NewServerKey { fingerprint, .. }) if fingerprint == fp(b"a"))
        );
        let approved = tofu(NewKey::Approved(fp(b"a")));
        assert_eq!(
            decide(&approved, S, fp(b"a"), false, "").unwrap(),
            Verdict::Record(path)
        );
        assert!(is_changed(decide(&approved, S, fp(b"b"), false, "")));
    }

    #[test]
    fn without_a_known_servers_file_only_ca_and_pin_are_trusted() {
        let trust = Trust {
            known_servers: None,
            ..tofu(NewKey::Accept)
        };
        let err = decide(&trust, S, fp(b"a"), false, "").unwrap_err();
        assert!(matches!(err, ClientError::UntrustedServer { .. }), "{err}");
    }
}
