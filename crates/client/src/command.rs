//! What a user asks of the server, in one type for every front end: a front end turns a typed
//! line or a click into a [`Command`], runs it with [`Client::execute`], and shows the
//! [`Reply`]. [`InFlight`] runs several at once beside the connection's events, so that a slow
//! answer holds up nothing else.

use crate::{
    Client, ClientError, DownloadOptions, HistoryPage, HistoryQuery, Password, TransferStatus,
};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use wire::FileEntry;

/// Something a user asks for on a connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Text for every other user.
    SendAll(String),
    /// Text for one user.
    SendPrivate {
        /// The recipient's name.
        to: String,
        /// The text.
        text: String,
    },
    /// Who is online.
    Users,
    /// The files the server shares.
    Files,
    /// Download a shared file as `opts` says.
    Download {
        /// The file's name on the server.
        file: String,
        /// Where and how to save it.
        opts: DownloadOptions,
    },
    /// Pause a transfer (by its id).
    Pause(u64),
    /// Continue a paused transfer.
    Resume(u64),
    /// Cancel a transfer; its `.part` is removed.
    Cancel(u64),
    /// This connection's downloads, from what the client knows (the server is not asked).
    Transfers,
    /// A page of stored messages.
    History(HistoryQuery),
    /// Make our name an account with this password.
    Register(Password),
    /// Change the account's password.
    ChangePassword {
        /// The current password.
        old: Password,
        /// The new one.
        new: Password,
    },
    /// Delete the account (confirmed with its password).
    DeleteAccount(Password),
    /// Leave; the server's goodbye arrives as [`crate::Event::Disconnected`].
    Quit,
}

/// What a command gave back when it succeeded. Anything that follows (a message's delivery
/// errors, a download's progress) arrives as [`crate::Event`]s.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Done: sent, or applied.
    Done,
    /// The users online, sorted.
    Users(Vec<String>),
    /// The shared files, sorted by name.
    Files(Vec<FileEntry>),
    /// The download was started (or queued) as this transfer.
    Download(u64),
    /// Every download of the connection.
    Transfers(Vec<TransferStatus>),
    /// A page of stored messages.
    History(HistoryPage),
    /// Our name is an account now.
    Registered,
    /// The password was changed.
    PasswordChanged,
    /// The account is gone; we are a guest.
    AccountDeleted,
}

impl Client {
    /// Runs `command` and waits for its answer: the one way every front end acts on the
    /// connection. A request the server is slow to answer (a new file it must hash before
    /// `download_ready`) is waited for here; run commands through [`InFlight`] so that events
    /// and other commands go on meanwhile.
    pub async fn execute(&self, command: Command) -> Result<Reply, ClientError> {
        let done = |()| Reply::Done;
        match command {
            Command::SendAll(text) => self.send_all(text).await.map(done),
            Command::SendPrivate { to, text } => self.send_private(to, text).await.map(done),
            Command::Users => self.users().await.map(Reply::Users),
            Command::Files => self.files().await.map(Reply::Files),
            Command::Download { file, opts } => {
                self.download(&file, opts).await.map(Reply::Download)
            }
            Command::Pause(id) => self.pause(id).map(done),
            Command::Resume(id) => self.resume(id).map(done),
            Command::Cancel(id) => self.cancel(id).await.map(done),
            Command::Transfers => Ok(Reply::Transfers(self.transfers())),
            Command::History(query) => self.history(query).await.map(Reply::History),
            Command::Register(password) => {
                self.register(&password).await.map(|()| Reply::Registered)
            }
            Command::ChangePassword { old, new } => self
                .change_password(&old, &new)
                .await
                .map(|()| Reply::PasswordChanged),
            Command::DeleteAccount(password) => self
                .delete_account(&password)
                .await
                .map(|()| Reply::AccountDeleted),
            Command::Quit => self.quit().await.map(done),
        }
    }
}

/// Commands under way. A front end [`push`](InFlight::push)es each command as the user gives
/// it and takes the replies from [`next`](InFlight::next) as they come, in the same loop that
/// takes the connection's events: a command waiting for its answer never keeps an event, a
/// pause or another command waiting. Requests leave for the server in the order they were
/// pushed (chat lines stay in order); replies come as their answers do.
#[derive(Default)]
pub struct InFlight {
    running: FuturesUnordered<BoxFuture<'static, Result<Reply, ClientError>>>,
}

impl InFlight {
    /// No command under way yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `command` on `client`'s connection. It runs while [`InFlight::next`] is awaited.
    pub fn push(&mut self, client: &Client, command: Command) {
        let client = client.clone();
        // Futures are first polled in the order they are pushed, and the connection's outbox
        // lets senders in in the order they came: requests keep the order of the commands.
        self.running
            .push(Box::pin(async move { client.execute(command).await }));
    }

    /// The reply of the next command to finish. Waits for ever while none is under way, so
    /// that it can sit in a `select!` beside the events; cancelling it loses nothing.
    pub async fn next(&mut self) -> Result<Reply, ClientError> {
        match self.running.next().await {
            Some(reply) => reply,
            None => std::future::pending().await,
        }
    }

    /// True while no command is under way.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// How many commands are under way.
    pub fn len(&self) -> usize {
        self.running.len()
    }
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight")
            .field("running", &self.running.len())
            .finish()
    }
}
