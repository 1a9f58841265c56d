//! What can go wrong when talking to a server.

use crate::trust::ExpectedFrom;
use std::path::PathBuf;
use wire::{ErrorCode, Fingerprint};

/// A failed call on [`crate::Client`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address could not be resolved or did not answer.
    #[error("cannot reach {addr}: {source}")]
    Unreachable {
        /// What the caller asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS handshake failed: the server speaks no TLS 1.3, or not our protocol (ALPN), or
    /// its certificate is malformed, or it could not prove it holds the certificate's key.
    #[error("no secure connection to {addr}: {reason}")]
    Tls {
        /// What the caller asked for.
        addr: String,
        /// Why, from the TLS library.
        reason: String,
    },
    /// The server's key is not the one trusted for it: `known_servers` has another for it, or
    /// another was pinned or approved. Always refused (code `server_key_changed`).
    #[error("{}", key_changed(server, found, expected.as_ref(), from))]
    ServerKeyChanged {
        /// `HOST:PORT`.
        server: String,
        /// The key the server presented.
        found: Fingerprint,
        /// The key trusted for it (`None`: its `known_servers` line has no valid key).
        expected: Option<Fingerprint>,
        /// Where that trust comes from.
        from: ExpectedFrom,
    },
    /// The server's key is new and [`crate::NewKey::Ask`] was asked for: show the fingerprint
    /// to a person, and connect again with [`crate::NewKey::Approved`] if they trust it.
    #[error(
        "{server} is not a known server; its key's fingerprint is {fingerprint}: trust it only \
         if that is the fingerprint its operator gave you"
    )]
    NewServerKey {
        /// `HOST:PORT`.
        server: String,
        /// The fingerprint of the key it presented.
        fingerprint: Fingerprint,
    },
    /// The server's certificate is from no trusted CA, and there is no `known_servers` file to
    /// trust it on first use in.
    #[error(
        "the certificate of {server} (key {found}) is not from a trusted CA, and there is no \
         known_servers file to trust it in (set --known-servers, or pin it with --fingerprint)"
    )]
    UntrustedServer {
        /// `HOST:PORT`.
        server: String,
        /// The fingerprint of the key it presented.
        found: Fingerprint,
    },
    /// The `--ca` file could not be read, or holds no PEM certificate.
    #[error("cannot use {} as CA certificates: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The `known_servers` file could not be read or written.
    #[error("cannot use {}: {source}", path.display())]
    KnownServers {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The server answered with an error (the name is taken, the server is full, ...).
    #[error("{message}")]
    Server {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable reason, from the server.
        message: String,
    },
    /// The server sent something this client does not understand.
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    /// The server took too long to answer.
    #[error("the server did not answer in time")]
    Timeout,
    /// The connection is closed.
    #[error("not connected")]
    Disconnected,
    /// The name asked for cannot be saved under: once reduced to one file name it still means
    /// a folder (`.`, `..`, nothing). No server shares a file by such a name, so its code is
    /// `no_such_file`.
    #[error("{0:?} is not a file name: no shared file can have it")]
    UnsafeName(String),
    /// A download into the same file is already under way.
    #[error("{} is already being downloaded", .0.display())]
    AlreadyDownloading(std::path::PathBuf),
}

impl ClientError {
    /// The wire error code this error stands for, if it came from the server.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Server { code, .. } => Some(*code),
            Self::AlreadyDownloading(_) => Some(ErrorCode::Busy),
            Self::ServerKeyChanged { .. } => Some(ErrorCode::ServerKeyChanged),
            Self::UnsafeName(_) => Some(ErrorCode::NoSuchFile),
            _ => None,
        }
    }
}

/// The refusal of a changed key: both fingerprints, and what to edit if the change is known to
/// be legitimate.
fn key_changed(
    server: &str,
    found: &Fingerprint,
    expected: Option<&Fingerprint>,
    from: &ExpectedFrom,
) -> String {
    let expected = expected.map_or_else(|| "no valid key".to_owned(), ToString::to_string);
    let warning = format!(
        "THE KEY OF {server} HAS CHANGED: it presents {found}, but {expected} is trusted for it"
    );
    match from {
        ExpectedFrom::KnownServers { path, line } => format!(
            "{warning} (line {line} of {path}). Someone may be intercepting the connection (a \
             man in the middle), or the server was given a new key. Refused. If you know the \
             key was changed, delete line {line} of {path} and connect again.",
            path = path.display()
        ),
        ExpectedFrom::Pin => format!("{warning} (pinned with --fingerprint). Refused."),
        ExpectedFrom::Approved => format!(
            "{warning} (approved a moment ago, and changed since). Someone may be intercepting \
             the connection. Refused."
        ),
    }
}
