//! Where the terminal client's output goes: one [`Output`] trait, two printers beside each
//! other, as grep-printer has them: [`crate::human::Human`] writes lines for people (coloured,
//! with live progress lines), [`crate::json::Json`] one JSON object per line for scripts.

use chrono::{DateTime, Utc};
use client::{Event, FileEntry, ServerKey, TransferEvent, TransferStatus};
use wire::CloseReason;

/// A printer of what happens on the connection.
pub trait Output {
    /// The server's key was trusted.
    fn server_key(&mut self, server: &str, key: &ServerKey);
    /// We are online, as `name`, with `users`.
    fn connected(&mut self, name: &str, server: &str, users: &[String]);
    /// Another user came online.
    fn joined(&mut self, name: &str, time: &DateTime<Utc>);
    /// Another user went offline.
    fn left(&mut self, name: &str, reason: CloseReason, time: &DateTime<Utc>);
    /// A chat message.
    fn message(&mut self, from: &str, text: &str, private: bool, time: &DateTime<Utc>);
    /// The users online.
    fn users(&mut self, names: &[String]);
    /// The files the server shares.
    fn files(&mut self, files: &[FileEntry]);
    /// A download changed state or progressed.
    fn transfer(&mut self, t: &TransferEvent);
    /// The answer to `/transfers`.
    fn transfers(&mut self, all: &[TransferStatus]);
    /// Events were dropped because the terminal fell behind.
    fn lagged(&mut self, missed: u64);
    /// A command failed.
    fn error(&mut self, code: &str, message: &str);
    /// The connection ended.
    fn disconnected(&mut self, reason: &str, message: &str);
    /// Text for people only (help).
    fn info(&mut self, text: &str);

    /// Something happened on the connection.
    fn event(&mut self, event: &Event) {
        match event {
            Event::Joined { name, time } => self.joined(name, time),
            Event::Left { name, reason, time } => self.left(name, *reason, time),
            Event::Message {
                from,
                text,
                private,
                time,
            } => self.message(from, text, *private, time),
            Event::Users(names) => self.users(names),
            Event::Files(files) => self.files(files),
            Event::Error { code, message } => self.error(code.as_str(), message),
            Event::Transfer(t) => self.transfer(t),
            Event::Lagged { missed } => self.lagged(*missed),
            Event::Disconnected { reason, message } => self.disconnected(reason, message),
        }
    }
}
