//! Error codes: the machine-readable half of every error the server sends.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What went wrong, as a stable snake_case code on the wire (`"no_such_user"`). Scripts match on
/// these, so they never change meaning; new ones may be added, and a peer that does not know a
/// code reads it as [`ErrorCode::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Somebody online already has that name, or one that looks the same (names are compared
    /// ignoring case, and by their confusables skeleton: see [`crate::lookalike_key`]).
    NameTaken,
    /// The name is empty, too long, has characters outside letters, digits, `_`, `-`, `.`, or
    /// begins or ends with `.`.
    InvalidName,
    /// A private message named a user who is not online.
    NoSuchUser,
    /// A text is longer than [`crate::MAX_TEXT_LEN`] bytes.
    TooLong,
    /// The server has `--max-clients` users already, or `--max-clients-per-address` from the
    /// client's address.
    ServerFull,
    /// The client does not know the command it was given (reported by clients, not the server).
    UnknownCommand,
    /// The server's key is not the one this client trusts for it (from its `known_servers`
    /// file, or pinned with `--fingerprint`): the connection was refused before anything was
    /// sent. Reported by clients, not the server.
    ServerKeyChanged,
    /// The client speaks a protocol version the server does not.
    UnsupportedVersion,
    /// The frame was not a valid message, or came at the wrong time (e.g. before the hello).
    BadRequest,
    /// The requested file is not shared by the server.
    NoSuchFile,
    /// The server cannot take the request now (e.g. no transfer slot); try again later.
    Busy,
    /// The transfer id is not one of this client's transfers.
    NoSuchTransfer,
    /// The client sends faster than the server allows; the message was dropped.
    RateLimited,
    /// The server failed in a way that is not the client's fault.
    Internal,
    /// Wrong password, a registered name without one, or (on a server that admits no guests)
    /// a name that is not an account. Which of these is never said.
    AuthFailed,
    /// A password shorter than [`crate::MIN_PASSWORD_LEN`] or longer than
    /// [`crate::MAX_PASSWORD_LEN`] bytes.
    InvalidPassword,
    /// The request is for accounts, and this session is a guest's.
    NotRegistered,
    /// The recipient, offline, has as many messages waiting as the server keeps for one
    /// account (`--max-offline-messages`); the message was not stored.
    MailboxFull,
    /// A code this version does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NameTaken => "name_taken",
            Self::InvalidName => "invalid_name",
            Self::NoSuchUser => "no_such_user",
            Self::TooLong => "too_long",
            Self::ServerFull => "server_full",
            Self::UnknownCommand => "unknown_command",
            Self::ServerKeyChanged => "server_key_changed",
            Self::UnsupportedVersion => "unsupported_version",
            Self::BadRequest => "bad_request",
            Self::NoSuchFile => "no_such_file",
            Self::Busy => "busy",
            Self::NoSuchTransfer => "no_such_transfer",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
            Self::AuthFailed => "auth_failed",
            Self::InvalidPassword => "invalid_password",
            Self::NotRegistered => "not_registered",
            Self::MailboxFull => "mailbox_full",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_matches_as_str() {
        for code in [
            ErrorCode::NameTaken,
            ErrorCode::NoSuchUser,
            ErrorCode::ServerFull,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn unknown_codes_decode_as_unknown() {
        let code: ErrorCode = serde_json::from_str("\"from_the_future\"").unwrap();
        assert_eq!(code, ErrorCode::Unknown);
    }
}
