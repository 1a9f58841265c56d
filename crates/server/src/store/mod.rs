//! What the server keeps: accounts, every chat message, and the private messages that wait
//! for an offline account. One interface of the server's own ([`Backend`] for writes,
//! [`Reader`] for reads) with SQLite behind it today ([`sqlite`]), so that a networked
//! database can take its place when the server outgrows one machine.
//!
//! No database work runs on the async workers. Writes go through one bounded channel to one
//! writer thread, which applies everything waiting as one transaction (a commit carries a
//! batch, however many arrive while the previous one commits) and then answers each write;
//! reads run on tokio's blocking threads, each on a connection of its own. A message is
//! delivered only once its write is answered, so a message anyone saw is in the database.

pub mod sqlite;

use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use wire::StoredMessage;

/// Most writes waiting for the writer thread; a session that finds it full waits (its client
/// held back by TCP), so memory stays bounded however fast clients send.
pub const WRITE_QUEUE: usize = 4096;

/// Most writes applied in one transaction.
pub const MAX_BATCH: usize = 2048;

/// An account's id: never reused, so a deleted account's messages never belong to a new
/// account of the same name.
pub type AccountId = i64;

/// A registered account as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// The name as registered (its case kept).
    pub name: String,
    /// The password's Argon2id hash as a PHC string (algorithm, parameters and salt included).
    pub password: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The sender or the recipient of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// The name as shown.
    pub name: String,
    /// The account, if the party is logged in to one (a guest has none).
    pub account: Option<AccountId>,
}

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Who sent it.
    pub from: Party,
    /// The recipient of a private message; `None` for a broadcast.
    pub to: Option<Party>,
    /// The text.
    pub text: String,
    /// When the server received it, in milliseconds since the Unix epoch.
    pub time: u64,
    /// Keep it for the recipient's account until it logs in, if that account holds fewer
    /// than this many waiting messages (`mailbox_full` otherwise, and nothing is stored).
    pub hold_for_recipient: Option<usize>,
}

/// One change to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Store a message: answered with [`Written::Message`] (its id).
    Message(NewMessage),
    /// Hand out (and forget) up to `limit` of the messages waiting for `account`, oldest
    /// first: answered with [`Written::Taken`].
    TakeWaiting {
        /// Whose.
        account: AccountId,
        /// Most messages.
        limit: usize,
    },
    /// Register `name` with the password hash `password`: answered with
    /// [`Written::Account`], or [`StoreError::Exists`], or [`StoreError::TooManyAccounts`]
    /// when `max_accounts` exist already.
    CreateAccount {
        /// The name as shown.
        name: String,
        /// The PHC string of its password.
        password: String,
        /// When, in milliseconds since the Unix epoch.
        time: u64,
        /// Most accounts the database may hold.
        max_accounts: usize,
    },
    /// Replace the password hash of `account`.
    SetPassword {
        /// Whose.
        account: AccountId,
        /// The new PHC string.
        password: String,
    },
    /// Delete `account` and the messages waiting for it (its history stays, as sent).
    DeleteAccount {
        /// Whose.
        account: AccountId,
    },
    /// Delete messages older than `before` (if given), and the oldest ones while the
    /// database holds more than `max_bytes`, at most [`PRUNE_CHUNK`] rows a call: answered
    /// with [`Written::Pruned`].
    Prune {
        /// The retention cut-off, in milliseconds since the Unix epoch.
        before: Option<u64>,
        /// The size bound.
        max_bytes: u64,
    },
}

/// Most messages one [`Write::Prune`] deletes, so a prune never holds the writer long.
pub const PRUNE_CHUNK: usize = 20_000;

/// What a [`Write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The stored message's id.
    Message(u64),
    /// Waiting messages, now handed out, oldest first; `more` if others still wait.
    Taken {
        /// The messages.
        messages: Vec<StoredMessage>,
        /// Whether more wait.
        more: bool,
    },
    /// The new account's id.
    Account(AccountId),
    /// Done.
    Done,
    /// How many messages a prune deleted, and whether it has more to do.
    Pruned {
        /// Deleted now.
        deleted: u64,
        /// Call again.
        more: bool,
    },
}

/// A page of one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// `None`: the broadcast conversation. Otherwise the private one between `account` and
    /// the user whose name key (see [`wire::name_key`]) is `with_key`.
    pub private: Option<(AccountId, String)>,
    /// Only ids below this one.
    pub before: Option<u64>,
    /// Most messages.
    pub limit: usize,
    /// Most bytes of JSON in the page (at least one message is always given, when any).
    pub max_bytes: usize,
}

