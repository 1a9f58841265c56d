//! Rendering events: JSON lines for scripts, or readable (optionally coloured) lines for people.
//!
//! Every string that came from the network (names, texts, file names, reasons, messages) goes
//! through [`display::visible`] before it is part of a human line: no text can forge a line or
//! send the terminal an escape sequence. JSON escapes control characters by itself.

use crate::input::Printer;
use crate::json::{JsonEvent, rfc3339};
use chrono::{DateTime, Local, Utc};
use client::{Event, FileEntry, TransferEvent, TransferPhase, TransferState, TransferStatus};
use display::{human_size, visible as v};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wire::CloseReason;

/// How events are written.
pub struct Output {
    json: bool,
    color: bool,
    printer: Printer,
    /// Live progress of running transfers (human output), by id.
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

impl Output {
    /// JSON lines on stdout when `json`, human lines otherwise (coloured when `color`).
    pub fn new(json: bool, color: bool, printer: Printer) -> Self {
        Self {
            json,
            color,
            printer,
            progress: BTreeMap::new(),
        }
    }

    /// The server's key was trusted: the `server_key` event for scripts; for people, a word
    /// only when the key is new.
    pub fn server_key(&mut self, server: &str, key: &client::ServerKey) {
        if self.json {
            self.emit(&JsonEvent::server_key(key));
        } else {
            crate::connect::tell_person(server, key);
        }
    }

    /// We are online.
    pub fn connected(&mut self, name: &str, server: &str, users: &[String]) {
        if self.json {
            self.emit(&JsonEvent::Connected {
                name,
                server,
                users,
            });
        } else {
            let line = format!(
                "{} connected to {server} as {}; {} online. Type /help for commands.",
                self.paint(GREEN, "*"),
                self.paint(BOLD, &v(name)),
                users.len()
            );
            self.printer.line(line);
        }
    }

    /// Something happened on the connection.
    pub fn event(&mut self, event: &Event) {
        match event {
            Event::Joined { name, time } => {
                if self.json {
                    self.emit(&JsonEvent::Joined {
                        name,
                        time: rfc3339(time),
                    });
                } else {
                    let line = format!(
                        "{} {} joined",
                        self.stamp(time),
                        self.paint(GREEN, &format!("-> {}", v(name)))
                    );
                    self.printer.line(line);
                }
            }
            Event::Left { name, reason, time } => {
                if self.json {
                    self.emit(&JsonEvent::Left {
                        name,
                        reason: *reason,
                        time: rfc3339(time),
                    });
                } else {
                    let why = if *reason == CloseReason::Quit {
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
            }
            Event::Message {
                from,
                text,
                private,
                time,
            } => {
                if self.json {
                    self.emit(&JsonEvent::Message {
                        from,
                        text,
                        private: *private,
                        time: rfc3339(time),
                    });
                } else if *private {
                    let line = format!(
                        "{} {} {}",
                        self.stamp(time),
                        self.paint(MAGENTA, &format!("[private] {}:", v(from))),
                        v(text)
                    );
                    self.printer.line(line);
                } else {
                    let line = format!(
                        "{} {} {}",
                        self.stamp(time),
                        self.paint(CYAN, &format!("{}:", v(from))),
                        v(text)
                    );
                    self.printer.line(line);
                }
            }
            Event::Users(names) => self.users(names),
            Event::Files(files) => self.files(files),
            Event::Error { code, message } => self.error(code.as_str(), message),
            Event::Transfer(t) => self.transfer(t),
            Event::Lagged { missed } => {
                if self.json {
                    self.emit(&JsonEvent::Lagged { missed: *missed });
                } else {
                    let line = format!(
                        "{} {missed} event(s) were dropped: this terminal fell behind",
                        self.paint(RED, "*")
                    );
                    self.printer.line(line);
                }
            }
            Event::Disconnected { reason, message } => self.disconnected(reason, message),
        }
    }

    /// The users online.
    pub fn users(&mut self, names: &[String]) {
        if self.json {
            self.emit(&JsonEvent::Users { names });
        } else {
            let line = format!(
                "{} online ({}): {}",
                self.paint(GREEN, "*"),
                names.len(),
                names.iter().map(|n| v(n)).collect::<Vec<_>>().join(", ")
            );
            self.printer.line(line);
        }
    }

    /// The files the server shares.
    pub fn files(&mut self, files: &[FileEntry]) {
        if self.json {
            self.emit(&JsonEvent::Files { files });
            return;
        }
        let header = format!("{} {} shared file(s)", self.paint(GREEN, "*"), files.len());
        self.printer.line(header);
        let names: Vec<_> = files.iter().map(|f| v(&f.name)).collect();
        let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        for (f, name) in files.iter().zip(&names) {
            self.printer
                .line(format!("    {name:width$}  {:>10}", human_size(f.size)));
        }
    }

    /// A download changed state or progressed.
    pub fn transfer(&mut self, t: &TransferEvent) {
        if self.json {
            self.emit(&JsonEvent::transfer(t));
            return;
        }
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

    /// The answer to `/transfers`.
    pub fn transfers(&mut self, all: &[TransferStatus]) {
        if self.json {
            self.emit(&JsonEvent::transfers(all));
            return;
        }
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

    /// A command failed.
    pub fn error(&mut self, code: &str, message: &str) {
        if self.json {
            self.emit(&JsonEvent::Error { code, message });
        } else {
            let line = format!("{} {} ({})", self.paint(RED, "error:"), v(message), v(code));
            self.printer.line(line);
        }
    }

    /// The connection ended.
    pub fn disconnected(&mut self, reason: &str, message: &str) {
        if self.json {
            self.emit(&JsonEvent::Disconnected { reason, message });
        } else {
            let line = format!("{} disconnected: {}", self.paint(DIM, "*"), v(message));
            self.printer.line(line);
        }
    }

    /// Text for people only (help); goes to stderr in JSON mode so stdout stays pure JSON.
    pub fn info(&mut self, text: &str) {
        if self.json {
            eprintln!("{text}");
        } else {
            for line in text.lines() {
                self.printer.line(line.to_owned());
            }
        }
    }

    fn emit(&mut self, event: &JsonEvent<'_>) {
        self.printer.line(event.line());
    }

    fn stamp(&self, time: &DateTime<Utc>) -> String {
        let local = time.with_timezone(&Local).format("%H:%M:%S").to_string();
        self.paint(DIM, &format!("[{local}]"))
    }

    fn paint(&self, style: &str, text: &str) -> String {
        if self.color {
            format!("{style}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }
}
