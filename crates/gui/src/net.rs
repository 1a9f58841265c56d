//! The GUI's link to the network: a tokio task owns the [`client::Client`] and talks to the UI
//! through channels. The UI never waits on the network; it drains [`Net::poll`] once per frame,
//! and the task asks egui for a repaint whenever something arrives.

use client::{Client, ClientError, DownloadOptions, Event, FileEntry, Fingerprint, NewKey, Trust};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the UI asks of the network.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Connect to `addr` as `name`.
    Connect {
        /// `host:port`.
        addr: String,
        /// User name.
        name: String,
        /// A new server key the user chose to trust, after [`Update::NewServerKey`]; the
        /// server must present it again.
        approved: Option<Fingerprint>,
    },
    /// Message to everyone.
    SendAll(String),
    /// Message to one user.
    SendPrivate {
        /// Recipient.
        to: String,
        /// Text.
        text: String,
    },
    /// Refresh the online list.
    Users,
    /// Refresh the file list.
    Files,
    /// Download a file into `dir`, pausing by itself at `pause_at` percent.
    Download {
        /// File name on the server.
        file: String,
        /// Destination folder.
        dir: PathBuf,
        /// Optional automatic pause point.
        pause_at: Option<f64>,
    },
    /// Pause a transfer.
    Pause(u64),
    /// Continue a transfer.
    Resume(u64),
    /// Cancel a transfer.
    Cancel(u64),
    /// Leave.
    Disconnect,
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
    /// A command failed; one sentence for the status bar.
    Error(String),
}

/// The UI's end of the link.
pub struct Net {
    commands: mpsc::UnboundedSender<Command>,
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
        let (commands, rx) = mpsc::unbounded_channel();
        let (tx, updates) = mpsc::channel(UPDATE_QUEUE);
        runtime.spawn(run(rx, Sender { tx, repaint }, trust));
        Self { commands, updates }
    }

    /// Asks the network task to do something.
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
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

async fn run(mut commands: mpsc::UnboundedReceiver<Command>, ui: Sender, trust: Trust) {
    let mut session: Option<(Client, client::Events)> = None;
    loop {
        let event = async {
            match session.as_mut() {
                Some((_, events)) => events.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { return };
                execute(command, &mut session, &ui, &trust).await;
            }
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

async fn execute(
    command: Command,
    session: &mut Option<(Client, client::Events)>,
    ui: &Sender,
    trust: &Trust,
) {
    if let Command::Connect {
        addr,
        name,
        approved,
    } = command
    {
        let trust = Trust {
            new_key: approved.map_or(NewKey::Ask, NewKey::Approved),
            ..trust.clone()
        };
        match Client::connect(&addr, &name, &trust).await {
            Ok((client, events)) => {
                ui.send(Update::Connected {
                    name: client.name().to_owned(),
                    users: client.users_at_join().to_vec(),
                })
                .await;
                *session = Some((client, events));
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
            }
            Err(err) => ui.send(Update::ConnectFailed(err.to_string())).await,
        }
        return;
    }
    let Some((client, _)) = session.as_ref() else {
        ui.send(Update::Error("not connected".into())).await;
        return;
    };
    let client = client.clone();
    let result = match command {
        Command::Connect { .. } => Ok(()),
        Command::SendAll(text) => client.send_all(text).await,
        Command::SendPrivate { to, text } => client.send_private(to, text).await,
        Command::Users => match client.users().await {
            Ok(users) => {
                ui.send(Update::Users(users)).await;
                Ok(())
            }
            Err(err) => Err(err),
        },
        Command::Files => match client.files().await {
            Ok(files) => {
                ui.send(Update::Files(files)).await;
                Ok(())
            }
            Err(err) => Err(err),
        },
        Command::Download {
            file,
            dir,
            pause_at,
        } => {
            let opts = DownloadOptions {
                dir,
                pause_at,
                ..DownloadOptions::default()
            };
            client.download(&file, opts).await.map(drop)
        }
        Command::Pause(id) => client.pause(id),
        Command::Resume(id) => client.resume(id),
        Command::Cancel(id) => client.cancel(id).await,
        Command::Disconnect => client.quit().await,
    };
    if let Err(err) = result {
        ui.send(Update::Error(err.to_string())).await;
    }
}
