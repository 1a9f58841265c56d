//! The client window: a connect screen, then chat with conversations, the online list, the
//! server's files and the transfers panel.

use crate::net::{Net, Update};
use client::{
    Command, DownloadOptions, Event, FileEntry, Fingerprint, HistoryPage, HistoryQuery, Login,
    MIN_PASSWORD_LEN, Password, TransferPhase, TransferState,
};
use display::{human_size, visible as v};
use egui::{Color32, RichText};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// A conversation: everyone, or one private partner.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Conversation {
    /// Messages to and from everyone.
    Everyone,
    /// Private messages with one user.
    With(String),
}

/// One line in a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Local time, `HH:MM:SS`.
    pub time: String,
    /// Who wrote it (empty for notices).
    pub from: String,
    /// What.
    pub text: String,
    /// Ours, theirs or a notice.
    pub kind: LineKind,
    /// The server's id of the message (none for notices, and for our own lines as typed).
    pub id: Option<u64>,
}

/// Whose line it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// We wrote it.
    Mine,
    /// Somebody else did.
    Theirs,
    /// Joins, leaves, errors.
    Notice,
}

/// Messages fetched at a time when a conversation is scrolled to its top.
pub const OLDER_PAGE: u32 = 50;

#[derive(Debug)]
struct Thread {
    lines: Vec<Line>,
    unread: usize,
    /// Older messages may be stored on the server.
    more: bool,
    /// A page of older ones was asked for and has not come yet.
    loading: bool,
    /// The ids of the messages shown: a message that comes both in a page and live is shown
    /// once.
    ids: std::collections::HashSet<u64>,
}

impl Default for Thread {
    fn default() -> Self {
        Self {
            lines: Vec::new(),
            unread: 0,
            more: true,
            loading: false,
            ids: std::collections::HashSet::new(),
        }
    }
}

/// A download as the transfers panel shows it.
#[derive(Debug, Clone)]
pub struct TransferView {
    /// File name.
    pub file: String,
    /// Where it is.
    pub state: TransferPhase,
    /// Bytes on disk.
    pub bytes: u64,
    /// File size, once known.
    pub size: Option<u64>,
    /// Recent goodput, bits per second.
    pub rate_bps: u64,
    /// Round-trip time to the server from the transport's statistics, microseconds.
    pub rtt_us: u64,
    /// Packets lost on the way, from the transport's statistics.
    pub lost: u64,
    /// Paused by itself at its pause point: the panel asks "continue?".
    pub asks_to_continue: bool,
    /// Where it was saved, once done.
    pub path: Option<PathBuf>,
    /// Why it failed, or the done summary.
    pub note: String,
    /// (seconds since start, Mbit/s) samples for the chart.
    pub history: Vec<[f64; 2]>,
    started: Instant,
}

enum Screen {
    Connect,
    Chat,
}

/// The whole client window's state.
pub struct ClientApp {
    net: Net,
    /// Server address on the connect screen (remembered between runs).
    pub addr: String,
    /// Name on the connect screen (remembered between runs).
    pub name: String,
    /// Password on the connect screen: for a registered name, or to register one (never
    /// remembered, and forgotten once connected).
    pub password: String,
    /// The last connect asked to register (kept for the retry after a new key is trusted).
    registering: bool,
    /// Logged in to an account.
    account: bool,
    /// The conversation's scroll position was at its top last frame.
    was_at_top: bool,
    /// Where to put the conversation's scroll position next frame (after older lines came in
    /// above what was shown).
    scroll_to: Option<f32>,
    /// Where downloads go.
    pub download_dir: PathBuf,
    screen: Screen,
    connecting: bool,
    connect_error: Option<String>,
    /// A new server key waiting for the user's yes or no: the server and its fingerprint.
    new_key: Option<(String, Fingerprint)>,
    me: String,
    online: Vec<String>,
    threads: BTreeMap<Conversation, Thread>,
    selected: Conversation,
    composer: String,
    files: Vec<FileEntry>,
    ask_at_half: bool,
    transfers: BTreeMap<u64, TransferView>,
    status: Option<String>,
    time_format: fn(chrono::DateTime<chrono::Utc>) -> String,
}

