//! The `--json` output ([`Json`]): one object per line, tagged by `"event"`. Every line the terminal
//! client prints in that mode is one of these types, serialized: their members are what the
//! README's table of events documents (a test below holds the two together).

use crate::input::Printer;
use crate::output::{AccountChange, Output, Said};
use chrono::{DateTime, SecondsFormat, Utc};
use client::{
    CloseReason, FileEntry, HistoryPage, ServerKey, TransferEvent, TransferPhase, TransferState,
    TransferStatus,
};
use serde::Serialize;
use std::borrow::Cow;

/// One line of `--json` output.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JsonEvent<'a> {
    /// The server's key and why it is trusted; before `connected`.
    ServerKey {
        fingerprint: String,
        status: &'static str,
    },
    Connected {
        name: &'a str,
        server: &'a str,
        users: &'a [String],
        account: bool,
    },
    Joined {
        name: &'a str,
        time: String,
    },
    Left {
        name: &'a str,
        reason: CloseReason,
        time: String,
    },
    Message {
        from: &'a str,
        text: &'a str,
        private: bool,
        time: String,
        id: Option<u64>,
        history: bool,
        offline: bool,
    },
    Queued {
        to: &'a str,
        id: u64,
    },
    History {
        with: Option<&'a str>,
        messages: Vec<StoredJson<'a>>,
        more: bool,
    },
    Registered {
        name: &'a str,
    },
    PasswordChanged,
    AccountDeleted,
    Users {
        names: &'a [String],
    },
    Files {
        files: &'a [FileEntry],
    },
    Error {
        code: &'a str,
        message: &'a str,
    },
    Transfer {
        id: u64,
        file: &'a str,
        #[serde(flatten)]
        state: TransferJson<'a>,
    },
    Transfers {
        transfers: Vec<TransferRow<'a>>,
    },
    Lagged {
        missed: u64,
    },
    Disconnected {
        reason: &'a str,
        message: &'a str,
    },
}

/// What a `transfer` event says of its state, tagged by `"state"`.
#[derive(Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TransferJson<'a> {
    Preparing,
    Queued {
        position: u32,
    },
    Started {
        size: u64,
        offset: u64,
    },
    Progress {
        bytes: u64,
        size: u64,
        rate_bps: u64,
        rtt_ms: f64,
        lost: u64,
    },
    Paused {
        bytes: u64,
        /// `pause_at` (it reached its pause point) or `user`.
        reason: &'static str,
    },
    Resumed {
        bytes: u64,
    },
    Done {
        bytes: u64,
        size: u64,
        /// Where it was saved (a name that is not UTF-8 shows its bad bytes as U+FFFD).
        path: Cow<'a, str>,
        last_byte: Option<u8>,
        hash: client::FileHash,
    },
    Failed {
        error: &'a str,
    },
    Cancelled,
}

/// One message of a `history` event.
#[derive(Debug, Serialize)]
pub struct StoredJson<'a> {
    id: u64,
    from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    text: &'a str,
    time: String,
}

/// One transfer in the answer to `/transfers`.
#[derive(Debug, Serialize)]
pub struct TransferRow<'a> {
    id: u64,
    file: &'a str,
    state: TransferPhase,
    bytes: u64,
    size: Option<u64>,
}

impl<'a> JsonEvent<'a> {
    /// The event of a transfer's new state.
    pub fn transfer(t: &'a TransferEvent) -> Self {
        let state = match &t.state {
            TransferState::Preparing => TransferJson::Preparing,
            TransferState::Queued { position } => TransferJson::Queued {
                position: *position,
            },
            TransferState::Started { size, offset } => TransferJson::Started {
                size: *size,
                offset: *offset,
            },
            TransferState::Progress {
                bytes,
                size,
                rate_bps,
                rtt_us,
                lost,
            } => TransferJson::Progress {
                bytes: *bytes,
                size: *size,
                rate_bps: *rate_bps,
                rtt_ms: *rtt_us as f64 / 1000.0,
                lost: *lost,
            },
            TransferState::Paused {
                bytes,
                at_pause_point,
            } => TransferJson::Paused {
                bytes: *bytes,
                reason: if *at_pause_point { "pause_at" } else { "user" },
            },
            TransferState::Resumed { bytes } => TransferJson::Resumed { bytes: *bytes },
            TransferState::Done {
                bytes,
                path,
                last_byte,
                hash,
            } => TransferJson::Done {
                bytes: *bytes,
                size: *bytes,
                path: path.to_string_lossy(),
                last_byte: *last_byte,
                hash: *hash,
            },
            TransferState::Failed { error } => TransferJson::Failed { error },
            TransferState::Cancelled => TransferJson::Cancelled,
        };
        Self::Transfer {
            id: t.id,
            file: &t.file,
            state,
        }
    }

    /// The answer to `/transfers`.
    pub fn transfers(all: &'a [TransferStatus]) -> Self {
        let transfers = all
            .iter()
            .map(|t| TransferRow {
                id: t.id,
                file: &t.file,
                state: t.state,
                bytes: t.bytes,
                size: t.size,
            })
            .collect();
        Self::Transfers { transfers }
    }

