//! One download, from the server's offer to a verified file in place: opening its `.part`,
//! moving the data ([`fetch`]), and finishing or keeping the file. What the transfer does is
//! told as events and recorded through a [`Registry`], of which it knows nothing more.

mod fetch;

use crate::Event;
use crate::event::{TransferEvent, TransferState};
use crate::part::PartFile;
use crate::status::TransferPhase;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
pub use transport::driver::Control;
use wire::ClientMsg;

/// How to download a file.
#[derive(Debug, Clone, PartialEq)]
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

/// What a transfer needs of its connection.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    /// The server's address (its transfer ports are on it).
    pub server_ip: IpAddr,
    /// Where events go to the front end.
    pub events: mpsc::Sender<Event>,
    /// Requests to the server (weak: the connection closes when the last `Client` goes).
    pub requests: mpsc::WeakSender<ClientMsg>,
    /// Cancelled when the connection ends: the server has ended every transfer by then, and a
    /// killed server cannot say so.
    pub lost: CancellationToken,
}

impl Link {
    /// Tells the front end what happened to transfer `id`; waits for room (state changes are
    /// never dropped).
    pub(crate) async fn emit(&self, id: u64, file: String, state: TransferState) {
        let _ = self
            .events
            .send(Event::Transfer(TransferEvent { id, file, state }))
            .await;
    }
}

/// The registry a transfer belongs to: where its phase is recorded for listings, and its
/// controls are kept.
pub(crate) trait Registry: Sync {
    /// Transfer `id` (ours) is now in `phase`, with `bytes` on disk.
    fn update(&self, id: u64, phase: TransferPhase, bytes: u64);
    /// Transfer `id` paused itself at its pause point: its control says so from now on, so
    /// that a resume the user sends once told of the pause continues it.
    fn paused_itself(&self, id: u64);
}

/// Runs one transfer from offer to verified file, reporting as it goes. `None` when the
/// server took the port back from the paused transfer.
pub(crate) async fn run(
    link: &Link,
    registry: &impl Registry,
    offer: &Offer,
    opts: &DownloadOptions,
    control: watch::Receiver<Control>,
    unprotected: bool,
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
    let part = match opened {
        Ok(part) => part,
        Err(e) => {
            // The server keeps a port for us until we open the flow: give it back now
            // rather than after the server's timeout.
            if let Some(requests) = link.requests.upgrade() {
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
    let part = fetch::SharedPart::new(part);
    link.emit(
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
    let server = SocketAddr::new(link.server_ip, offer.port);
    let mut reporter = Reporter {
        link,
        registry,
        offer,
        paused: false,
    };
    let fetched = fetch::fetch(
        fetch::Target {
            server,
            secret: offer.secret.clone(),
            unprotected,
            pause_at: pause_point,
            max_datagram: opts.max_datagram,
            stall_timeout: opts.stall_timeout,
        },
        &part,
        control,
        &mut reporter,
    );
    let ended = tokio::select! {
        ended = fetched => ended,
        () = link.lost.cancelled() => Err(
            "the connection to the server ended; asking for the file again resumes it".into()
        ),
    };
    match ended {
        Ok(fetch::Ended::Complete) => {}
        Ok(fetch::Ended::Cancelled) => {
            // The flow is over, so its writer let go of the file.
            let part = part.into_inner()?;
            let _ = tokio::task::spawn_blocking(move || part.discard()).await;
            return Ok(Some(TransferState::Cancelled));
        }
        Ok(fetch::Ended::Reclaimed) => {
            let _ = tokio::task::spawn_blocking(move || part.with(|p| p.save_meta())).await;
            return Ok(None);
        }
        Err(error) => {
            // The disk's own words (e.g. "No space left on device") say more than the
            // transport's "could not write". A flow given up half-way may still be writing
            // what it had: this waits for it.
            let kept = tokio::task::spawn_blocking(move || {
                part.with(|p| {
                    let why = p.write_error().map(str::to_owned);
                    let _ = p.save_meta();
                    why
                })
            })
            .await;
            return Err(match kept {
                Ok(Some(Some(why))) => format!("the transfer failed: {why}"),
                _ => error,
            });
        }
    }
    let part = part.into_inner()?;
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

/// Turns transfer progress into events: a few progress events a second, pause and resume
/// notices, and the "continue?" pause at the `pause_at` point.
pub(crate) struct Reporter<'a, R> {
    link: &'a Link,
    registry: &'a R,
    offer: &'a Offer,
    paused: bool,
}

impl<R: Registry> Reporter<'_, R> {
    /// Data arrived.
    pub(crate) fn progress(&mut self, bytes: u64, rate_bps: u64, stats: &transport::Stats) {
        let id = self.offer.local;
        let label = if self.paused {
            TransferPhase::Paused
        } else {
            TransferPhase::Running
        };
        self.registry.update(id, label, bytes);
        let state = TransferState::Progress {
            bytes,
            size: self.offer.size,
            rate_bps,
            rtt_us: u64::try_from(stats.smoothed_rtt.as_micros()).unwrap_or(u64::MAX),
            lost: stats.packets_lost,
        };
        // Progress may be dropped if the front end is behind; state changes never are.
        let _ = self.link.events.try_send(Event::Transfer(TransferEvent {
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
        self.registry.paused_itself(self.offer.local);
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
        self.registry.update(id, label, bytes);
        self.link.emit(id, self.offer.file.clone(), state).await;
    }
}
