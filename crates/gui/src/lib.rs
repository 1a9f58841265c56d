//! messenger's desktop windows, on egui: the client ([`ClientApp`]) and the server
//! ([`ServerApp`]). Both are plain structs with a `show(ui)` method, so tests drive them with
//! egui_kittest; networking runs on tokio behind channels ([`net`]).
#![forbid(unsafe_code)]

mod app;
pub mod net;
mod server_app;

pub use app::{ClientApp, Conversation, Line, LineKind, OLDER_PAGE, TransferView};
pub use server_app::{LogBuffer, ServerApp};
