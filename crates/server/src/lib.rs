//! The messenger server: accepts TCP connections, runs one session per client, keeps the
//! registry of who is online and shares a folder of files.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = server::Server::bind(server::Config::default()).await?;
//! let stop = tokio_util::sync::CancellationToken::new();
//! server.run(stop).await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod accounts;
mod catalog;
mod chat;
mod config;
mod hashes;
mod identity;
mod inbound;
mod limit;
mod login;
mod notices;
mod pace;
mod registry;
mod session;
pub mod store;
mod transfers;
mod udp;

pub use catalog::{FileCatalog, SharedFile, Version};
pub use config::{
    Config, ConfigError, Database, HELLOS_PER_CONNECTION, MAX_HISTORY_ON_JOIN, MIN_DB_BYTES,
    MIN_MAX_FRAME, PortRangeError,
};
pub use hashes::{HashCache, HashHook, hash_file};
pub use identity::{CERT_FILE, Identity, KEY_FILE, TlsIdentity};
pub use registry::{CloseReason, JoinError, Registry};
pub use transfers::{TransferInfo, Transfers, UdpPorts};

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for connections to say goodbye before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// State every session shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) registry: Registry,
    pub(crate) catalog: FileCatalog,
    pub(crate) hashes: HashCache,
    pub(crate) transfers: Arc<Transfers>,
    pub(crate) shutdown: CancellationToken,
    /// Pending connections and hello attempts per source address.
    pub(crate) addresses: Arc<limit::Addresses>,
    /// The bytes all connections together may hold in partly received frames.
    pub(crate) inbound: inbound::Budget,
    /// Completes the TLS handshake of each new connection.
    pub(crate) tls: tokio_rustls::TlsAcceptor,
    /// How many handshakes compute at once, so that a burst of them does not stall the chat.
    pub(crate) handshakes: pace::Pacer,
    /// The fingerprint of the server's key.
    pub(crate) fingerprint: wire::Fingerprint,
    /// The database.
    pub(crate) store: store::Store,
    /// Hashes and checks passwords, a few at a time.
    pub(crate) passwords: accounts::Passwords,
    /// Failed logins per name and address.
    pub(crate) logins: accounts::LoginGuard,
    /// New accounts per address.
    pub(crate) registrations: accounts::RegistrationGuard,
    /// The temporary folder of a [`Database::Temporary`], removed with the server.
    _temporary: Option<TempFolder>,
}

