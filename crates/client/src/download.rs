//! Downloads on the client side: which transfers exist, their controls, and the task that runs
//! each one from offer to verified file.

use crate::event::{TransferEvent, TransferState};
use crate::fetch::{self, Control};
use crate::part::{PartFile, safe_file_name};
use crate::{ClientError, Event};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wire::ClientMsg;

/// How to download a file.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Folder the file is saved in (created if missing).
    pub dir: PathBuf,
    /// Pause by itself once this percentage has arrived, and wait for [`crate::Client::resume`].
    pub pause_at: Option<f64>,
    /// Name to save under, instead of the name asked for. Either is reduced to a single safe
    /// file name ([`crate::safe_file_name`]): the server's word never chooses where data goes.
    pub save_as: Option<String>,
    /// Largest UDP datagram to receive (1200 to 65507 bytes); `None` picks one for the path:
    /// the largest on loopback, 1452 bytes elsewhere. Lower it for paths with a small MTU.
    pub max_datagram: Option<usize>,
    /// A transfer that, while not paused, receives less than [`STALL_BYTES`] in this long fails
    /// (a server that trickles, or a path that has all but died, would keep it alive for ever).
    pub stall_timeout: Duration,
}

/// What a running transfer must receive in [`DownloadOptions::stall_timeout`] (or all that is
/// left, if less), not to count as stalled: 64 KiB, about 1 KiB/s at the default.
pub const STALL_BYTES: u64 = 64 * 1024;

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("."),
            pause_at: None,
            save_as: None,
            max_datagram: None,
            stall_timeout: Duration::from_secs(60),
        }
    }
}

/// Where a download is, as `/transfers` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferPhase {
    /// Waiting for the server: a port, or the file's hash.
    Queued,
    /// Data is moving.
    Running,
    /// Paused by the user or at its pause point; resumes from where it stopped.
    Paused,
    /// Every byte is here and verified.
    Done,
    /// It ended with an error.
    Failed,
    /// The user gave it up.
    Cancelled,
}

impl TransferPhase {
    /// The phase as `--json` and `/transfers` write it (`queued`, `running`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// True until the transfer has ended (done, failed or cancelled).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Queued | Self::Running | Self::Paused)
    }
}

