//! Output for people: readable lines, coloured when the terminal allows, with a live progress
//! line per running download.
//!
//! Every string that came from the network (names, texts, file names, reasons, messages) goes
//! through [`display::visible`] before it is part of a line: no text can forge a line or send
//! the terminal an escape sequence.

use crate::input::Printer;
use crate::output::{AccountChange, Output, Said};
use chrono::{DateTime, Local, Utc};
use client::{
    FileEntry, HistoryPage, ServerKey, TransferEvent, TransferPhase, TransferState, TransferStatus,
};
use display::{human_size, visible as v};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wire::CloseReason;

/// The printer for people.
pub struct Human {
    color: bool,
    printer: Printer,
    /// Live progress of running transfers, by id.
    progress: BTreeMap<u64, Progress>,
}

struct Progress {
    file: String,
    line: String,
    printed: Option<Instant>,
}

const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const MAGENTA: &str = "\x1b[35m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

impl Human {
    /// Lines on `printer`, coloured when `color`.
    pub fn new(color: bool, printer: Printer) -> Self {
        Self {
            color,
            printer,
            progress: BTreeMap::new(),
        }
    }

    /// One progress line per transfer, printed at most every few seconds so it never floods
    /// the chat.
    fn show_progress(&mut self, id: u64, file: &str, bytes: u64, size: u64, rate_bps: u64) {
        let pct = if size == 0 {
            100.0
        } else {
            bytes as f64 * 100.0 / size as f64
        };
        let eta = display::eta(bytes, size, rate_bps);
        let line = format!(
            "[{id}] {file} {pct:5.1}% {} / {} at {}/s, {eta}",
            human_size(bytes),
            human_size(size),
            human_size(rate_bps / 8)
        );
        let entry = self.progress.entry(id).or_insert_with(|| Progress {
            file: file.to_owned(),
            line: String::new(),
            printed: None,
        });
        entry.line = line.clone();
        let colored = self.paint(DIM, &line);
        if self.printer.status(id, Some(colored)) {
            return; // a live line above the prompt
        }
        // Plain output: a progress line every few seconds, so logs stay readable.
        let Some(entry) = self.progress.get_mut(&id) else {
            return;
        };
        let due = entry
            .printed
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(3));
        if due {
            entry.printed = Some(Instant::now());
            let line = self.paint(DIM, &line);
            self.printer.line(line);
        }
    }

    fn end_progress(&mut self, id: u64) {
        self.progress.remove(&id);
        self.printer.status(id, None);
    }

    fn stamp(&self, time: &DateTime<Utc>) -> String {
        let local = time.with_timezone(&Local).format("%H:%M:%S").to_string();
        self.paint(DIM, &format!("[{local}]"))
    }

    /// A stored message's time: with its date unless it is today's.
    fn dated(&self, time: &DateTime<Utc>) -> String {
        let local = time.with_timezone(&Local);
        let format = if local.date_naive() == Local::now().date_naive() {
            "%H:%M:%S"
        } else {
            "%Y-%m-%d %H:%M"
        };
        self.paint(DIM, &format!("[{}]", local.format(format)))
    }

    fn paint(&self, style: &str, text: &str) -> String {
        if self.color {
            format!("{style}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }
}

impl Output for Human {
    /// For people, a word only when the key is new.
    fn server_key(&mut self, server: &str, key: &ServerKey) {
        crate::connect::tell_person(server, key);
    }

    fn connected(&mut self, name: &str, server: &str, users: &[String], account: bool) {
        let guest = if account { "" } else { " (a guest)" };
        let line = format!(
            "{} connected to {server} as {}{guest}; {} online. Type /help for commands.",
            self.paint(GREEN, "*"),
            self.paint(BOLD, &v(name)),
            users.len()
        );
        self.printer.line(line);
    }

    fn joined(&mut self, name: &str, time: &DateTime<Utc>) {
        let line = format!(
            "{} {} joined",
            self.stamp(time),
            self.paint(GREEN, &format!("-> {}", v(name)))
        );
        self.printer.line(line);
    }

    fn left(&mut self, name: &str, reason: CloseReason, time: &DateTime<Utc>) {
        let why = if reason == CloseReason::Quit {
            String::new()
        } else {
            format!(" ({reason})")
        };
        let line = format!(
            "{} {} left{why}",
            self.stamp(time),
            self.paint(DIM, &format!("<- {}", v(name)))
        );
        self.printer.line(line);
    }

    fn message(&mut self, said: &Said<'_>) {
        let (from, text) = (v(said.from), v(said.text));
        // Stored messages carry their date, live ones only the time.
        let stamp = if said.history || said.offline || said.to.is_some() {
            self.dated(&said.time)
        } else {
            self.stamp(&said.time)
        };
        let line = match said.to {
            Some(to) => format!(
                "{stamp} {} {text}",
                self.paint(MAGENTA, &format!("{from} -> {}:", v(to)))
            ),
            None if said.private => {
                let tag = if said.offline {
                    "[private, while you were away]"
                } else {
                    "[private]"
                };
                format!(
                    "{stamp} {} {text}",
                    self.paint(MAGENTA, &format!("{tag} {from}:"))
                )
            }
            None => format!("{stamp} {} {text}", self.paint(CYAN, &format!("{from}:"))),
        };
        self.printer.line(line);
    }

    fn queued(&mut self, to: &str, _id: u64) {
        let line = format!(
            "{} {} is offline; your message is kept and delivered when they log in",
            self.paint(GREEN, "*"),
            v(to)
        );
        self.printer.line(self.paint(DIM, &line));
    }

    fn history(&mut self, page: &HistoryPage) {
        let whose = match &page.with {
            Some(with) => format!("your conversation with {}", v(with)),
            None => "messages to everyone".to_owned(),
        };
        let header = match page.messages.len() {
            0 => format!("{} no stored {whose}", self.paint(GREEN, "*")),
            n => format!(
                "{} {n} stored {whose}, oldest first:",
                self.paint(GREEN, "*")
            ),
        };
        self.printer.line(header);
        for m in &page.messages {
            let said = Said {
                id: Some(m.id),
                from: &m.from,
                to: m.to.as_deref(),
                text: &m.text,
                private: m.to.is_some(),
                time: client::time_from_millis(m.time),
                history: true,
                offline: false,
            };
            self.message(&said);
        }
        if let (true, Some(first)) = (page.more, page.messages.first()) {
            let with = page
                .with
                .as_deref()
                .map(|w| format!(" {}", v(w)))
                .unwrap_or_default();
            let line = format!(
                "{} older ones: /history{with} {} --before {}",
                self.paint(GREEN, "*"),
                page.messages.len(),
                first.id
            );
            self.printer.line(self.paint(DIM, &line));
        }
    }

    fn account(&mut self, change: AccountChange, name: &str) {
        let text = match change {
            AccountChange::Registered => format!(
                "{} is your account now: only its password logs in with it (give it with \
                 --password-file or $MESSENGER_PASSWORD, or type it when asked)",
                v(name)
            ),
            AccountChange::PasswordChanged => "your password was changed".to_owned(),
            AccountChange::Deleted => format!(
                "the account {} is deleted; you are online as a guest",
                v(name)
            ),
        };
        let line = format!("{} {text}", self.paint(GREEN, "*"));
        self.printer.line(line);
    }

    fn users(&mut self, names: &[String]) {
        let line = format!(
            "{} online ({}): {}",
            self.paint(GREEN, "*"),
            names.len(),
            names.iter().map(|n| v(n)).collect::<Vec<_>>().join(", ")
        );
        self.printer.line(line);
    }

    fn files(&mut self, files: &[FileEntry]) {
        let header = format!("{} {} shared file(s)", self.paint(GREEN, "*"), files.len());
        self.printer.line(header);
        let names: Vec<_> = files.iter().map(|f| v(&f.name)).collect();
        let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        for (f, name) in files.iter().zip(&names) {
            self.printer
                .line(format!("    {name:width$}  {:>10}", human_size(f.size)));
        }
    }

    fn transfer(&mut self, t: &TransferEvent) {
        let id = t.id;
        let file = &*v(&t.file);
        if let TransferState::Paused { bytes, .. } = &t.state {
            // The live line says so too, instead of showing the last speed.
            let line = format!("[{id}] {file} paused at {}", human_size(*bytes));
            let line = self.paint(DIM, &line);
            self.printer.status(id, Some(line));
        }
        let text = match &t.state {
            TransferState::Preparing => {
                format!("download {id} of {file} waits while the server prepares the file")
            }
            TransferState::Queued { position } => {
                format!(
                    "download {id} of {file} is queued ({position} ahead): every transfer port is busy"
                )
            }
            TransferState::Started { size, offset: 0 } => {
                format!(
                    "downloading {file} ({}) as transfer {id}",
                    human_size(*size)
                )
            }
            TransferState::Started { size, offset } => format!(
                "resuming {file} at {} of {} as transfer {id}",
                human_size(*offset),
                human_size(*size)
            ),
            TransferState::Progress {
                bytes,
                size,
                rate_bps,
                ..
            } => {
                self.show_progress(id, file, *bytes, *size, *rate_bps);
                return;
            }
            TransferState::Paused {
                bytes,
                at_pause_point: true,
            } => format!(
                "transfer {id} ({file}) paused by itself at {}; continue? type /resume {id} (or /cancel {id})",
                human_size(*bytes)
            ),
            TransferState::Paused { bytes, .. } => {
                format!(
                    "transfer {id} ({file}) paused at {}; /resume {id} continues",
                    human_size(*bytes)
                )
            }
            TransferState::Resumed { bytes } => {
                format!("transfer {id} ({file}) resumed at {}", human_size(*bytes))
            }
            TransferState::Done {
                bytes,
                path,
                last_byte,
                hash,
            } => {
                self.end_progress(id);
                let last = last_byte.map_or("none (empty file)".to_string(), |b| b.to_string());
                format!(
                    "{} {file} downloaded: {} saved to {}, verified (BLAKE3 {}...); last byte sent: {last}",
                    self.paint(GREEN, "done:"),
                    human_size(*bytes),
                    v(&path.display().to_string()),
                    &hash.to_hex()[..16]
                )
            }
            TransferState::Failed { error } => {
                self.end_progress(id);
                format!(
                    "{} transfer {id} ({file}) failed: {}",
                    self.paint(RED, "error:"),
                    v(error)
                )
            }
            TransferState::Cancelled => {
                self.end_progress(id);
                format!("transfer {id} ({file}) cancelled")
            }
        };
        self.printer
            .line(format!("{} {text}", self.paint(GREEN, "*")));
    }

    fn transfers(&mut self, all: &[TransferStatus]) {
        if all.is_empty() {
            self.printer
                .line(format!("{} no transfers", self.paint(GREEN, "*")));
        }
        for t in all {
            let size = t.size.map_or("?".to_string(), human_size);
            let live = self
                .progress
                .get(&t.id)
                .filter(|p| p.file == *v(&t.file) && t.state == TransferPhase::Running);
            let line = match live {
                Some(p) => p.line.clone(),
                None => format!(
                    "[{}] {} {} {} / {size}",
                    t.id,
                    v(&t.file),
                    t.state,
                    human_size(t.bytes)
                ),
            };
            self.printer.line(line);
        }
    }

    fn lagged(&mut self, missed: u64) {
        let line = format!(
            "{} {missed} event(s) were dropped: this terminal fell behind",
            self.paint(RED, "*")
        );
        self.printer.line(line);
    }

    fn error(&mut self, code: &str, message: &str) {
        let line = format!("{} {} ({})", self.paint(RED, "error:"), v(message), v(code));
        self.printer.line(line);
    }

    fn disconnected(&mut self, _reason: &str, message: &str) {
        let line = format!("{} disconnected: {}", self.paint(DIM, "*"), v(message));
        self.printer.line(line);
    }

    fn info(&mut self, text: &str) {
        for line in text.lines() {
            self.printer.line(line.to_owned());
        }
    }

    fn ask_secret(&mut self, prompt: &'static str) {
        if !self.printer.ask_secret(prompt) {
            // No line editor: the next line of input answers; say which is wanted.
            eprintln!("messenger: {}", prompt.trim_end());
        }
    }
}