/// A folder removed when dropped.
struct TempFolder(std::path::PathBuf);

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Opens the database `config` names (blocking), with the folder to remove afterwards for a
/// temporary one.
fn open_database(config: &Config) -> io::Result<(store::Store, Option<TempFolder>)> {
    let (path, temporary) = match &config.database {
        Database::InDataDir => (config.data_dir.join(store::sqlite::DB_FILE), None),
        Database::File(path) => (path.clone(), None),
        Database::Temporary => {
            let folder = std::env::temp_dir().join(format!(
                "messenger-db-{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            std::fs::create_dir_all(&folder)?;
            (
                folder.join(store::sqlite::DB_FILE),
                Some(TempFolder(folder)),
            )
        }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let options = store::sqlite::Options {
        path: path.clone(),
        max_bytes: config.max_db_bytes,
        full_sync: config.db_full_sync,
    };
    let store = store::Store::open_sqlite(&options).map_err(|e| {
        io::Error::other(format!("cannot open the database {}: {e}", path.display()))
    })?;
    Ok((store, temporary))
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Loads (or makes) the TLS identity, binds the listening socket and opens the shared
    /// folder (creating it if missing).
    pub async fn bind(config: Config) -> io::Result<Self> {
        let (source, data_dir) = (config.tls.clone(), config.data_dir.clone());
        let files_dir = config.files_dir.clone();
        // Reading or generating the identity touches files: off the async workers.
        let identity = tokio::task::spawn_blocking(move || {
            // The key's folder, which must not be the shared one (its files are served).
            let key_folder = match &source {
                TlsIdentity::SelfSigned => Some(data_dir.clone()),
                TlsIdentity::Files { key, .. } => Some(match key.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                    _ => std::path::PathBuf::from("."),
                }),
                TlsIdentity::Ephemeral => None,
            };
            if let Some(folder) = key_folder.filter(|f| same_folder(f, &files_dir)) {
                // The key would be one of the shared files.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "the TLS key's folder {} is the shared folder: the key would be \
                         shared; give --data-dir (or --tls-key) another folder",
                        folder.display()
                    ),
                ));
            }
            Identity::load(&source, &data_dir)
        })
        .await
        .map_err(io::Error::other)??;
        let db_config = config.clone();
        let (store, temporary, recent, passwords) = tokio::task::spawn_blocking(move || {
            let (store, temporary) = open_database(&db_config)?;
            let recent = store
                .reader()
                .latest_broadcast(db_config.history_on_join)
                .map_err(|e| io::Error::other(format!("cannot read the database: {e}")))?;
            let passwords = accounts::Passwords::new(
                db_config.password_cost,
                accounts::Passwords::default_permits(),
            )
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            Ok::<_, io::Error>((store, temporary, recent, passwords))
        })
        .await
        .map_err(io::Error::other)??;
        let tls = identity
            .server_config()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let catalog = FileCatalog::open(&config.files_dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot use {} as the files folder: {e}",
                    config.files_dir.display()
                ),
            )
        })?;
        let listener = TcpListener::bind(config.bind).await.map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.bind))
        })?;
        let sockets = config.udp_ports.bind(config.bind.ip())?;
        let shares = transfers::Shares {
            max_queue: config.max_queued,
            per_client: config.max_transfers_per_client,
            ports_per_client: config.max_ports_per_client,
            ports_per_address: config.max_ports_per_address,
            queued_per_address: config.max_queued_per_address,
        };
        let transfers = Arc::new(Transfers::new(
            sockets,
            shares,
            udp::serve_fn(config.max_pause, config.unprotected_transfers),
        ));
        let registry = Registry::with_history(
            config.max_clients,
            config.max_clients_per_address,
            config.history_on_join,
        );
        registry.remember(recent);
        let shared = Arc::new(Shared {
            registry,
            store,
            passwords,
            logins: accounts::LoginGuard::default(),
            registrations: accounts::RegistrationGuard::default(),
            _temporary: temporary,
            addresses: Arc::new(limit::Addresses::new(
                config.max_pending_per_address,
                config.hello_rate,
                config.hello_burst,
            )),
            inbound: inbound::Budget::new(
                config
                    .max_inbound_buffer
                    .max(config.max_frame.max(MIN_MAX_FRAME) + 4),
            ),
            catalog,
            hashes: HashCache::new(config.hash_hook.clone()),
            transfers,
            tls: tokio_rustls::TlsAcceptor::from(tls),
            handshakes: pace::Pacer::new(pace::Pacer::default_permits()),
            fingerprint: identity.fingerprint(),
            config,
            shutdown: CancellationToken::new(),
        });
        Ok(Self { listener, shared })
    }

    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The fingerprint of the server's TLS key, as clients see and pin it.
    pub fn fingerprint(&self) -> wire::Fingerprint {
        self.shared.fingerprint
    }

    /// The folder the server shares, as a real path.
    pub fn files_dir(&self) -> &std::path::Path {
        self.shared.catalog.root()
    }

    /// The folder of the server's own state (its database, and its TLS identity unless one
    /// was given).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.shared.config.data_dir
    }

    /// The downloads in progress and the port pool (for the server window).
    pub fn transfers(&self) -> Arc<Transfers> {
        Arc::clone(&self.shared.transfers)
    }

    /// Serves until `stop` is cancelled, then tells every client the server is shutting down
    /// and waits (a few seconds at most) for the connections to close.
    pub async fn run(self, stop: CancellationToken) {
        let tracker = TaskTracker::new();
        tracker.spawn(warm_hashes(Arc::clone(&self.shared)));
        tracker.spawn(deliver_notices(Arc::clone(&self.shared)));
        tracker.spawn(prune_history(Arc::clone(&self.shared)));
        let mut next_session: u64 = 1;
        let pending = Arc::new(tokio::sync::Semaphore::new(self.shared.config.max_pending));
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = stop.cancelled() => break,
            };
            match accepted {
                Ok((stream, peer)) => {
                    // Connections still in their TLS handshake or hello are capped, per source
                    // address and in all, so a crowd that connects and never speaks (slowloris)
                    // cannot use up memory or descriptors, nor one address lock everybody else
                    // out.
                    let address = limit::AddressKey::of(peer);
                    let now = std::time::Instant::now();
                    let Some(slot) = self.shared.addresses.try_pending(address, now) else {
                        tracing::debug!(%peer, "too many connections in their hello from one address; refused");
                        drop(stream);
                        continue;
                    };
                    let Ok(permit) = Arc::clone(&pending).try_acquire_owned() else {
                        tracing::warn!(%peer, "too many connections in their hello; refused");
                        drop(stream);
                        continue;
                    };
                    next_session += 1;
                    let shared = Arc::clone(&self.shared);
                    let pending = session::Pending {
                        _permit: permit,
                        _slot: slot,
                    };
                    tracker.spawn(session::run(stream, peer, shared, next_session, pending));
                }
                Err(err) => {
                    // Usually EMFILE: back off instead of spinning, keep serving the others.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        tracing::info!(online = self.shared.registry.len(), "shutting down");
        drop(self.listener);
        self.shared.registry.close_all(CloseReason::ServerShutdown);
        self.shared.shutdown.cancel();
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close in time");
        }
    }
}