/// A phase equals its spelling in `--json` and `/transfers`: `state == "paused"`.
impl PartialEq<&str> for TransferPhase {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for TransferPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A download as `/transfers` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferStatus {
    /// Transfer id.
    pub id: u64,
    /// File name.
    pub file: String,
    /// Where it is.
    pub state: TransferPhase,
    /// Bytes on disk.
    pub bytes: u64,
    /// File size, once known.
    pub size: Option<u64>,
}

/// What the server offered for a transfer.
#[derive(Debug, Clone)]
pub(crate) struct Offer {
    /// The server's id of the transfer.
    pub id: u64,
    /// Ours, as front ends know it: the server's first id for it, kept when the server takes
    /// a paused transfer's port back and gives the transfer a new id when it is asked again.
    pub local: u64,
    pub file: String,
    pub size: u64,
    pub hash: wire::FileHash,
    pub secret: transport::Secret,
    pub port: u16,
}

struct Entry {
    opts: DownloadOptions,
    control: watch::Sender<Control>,
    status: TransferStatus,
    /// The server's current id of this transfer.
    server_id: u64,
    /// The server took the port back while the transfer was paused: continuing it asks for
    /// the file again (from the offset the `.part` has).
    reclaimed: bool,
}

/// A download request waiting for its answer.
struct Asked {
    file: String,
    /// With `save_as` set to the safe local name.
    opts: DownloadOptions,
    /// The transfer this request continues (see [`Entry::reclaimed`]), by our id.
    continues: Option<u64>,
}

/// Every download of one connection.
pub(crate) struct Downloads {
    server_ip: IpAddr,
    events: mpsc::Sender<Event>,
    /// Requests to the server (weak: the connection closes when the last `Client` goes).
    requests: mpsc::WeakSender<ClientMsg>,
    /// Cancelled when the connection ends: the server has ended every transfer by then, and a
    /// killed server cannot say so.
    lost: CancellationToken,
    /// The task of every transfer, for the end of the connection to wait for.
    running: TaskTracker,
    /// Requests sent but not answered yet, by request number.
    asked: Mutex<HashMap<u64, Asked>>,
    /// Every transfer, by our id.
    entries: Mutex<HashMap<u64, Entry>>,
    /// The connection's request numbers, shared with [`crate::Client`].
    next_req: Arc<AtomicU64>,
    /// Benchmarks only: transfers go unprotected (see [`crate::Client::unprotected_transfers`]).
    unprotected: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Downloads {
    /// Benchmarks only: see [`crate::Client::unprotected_transfers`].
    pub(crate) fn set_unprotected(&self, unprotected: bool) {
        self.unprotected.store(unprotected, Ordering::Relaxed);
    }

    pub(crate) fn new(
        server_ip: IpAddr,
        events: mpsc::Sender<Event>,
        requests: mpsc::WeakSender<ClientMsg>,
        next_req: Arc<AtomicU64>,
    ) -> Arc<Self> {
        Arc::new(Self {
            server_ip,
            events,
            requests,
            lost: CancellationToken::new(),
            running: TaskTracker::new(),
            asked: Mutex::default(),
            entries: Mutex::default(),
            next_req,
            unprotected: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Remembers the options of request `req` until the server answers it, with the local
    /// name settled: the one asked for (or `save_as`), reduced to a single safe file name.
    /// Refuses a second download into the same `NAME.part` while the first is not over (they
    /// would write the same file).
    pub(crate) fn asked(
        &self,
        req: u64,
        file: String,
        mut opts: DownloadOptions,
    ) -> Result<(), ClientError> {
        let wanted_name = opts.save_as.take().unwrap_or_else(|| file.clone());
        let local = safe_file_name(&wanted_name).ok_or(ClientError::UnsafeName(wanted_name))?;
        opts.save_as = Some(local);
        let target = |opts: &DownloadOptions| opts.dir.join(opts.save_as.as_deref().unwrap_or(""));
        let wanted = target(&opts);
        let mut asked = lock(&self.asked);
        let busy = asked.values().any(|a| target(&a.opts) == wanted)
            || lock(&self.entries)
                .values()
                .any(|e| e.status.state.is_live() && target(&e.opts) == wanted);
        if busy {
            return Err(ClientError::AlreadyDownloading(wanted));
        }
        let continues = None;
        asked.insert(
            req,
            Asked {
                file,
                opts,
                continues,
            },
        );
        Ok(())
    }

    /// The request was refused or never answered.
    pub(crate) fn forget(&self, req: u64) {
        lock(&self.asked).remove(&req);
    }

    /// The server refused request `req`, which nobody waits for: when it asked again for a
    /// transfer whose port was taken back, that transfer has failed (the event says why).
    pub(crate) fn refused(&self, req: u64, why: &str) -> Option<Event> {
        let local = lock(&self.asked).remove(&req)?.continues?;
        let mut entries = lock(&self.entries);
        let entry = entries.get_mut(&local).filter(|e| e.reclaimed)?;
        entry.reclaimed = false;
        entry.status.state = TransferPhase::Failed;
        Some(Event::Transfer(TransferEvent {
            id: local,
            file: entry.status.file.clone(),
            state: TransferState::Failed {
                error: format!(
                    "the server refused to continue the transfer: {why}; asking for the file \
                     again resumes it"
                ),
            },
        }))
    }

    /// The server answered request `req` (or, without one, a request answered before) with
    /// transfer `id` (its id) for the file `offered`: from now on the transfer is known by it.
    /// Returns our id of the transfer. Refuses an answer for a transfer we never asked for, an
    /// id already in use, and an offer of another file than the one asked for (a hostile server
    /// would choose what we save).
    fn adopt(&self, req: Option<u64>, id: u64, offered: &str) -> Result<u64, Refusal> {
        // `asked` is never held while taking `entries` here: `asked()` takes them the other
        // way round.
        let answered = req.and_then(|r| lock(&self.asked).remove(&r));
        let mut entries = lock(&self.entries);
        if let Some(asked) = answered {
            if entries.iter().any(|(&local, e)| {
                (e.server_id == id && asked.continues != Some(local))
                    || (asked.continues.is_none() && local == id)
            }) {
                return Err(Refusal::Unknown(format!(
                    "the server gave a second request the id {id} of a transfer it already has"
                )));
            }
            match asked.continues.and_then(|local| entries.get_mut(&local)) {
                Some(entry) if !entry.reclaimed => {
                    return Err(Refusal::Unknown(format!(
                        "the server offered transfer {id} for a transfer given up meanwhile"
                    )));
                }
                Some(entry) => {
                    entry.server_id = id;
                    entry.reclaimed = false;
                    entry.status.state = TransferPhase::Queued;
                }
                None => {
                    let (control, _) = watch::channel(Control::Run);
                    let status = TransferStatus {
                        id,
                        file: asked.file,
                        state: TransferPhase::Queued,
                        bytes: 0,
                        size: None,
                    };
                    let entry = Entry {
                        opts: asked.opts,
                        control,
                        status,
                        server_id: id,
                        reclaimed: false,
                    };
                    entries.insert(id, entry);
                }
            }
        }
        let Some((&local, entry)) = entries.iter_mut().find(|(_, e)| e.server_id == id) else {
            return Err(Refusal::Unknown(format!(
                "the server offered transfer {id}, which this client never asked for"
            )));
        };
        if entry.status.state != TransferPhase::Queued {
            return Err(Refusal::Unknown(format!(
                "the server offered transfer {id} again"
            )));
        }
        if entry.status.file != offered {
            entry.status.state = TransferPhase::Failed;
            return Err(Refusal::OtherFile {
                local,
                error: format!(
                    "the server offered {:?} instead of the file asked for; refused",
                    offered
                ),
            });
        }
        Ok(local)
    }

    /// Tells the server that transfer `id` was refused, and returns the event that tells the
    /// user, when the transfer is ours.
    fn refuse(&self, id: u64, refusal: Refusal) -> Option<Event> {
        match refusal {
            Refusal::Unknown(why) => {
                tracing::warn!(id, "{why}");
                // Not ours to run: the server may free its port at once.
                if let Some(requests) = self.requests.upgrade() {
                    let _ = requests.try_send(ClientMsg::Cancel { id, req: None });
                }
                None
            }
            Refusal::OtherFile { local, error } => {
                if let Some(requests) = self.requests.upgrade() {
                    // Best effort: the server's port is freed by its own timeout otherwise.
                    let _ = requests.try_send(ClientMsg::Cancel { id, req: None });
                }
                let file = lock(&self.entries).get(&local)?.status.file.clone();
                Some(Event::Transfer(TransferEvent {
                    id: local,
                    file,
                    state: TransferState::Failed { error },
                }))
            }
        }
    }

    /// The server queued transfer `id`: the event to tell the user, if it is one of ours.
    /// Called by the connection's reader, which never waits for the front end: it delivers
    /// the event itself.
    pub(crate) fn queued(
        &self,
        req: Option<u64>,
        id: u64,
        file: String,
        position: u32,
        preparing: bool,
    ) -> Option<Event> {
        match self.adopt(req, id, &file) {
            Ok(local) => Some(Event::Transfer(TransferEvent {
                id: local,
                file,
                state: if preparing {
                    TransferState::Preparing
                } else {
                    TransferState::Queued { position }
                },
            })),
            Err(refusal) => self.refuse(id, refusal),
        }
    }

    /// The server offered transfer `id` (its id) with a malformed secret or hash: a transfer of
    /// ours that waited for it fails, and the server is told.
    pub(crate) fn malformed(&self, id: u64) -> Option<Event> {
        let mut entries = lock(&self.entries);
        let (&local, entry) = entries
            .iter_mut()
            .find(|(_, e)| e.server_id == id && e.status.state == TransferPhase::Queued)?;
        entry.status.state = TransferPhase::Failed;
        let file = entry.status.file.clone();
        drop(entries);
        if let Some(requests) = self.requests.upgrade() {
            let _ = requests.try_send(ClientMsg::Cancel { id, req: None });
        }
        Some(Event::Transfer(TransferEvent {
            id: local,
            file,
            state: TransferState::Failed {
                error: "the server offered the file with a malformed secret or hash".into(),
            },
        }))
    }

    /// The server ended transfer `id` before offering it (it could not prepare the file; an
    /// `error` says why): a transfer of ours that was waiting has failed.
    pub(crate) fn ended_by_server(&self, id: u64) -> Option<Event> {
        let mut entries = lock(&self.entries);
        let (&local, entry) = entries
            .iter_mut()
            .find(|(_, e)| e.server_id == id && e.status.state == TransferPhase::Queued)?;
        entry.status.state = TransferPhase::Failed;
        Some(Event::Transfer(TransferEvent {
            id: local,
            file: entry.status.file.clone(),
            state: TransferState::Failed {
                error: "the server could not prepare the file".into(),
            },
        }))
    }

    /// The server offered transfer `id`: start moving data. Returns the event that tells the
    /// user of a refused offer (the reader delivers it).
    pub(crate) fn ready(self: &Arc<Self>, req: Option<u64>, mut offer: Offer) -> Option<Event> {
        offer.local = match self.adopt(req, offer.id, &offer.file) {
            Ok(local) => local,
            Err(refusal) => return self.refuse(offer.id, refusal),
        };
        let (opts, control) = {
            let mut entries = lock(&self.entries);
            let entry = entries.get_mut(&offer.local)?;
            entry.status.state = TransferPhase::Running;
            entry.status.size = Some(offer.size);
            (entry.opts.clone(), entry.control.subscribe())
        };
        let this = Arc::clone(self);
        self.running
            .spawn(async move { this.run(offer, opts, control).await });
        None
    }

    /// The connection ended: every running transfer stops now (its `.part` kept), every queued
    /// one fails, and each has told so when this returns, so that [`Event::Disconnected`] stays the last event.
    pub(crate) async fn connection_lost(&self) {
        self.lost.cancel();
        self.running.close();
        self.running.wait().await;
        // Those still waiting for a port never will: the server forgot them with us.
        let queued: Vec<(u64, String)> = lock(&self.entries)
            .iter_mut()
            .filter(|(_, e)| e.status.state == TransferPhase::Queued)
            .map(|(&id, e)| {
                e.status.state = TransferPhase::Failed;
                (id, e.status.file.clone())
            })
            .collect();
        for (id, file) in queued {
            let error = "the connection to the server ended while the transfer waited for a \
                         port; ask for the file again"
                .to_owned();
            self.emit(id, file, TransferState::Failed { error }).await;
        }
    }

    /// Pauses, resumes or cancels transfer `id` (ours). Resuming a transfer whose port the
    /// server took back asks for the file again; cancelling it removes its `.part`.
    pub(crate) fn control(&self, id: u64, control: Control) -> Result<(), ClientError> {
        let mut entries = lock(&self.entries);
        let entry = entries.get_mut(&id).ok_or(ClientError::Server {
            code: wire::ErrorCode::NoSuchTransfer,
            message: format!("there is no transfer {id}"),
        })?;
        entry.control.send_replace(control);
        if !entry.reclaimed {
            return Ok(());
        }
        match control {
            Control::Pause => Ok(()),
            Control::Run => {
                let (file, opts) = (entry.status.file.clone(), entry.opts.clone());
                drop(entries);
                self.ask_again(id, file, opts)
            }
            Control::Cancel => {
                entry.reclaimed = false;
                entry.status.state = TransferPhase::Cancelled;
                let file = entry.status.file.clone();
                let name = entry.opts.save_as.clone().unwrap_or_default();
                let part = entry.opts.dir.join(format!("{name}.part"));
                drop(entries);
                // A request asking again for it may be on its way: its answer is refused
                // (`asked` is never taken while `entries` is held).
                lock(&self.asked).retain(|_, a| a.continues != Some(id));
                let events = self.events.clone();
                // No transfer task is left to do it: remove the files and tell, off this thread.
                tokio::task::spawn_blocking(move || {
                    let _ = std::fs::remove_file(&part);
                    let _ = std::fs::remove_file(part.with_extension("part.meta"));
                    let state = TransferState::Cancelled;
                    let _ =
                        events.blocking_send(Event::Transfer(TransferEvent { id, file, state }));
                });
                Ok(())
            }
        }
    }

    /// Asks the server for transfer `id`'s file again, to continue it from its `.part`.
    fn ask_again(&self, id: u64, file: String, opts: DownloadOptions) -> Result<(), ClientError> {
        let mut asked = lock(&self.asked);
        if asked.values().any(|a| a.continues == Some(id)) {
            return Ok(()); // asked already
        }
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        let msg = ClientMsg::Download {
            file: file.clone(),
            req: Some(req),
        };
        let requests = self.requests.upgrade().ok_or(ClientError::Disconnected)?;
        requests
            .try_send(msg)
            .map_err(|_| ClientError::Disconnected)?;
        let continues = Some(id);
        asked.insert(
            req,
            Asked {
                file,
                opts,
                continues,
            },
        );
        Ok(())
    }

    /// The server's id of transfer `id` (ours).
    pub(crate) fn server_id(&self, id: u64) -> u64 {
        lock(&self.entries).get(&id).map_or(id, |e| e.server_id)
    }

    /// Every transfer of this connection, oldest first.
    pub(crate) fn list(&self) -> Vec<TransferStatus> {
        let mut all: Vec<TransferStatus> = lock(&self.entries)
            .values()
            .map(|e| e.status.clone())
            .collect();
        all.sort_by_key(|s| s.id);
        all
    }

    fn update(&self, id: u64, state: TransferPhase, bytes: u64) {
        if let Some(entry) = lock(&self.entries).get_mut(&id) {
            entry.status.state = state;
            entry.status.bytes = bytes;
        }
    }

    async fn emit(&self, id: u64, file: String, state: TransferState) {
        let _ = self
            .events
            .send(Event::Transfer(TransferEvent { id, file, state }))
            .await;
    }

    /// Runs one transfer from offer to verified file, reporting as it goes.
    async fn run(&self, offer: Offer, opts: DownloadOptions, control: watch::Receiver<Control>) {
        let (id, file) = (offer.local, offer.file.clone());
        let outcome = self.transfer(&offer, &opts, control).await;
        let (state, label) = match outcome {
            Ok(None) => return self.reclaimed(id),
            Ok(Some(done @ TransferState::Done { .. })) => (done, TransferPhase::Done),
            Ok(Some(TransferState::Cancelled)) => {
                (TransferState::Cancelled, TransferPhase::Cancelled)
            }
            Ok(Some(other)) => (other, TransferPhase::Failed),
            Err(error) => (TransferState::Failed { error }, TransferPhase::Failed),
        };
        let bytes = match &state {
            TransferState::Done { bytes, .. } => *bytes,
            _ => lock(&self.entries).get(&id).map_or(0, |e| e.status.bytes),
        };
        self.update(id, label, bytes);
        self.emit(id, file, state).await;
    }

    /// The server took transfer `id`'s port back while it was paused: it stays paused (the
    /// user has heard so already) until continued, which asks for the file again; at once if
    /// the user continued it meanwhile.
    fn reclaimed(&self, id: u64) {
        let again = {
            let mut entries = lock(&self.entries);
            let Some(entry) = entries.get_mut(&id) else {
                return;
            };
            entry.reclaimed = true;
            entry.status.state = TransferPhase::Paused;
            (*entry.control.borrow() == Control::Run)
                .then(|| (entry.status.file.clone(), entry.opts.clone()))
        };
        if let Some((file, opts)) = again
            && let Err(err) = self.ask_again(id, file, opts)
        {
            tracing::warn!(id, %err, "cannot ask for a reclaimed transfer again");
        }
    }

    /// Moves the data; `None` when the server took the port back from the paused transfer.
    async fn transfer(
        &self,
        offer: &Offer,
        opts: &DownloadOptions,
        control: watch::Receiver<Control>,
    ) -> Result<Option<TransferState>, String> {
        // Settled when the download was asked for: never the server's choice.
        let Some(local_name) = opts.save_as.clone() else {
            return Err("no local name for the download".into());
        };
        let (dir, name, hash, size) = (
            opts.dir.clone(),
            local_name.clone(),
            offer.hash.to_hex(),
            offer.size,
        );
        let opened = tokio::task::spawn_blocking(move || PartFile::open(&dir, &name, &hash, size))
            .await
            .map_err(|e| e.to_string())?;
        let mut part = match opened {
            Ok(part) => part,
            Err(e) => {
                // The server keeps a port for us until we open the flow: give it back now
                // rather than after the server's timeout.
                if let Some(requests) = self.requests.upgrade() {
                    let cancel = ClientMsg::Cancel {
                        id: offer.id,
                        req: None,
                    };
                    let _ = requests.send(cancel).await;
                }
                return Err(format!("cannot write to {}: {e}", opts.dir.display()));
            }
        };
        let offset = part.contiguous();
        self.emit(
            offer.local,
            offer.file.clone(),
            TransferState::Started { size, offset },
        )
        .await;
        let pause_point = opts
            .pause_at
            .filter(|p| *p > 0.0 && *p < 100.0)
            .map(|p| (size as f64 * p / 100.0).ceil() as u64)
            .filter(|&at| at > offset);
        let server = SocketAddr::new(self.server_ip, offer.port);
        let mut reporter = Reporter {
            downloads: self,
            offer,
            paused: false,
        };
        let fetched = fetch::fetch(
            fetch::Target {
                server,
                secret: offer.secret.clone(),
                unprotected: self.unprotected.load(Ordering::Relaxed),
                pause_at: pause_point,
                max_datagram: opts.max_datagram,
                stall_timeout: opts.stall_timeout,
            },
            &mut part,
            control,
            &mut reporter,
        );
        let ended = tokio::select! {
            ended = fetched => ended,
            () = self.lost.cancelled() => Err(
                "the connection to the server ended; asking for the file again resumes it".into()
            ),
        };
        match ended {
            Ok(fetch::Ended::Complete) => {}
            Ok(fetch::Ended::Cancelled) => {
                let _ = tokio::task::spawn_blocking(move || part.discard()).await;
                return Ok(Some(TransferState::Cancelled));
            }
            Ok(fetch::Ended::Reclaimed) => {
                let _ = tokio::task::spawn_blocking(move || part.save_meta()).await;
                return Ok(None);
            }
            Err(error) => {
                // The disk's own words (e.g. "No space left on device") say more than the
                // transport's "could not write".
                let error = match part.write_error() {
                    Some(why) => format!("the transfer failed: {why}"),
                    None => error,
                };
                let _ = tokio::task::spawn_blocking(move || part.save_meta()).await;
                return Err(error);
            }
        }
        let bytes = part.bytes();
        let finished = tokio::task::spawn_blocking(move || part.finish(&local_name))
            .await
            .map_err(|e| e.to_string())?;
        match finished {
            Ok((path, last_byte)) => Ok(Some(TransferState::Done {
                bytes,
                path,
                last_byte,
                hash: offer.hash,
            })),
            Err(err) => Err(err.to_string()),
        }
    }
}

/// Turns transfer progress into events: a few progress events a second, pause and resume
/// notices, and the "continue?" pause at the `pause_at` point.
pub(crate) struct Reporter<'a> {
    downloads: &'a Downloads,
    offer: &'a Offer,
    paused: bool,
}

impl Reporter<'_> {
    /// Data arrived.
    pub(crate) fn progress(&mut self, bytes: u64, rate_bps: u64, stats: &transport::Stats) {
        let id = self.offer.local;
        let label = if self.paused {
            TransferPhase::Paused
        } else {
            TransferPhase::Running
        };
        self.downloads.update(id, label, bytes);
        let state = TransferState::Progress {
            bytes,
            size: self.offer.size,
            rate_bps,
            rtt_us: u64::try_from(stats.smoothed_rtt.as_micros()).unwrap_or(u64::MAX),
            lost: stats.packets_lost,
        };
        // Progress may be dropped if the front end is behind; state changes never are.
        let _ = self
            .downloads
            .events
            .try_send(Event::Transfer(TransferEvent {
                id,
                file: self.offer.file.clone(),
                state,
            }));
    }

    /// The transfer paused itself at its `pause_at` point: record it as paused (so that a
    /// resume continues it) and ask the user.
    pub(crate) async fn pause_point_reached(&mut self, bytes: u64) {
        // The control first: once the user has heard of the pause, a resume they send must
        // come after it, never be overwritten by it.
        let _ = self.downloads.control(self.offer.local, Control::Pause);
        self.paused(true, bytes, true).await;
    }

    /// The transfer paused (`at_pause_point` when by itself) or resumed.
    pub(crate) async fn paused(&mut self, paused: bool, bytes: u64, at_pause_point: bool) {
        if paused == self.paused {
            return;
        }
        self.paused = paused;
        let id = self.offer.local;
        let (label, state) = if paused {
            (
                TransferPhase::Paused,
                TransferState::Paused {
                    bytes,
                    at_pause_point,
                },
            )
        } else {
            (TransferPhase::Running, TransferState::Resumed { bytes })
        };
        self.downloads.update(id, label, bytes);
        self.downloads
            .emit(id, self.offer.file.clone(), state)
            .await;
    }
}

/// Why an answer from the server about a transfer was not taken.
enum Refusal {
    /// Not about a transfer of ours: nothing to tell the user.
    Unknown(String),
    /// An offer of another file than the one asked for: our transfer `local` fails.
    OtherFile {
        /// Our id of the transfer.
        local: u64,
        /// What to tell the user.
        error: String,
    },
}

impl std::fmt::Debug for Downloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloads")
            .field("transfers", &self.list())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::TransferPhase;

    #[test]
    fn phases_are_spelt_in_json_as_in_transfers_listings() {
        let all = [
            (TransferPhase::Queued, "queued"),
            (TransferPhase::Running, "running"),
            (TransferPhase::Paused, "paused"),
            (TransferPhase::Done, "done"),
            (TransferPhase::Failed, "failed"),
            (TransferPhase::Cancelled, "cancelled"),
        ];
        for (phase, word) in all {
            assert_eq!(serde_json::to_value(phase).ok(), Some(word.into()));
            assert_eq!(phase.to_string(), word);
            assert!(phase == word);
            assert_eq!(
                phase.is_live(),
                matches!(word, "queued" | "running" | "paused")
            );
        }
    }
}
