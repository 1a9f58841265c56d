//! Downloads on the client side: which transfers exist, their controls, and the task that runs
//! each one from offer to verified file.

use crate::event::{TransferEvent, TransferState};
use crate::fetch::{self, Control};
use crate::part::PartFile;
use crate::{ClientError, Event};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
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
    /// Name to save under, instead of the server's name for the file.
    pub save_as: Option<String>,
    /// Largest UDP datagram to receive (1200 to 65507 bytes); `None` picks one for the path:
    /// the largest on loopback, 1452 bytes elsewhere. Lower it for paths with a small MTU.
    pub max_datagram: Option<usize>,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("."),
            pause_at: None,
            save_as: None,
            max_datagram: None,
        }
    }
}

/// A download as `/transfers` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferStatus {
    /// Transfer id.
    pub id: u64,
    /// File name.
    pub file: String,
    /// `queued`, `running`, `paused`, `done`, `failed` or `cancelled`.
    pub state: &'static str,
    /// Bytes on disk.
    pub bytes: u64,
    /// File size, once known.
    pub size: Option<u64>,
}

/// What the server offered for a transfer.
#[derive(Debug, Clone)]
pub(crate) struct Offer {
    pub id: u64,
    pub file: String,
    pub size: u64,
    pub hash: String,
    pub token: [u8; 16],
    pub port: u16,
}