/// True when `a` and `b` name the same folder: both existing and the same once links are
/// resolved, or, when one does not exist yet, the same absolute path (`./files` is `files`).
fn same_folder(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => match (std::path::absolute(a), std::path::absolute(b)) {
            (Ok(a), Ok(b)) => a.components().eq(b.components()),
            _ => a == b,
        },
    }
}

/// Delivers join and leave notices in batches: once some are waiting, a short while later
/// (`notice_delay`), everything gathered by then goes out together.
async fn deliver_notices(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            () = shared.registry.notices_waiting() => {}
            () = shared.shutdown.cancelled() => return,
        }
        tokio::time::sleep(shared.config.notice_delay).await;
        shared.registry.flush_notices();
    }
}

/// How often old messages are looked for (retention and the size bound).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Deletes messages past `--history-days`, and the oldest while the database is over
/// `--max-db-size`, a chunk at a time so the writer never stops long for it.
async fn prune_history(shared: Arc<Shared>) {
    loop {
        let before = shared
            .config
            .history_retention
            .map(|keep| registry::now_millis().saturating_sub(keep.as_millis() as u64));
        let write = store::Write::Prune {
            before,
            max_bytes: shared.config.max_db_bytes,
        };
        let pause = match shared.store.write(write).await {
            Ok(store::Written::Pruned { deleted, more }) => {
                if deleted > 0 {
                    tracing::info!(deleted, "old messages deleted");
                }
                if more {
                    Duration::from_millis(100)
                } else {
                    PRUNE_EVERY
                }
            }
            Ok(_) => PRUNE_EVERY,
            Err(err) => {
                tracing::warn!(%err, "cannot prune the database");
                PRUNE_EVERY
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shared.shutdown.cancelled() => return,
        }
    }
}

/// How often the shared folder is looked over for files that are new or changed, to hash them
/// before anyone asks.
const RESCAN_EVERY: Duration = Duration::from_secs(30);

/// Hashes the shared files in the background, at start-up and then whenever one is new or has
/// changed (the folder is looked over every [`RESCAN_EVERY`]), so that a download seldom
/// waits for its hash.
async fn warm_hashes(shared: Arc<Shared>) {
    loop {
        if let Ok(files) = shared.catalog.list().await {
            for file in &files {
                if shared.shutdown.is_cancelled() {
                    return;
                }
                if let Ok(Some(opened)) = shared.catalog.open_shared(&file.name).await {
                    let _ = shared.hashes.get(&file.name, &opened).await;
                }
            }
            let names = files.iter().map(|f| f.name.as_str()).collect();
            shared.hashes.retain(&names);
        }
        tokio::select! {
            () = tokio::time::sleep(RESCAN_EVERY) => {}
            () = shared.shutdown.cancelled() => return,
        }
    }
}

/// A server running on its own task, as [`Server::spawn`] starts it.
pub struct ServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    transfers: Arc<Transfers>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Runs the server on a new task; the handle stops it.
    pub fn spawn(self) -> io::Result<ServerHandle> {
        let addr = self.local_addr()?;
        let transfers = self.transfers();
        let shared = Arc::clone(&self.shared);
        let stop = CancellationToken::new();
        let task = tokio::spawn(self.run(stop.clone()));
        Ok(ServerHandle {
            addr,
            shared,
            transfers,
            stop,
            task,
        })
    }
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The fingerprint of the server's TLS key, as clients see and pin it.
    pub fn fingerprint(&self) -> wire::Fingerprint {
        self.shared.fingerprint
    }

    /// Names of the users online, sorted.
    pub fn users(&self) -> Vec<String> {
        self.shared.registry.names()
    }

    /// Frames and bytes waiting to be written to the user called `name`, if online.
    pub fn queued_for(&self, name: &str) -> Option<(usize, usize)> {
        self.shared.registry.queued_for(name)
    }

    /// Messages stored, and bytes the database uses.
    pub async fn stored(&self) -> io::Result<(u64, u64)> {
        self.shared
            .store
            .read(|r| r.stats())
            .await
            .map_err(io::Error::other)
    }

    /// Bytes held now for partly received frames, all connections together.
    pub fn inbound_buffered(&self) -> usize {
        self.shared.inbound.held()
    }

    /// The downloads in progress and the port pool.
    pub fn transfers(&self) -> &Transfers {
        &self.transfers
    }

    /// Shuts the server down gracefully and waits until it has.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