    /// The server's key and how it is trusted.
    pub fn server_key(key: &ServerKey) -> Self {
        Self::ServerKey {
            fingerprint: key.fingerprint.to_string(),
            status: key.status.as_str(),
        }
    }

    /// The line to print.
    pub fn line(&self) -> String {
        // Strings, numbers, booleans and lists of them: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// RFC 3339 with milliseconds, UTC: `2026-11-24T15:04:05.123Z`.
pub fn rfc3339(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The printer for scripts: every line one [`JsonEvent`] on stdout; text for people (help)
/// goes to stderr, so that stdout stays pure JSON.
pub struct Json {
    printer: Printer,
}

impl Json {
    /// Lines on `printer`.
    pub fn new(printer: Printer) -> Self {
        Self { printer }
    }

    fn emit(&mut self, event: &JsonEvent<'_>) {
        self.printer.line(event.line());
    }
}

impl Output for Json {
    fn server_key(&mut self, _server: &str, key: &ServerKey) {
        self.emit(&JsonEvent::server_key(key));
    }

    fn connected(&mut self, name: &str, server: &str, users: &[String], account: bool) {
        self.emit(&JsonEvent::Connected {
            name,
            server,
            users,
            account,
        });
    }

    fn joined(&mut self, name: &str, time: &DateTime<Utc>) {
        self.emit(&JsonEvent::Joined {
            name,
            time: rfc3339(time),
        });
    }

    fn left(&mut self, name: &str, reason: CloseReason, time: &DateTime<Utc>) {
        self.emit(&JsonEvent::Left {
            name,
            reason,
            time: rfc3339(time),
        });
    }

    fn message(&mut self, said: &Said<'_>) {
        self.emit(&JsonEvent::Message {
            from: said.from,
            text: said.text,
            private: said.private,
            time: rfc3339(&said.time),
            id: said.id,
            history: said.history,
            offline: said.offline,
        });
    }

    fn queued(&mut self, to: &str, id: u64) {
        self.emit(&JsonEvent::Queued { to, id });
    }

    fn history(&mut self, page: &HistoryPage) {
        let messages = page
            .messages
            .iter()
            .map(|m| StoredJson {
                id: m.id,
                from: &m.from,
                to: m.to.as_deref(),
                text: &m.text,
                time: rfc3339(&client::time_from_millis(m.time)),
            })
            .collect();
        self.emit(&JsonEvent::History {
            with: page.with.as_deref(),
            messages,
            more: page.more,
        });
    }

    fn account(&mut self, change: AccountChange, name: &str) {
        self.emit(&match change {
            AccountChange::Registered => JsonEvent::Registered { name },
            AccountChange::PasswordChanged => JsonEvent::PasswordChanged,
            AccountChange::Deleted => JsonEvent::AccountDeleted,
        });
    }

    fn users(&mut self, names: &[String]) {
        self.emit(&JsonEvent::Users { names });
    }

    fn files(&mut self, files: &[FileEntry]) {
        self.emit(&JsonEvent::Files { files });
    }

    fn transfer(&mut self, t: &TransferEvent) {
        self.emit(&JsonEvent::transfer(t));
    }

    fn transfers(&mut self, all: &[TransferStatus]) {
        self.emit(&JsonEvent::transfers(all));
    }

    fn lagged(&mut self, missed: u64) {
        self.emit(&JsonEvent::Lagged { missed });
    }

    fn error(&mut self, code: &str, message: &str) {
        self.emit(&JsonEvent::Error { code, message });
    }

    fn disconnected(&mut self, reason: &str, message: &str) {
        self.emit(&JsonEvent::Disconnected { reason, message });
    }

    fn info(&mut self, text: &str) {
        eprintln!("{text}");
    }

    /// A script answers with the next line; stdout stays pure JSON.
    fn ask_secret(&mut self, _prompt: &'static str) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// One event of every kind and every transfer state.
    fn samples() -> Vec<serde_json::Value> {
        let users = vec!["a".to_string()];
        let files = vec![FileEntry {
            name: "f".into(),
            size: 1,
        }];
        let mut all = vec![
            JsonEvent::ServerKey {
                fingerprint: "SHA256:x".into(),
                status: "new",
            },
            JsonEvent::Connected {
                name: "a",
                server: "s",
                users: &users,
                account: false,
            },
            JsonEvent::Joined {
                name: "a",
                time: "t".into(),
            },
            JsonEvent::Left {
                name: "a",
                reason: CloseReason::Quit,
                time: "t".into(),
            },
            JsonEvent::Message {
                from: "a",
                text: "hi",
                private: false,
                time: "t".into(),
                id: Some(1),
                history: false,
                offline: false,
            },
            JsonEvent::Queued { to: "a", id: 1 },
            JsonEvent::History {
                with: Some("a"),
                messages: vec![StoredJson {
                    id: 1,
                    from: "a",
                    to: Some("b"),
                    text: "hi",
                    time: "t".into(),
                }],
                more: false,
            },
            JsonEvent::Registered { name: "a" },
            JsonEvent::PasswordChanged,
            JsonEvent::AccountDeleted,
            JsonEvent::Users { names: &users },
            JsonEvent::Files { files: &files },
            JsonEvent::Error {
                code: "busy",
                message: "m",
            },
            JsonEvent::Transfers {
                transfers: vec![TransferRow {
                    id: 1,
                    file: "f",
                    state: TransferPhase::Queued,
                    bytes: 0,
                    size: None,
                }],
            },
            JsonEvent::Lagged { missed: 1 },
            JsonEvent::Disconnected {
                reason: "quit",
                message: "m",
            },
        ];
        let states = [
            TransferJson::Preparing,
            TransferJson::Queued { position: 0 },
            TransferJson::Started { size: 1, offset: 0 },
            TransferJson::Progress {
                bytes: 1,
                size: 1,
                rate_bps: 1,
                rtt_ms: 1.0,
                lost: 0,
            },
            TransferJson::Paused {
                bytes: 1,
                reason: "user",
            },
            TransferJson::Resumed { bytes: 1 },
            TransferJson::Done {
                bytes: 1,
                size: 1,
                path: "/x".into(),
                last_byte: None,
                hash: client::FileHash([0; 32]),
            },
            TransferJson::Failed { error: "e" },
            TransferJson::Cancelled,
        ];
        for state in states {
            all.push(JsonEvent::Transfer {
                id: 1,
                file: "f",
                state,
            });
        }
        all.iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect()
    }

    /// The README's table of events: event name -> the text of its row's second column.
    fn documented() -> BTreeMap<String, String> {
        let readme = include_str!("../../../README.md");
        let table = readme
            .split("| event | fields |")
            .nth(1)
            .expect("the README has a table of events");
        let mut rows = BTreeMap::new();
        for line in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
            let cells: Vec<&str> = line.split('|').collect();
            let (names, fields) = (cells[1], cells[2..].join("|"));
            for name in names.split('/') {
                rows.insert(name.trim().trim_matches('`').to_string(), fields.clone());
            }
        }
        rows
    }

    #[test]
    fn every_event_and_every_member_is_in_the_readme_table_and_nothing_more() {
        let table = documented();
        let mut emitted = std::collections::BTreeSet::new();
        for sample in samples() {
            let object = sample.as_object().unwrap();
            let event = object["event"].as_str().unwrap().to_string();
            let row = table
                .get(&event)
                .unwrap_or_else(|| panic!("`{event}` is not in the README's table"));
            for key in object.keys().filter(|k| *k != "event") {
                assert!(
                    row.contains(&format!("`{key}`")),
                    "`{event}` has `{key}`, undocumented"
                );
            }
            if let Some(state) = object.get("state").and_then(|s| s.as_str()) {
                assert!(
                    row.contains(&format!("`{state}`")),
                    "state `{state}` undocumented"
                );
            }
            emitted.insert(event);
        }
        let documented: std::collections::BTreeSet<_> = table.keys().cloned().collect();
        assert_eq!(
            emitted, documented,
            "the README documents events the client never prints"
        );
    }

    #[test]
    fn lines_keep_the_documented_order_of_members() {
        let users = vec!["alice".to_string(), "robot".to_string()];
        let line = JsonEvent::Connected {
            name: "robot",
            server: "127.0.0.1:50000",
            users: &users,
            account: false,
        }
        .line();
        assert_eq!(
            line,
            r#"{"event":"connected","name":"robot","server":"127.0.0.1:50000","users":["alice","robot"],"account":false}"#
        );
        let line = JsonEvent::Disconnected {
            reason: "quit",
            message: "goodbye",
        }
        .line();
        assert_eq!(
            line,
            r#"{"event":"disconnected","reason":"quit","message":"goodbye"}"#
        );
        let event = TransferEvent {
            id: 3,
            file: "f".into(),
            state: TransferState::Queued { position: 2 },
        };
        assert_eq!(
            JsonEvent::transfer(&event).line(),
            r#"{"event":"transfer","id":3,"file":"f","state":"queued","position":2}"#
        );
    }

    #[test]
    fn a_saved_path_that_is_not_utf8_still_makes_a_line() {
        use std::os::unix::ffi::OsStrExt;
        let path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(b"/d/\xffname"));
        let event = TransferEvent {
            id: 1,
            file: "f".into(),
            state: TransferState::Done {
                bytes: 0,
                path,
                last_byte: None,
                hash: client::FileHash([0; 32]),
            },
        };
        let line: serde_json::Value =
            serde_json::from_str(&JsonEvent::transfer(&event).line()).unwrap();
        assert_eq!(line["path"], "/d/\u{fffd}name");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        let t = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        assert_eq!(rfc3339(&t), "2023-11-14T22:13:20.123Z");
    }
}
