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
        reason: wire::CloseReason,
        /// When, by the server's clock.
        time: DateTime<Utc>,
    },
    /// A chat message.
    Message {
        /// The server's id of the message (`None` from a server of protocol 2).
        id: Option<u64>,
        /// Who sent it.
        from: String,
        /// What they wrote.
        text: String,
        /// True when it was sent to us alone.
        private: bool,
        /// When the server received it.
        time: DateTime<Utc>,
        /// True for the stored messages the server sends right after joining, said before we
        /// joined (they come before any live one).
        history: bool,
        /// True for a private message that waited for our account while it was offline.
        offline: bool,
    },
    /// Our private message to `to`, who is offline, is kept for them: it is delivered when
    /// they next log in.
    Queued {
        /// The recipient.
        to: String,
        /// The message's id.
        id: u64,
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
    /// A download changed state or made progress.
    Transfer(TransferEvent),
    /// The front end fell behind reading events: `missed` of them were dropped rather than
    /// hold up the connection (answers to requests never wait behind unread events). What
    /// the transfers are doing is still known from [`crate::Client::transfers`].
    Lagged {
        /// Events dropped since the last one delivered.
        missed: u64,
    },
    /// The connection ended. Always the last event.
    Disconnected {
        /// Why: `quit`, `server_shutdown`, `slow_consumer`, `timeout`, `connection_lost`, ...
        reason: String,
        /// Why, for people.
        message: String,
    },
}

/// Converts the server's millisecond timestamps (one out of range becomes the epoch).
pub fn time_from_millis(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_default()
}

/// Something that happened to one download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferEvent {
    /// The transfer's id (the server's), used by pause, resume and cancel.
    pub id: u64,
    /// The file's name on the server.
    pub file: String,
    /// What happened.
    pub state: TransferState,
}

/// The states and milestones of a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferState {
    /// The server is still hashing the file (its first download, or it changed); the offer
    /// follows when it is done. Waiting here never times out.
    Preparing,
    /// Every UDP port of the server is busy; the download waits its turn.
    Queued {
        /// Downloads ahead of this one.
        position: u32,
    },
    /// Data is about to flow. `offset` > 0 when resuming from an earlier `.part` file.
    Started {
        /// File size in bytes.
        size: u64,
        /// Bytes already on disk from an earlier attempt.
        offset: u64,
    },
    /// Bytes arrived (a few of these per second at most).
    Progress {
        /// Bytes on disk so far.
        bytes: u64,
        /// File size.
        size: u64,
        /// Recent goodput, bits per second.
        rate_bps: u64,
        /// Round-trip time to the sender as the transport measured it, microseconds (0 before
        /// any sample).
        rtt_us: u64,
        /// Packets from the sender that never arrived (each was sent again).
        lost: u64,
    },
    /// The transfer is paused: by the user, or at its `--pause-at` point (`at_pause_point`).
    Paused {
        /// Bytes on disk.
        bytes: u64,
        /// True when it paused by itself at the requested percentage.
        at_pause_point: bool,
    },
    /// The transfer continues after a pause.
    Resumed {
        /// Bytes on disk.
        bytes: u64,
    },
    /// The file is complete, verified and in place.
    Done {
        /// Bytes in the file.
        bytes: u64,
        /// Where it was saved (absolute).
        path: std::path::PathBuf,
        /// The value of the last byte sent, `None` for an empty file.
        last_byte: Option<u8>,
        /// Its BLAKE3 hash, verified.
        hash: wire::FileHash,
    },
    /// The transfer stopped; the `.part` file is kept where that allows resuming.
    Failed {
        /// Why, for people.
        error: String,
    },
    /// The user cancelled it.
    Cancelled,
}
