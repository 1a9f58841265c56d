//! The messages, as JSON objects tagged by `"type"`. Unknown fields are ignored, so either side
//! may add fields without breaking the other.

use crate::{CloseReason, ErrorCode, FileHash, TransferSecret, encode_frame};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A frame payload that is not a valid message. The connection survives it: the frame
/// boundaries are intact, so the server answers `bad_request` and reads on.
#[derive(Debug, thiserror::Error)]
#[error("malformed message: {0}")]
pub struct DecodeError(#[from] serde_json::Error);

/// What a client sends to the server.
///
/// `req` is an optional number the client picks; the server copies it into the reply or the
/// error a request causes, so a client can match answers to questions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// The first frame of every connection: the protocol version and the wanted name.
    Hello {
        /// Highest protocol version the client speaks.
        version: u32,
        /// Wanted user name.
        name: String,
        /// The account's password: required for a registered name, and for any name on a
        /// server that runs with `--require-accounts`. Absent: join as a guest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        /// With `password`: make `name` an account with that password and join with it (the
        /// way to register on a server that admits no guests). Absent means false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        register: bool,
    },
    /// Makes the current (guest) name an account with `password`. Answered with
    /// [`ServerMsg::Registered`], or `invalid_password`, `name_taken` (already an account).
    Register {
        /// The new account's password, [`MIN_PASSWORD_LEN`] to [`MAX_PASSWORD_LEN`] bytes.
        password: String,
        /// Echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    /// Changes the account's password. Answered with [`ServerMsg::PasswordChanged`], or
    /// `auth_failed` (wrong `password`), `not_registered`, `invalid_password`.
    ChangePassword {
        /// The current password.
        password: String,
        /// The new one.
        new_password: String,
        /// Echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    /// Deletes the account (its name becomes free; this session stays online as a guest, the
    /// account's other sessions are closed). Answered with [`ServerMsg::AccountDeleted`], or
    /// `auth_failed`, `not_registered`.
    DeleteAccount {
        /// The current password.
        password: String,
        /// Echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    /// Asks for a page of stored messages, newest first in what is chosen, oldest first in the
    /// page: of the broadcast conversation, or (`with`) of the private conversation between
    /// this account and that user. Answered with [`ServerMsg::History`].
    History {
        /// The other party of a private conversation; absent for the broadcast one. Only an
        /// account may read its private conversations (`not_registered` for a guest).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        /// Only messages with an id below this one (the `id` of the oldest message of the
        /// previous page); absent for the latest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
        /// Most messages wanted, at most [`MAX_HISTORY_PAGE`] (the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
        /// Echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    /// A message to every other user online.
    SendAll {
        /// The text, at most [`crate::MAX_TEXT_LEN`] bytes.
        text: String,
        /// Echoed in an error this request causes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    /// A message to one user.
    SendPrivate {
        /// The recipient's name (any case).
        to: String,
        /// The text, at most [`crate::MAX_TEXT_LEN`] bytes.
        text: String,
        /// Echoed in an error this request causes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    /// Asks for the names of the users online.
    ListUsers {
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    /// Asks for a page of the files the server shares: those whose names sort after `after`
    /// (from the first when absent), at most `limit` of them (the server may send fewer, and
    /// never more than [`MAX_FILES_PAGE`]). A [`ServerMsg::Files`] with `next` says more follow.
    ListFiles {
        /// Echoed in the reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
        /// List only names after this one (the `next` of the previous page).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
        /// Most entries wanted in this page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Asks to download a shared file. Answered with [`ServerMsg::DownloadReady`] (a UDP port is
    /// free), [`ServerMsg::DownloadQueued`] (later), or an error (`no_such_file`, `busy`).
    Download {
        /// The file's name as listed by [`ServerMsg::Files`].
        file: String,
        /// Echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    /// Gives up a transfer (queued or running); its port goes back to the pool. Answered with
    /// [`ServerMsg::Cancelled`] or `no_such_transfer`.
    Cancel {
        /// The transfer's id.
        id: u64,
        /// Echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    /// Keepalive; the server answers [`ServerMsg::Pong`].
    Ping,
    /// The client is leaving; the server tells the others and closes the connection.
    Quit,
}

/// Most entries in one page of [`ServerMsg::Files`]; a page also stays under
/// [`MAX_FILES_PAGE_BYTES`] of JSON, so any client's frame cap holds it.
pub const MAX_FILES_PAGE: usize = 1000;

/// Most bytes of file entries in one page of [`ServerMsg::Files`] (the frame is this plus a
/// few dozen bytes).
pub const MAX_FILES_PAGE_BYTES: usize = 64 * 1024;

/// Most messages in one page of [`ServerMsg::History`]; a page also stays under
/// [`MAX_HISTORY_PAGE_BYTES`] of JSON.
pub const MAX_HISTORY_PAGE: usize = 200;

/// Most bytes of messages in one page of [`ServerMsg::History`] (the frame is this plus one
/// message at most, and a few dozen bytes).
pub const MAX_HISTORY_PAGE_BYTES: usize = 256 * 1024;

/// Fewest bytes in a password.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Most bytes in a password.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// A stored message, as a page of [`ServerMsg::History`] carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// The server's id of the message: ids grow with time, and are never reused.
    pub id: u64,
    /// The sender's name.
    pub from: String,
    /// The recipient of a private message; absent for a broadcast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The text.
    pub text: String,
    /// When the server received it.
    pub time: u64,
}

/// A file the server shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name inside the shared folder.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

/// What the server sends to a client.
///
/// Times are milliseconds since the Unix epoch, UTC, stamped by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The hello was accepted: the client is online under `name`.
    Welcome {
        /// The protocol version both sides now speak.
        version: u32,
        /// The name the client joined with.
        name: String,
        /// Everyone online, the client included, sorted.
        users: Vec<String>,
        /// Server software and version, for humans.
        server: String,
        /// True when the client logged in to a registered account (absent: a guest).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        account: bool,
    },
    /// Another user came online.
    Joined {
        /// Their name.
        name: String,
        /// When.
        time: u64,
    },
    /// Another user went offline.
    Left {
        /// Their name.
        name: String,
        /// When.
        time: u64,
        /// Why: `quit`, `disconnected`, `timeout`, `slow_consumer`, `protocol_error`.
        reason: CloseReason,
    },
    /// A chat message.
    Message {
        /// The server's id of the message (every message is stored); absent only from servers
        /// of protocol version 2.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The sender's name.
        from: String,
        /// The text.
        text: String,
        /// True when only this client received it.
        private: bool,
        /// When the server received it.
        time: u64,
        /// True for the stored broadcast messages a client receives right after its welcome,
        /// said before it joined; absent (false) for messages said live.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        history: bool,
        /// True for a private message that waited for this account to log in (its `time` is
        /// when it was sent); absent (false) otherwise.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        offline: bool,
    },
    /// Reply to [`ClientMsg::ListUsers`].
    Users {
        /// The request number, if the client sent one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
        /// Names of the users online, sorted.
        names: Vec<String>,
    },
    /// Reply to [`ClientMsg::ListFiles`]: one page of the listing.
    Files {
        /// The request number, if the client sent one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
        /// The shared files of this page, sorted by name.
        files: Vec<FileEntry>,
        /// Present when more files follow: ask again with this as `after` (it is the last
        /// name of this page). Absent on the last page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// Reply to [`ClientMsg::History`]: one page, oldest first.
    History {
        /// The request number, if the client sent one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
        /// The other party, for a private conversation; absent for the broadcast one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        /// The messages, oldest first.
        messages: Vec<StoredMessage>,
        /// True when older messages remain: ask again with `before` set to the first id here.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        more: bool,
    },
    /// A private message to a registered user who is offline was stored: it is delivered when
    /// they next log in.
    MessageQueued {
        /// The request number, if the client sent one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
        /// The recipient.
        to: String,
        /// The message's id.
        id: u64,
    },
    /// Answer to [`ClientMsg::Register`]: the name is an account now.
    Registered {
        /// The request number, if the client sent one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
        /// The account's name.
        name: String,
    },
    /// Answer to [`ClientMsg::ChangePassword`].
    PasswordChanged {
        /// The request number, if the client sent one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    /// Answer to [`ClientMsg::DeleteAccount`]: the account is gone and this session is a guest.
    AccountDeleted {
        /// The request number, if the client sent one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
    },
    /// A request failed, or the hello was refused.
    Error {
        /// The request number of the failed request, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
    },
    /// A download may start: open the UDP flow to `port` on the server's address, sealed with
    /// keys derived from `secret`.
    /// Sent as the answer to [`ClientMsg::Download`], or later (without `req`) for a queued one.
    DownloadReady {
        /// The request number, if this answers a request directly.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
        /// The transfer's id, unique on this server.
        id: u64,
        /// The file's name.
        file: String,
        /// The file's size in bytes.
        size: u64,
        /// BLAKE3 hash of the whole file, 64 lowercase hex digits.
        hash: FileHash,
        /// The transfer's secret, 64 lowercase hex digits (256 bits): the keys of every UDP
        /// packet of the transfer derive from it (docs/TRANSPORT.md).
        secret: TransferSecret,
        /// The server's UDP port for this transfer.
        port: u16,
    },
    /// Every UDP port is busy: the download waits its turn and a [`ServerMsg::DownloadReady`]
    /// with the same id follows when a port frees.
    DownloadQueued {
        /// The request number, if the client sent one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
        /// The transfer's id.
        id: u64,
        /// The file's name.
        file: String,
        /// How many downloads wait before this one (0 = next).
        position: u32,
        /// True while the server is still hashing the file (its first request, or it changed):
        /// the download waits for that rather than for a port, and a `download_ready` or a
        /// `download_queued` with the same id follows. Absent means false; a client that does
        /// not know the field sees a download queued first in line, which is right too.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        preparing: bool,
    },
    /// Answer to [`ClientMsg::Cancel`]: the transfer is gone and its port is free.
    Cancelled {
        /// The request number, if the client sent one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
        /// The transfer's id.
        id: u64,
    },
    /// Answer to [`ClientMsg::Ping`].
    Pong,
    /// The server is closing this connection; the last frame it sends.
    Bye {
        /// Why: `server_shutdown`, `slow_consumer`, `timeout`, `protocol_error`, `quit`.
        reason: CloseReason,
        /// Why, for people.
        message: String,
    },
}

impl ClientMsg {
    /// A guest's hello: `name`, no password.
    pub fn hello(version: u32, name: impl Into<String>) -> Self {
        Self::Hello {
            version,
            name: name.into(),
            password: None,
            register: false,
        }
    }

    /// Parses a frame payload.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        Ok(serde_json::from_slice(payload)?)
    }

    /// The `req` of a payload that [`ClientMsg::decode`] refused (an unknown `type`, a missing
    /// member), when it is a JSON object with a valid `req`: so that even a `bad_request` can
    /// be matched to the request that caused it.
    pub fn req_of(payload: &[u8]) -> Option<u64> {
        #[derive(Deserialize)]
        struct ReqOnly {
            req: Option<u64>,
        }
        serde_json::from_slice::<ReqOnly>(payload).ok()?.req
    }

    /// The message as a complete frame, length prefix included.
    pub fn to_frame(&self) -> Bytes {
        encode_frame(&to_json(self))
    }

    /// The request number the client chose, for the messages that carry one.
    pub fn req(&self) -> Option<u64> {
        match self {
            Self::SendAll { req, .. }
            | Self::SendPrivate { req, .. }
            | Self::ListUsers { req }
            | Self::ListFiles { req, .. }
            | Self::Download { req, .. }
            | Self::Cancel { req, .. }
            | Self::Register { req, .. }
            | Self::ChangePassword { req, .. }
            | Self::DeleteAccount { req, .. }
            | Self::History { req, .. } => *req,
            Self::Hello { .. } | Self::Ping | Self::Quit => None,
        }
    }
}

impl ServerMsg {
    /// A live chat message (not history, not from the offline queue).
    pub fn message(id: Option<u64>, from: &str, text: &str, private: bool, time: u64) -> Self {
        Self::Message {
            id,
            from: from.to_owned(),
            text: text.to_owned(),
            private,
            time,
            history: false,
            offline: false,
        }
    }

    /// Parses a frame payload.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        Ok(serde_json::from_slice(payload)?)
    }

    /// The message as a complete frame, length prefix included.
    pub fn to_frame(&self) -> Bytes {
        encode_frame(&to_json(self))
    }

    /// The request number this message answers, if it answers one.
    pub fn req(&self) -> Option<u64> {
        match self {
            Self::Users { req, .. }
            | Self::Files { req, .. }
            | Self::Error { req, .. }
            | Self::DownloadReady { req, .. }
            | Self::DownloadQueued { req, .. }
            | Self::Cancelled { req, .. }
            | Self::History { req, .. }
            | Self::MessageQueued { req, .. }
            | Self::Registered { req, .. }
            | Self::PasswordChanged { req }
            | Self::AccountDeleted { req } => *req,
            Self::Welcome { .. }
            | Self::Joined { .. }
            | Self::Left { .. }
            | Self::Message { .. }
            | Self::Pong
            | Self::Bye { .. } => None,
        }
    }

    /// The `req` and `id` of a `download_ready` that [`ServerMsg::decode`] refused (its hash or
    /// secret is not 64 lowercase hex digits, say): so that a client can fail that one
    /// request or transfer, and tell the server to drop it, rather than wait for an answer
    /// that will never decode.
    pub fn refused_offer(payload: &[u8]) -> Option<(Option<u64>, u64)> {
        #[derive(Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Offer {
            DownloadReady { req: Option<u64>, id: u64 },
        }
        let Offer::DownloadReady { req, id } = serde_json::from_slice(payload).ok()?;
        Some((req, id))
    }

    /// The `bye` that closes a connection for `reason`.
    pub fn bye(reason: CloseReason) -> Self {
        Self::Bye {
            reason,
            message: reason.explain().into(),
        }
    }

    /// An error reply.
    pub fn error(req: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            req,
            code,
            message: message.into(),
        }
    }
}

#[allow(clippy::expect_used)]
fn to_json<T: Serialize>(msg: &T) -> Vec<u8> {
    // Our messages hold only strings, integers, booleans and lists of them: serde_json cannot
    // fail on those (it fails only on non-string map keys or a failing writer).
    serde_json::to_vec(msg).expect("protocol messages always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_look_as_documented() {
        let msg = ClientMsg::SendPrivate {
            to: "bob".into(),
            text: "hi".into(),
            req: Some(7),
        };
        let json = serde_json::to_string(&msg).unwrap();
        assert_eq!(
            json,
            r#"{"type":"send_private","to":"bob","text":"hi","req":7}"#
        );
        assert_eq!(
            serde_json::to_string(&ClientMsg::Ping).unwrap(),
            r#"{"type":"ping"}"#
        );
    }

    #[test]
    fn a_version_1_list_files_still_decodes_and_pages_look_as_documented() {
        let plain = ClientMsg::decode(br#"{"type":"list_files","req":1}"#).unwrap();
        assert_eq!(
            plain,
            ClientMsg::ListFiles {
                req: Some(1),
                after: None,
                limit: None
            }
        );
        let page = ServerMsg::Files {
            req: None,
            files: vec![],
            next: Some("b.txt".into()),
        };
        assert_eq!(
            serde_json::to_string(&page).unwrap(),
            r#"{"type":"files","files":[],"next":"b.txt"}"#
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let msg = ClientMsg::decode(br#"{"type":"list_users","future":true}"#).unwrap();
        assert_eq!(msg, ClientMsg::ListUsers { req: None });
    }

    #[test]
    fn unknown_types_and_bad_json_are_errors() {
        assert!(ClientMsg::decode(br#"{"type":"launch_missiles"}"#).is_err());
        assert!(ClientMsg::decode(b"\xff\xfe").is_err());
        assert!(ClientMsg::decode(br#"{"type":"hello","version":1}"#).is_err());
    }

    #[test]
    fn the_req_of_a_refused_request_is_still_found() {
        assert_eq!(
            ClientMsg::req_of(br#"{"type":"launch_missiles","req":7}"#),
            Some(7)
        );
        assert_eq!(
            ClientMsg::req_of(br#"{"type":"send_private","req":8}"#),
            Some(8)
        );
        assert_eq!(ClientMsg::req_of(br#"{"type":"x","req":"seven"}"#), None);
        assert_eq!(ClientMsg::req_of(br#"{"type":"x"}"#), None);
        assert_eq!(ClientMsg::req_of(b"\xff not json"), None);
    }

    #[test]
    fn an_offer_carries_its_hash_and_secret_as_hex_and_a_malformed_one_is_still_told_apart() {
        let hex = "ab".repeat(32);
        let json = format!(
            r#"{{"type":"download_ready","req":3,"id":9,"file":"f","size":1,"hash":"{hex}","secret":"{hex}","port":7}}"#
        );
        let msg = ServerMsg::decode(json.as_bytes()).unwrap();
        let ServerMsg::DownloadReady { hash, secret, .. } = &msg else {
            panic!("{msg:?}");
        };
        assert_eq!((hash.0, secret.0), ([0xab; 32], [0xab; 32]));
        assert_eq!(serde_json::to_string(&msg).unwrap(), json);
        assert_eq!(msg.req(), Some(3));
        // Not hex: the message is refused, but its request and transfer are still known.
        let bad = json.replacen(&hex, &"é".repeat(32), 1);
        assert!(ServerMsg::decode(bad.as_bytes()).is_err());
        assert_eq!(ServerMsg::refused_offer(bad.as_bytes()), Some((Some(3), 9)));
        let queued = br#"{"type":"download_ready","id":4,"hash":"x"}"#;
        assert_eq!(ServerMsg::refused_offer(queued), Some((None, 4)));
        assert_eq!(
            ServerMsg::refused_offer(br#"{"type":"files","id":4}"#),
            None
        );
        assert_eq!(ServerMsg::refused_offer(b"not json"), None);
    }

    #[test]
    fn reasons_are_typed_and_req_is_found_on_every_message_that_has_one() {
        let bye = ServerMsg::bye(CloseReason::SlowConsumer);
        assert_eq!(
            serde_json::to_string(&bye).unwrap(),
            r#"{"type":"bye","reason":"slow_consumer","message":"the client fell too far behind reading its messages"}"#
        );
        let left = ServerMsg::decode(br#"{"type":"left","name":"a","time":1,"reason":"new"}"#);
        assert!(matches!(
            left,
            Ok(ServerMsg::Left {
                reason: CloseReason::Unknown,
                ..
            })
        ));
        assert_eq!(bye.req(), None);
        let err = ServerMsg::error(Some(5), ErrorCode::Busy, "later");
        assert_eq!(err.req(), Some(5));
        let sent = ClientMsg::Cancel {
            id: 1,
            req: Some(6),
        };
        assert_eq!(sent.req(), Some(6));
        assert_eq!(ClientMsg::Quit.req(), None);
    }
}
