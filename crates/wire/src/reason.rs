//! Why a connection closed: `bye.reason` (to the client that is closed) and `left.reason` (to
//! everyone else).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why the server closed a connection, as a stable snake_case word on the wire (`"quit"`).
/// New reasons may be added; a peer that does not know one reads it as
/// [`CloseReason::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The client said goodbye.
    Quit,
    /// The connection ended without a goodbye (crash, reset, network gone).
    Disconnected,
    /// The client stayed silent past the idle timeout.
    Timeout,
    /// The client did not read fast enough; its outbound queue filled up.
    SlowConsumer,
    /// The client broke the framing (e.g. announced an oversized frame).
    ProtocolError,
    /// The server is stopping.
    ServerShutdown,
    /// The session's account was deleted (from another of its sessions).
    AccountDeleted,
    /// A reason this version does not know.
    #[serde(other)]
    Unknown,
}

impl CloseReason {
    /// The reason as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quit => "quit",
            Self::Disconnected => "disconnected",
            Self::Timeout => "timeout",
            Self::SlowConsumer => "slow_consumer",
            Self::ProtocolError => "protocol_error",
            Self::ServerShutdown => "server_shutdown",
            Self::AccountDeleted => "account_deleted",
            Self::Unknown => "unknown",
        }
    }

    /// The reason in words, for people (the `message` of a `bye`).
    pub fn explain(self) -> &'static str {
        match self {
            Self::Quit => "goodbye",
            Self::Disconnected => "the connection ended",
            Self::Timeout => "nothing received from the client for too long",
            Self::SlowConsumer => "the client fell too far behind reading its messages",
            Self::ProtocolError => "the client broke the protocol's framing",
            Self::ServerShutdown => "the server is shutting down",
            Self::AccountDeleted => "the account was deleted from another of its sessions",
            Self::Unknown => "for a reason this version does not know",
        }
    }
}

/// A reason equals its wire spelling: `reason == "quit"`.
impl PartialEq<str> for CloseReason {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for CloseReason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_matches_as_str_and_unknown_reasons_decode_as_unknown() {
        for reason in [
            CloseReason::Quit,
            CloseReason::Disconnected,
            CloseReason::Timeout,
            CloseReason::SlowConsumer,
            CloseReason::ProtocolError,
            CloseReason::ServerShutdown,
            CloseReason::AccountDeleted,
        ] {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
            assert_eq!(serde_json::from_str::<CloseReason>(&json).unwrap(), reason);
        }
        assert!(CloseReason::SlowConsumer == "slow_consumer");
        assert!(CloseReason::Quit != "Quit");
        let later: CloseReason = serde_json::from_str("\"kicked_by_an_operator\"").unwrap();
        assert_eq!(later, CloseReason::Unknown);
    }
}