impl ClientApp {
    /// A window in its connect screen, talking to the network through `net`.
    pub fn new(net: Net, addr: String, name: String, download_dir: PathBuf) -> Self {
        let mut threads = BTreeMap::new();
        threads.insert(Conversation::Everyone, Thread::default());
        Self {
            net,
            addr,
            name,
            password: String::new(),
            registering: false,
            account: false,
            was_at_top: false,
            scroll_to: None,
            download_dir,
            screen: Screen::Connect,
            connecting: false,
            connect_error: None,
            new_key: None,
            me: String::new(),
            online: Vec::new(),
            threads,
            selected: Conversation::Everyone,
            composer: String::new(),
            files: Vec::new(),
            ask_at_half: false,
            transfers: BTreeMap::new(),
            status: None,
            time_format: local,
        }
    }

    /// How message times are shown (local `HH:MM:SS` by default).
    pub fn set_time_format(&mut self, format: fn(chrono::DateTime<chrono::Utc>) -> String) {
        self.time_format = format;
    }

    /// True once connected.
    pub fn is_connected(&self) -> bool {
        matches!(self.screen, Screen::Chat)
    }

    /// True when logged in to a registered account (not a guest).
    pub fn is_account(&self) -> bool {
        self.account
    }

    /// The lines of a conversation.
    pub fn lines(&self, conversation: &Conversation) -> &[Line] {
        self.threads
            .get(conversation)
            .map_or(&[], |t| t.lines.as_slice())
    }

    /// Unread lines of a conversation.
    pub fn unread(&self, conversation: &Conversation) -> usize {
        self.threads.get(conversation).map_or(0, |t| t.unread)
    }

    /// The conversation the composer writes to.
    pub fn selected(&self) -> &Conversation {
        &self.selected
    }

    /// Users online, as last heard.
    pub fn online(&self) -> &[String] {
        &self.online
    }

    /// The server's files, as last listed.
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// Downloads by id.
    pub fn transfers(&self) -> &BTreeMap<u64, TransferView> {
        &self.transfers
    }

    /// The connect screen's error, if any.
    pub fn connect_error(&self) -> Option<&str> {
        self.connect_error.as_deref()
    }

    /// The new server key the connect screen asks about, if any.
    pub fn new_server_key(&self) -> Option<&Fingerprint> {
        self.new_key.as_ref().map(|(_, key)| key)
    }

    /// Applies everything the network sent since the last frame.
    pub fn poll_network(&mut self) {
        while let Some(update) = self.net.poll() {
            self.apply(update);
        }
    }

