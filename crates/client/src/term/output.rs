//! Rendering events: JSON lines for scripts, or readable (optionally coloured) lines for people.

use super::input::Printer;
use chrono::{DateTime, Local, SecondsFormat, Utc};
use client::{Event, FileEntry};
use serde_json::{Value, json};

/// How events are written.
pub struct Output {
    json: bool,
    color: bool,
    printer: Printer,
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
        }
    }

    /// We are online.
    pub fn connected(&mut self, name: &str, server: &str, users: &[String]) {
        if self.json {
            self.emit(
                json!({"event": "connected", "name": name, "server": server, "users": users}),
            );
        } else {
            let line = format!(
                "{} connected to {server} as {}; {} online. Type /help for commands.",
                self.paint(GREEN, "*"),
                self.paint(BOLD, name),
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
                    self.emit(json!({"event": "joined", "name": name, "time": rfc3339(time)}));
                } else {
                    let line = format!(
                        "{} {} joined",
                        self.stamp(time),
                        self.paint(GREEN, &format!("-> {name}"))
                    );
                    self.printer.line(line);
                }
            }
            Event::Left { name, reason, time } => {
                if self.json {
                    self.emit(json!({"event": "left", "name": name, "reason": reason, "time": rfc3339(time)}));
                } else {
                    let why = if reason == "quit" {
                        String::new()
                    } else {
                        format!(" ({reason})")
                    };
                    let line = format!(
                        "{} {} left{why}",
                        self.stamp(time),
                        self.paint(DIM, &format!("<- {name}"))
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
                    self.emit(json!({"event": "message", "from": from, "text": text,
                        "private": private, "time": rfc3339(time)}));
                } else if *private {
                    let line = format!(
                        "{} {} {text}",
                        self.stamp(time),
                        self.paint(MAGENTA, &format!("[private] {from}:"))
                    );
                    self.printer.line(line);
                } else {
                    let line = format!(
                        "{} {} {text}",
                        self.stamp(time),
                        self.paint(CYAN, &format!("{from}:"))
                    );
                    self.printer.line(line);
                }
            }
            Event::Users(names) => self.users(names),
            Event::Files(files) => self.files(files),
            Event::Error { code, message } => self.error(code.as_str(), message),
            Event::Disconnected { reason, message } => self.disconnected(reason, message),
        }
    }

    /// The users online.
    pub fn users(&mut self, names: &[String]) {
        if self.json {
            self.emit(json!({"event": "users", "names": names}));
        } else {
            let line = format!(
                "{} online ({}): {}",
                self.paint(GREEN, "*"),
                names.len(),
                names.join(", ")
            );
            self.printer.line(line);
        }
    }

    /// The files the server shares.
    pub fn files(&mut self, files: &[FileEntry]) {
        if self.json {
            let list: Vec<Value> = files
                .iter()
                .map(|f| json!({"name": f.name, "size": f.size}))
                .collect();
            self.emit(json!({"event": "files", "files": list}));
            return;
        }
        let header = format!("{} {} shared file(s)", self.paint(GREEN, "*"), files.len());
        self.printer.line(header);
        let width = files
            .iter()
            .map(|f| f.name.chars().count())
            .max()
            .unwrap_or(0);
        for f in files {
            self.printer
                .line(format!("    {:width$}  {:>10}", f.name, human_size(f.size)));
        }
    }

    /// A command failed.
    pub fn error(&mut self, code: &str, message: &str) {
        if self.json {
            self.emit(json!({"event": "error", "code": code, "message": message}));
        } else {
            let line = format!("{} {message} ({code})", self.paint(RED, "error:"));
            self.printer.line(line);
        }
    }

    /// The connection ended.
    pub fn disconnected(&mut self, reason: &str, message: &str) {
        if self.json {
            self.emit(json!({"event": "disconnected", "reason": reason, "message": message}));
        } else {
            let line = format!("{} disconnected: {message}", self.paint(DIM, "*"));
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

    fn emit(&mut self, value: Value) {
        self.printer.line(value.to_string());
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

/// RFC 3339 with milliseconds, UTC: `2026-11-24T15:04:05.123Z`.
pub fn rfc3339(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `1536` -> `1.5 KiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        let t = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        assert_eq!(rfc3339(&t), "2023-11-14T22:13:20.123Z");
    }
}