struct Entry {
    opts: DownloadOptions,
    control: watch::Sender<Control>,
    status: TransferStatus,
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
    asked: Mutex<HashMap<u64, (String, DownloadOptions)>>,
    entries: Mutex<HashMap<u64, Entry>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Downloads {
    pub(crate) fn new(
        server_ip: IpAddr,
        events: mpsc::Sender<Event>,
        requests: mpsc::WeakSender<ClientMsg>,
    ) -> Arc<Self> {
        Arc::new(Self {
            server_ip,
            events,
            requests,
            lost: CancellationToken::new(),
            running: TaskTracker::new(),
            asked: Mutex::default(),
            entries: Mutex::default(),
        })
    }

    /// Remembers the options of request `req` until the server answers it.
    /// Refuses a second download into the same `NAME.part` while the first is not over (they
    /// would write the same file).
    pub(crate) fn asked(
        &self,
        req: u64,
        file: String,
        opts: DownloadOptions,
    ) -> Result<(), ClientError> {
        let target = |file: &str, opts: &DownloadOptions| {
            opts.dir.join(opts.save_as.as_deref().unwrap_or(file))
        };
        let wanted = target(&file, &opts);
        let mut asked = lock(&self.asked);
        let busy = asked.values().any(|(f, o)| target(f, o) == wanted)
            || lock(&self.entries).values().any(|e| {
                matches!(e.status.state, "queued" | "running" | "paused")
                    && target(&e.status.file, &e.opts) == wanted
            });
        if busy {
            return Err(ClientError::AlreadyDownloading(wanted));
        }
        asked.insert(req, (file, opts));
        Ok(())
    }

    /// The request was refused or never answered.
    pub(crate) fn forget(&self, req: u64) {
        lock(&self.asked).remove(&req);
    }

    /// The server gave request `req` the id `id`; from now on the transfer is known by it.
    fn adopt(&self, req: Option<u64>, id: u64, file: &str) {
        let Some((_, opts)) = req.and_then(|r| lock(&self.asked).remove(&r)) else {
            return;
        };
        let (control, _) = watch::channel(Control::Run);
        let status = TransferStatus {
            id,
            file: file.to_owned(),
            state: "queued",
            bytes: 0,
            size: None,
        };
        lock(&self.entries).insert(
            id,
            Entry {
                opts,
                control,
                status,
            },
        );
    }

    /// The server queued transfer `id`, or (`preparing`) is still hashing its file.
    pub(crate) async fn queued(
        &self,
        req: Option<u64>,
        id: u64,
        file: String,
        position: u32,
        preparing: bool,
    ) {
        self.adopt(req, id, &file);
        let state = if preparing {
            TransferState::Preparing
        } else {
            TransferState::Queued { position }
        };
        self.emit(id, file, state).await;
    }

    /// The server ended transfer `id` before offering it (it could not prepare the file; an
    /// `error` says why): a transfer of ours that was waiting has failed.
    pub(crate) async fn ended_by_server(&self, id: u64) {
        let file = {
            let mut entries = lock(&self.entries);
            let Some(entry) = entries.get_mut(&id).filter(|e| e.status.state == "queued") else {
                return;
            };
            entry.status.state = "failed";
            entry.status.file.clone()
        };
        let error = "the server could not prepare the file".to_owned();
        self.emit(id, file, TransferState::Failed { error }).await;
    }

    /// The server offered transfer `id`: start moving data.
    pub(crate) fn ready(self: &Arc<Self>, req: Option<u64>, offer: Offer) {
        self.adopt(req, offer.id, &offer.file);
        let (opts, control) = {
            let mut entries = lock(&self.entries);
            let Some(entry) = entries.get_mut(&offer.id) else {
                tracing::warn!(id = offer.id, "offer for a transfer we never asked for");
                return;
            };
            entry.status.state = "running";
            entry.status.size = Some(offer.size);
            (entry.opts.clone(), entry.control.subscribe())
        };
        let this = Arc::clone(self);
        self.running
            .spawn(async move { this.run(offer, opts, control).await });
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
            .filter(|(_, e)| e.status.state == "queued")
            .map(|(&id, e)| {
                e.status.state = "failed";
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

    /// Pauses, resumes or cancels transfer `id`.
    pub(crate) fn control(&self, id: u64, control: Control) -> Result<(), ClientError> {
        let entries = lock(&self.entries);
        let entry = entries.get(&id).ok_or(ClientError::Server {
            code: wire::ErrorCode::NoSuchTransfer,
            message: format!("there is no transfer {id}"),
        })?;
        entry.control.send_replace(control);
        Ok(())
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

    fn update(&self, id: u64, state: &'static str, bytes: u64) {
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
        let (id, file) = (offer.id, offer.file.clone());
        let outcome = self.transfer(&offer, &opts, control).await;
        let (state, label) = match outcome {
            Ok(done @ TransferState::Done { .. }) => (done, "done"),
            Ok(TransferState::Cancelled) => (TransferState::Cancelled, "cancelled"),
            Ok(other) => (other, "failed"),
            Err(error) => (TransferState::Failed { error }, "failed"),
        };
        let bytes = match &state {
            TransferState::Done { bytes, .. } => *bytes,
            _ => lock(&self.entries).get(&id).map_or(0, |e| e.status.bytes),
        };
        self.update(id, label, bytes);
        self.emit(id, file, state).await;
    }

    async fn transfer(
        &self,
        offer: &Offer,
        opts: &DownloadOptions,
        control: watch::Receiver<Control>,
    ) -> Result<TransferState, String> {
        let local_name = opts.save_as.clone().unwrap_or_else(|| offer.file.clone());
        let (dir, name, hash, size) = (
            opts.dir.clone(),
            local_name.clone(),
            offer.hash.clone(),
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
            offer.id,
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
            server,
            offer.token,
            pause_point,
            opts.max_datagram,
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
                part.discard();
                return Ok(TransferState::Cancelled);
            }
            Err(error) => {
                // The disk's own words (e.g. "No space left on device") say more than the
                // transport's "could not write".
                let error = match part.write_error() {
                    Some(why) => format!("the transfer failed: {why}"),
                    None => error,
                };
                let _ = part.save_meta();
                return Err(error);
            }
        }
        let bytes = part.bytes();
        let finished = tokio::task::spawn_blocking(move || part.finish(&local_name))
            .await
            .map_err(|e| e.to_string())?;
        match finished {
            Ok((path, last_byte)) => Ok(TransferState::Done {
                bytes,
                path,
                last_byte,
                hash: offer.hash.clone(),
            }),
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
        let id = self.offer.id;
        let label = if self.paused { "paused" } else { "running" };
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
        let _ = self.downloads.control(self.offer.id, Control::Pause);
        self.paused(true, bytes, true).await;
    }

    /// The transfer paused (`at_pause_point` when by itself) or resumed.
    pub(crate) async fn paused(&mut self, paused: bool, bytes: u64, at_pause_point: bool) {
        if paused == self.paused {
            return;
        }
        self.paused = paused;
        let id = self.offer.id;
        let (label, state) = if paused {
            (
                "paused",
                TransferState::Paused {
                    bytes,
                    at_pause_point,
                },
            )
        } else {
            ("running", TransferState::Resumed { bytes })
        };
        self.downloads.update(id, label, bytes);
        self.downloads
            .emit(id, self.offer.file.clone(), state)
            .await;
    }
}

impl std::fmt::Debug for Downloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloads")
            .field("transfers", &self.list())
            .finish_non_exhaustive()
    }
}
