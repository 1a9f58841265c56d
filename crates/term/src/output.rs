//! Where the terminal client's output goes: one [`Output`] trait, two printers beside each
//! other, as grep-printer has them: [`crate::human::Human`] writes lines for people (coloured,
//! with live progress lines), [`crate::json::Json`] one JSON object per line for scripts.

use chrono::{DateTime, Utc};
use client::{Event, FileEntry, HistoryPage, ServerKey, TransferEvent, TransferStatus};
use wire::CloseReason;

/// A chat message, live or stored.
#[derive(Debug, Clone, Copy)]
pub struct Said<'a> {
    /// The server's id of it.
    pub id: Option<u64>,
    /// Who sent it.
    pub from: &'a str,
    /// Who it was for, in a page of private history.
    pub to: Option<&'a str>,
    /// The text.
    pub text: &'a str,
    /// Sent to us alone.
    pub private: bool,
    /// When the server received it.
    pub time: DateTime<Utc>,
    /// Said before we joined (sent on joining).
    pub history: bool,
    /// Waited for our account while it was offline.
    pub offline: bool,
}

/// A change to our account that the server confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    /// `/register`: our name is an account now.
    Registered,
    /// `/passwd`.
    PasswordChanged,
    /// `/unregister`: we are a guest now.
    Deleted,
}

/// A printer of what happens on the connection.
pub trait Output {
    /// The server's key was trusted.
    fn server_key(&mut self, server: &str, key: &ServerKey);
    /// We are online, as `name` (an account's when `account`), with `users`.
    fn connected(&mut self, name: &str, server: &str, users: &[String], account: bool);
    /// Another user came online.
    fn joined(&mut self, name: &str, time: &DateTime<Utc>);
    /// Another user went offline.
    fn left(&mut self, name: &str, reason: CloseReason, time: &DateTime<Utc>);
    /// A chat message.
    fn message(&mut self, said: &Said<'_>);
    /// Our private message waits for `to`, who is offline.
    fn queued(&mut self, to: &str, id: u64);
    /// A page of stored messages (the answer to `/history`).
    fn history(&mut self, page: &HistoryPage);
    /// The account `name` changed as asked.
    fn account(&mut self, change: AccountChange, name: &str);
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
    /// The next line of input is a password: ask for it with `prompt`.
    fn ask_secret(&mut self, prompt: &'static str);

    /// Something happened on the connection.
    fn event(&mut self, event: &Event) {
        match event {
            Event::Joined { name, time } => self.joined(name, time),
            Event::Left { name, reason, time } => self.left(name, *reason, time),
            Event::Message {
                id,
                from,
                text,
                private,
                time,
                history,
                offline,
            } => self.message(&Said {
                id: *id,
                from,
                to: None,
                text,
                private: *private,
                time: *time,
                history: *history,
                offline: *offline,
            }),
            Event::Queued { to, id } => self.queued(to, *id),
            Event::Users(names) => self.users(names),
            Event::Files(files) => self.files(files),
            Event::Error { code, message } => self.error(code.as_str(), message),
            Event::Transfer(t) => self.transfer(t),
            Event::Lagged { missed } => self.lagged(*missed),
            Event::Disconnected { reason, message } => self.disconnected(reason, message),
        }
    }
}
