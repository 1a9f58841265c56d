//! Things that happen on a connection, for a front end to show.

use chrono::{DateTime, Utc};
use wire::ErrorCode;

/// Something the server told us, or the end of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Another user came online.
    Joined {
        /// Their name.
        name: String,
        /// When, by the server's clock.
        time: DateTime<Utc>,
    },
    /// Another user went offline.
    Left {
        /// Their name.
        name: String,
        /// Why (`quit`, `disconnected`, `timeout`, `slow_consumer`, ...).
        reason: String,
        /// When, by the server's clock.
        time: DateTime<Utc>,
    },
    /// A chat message.
    Message {
        /// Who sent it.
        from: String,
        /// What they wrote.
        text: String,
        /// True when it was sent to us alone.
        private: bool,
        /// When the server received it.
        time: DateTime<Utc>,
    },
    /// The online users (the answer to a request nobody awaited).
    Users(Vec<String>),
    /// The shared files (the answer to a request nobody awaited).
    Files(Vec<wire::FileEntry>),
    /// A request of ours failed (e.g. `no_such_user` for a private message).
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable reason.
        message: String,
    },
    /// The connection ended. Always the last event.
    Disconnected {
        /// Why: `quit`, `server_shutdown`, `slow_consumer`, `timeout`, `connection_lost`, ...
        reason: String,
        /// Why, for people.
        message: String,
    },
}

/// Converts the server's millisecond timestamps.
pub(crate) fn time_from_millis(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_default()
}