/// A page of history: oldest first, and whether older messages remain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// The messages.
    pub messages: Vec<StoredMessage>,
    /// Older ones remain.
    pub more: bool,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The account exists already.
    #[error("that name is registered already")]
    Exists,
    /// The recipient's waiting messages are at their bound.
    #[error("the recipient has too many messages waiting")]
    MailboxFull,
    /// As many accounts exist as the server keeps.
    #[error("the server holds as many accounts as it keeps")]
    TooManyAccounts,
    /// The writer thread is gone (the server is stopping).
    #[error("the database is closed")]
    Closed,
    /// The transaction this write was part of failed.
    #[error("the database failed: {0}")]
    Failed(String),
    /// The database said no.
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
    /// A file of the database could not be read or made.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The database was made by a newer server.
    #[error("the database has schema version {found}; this server knows up to {known}")]
    TooNew {
        /// Its version.
        found: i64,
        /// Ours.
        known: i64,
    },
}

/// The writing half of a database: applies writes in order, in one transaction per call.
pub trait Backend: Send + 'static {
    /// Applies `writes` in one transaction, in order. A write refused on its own (a full
    /// mailbox, a taken name) gets its error and leaves the others be; an error of the whole
    /// transaction fails every write of it.
    fn apply(&mut self, writes: &[&Write]) -> Result<Vec<Result<Written, StoreError>>, StoreError>;

    /// Bytes appended since the size was last checked would call for a check now (so the
    /// size bound holds between the periodic prunes); the writer then applies a
    /// [`Write::Prune`] of its own.
    fn wants_prune(&mut self) -> Option<Write> {
        None
    }
}

/// The reading half of a database; callable from many threads at once.
pub trait Reader: Send + Sync + 'static {
    /// The account registered under the name key `key`.
    fn account(&self, key: &str) -> Result<Option<Account>, StoreError>;
    /// A page of history.
    fn history(&self, query: &HistoryQuery) -> Result<Page, StoreError>;
    /// The latest `limit` broadcast messages, oldest first.
    fn latest_broadcast(&self, limit: usize) -> Result<Vec<StoredMessage>, StoreError>;
    /// Messages stored, and bytes the database uses: for the server window and benchmarks.
    fn stats(&self) -> Result<(u64, u64), StoreError>;
}

struct Job {
    write: Write,
    done: oneshot::Sender<Result<Written, StoreError>>,
}

/// The server's handle on its database: cheap to clone, usable from any task.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    reader: Arc<dyn Reader>,
    /// Reads under way at most ([`MAX_READS`]): each holds a blocking thread and a database
    /// connection with its page cache, so a crowd asking for history at once waits its turn
    /// rather than take hundreds of both.
    reads: Arc<tokio::sync::Semaphore>,
}

/// Most reads running at once.
pub const MAX_READS: usize = 8;

/// The answer to a write, once its transaction has committed.
pub type Pending = oneshot::Receiver<Result<Written, StoreError>>;

impl Store {
    /// Starts the writer thread on `backend`; reads go to `reader`.
    pub fn start(backend: Box<dyn Backend>, reader: Arc<dyn Reader>) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel(WRITE_QUEUE);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_loop(backend, rx))?;
        Ok(Self {
            jobs,
            reader,
            reads: Arc::new(tokio::sync::Semaphore::new(MAX_READS)),
        })
    }

    /// Opens (or makes) the SQLite database of `options` and starts its writer thread.
    /// Blocking: call it off the async workers.
    pub fn open_sqlite(options: &sqlite::Options) -> Result<Self, StoreError> {
        let (writer, readers) = sqlite::open(options)?;
        Ok(Self::start(Box::new(writer), Arc::new(readers))?)
    }

    /// Queues `write`, waiting for room in the writer's queue; the returned receiver answers
    /// once it is committed.
    pub async fn submit(&self, write: Write) -> Pending {
        let (done, answer) = oneshot::channel();
        // A closed queue drops the job, and with it `done`: the answer is then an error.
        let _ = self.jobs.send(Job { write, done }).await;
        answer
    }

    /// Applies `write` and waits for it to be committed.
    pub async fn write(&self, write: Write) -> Result<Written, StoreError> {
        self.submit(write)
            .await
            .await
            .unwrap_or(Err(StoreError::Closed))
    }

    /// Runs `read` on a blocking thread.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&dyn Reader) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        // The semaphore is never closed.
        let _turn = self.reads.acquire().await.map_err(|_| StoreError::Closed)?;
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || read(reader.as_ref()))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }

    /// The reading half, for callers already on a blocking thread (start-up).
    pub fn reader(&self) -> &dyn Reader {
        self.reader.as_ref()
    }
}

/// The writer thread: everything waiting goes into one transaction; then each write hears
/// how it went. Ends when every [`Store`] is gone.
fn write_loop(mut backend: Box<dyn Backend>, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let writes: Vec<&Write> = batch.iter().map(|job| &job.write).collect();
        let applied = backend.apply(&writes);
        drop(writes);
        match applied {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    let _ = job.done.send(result);
                }
            }
            Err(err) => {
                tracing::error!(%err, writes = batch.len(), "a database transaction failed");
                let err = err.to_string();
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(StoreError::Failed(err.clone())));
                }
            }
        }
        if let Some(prune) = backend.wants_prune()
            && let Err(err) = backend.apply(&[&prune])
        {
            tracing::error!(%err, "pruning the database failed");
        }
    }
}
