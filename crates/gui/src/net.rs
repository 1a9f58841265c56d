//! The GUI's link to the network: a tokio task owns the [`client::Client`] and talks to the UI
//! through channels. The UI never waits on the network; it drains [`Net::poll`] once per frame,
//! and the task asks egui for a repaint whenever something arrives.

use client::{
    Client, ClientError, Command, Event, FileEntry, Fingerprint, HistoryPage, InFlight, Login,
    NewKey, Reply, Trust,
};
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the UI asks of the network task: to connect, or a command on the connection (the
/// client library's, which every front end shares).
#[derive(Debug, Clone, PartialEq)]
enum Request {
    /// Connect to `addr` as `login` says.
    Connect {
        /// `host:port`.
        addr: String,
        /// The name, and the password of an account.
        login: Login,
        /// A new server key the user chose to trust, after [`Update::NewServerKey`]; the
        /// server must present it again.
        approved: Option<Fingerprint>,
    },
    /// A command on the connection.
    Run(Command),
}

/// What the network tells the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// We are online.
    Connected {
        /// Our name.
        name: String,
        /// Who was online when we joined.
        users: Vec<String>,
        /// Logged in to an account (not a guest).
        account: bool,
    },
    /// Connecting failed; one sentence for the connect screen (a changed server key names
    /// both fingerprints).
    ConnectFailed(String),
    /// The server's key is new: the connect screen shows its fingerprint and asks whether to
    /// trust it (nothing was sent to the server).
    NewServerKey {
        /// `HOST:PORT`, as `known_servers` will name it.
        server: String,
        /// The fingerprint of its key.
        fingerprint: Fingerprint,
    },
    /// Something happened on the connection.
    Event(Event),
    /// The online list.
    Users(Vec<String>),
    /// The shared files.
    Files(Vec<FileEntry>),
    /// A page of stored messages, as asked for.
    History(HistoryPage),
    /// The account changed as asked: `Some(true)` registered, `Some(false)` deleted, `None`
    /// its password changed.
    Account(Option<bool>),
    /// A command failed; one sentence for the status bar.
    Error(String),
}

/// The UI's end of the link.
pub struct Net {
    requests: mpsc::UnboundedSender<Request>,
    updates: mpsc::Receiver<Update>,
}

/// Updates waiting for the UI. When the UI falls this far behind (a hidden window), the task
/// waits, and so does everything behind it up to the server, which is how a slow client is
/// handled everywhere else.
const UPDATE_QUEUE: usize = 1024;

impl Net {
    /// Starts the network task on `runtime`, trusting servers as a user does (the platform's
    /// roots, and keys trusted on first use in the user's `known_servers`, asking before a new
    /// one); `repaint` is called whenever an update is ready.
    pub fn start(runtime: &tokio::runtime::Handle, repaint: Arc<dyn Fn() + Send + Sync>) -> Self {
        Self::start_with(runtime, repaint, Trust::for_user(NewKey::Ask))
    }

    /// As [`Net::start`], trusting servers as `trust` says (its `new_key` is set for each
    /// connection: ask, or the key the user approved).
    pub fn start_with(
        runtime: &tokio::runtime::Handle,
        repaint: Arc<dyn Fn() + Send + Sync>,
        trust: Trust,
    ) -> Self {
        // Commands come from the user's clicks: a handful per second at most, so the queue
        // cannot grow without bound in practice; updates are drained every frame.
        let (requests, rx) = mpsc::unbounded_channel();
        let (tx, updates) = mpsc::channel(UPDATE_QUEUE);
        runtime.spawn(run(rx, Sender { tx, repaint }, trust));
        Self { requests, updates }
    }

    /// Connects to `addr` as `login` says; `approved` is a new server key the user chose to
    /// trust, after [`Update::NewServerKey`] (the server must present it again).
    pub fn connect(&self, addr: String, login: Login, approved: Option<Fingerprint>) {
        let _ = self.requests.send(Request::Connect {
            addr,
            login,
            approved,
        });
    }

    /// Runs `command` on the connection; its answer comes as an [`Update`] (a listing, or an
    /// error). It runs beside everything else: a slow answer holds up no event and no other
    /// command.
    pub fn send(&self, command: Command) {
        let _ = self.requests.send(Request::Run(command));
    }

    /// The next update, if one arrived since the last call.
    pub fn poll(&mut self) -> Option<Update> {
        self.updates.try_recv().ok()
    }
}

struct Sender {
    tx: mpsc::Sender<Update>,
    repaint: Arc<dyn Fn() + Send + Sync>,
}

impl Sender {
    async fn send(&self, update: Update) {
        let _ = self.tx.send(update).await;
        (self.repaint)();
    }
}

async fn run(mut requests: mpsc::UnboundedReceiver<Request>, ui: Sender, trust: Trust) {
    let mut session: Option<(Client, client::Events)> = None;
    // Commands waiting for their answers, beside the events.
    let mut inflight = InFlight::new();
    loop {
        let event = async {
            match session.as_mut() {
                Some((_, events)) => events.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            request = requests.recv() => match request {
                None => return,
                Some(Request::Connect { addr, login, approved }) => {
                    if let Some(connected) = connect(&addr, &login, approved, &ui, &trust).await {
                        session = Some(connected);
                    }
                }
                Some(Request::Run(command)) => match session.as_ref() {
                    Some((client, _)) => inflight.push(client, command),
                    None => ui.send(Update::Error("not connected".into())).await,
                },
            },
            reply = inflight.next() => match reply {
                Ok(Reply::Users(users)) => ui.send(Update::Users(users)).await,
                Ok(Reply::Files(files)) => ui.send(Update::Files(files)).await,
                Ok(Reply::History(page)) => ui.send(Update::History(page)).await,
                Ok(Reply::Registered) => ui.send(Update::Account(Some(true))).await,
                Ok(Reply::AccountDeleted) => ui.send(Update::Account(Some(false))).await,
                Ok(Reply::PasswordChanged) => ui.send(Update::Account(None)).await,
                // Sent or started; the transfers panel follows the events.
                Ok(Reply::Done | Reply::Download(_) | Reply::Transfers(_)) => {}
                Err(err) => ui.send(Update::Error(err.to_string())).await,
            },
            event = event => match event {
                Some(event) => {
                    let gone = matches!(event, Event::Disconnected { .. });
                    ui.send(Update::Event(event)).await;
                    if gone {
                        session = None;
                    }
                }
                None => session = None,
            },
        }
    }
}

/// Connects as the UI asked, and tells it how that went.
async fn connect(
    addr: &str,
    login: &Login,
    approved: Option<Fingerprint>,
    ui: &Sender,
    trust: &Trust,
) -> Option<(Client, client::Events)> {
    let trust = Trust {
        new_key: approved.map_or(NewKey::Ask, NewKey::Approved),
        ..trust.clone()
    };
    match Client::connect_as(addr, login, None, &trust).await {
        Ok((client, events)) => {
            ui.send(Update::Connected {
                name: client.name().to_owned(),
                users: client.users_at_join().to_vec(),
                account: client.is_account(),
            })
            .await;
            Some((client, events))
        }
        Err(ClientError::NewServerKey {
            server,
            fingerprint,
        }) => {
            ui.send(Update::NewServerKey {
                server,
                fingerprint,
            })
            .await;
            None
        }
        Err(err) => {
            ui.send(Update::ConnectFailed(err.to_string())).await;
            None
        }
    }
}