    /// Applies one update from the network (what [`ClientApp::poll_network`] does with each).
    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Connected {
                name,
                users,
                account,
            } => {
                self.connecting = false;
                self.connect_error = None;
                self.password.clear();
                self.me = name;
                self.online = users;
                self.account = account;
                self.screen = Screen::Chat;
                self.net.send(Command::Files);
            }
            Update::ConnectFailed(why) => {
                self.connecting = false;
                self.connect_error = Some(why);
            }
            Update::NewServerKey {
                server,
                fingerprint,
            } => {
                self.connecting = false;
                self.new_key = Some((server, fingerprint));
            }
            Update::Users(users) => self.online = users,
            Update::Files(files) => self.files = files,
            Update::History(page) => self.older_lines(page),
            Update::Account(change) => {
                self.status = Some(
                    match change {
                        Some(true) => "your name is an account now",
                        Some(false) => "the account is deleted; you are a guest",
                        None => "your password was changed",
                    }
                    .into(),
                );
                if let Some(account) = change {
                    self.account = account;
                }
            }
            Update::Error(why) => {
                // A page that was asked for will not come: stop asking for that conversation.
                for thread in self.threads.values_mut().filter(|t| t.loading) {
                    thread.loading = false;
                    thread.more = false;
                }
                self.status = Some(why);
            }
            Update::Event(event) => self.event(event),
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Joined { name, time } => {
                if !self.online.contains(&name) {
                    self.online.push(name.clone());
                    self.online.sort_by_key(|n| n.to_lowercase());
                }
                self.notice((self.time_format)(time), format!("{} joined", v(&name)));
            }
            Event::Left { name, reason, time } => {
                self.online.retain(|n| n != &name);
                let why = if reason == client::CloseReason::Quit {
                    String::new()
                } else {
                    format!(" ({reason})")
                };
                self.notice((self.time_format)(time), format!("{} left{why}", v(&name)));
            }
            Event::Message {
                id,
                from,
                text,
                private,
                time,
                ..
            } => {
                let conversation = if private {
                    Conversation::With(from.clone())
                } else {
                    Conversation::Everyone
                };
                let line = Line {
                    time: (self.time_format)(time),
                    from,
                    text,
                    kind: LineKind::Theirs,
                    id,
                };
                self.push(conversation, line);
            }
            Event::Queued { to, .. } => {
                let time = (self.time_format)(chrono::Utc::now());
                let line = Line {
                    time,
                    from: String::new(),
                    text: format!("{to} is offline: the message is delivered when they log in"),
                    kind: LineKind::Notice,
                    id: None,
                };
                self.push(Conversation::With(to), line);
            }
            Event::Users(users) => self.online = users,
            Event::Files(files) => self.files = files,
            Event::Error { message, .. } => self.status = Some(message),
            Event::Transfer(t) => self.transfer(t),
            Event::Lagged { missed } => {
                self.status = Some(format!(
                    "{missed} event(s) were dropped: the window fell behind"
                ));
            }
            Event::Disconnected { message, .. } => {
                self.screen = Screen::Connect;
                self.connect_error = Some(format!("disconnected: {message}"));
                self.transfers.clear();
            }
        }
    }

    fn transfer(&mut self, t: client::TransferEvent) {
        let view = self.transfers.entry(t.id).or_insert_with(|| TransferView {
            file: t.file.clone(),
            state: TransferPhase::Queued,
            bytes: 0,
            size: None,
            rate_bps: 0,
            rtt_us: 0,
            lost: 0,
            asks_to_continue: false,
            path: None,
            note: String::new(),
            history: Vec::new(),
            started: Instant::now(),
        });
        match t.state {
            TransferState::Preparing => {
                view.state = TransferPhase::Queued;
                view.note = "the server is preparing the file".into();
            }
            TransferState::Queued { position } => {
                view.state = TransferPhase::Queued;
                view.note = format!("waiting for a free port ({position} ahead)");
            }
            TransferState::Started { size, offset } => {
                view.state = TransferPhase::Running;
                view.size = Some(size);
                view.bytes = offset;
                view.note.clear();
            }
            TransferState::Progress {
                bytes,
                size,
                rate_bps,
                rtt_us,
                lost,
            } => {
                view.bytes = bytes;
                view.size = Some(size);
                view.rate_bps = rate_bps;
                view.rtt_us = rtt_us;
                view.lost = lost;
                let t = view.started.elapsed().as_secs_f64();
                view.history.push([t, rate_bps as f64 / 1e6]);
                if view.history.len() > 600 {
                    view.history.remove(0);
                }
            }
            TransferState::Paused {
                bytes,
                at_pause_point,
            } => {
                view.state = TransferPhase::Paused;
                view.bytes = bytes;
                view.rate_bps = 0;
                view.asks_to_continue = at_pause_point;
            }
            TransferState::Resumed { bytes } => {
                view.state = TransferPhase::Running;
                view.bytes = bytes;
                view.asks_to_continue = false;
            }
            TransferState::Done {
                bytes,
                path,
                last_byte,
                ..
            } => {
                view.state = TransferPhase::Done;
                view.bytes = bytes;
                view.size = Some(bytes);
                let last = last_byte.map_or("none".into(), |b| b.to_string());
                view.note = format!("verified; last byte sent: {last}");
                view.path = Some(path);
            }
            TransferState::Failed { error } => {
                view.state = TransferPhase::Failed;
                view.note = error;
            }
            TransferState::Cancelled => view.state = TransferPhase::Cancelled,
        }
    }

    /// Puts a page of stored messages above what its conversation shows (those it shows
    /// already are skipped).
    fn older_lines(&mut self, page: HistoryPage) {
        let conversation = page
            .with
            .clone()
            .map_or(Conversation::Everyone, Conversation::With);
        let me = self.me.clone();
        let format = self.time_format;
        let thread = self.threads.entry(conversation.clone()).or_default();
        thread.loading = false;
        thread.more = page.more;
        let oldest = thread.lines.iter().filter_map(|l| l.id).min();
        let older: Vec<Line> = page
            .messages
            .into_iter()
            .filter(|m| oldest.is_none_or(|oldest| m.id < oldest) && thread.ids.insert(m.id))
            .map(|m| Line {
                time: format(client::time_from_millis(m.time)),
                kind: if m.from == me {
                    LineKind::Mine
                } else {
                    LineKind::Theirs
                },
                from: m.from,
                text: m.text,
                id: Some(m.id),
            })
            .collect();
        let added = older.len();
        thread.lines.splice(0..0, older);
        if conversation == self.selected && added > 0 {
            // Keep in view what was shown: the new lines are above it.
            self.scroll_to = Some(added as f32 * LINE_HEIGHT);
        }
    }

    /// Asks for the page of messages before the oldest one `conversation` shows, unless one
    /// is on its way or there are no more.
    fn load_older(&mut self, conversation: &Conversation) {
        let account = self.account;
        let Some(thread) = self.threads.get_mut(conversation) else {
            return;
        };
        if !thread.more || thread.loading {
            return;
        }
        let with = match conversation {
            Conversation::Everyone => None,
            // Only an account's private conversations are stored for it.
            Conversation::With(_) if !account => {
                thread.more = false;
                return;
            }
            Conversation::With(name) => Some(name.clone()),
        };
        let before = thread.lines.iter().filter_map(|l| l.id).min();
        let said = thread.lines.iter().any(|l| l.kind != LineKind::Notice);
        if before.is_none() && said {
            // Lines without ids (ours, as typed) cannot be placed among stored ones.
            thread.more = false;
            return;
        }
        thread.loading = true;
        self.net.send(Command::History(HistoryQuery {
            with,
            before,
            limit: Some(OLDER_PAGE),
        }));
    }

    fn notice(&mut self, time: String, text: String) {
        let line = Line {
            time,
            from: String::new(),
            text,
            kind: LineKind::Notice,
            id: None,
        };
        self.push(Conversation::Everyone, line);
    }

    fn push(&mut self, conversation: Conversation, line: Line) {
        let reading = conversation == self.selected;
        let thread = self.threads.entry(conversation).or_default();
        if let Some(id) = line.id
            && !thread.ids.insert(id)
        {
            return; // shown already, from a page of history
        }
        thread.lines.push(line);
        if !reading {
            thread.unread += 1;
        }
    }

    fn select(&mut self, conversation: Conversation) {
        self.threads.entry(conversation.clone()).or_default().unread = 0;
        self.selected = conversation;
    }

    fn send_composer(&mut self) {
        let text = self.composer.trim().to_owned();
        if text.is_empty() {
            return;
        }
        self.composer.clear();
        let command = match &self.selected {
            Conversation::Everyone => Command::SendAll(text.clone()),
            Conversation::With(to) => Command::SendPrivate {
                to: to.clone(),
                text: text.clone(),
            },
        };
        self.net.send(command);
        let line = Line {
            time: (self.time_format)(chrono::Utc::now()),
            from: self.me.clone(),
            text,
            kind: LineKind::Mine,
            id: None,
        };
        self.push(self.selected.clone(), line);
    }

    /// Draws the whole window; call once per frame.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        self.poll_network();
        match self.screen {
            Screen::Connect => self.connect_screen(ui),
            Screen::Chat => self.chat_screen(ui),
        }
    }

    fn connect_screen(&mut self, ui: &mut egui::Ui) {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.vertical_centered(|ui| {
                ui.add_space(40.0);
                ui.heading("messenger");
                ui.add_space(20.0);
            });
            egui::Grid::new("connect")
                .num_columns(2)
                .spacing([12.0, 8.0])
                .show(ui, |ui| {
                    let label = ui.label("Server");
                    ui.text_edit_singleline(&mut self.addr)
                        .labelled_by(label.id);
                    ui.end_row();
                    let label = ui.label("Name");
                    let name = ui
                        .text_edit_singleline(&mut self.name)
                        .labelled_by(label.id);
                    ui.end_row();
                    let label = ui.label("Password");
                    let password = ui
                        .add(
                            egui::TextEdit::singleline(&mut self.password)
                                .password(true)
                                .hint_text("for a registered name"),
                        )
                        .labelled_by(label.id);
                    ui.end_row();
                    let enter = (name.lost_focus() || password.lost_focus())
                        && ui.input(|i| i.key_pressed(egui::Key::Enter));
                    ui.label("");
                    let idle = !self.connecting && self.new_key.is_none();
                    ui.horizontal(|ui| {
                        let button = ui.add_enabled(idle, egui::Button::new("Connect"));
                        if (button.clicked() || enter) && idle {
                            self.registering = false;
                            self.connect(None);
                        }
                        let register = ui
                            .add_enabled(idle, egui::Button::new("Register"))
                            .on_hover_text("make the name an account with the password");
                        if register.clicked() && idle {
                            if self.password.len() < MIN_PASSWORD_LEN {
                                self.connect_error = Some(format!(
                                    "to register, choose a password of at least \
                                     {MIN_PASSWORD_LEN} characters"
                                ));
                            } else {
                                self.registering = true;
                                self.connect(None);
                            }
                        }
                    });
                    ui.end_row();
                });
            if self.connecting {
                ui.label("connecting…");
            }
            if let Some((server, key)) = self.new_key.clone() {
                ui.add_space(12.0);
                ui.label(format!(
                    "{} is not a known server. Its key's fingerprint is:",
                    v(&server)
                ));
                ui.label(RichText::new(key.to_string()).monospace().strong());
                ui.label(
                    "Trust it only if this is the fingerprint the server showed when it started \
                     (or that its operator gave you).",
                );
                ui.horizontal(|ui| {
                    if ui.button("Trust").clicked() {
                        self.new_key = None;
                        // The server the prompt named, even if the field was edited since.
                        self.addr = server.clone();
                        self.connect(Some(key));
                    }
                    if ui.button("Cancel").clicked() {
                        self.new_key = None;
                    }
                });
            }
            if let Some(err) = &self.connect_error {
                ui.colored_label(Color32::from_rgb(220, 60, 60), v(err));
            }
        });
    }

    /// Asks the network to connect with the screen's address and name (`approved`: the new
    /// server key the user just trusted).
    fn connect(&mut self, approved: Option<Fingerprint>) {
        self.connecting = true;
        self.connect_error = None;
        let password = (!self.password.is_empty()).then(|| Password::new(self.password.clone()));
        let login = Login {
            name: self.name.trim().to_owned(),
            register: self.registering && password.is_some(),
            password,
        };
        self.net
            .connect(self.addr.trim().to_owned(), login, approved);
    }

    fn chat_screen(&mut self, ui: &mut egui::Ui) {
        egui::Panel::top("top").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.strong(format!("{} @ {}", self.me, self.addr));
                ui.separator();
                if ui.button("Show online").clicked() {
                    self.net.send(Command::Users);
                }
                if ui.button("Server files").clicked() {
                    self.net.send(Command::Files);
                }
                if ui.button("Log out").clicked() {
                    self.net.send(Command::Quit);
                }
                if let Some(status) = &self.status {
                    ui.separator();
                    ui.colored_label(Color32::from_rgb(220, 60, 60), v(status));
                }
            });
        });
        egui::Panel::left("people")
            .default_size(170.0)
            .show(ui, |ui| self.people(ui));
        egui::Panel::right("files")
            .default_size(340.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    self.files_panel(ui);
                    ui.separator();
                    self.transfers_panel(ui);
                });
            });
        egui::Panel::bottom("composer").show(ui, |ui| self.composer(ui));
        egui::CentralPanel::default().show(ui, |ui| self.messages(ui));
    }

    fn people(&mut self, ui: &mut egui::Ui) {
        ui.heading("Conversations");
        let conversations: Vec<Conversation> = self.threads.keys().cloned().collect();
        for conversation in conversations {
            let unread = self.unread(&conversation);
            let title = match &conversation {
                Conversation::Everyone => "Everyone".to_owned(),
                Conversation::With(name) => v(name).into_owned(),
            };
            let title = if unread > 0 {
                format!("{title} ({unread})")
            } else {
                title
            };
            if ui
                .selectable_label(self.selected == conversation, title)
                .clicked()
            {
                self.select(conversation);
            }
        }
        ui.separator();
        ui.heading(format!("Online ({})", self.online.len()));
        let online = self.online.clone();
        for name in online {
            if name == self.me {
                ui.label(format!("{} (you)", v(&name)));
            } else if ui.link(v(&name)).on_hover_text("write privately").clicked() {
                self.select(Conversation::With(name));
            }
        }
    }

    fn messages(&mut self, ui: &mut egui::Ui) {
        let selected = self.selected.clone();
        let lines = self.lines(&selected).to_vec();
        let mut area = egui::ScrollArea::vertical()
            .stick_to_bottom(true)
            .auto_shrink(false);
        if let Some(y) = self.scroll_to.take() {
            area = area.vertical_scroll_offset(y);
        }
        let output = area.show(ui, |ui| {
            for line in lines {
                ui.horizontal_wrapped(|ui| {
                    ui.label(RichText::new(&line.time).weak().monospace());
                    match line.kind {
                        LineKind::Notice => {
                            ui.label(RichText::new(v(&line.text)).italics().weak());
                        }
                        LineKind::Mine => {
                            ui.label(
                                RichText::new(format!("{}:", v(&line.from)))
                                    .strong()
                                    .color(Color32::from_rgb(90, 160, 90)),
                            );
                            ui.label(v(&line.text));
                        }
                        LineKind::Theirs => {
                            ui.label(
                                RichText::new(format!("{}:", v(&line.from)))
                                    .strong()
                                    .color(Color32::from_rgb(80, 140, 220)),
                            );
                            ui.label(v(&line.text));
                        }
                    }
                });
            }
        });
        // Scrolled up to the top (or everything fits): older messages are fetched.
        let at_top = output.state.clamped_offset().y <= 0.5;
        let fits = output.content_size.y <= output.inner_rect.height();
        if (at_top && !self.was_at_top) || fits {
            self.load_older(&selected);
        }
        self.was_at_top = at_top;
    }

    fn composer(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let to = match &self.selected {
                Conversation::Everyone => "To: everyone".to_owned(),
                Conversation::With(name) => format!("To: {name}"),
            };
            let label = ui.label(to);
            let edit = egui::TextEdit::singleline(&mut self.composer)
                .hint_text("write a message")
                .desired_width(ui.available_width() - 70.0);
            let response = ui.add(edit).labelled_by(label.id);
            let enter = response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui.button("Send").clicked() || enter {
                self.send_composer();
                response.request_focus();
            }
        });
    }

    fn files_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Server files");
        ui.checkbox(&mut self.ask_at_half, "Ask to continue at 50%");
        if self.files.is_empty() {
            ui.label(RichText::new("no files shared").weak());
        }
        let files = self.files.clone();
        egui::Grid::new("files")
            .num_columns(3)
            .striped(true)
            .show(ui, |ui| {
                for file in files {
                    ui.label(v(&file.name));
                    ui.label(human_size(file.size));
                    if ui
                        .button("Download")
                        .on_hover_text(format!("download {}", v(&file.name)))
                        .clicked()
                    {
                        let pause_at = self.ask_at_half.then_some(50.0);
                        self.net.send(Command::Download {
                            file: file.name.clone(),
                            opts: DownloadOptions {
                                dir: self.download_dir.clone(),
                                pause_at,
                                ..DownloadOptions::default()
                            },
                        });
                    }
                    ui.end_row();
                }
            });
    }

    fn transfers_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Transfers");
        if self.transfers.is_empty() {
            ui.label(RichText::new("no transfers yet").weak());
        }
        let ids: Vec<u64> = self.transfers.keys().rev().copied().collect();
        for id in ids {
            let Some(t) = self.transfers.get(&id).cloned() else {
                continue;
            };
            ui.group(|ui| {
                ui.horizontal(|ui| {
                    ui.strong(v(&t.file));
                    ui.label(RichText::new(t.state.as_str()).weak());
                });
                let fraction = match t.size {
                    Some(0) => 1.0,
                    Some(size) => t.bytes as f32 / size as f32,
                    None => 0.0,
                };
                ui.add(egui::ProgressBar::new(fraction).show_percentage());
                if matches!(t.state, TransferPhase::Running | TransferPhase::Paused) {
                    let eta = t.size.map_or("ETA --:--".into(), |size| {
                        display::eta(t.bytes, size, t.rate_bps)
                    });
                    ui.label(format!(
                        "{} of {} at {}/s, {eta}",
                        human_size(t.bytes),
                        t.size.map_or("?".into(), human_size),
                        human_size(t.rate_bps / 8)
                    ));
                }
                if t.asks_to_continue {
                    ui.label(RichText::new("Half way there. Continue?").strong());
                }
                ui.horizontal(|ui| match t.state {
                    TransferPhase::Running => {
                        if ui.button("Pause").clicked() {
                            self.net.send(Command::Pause(id));
                        }
                        if ui.button("Cancel").clicked() {
                            self.net.send(Command::Cancel(id));
                        }
                    }
                    TransferPhase::Paused => {
                        if ui.button("Continue").clicked() {
                            self.net.send(Command::Resume(id));
                        }
                        if ui.button("Cancel").clicked() {
                            self.net.send(Command::Cancel(id));
                        }
                    }
                    TransferPhase::Queued if ui.button("Cancel").clicked() => {
                        self.net.send(Command::Cancel(id));
                    }
                    TransferPhase::Done => {
                        if ui.button("Open folder").clicked()
                            && let Some(dir) = t.path.as_ref().and_then(|p| p.parent())
                        {
                            open_folder(dir);
                        }
                    }
                    _ => {}
                });
                if !t.note.is_empty() {
                    ui.label(RichText::new(v(&t.note)).weak());
                }
                // The live chart, while data flows, with the transport's RTT and loss.
                if t.state == TransferPhase::Running && t.history.len() > 1 {
                    ui.label(
                        RichText::new(format!(
                            "RTT {:.2} ms, {} packets lost",
                            t.rtt_us as f64 / 1000.0,
                            t.lost
                        ))
                        .weak(),
                    );
                    egui_plot::Plot::new(("rate", id))
                        .height(80.0)
                        .allow_drag(false)
                        .allow_zoom(false)
                        .allow_scroll(false)
                        .y_axis_label("Mbit/s")
                        .show(ui, |plot| {
                            plot.line(egui_plot::Line::new("goodput", t.history.clone()));
                        });
                }
            });
        }
    }
}

/// About the height of one line of a conversation, in points.
const LINE_HEIGHT: f32 = 18.0;

fn local(time: chrono::DateTime<chrono::Utc>) -> String {
    time.with_timezone(&chrono::Local)
        .format("%H:%M:%S")
        .to_string()
}

fn open_folder(dir: &std::path::Path) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    if let Err(err) = std::process::Command::new(opener).arg(dir).spawn() {
        tracing::warn!(%err, "cannot open {}", dir.display());
    }
}
