//! The messenger client library: every front end (terminal, GUI, benchmarks) talks to the server
//! through [`Client`] and reads what happens from [`Events`]; none touches the socket itself.
//! What a user asks for is one [`Command`], run by [`Client::execute`] (or several at once, beside
//! the events, by [`InFlight`]). How things look to people is the front ends' business.
//!
//! ```no_run
//! # async fn demo() -> Result<(), client::ClientError> {
//! // Trust on first use, as a script does; `Trust::pinned` takes a known fingerprint.
//! let trust = client::Trust::for_user(client::NewKey::Accept);
//! let (client, mut events) = client::Client::connect("127.0.0.1:50000", "alice", &trust).await?;
//! println!("{} ({})", client.server_key().fingerprint, client.server_key().status.as_str());
//! client.execute(client::Command::SendAll("hello everyone".into())).await?;
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod account;
mod command;
mod connection;
mod error;
mod event;
mod known_servers;
mod part;
mod prefix_hash;
mod reader;
mod status;
mod tls;
mod transfer;
mod transfers;
mod trust;

pub use account::{
    HistoryPage, HistoryQuery, Login, MAX_HISTORY_PAGE, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN,
    Password, StoredMessage,
};
pub use command::{Command, InFlight, Reply};
pub use connection::{Client, Events};
pub use error::ClientError;
pub use event::{Event, TransferEvent, TransferState, time_from_millis};
pub use part::{Checkpoint, FinishError, PartFile, safe_file_name};
pub use status::{TransferPhase, TransferStatus};
pub use tls::{TlsStream, connect_tls};
pub use transfer::{Control, DownloadOptions, STALL_BYTES};
pub use trust::{ExpectedFrom, KeyStatus, NewKey, ServerKey, Trust, default_known_servers};
pub use wire::{CloseReason, ErrorCode, FileEntry, FileHash, Fingerprint, FingerprintError};
