//! The messenger control protocol, spoken over TCP between clients and the server.
//!
//! Everything here is sans-IO: [`FrameCodec`] splits a byte stream into length-prefixed frames
//! (and plugs into `tokio_util::codec`), and [`ClientMsg`] / [`ServerMsg`] turn a frame's payload
//! into a typed message and back. Nothing in this crate panics on any input; malformed bytes are
//! reported as errors a caller can act on. `docs/PROTOCOL.md` describes the same format for
//! people writing their own client.
#![forbid(unsafe_code)]

mod code;
mod fingerprint;
mod frame;
mod hex;
mod message;
mod name;
mod reason;
mod text;

pub use code::ErrorCode;
pub use fingerprint::{Fingerprint, FingerprintError};
pub use frame::{FrameCodec, FrameError, MAX_FRAME_LEN, announced_len, encode_frame};
pub use hex::{FileHash, HEX_VALUE_LEN, HexError, TransferSecret};
pub use message::{
    ClientMsg, DecodeError, FileEntry, MAX_FILES_PAGE, MAX_FILES_PAGE_BYTES, MAX_HISTORY_PAGE,
    MAX_HISTORY_PAGE_BYTES, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, ServerMsg, StoredMessage,
};
pub use name::{MAX_NAME_LEN, NameError, lookalike_key, name_key, validate_name};
pub use reason::CloseReason;
pub use text::is_hidden_control;

/// The protocol version this crate speaks. A client announces it in its hello; the server
/// answers with the version both will use, or `unsupported_version`.
pub const PROTOCOL_VERSION: u32 = 3;

/// The ALPN protocol id of the control channel: clients offer it in their TLS ClientHello,
/// the server selects it (see docs/PROTOCOL.md, "TLS"). It names the protocol's major
/// version, so a client of an incompatible version fails in the handshake with a clear alert.
pub const ALPN: &[u8] = b"messenger/2";

/// Longest chat text, in bytes of UTF-8, that the server relays. Longer texts get `too_long`.
pub const MAX_TEXT_LEN: usize = 4096;
