//! The downloads of one connection: which transfers exist, the requests for them the server
//! has not answered yet, their controls, and what the server's answers do to them. Each
//! transfer runs in a task of its own ([`crate::transfer`]).

use crate::event::{TransferEvent, TransferState};
use crate::part::safe_file_name;
use crate::status::{TransferPhase, TransferStatus};
use crate::transfer::{self, Control, DownloadOptions, Link, Offer, Registry};
use crate::{ClientError, Event};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wire::ClientMsg;

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
    /// What every transfer needs of the connection.
    link: Link,
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
            link: Link {
                server_ip,
                events,
                requests,
                lost: CancellationToken::new(),
            },
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
                if let Some(requests) = self.link.requests.upgrade() {
                    let _ = requests.try_send(ClientMsg::Cancel { id, req: None });
                }
                None
            }
            Refusal::OtherFile { local, error } => {
                if let Some(requests) = self.link.requests.upgrade() {
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
        if let Some(requests) = self.link.requests.upgrade() {
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
        self.link.lost.cancel();
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
                let events = self.link.events.clone();
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
        let requests = self
            .link
            .requests
            .upgrade()
            .ok_or(ClientError::Disconnected)?;
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

    async fn emit(&self, id: u64, file: String, state: TransferState) {
        self.link.emit(id, file, state).await;
    }

    /// Runs one transfer from offer to verified file, reporting as it goes.
    async fn run(&self, offer: Offer, opts: DownloadOptions, control: watch::Receiver<Control>) {
        let (id, file) = (offer.local, offer.file.clone());
        let unprotected = self.unprotected.load(Ordering::Relaxed);
        let outcome = transfer::run(&self.link, self, &offer, &opts, control, unprotected).await;
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

impl Registry for Downloads {
    fn update(&self, id: u64, phase: TransferPhase, bytes: u64) {
        if let Some(entry) = lock(&self.entries).get_mut(&id) {
            entry.status.state = phase;
            entry.status.bytes = bytes;
        }
    }

    fn paused_itself(&self, id: u64) {
        let _ = self.control(id, Control::Pause);
    }
}

impl std::fmt::Debug for Downloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloads")
            .field("transfers", &self.list())
            .finish_non_exhaustive()
    }
}
