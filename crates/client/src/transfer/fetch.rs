//! Moving one file's bytes over the reliable UDP transport into a [`PartFile`].

use super::{Registry, Reporter, STALL_BYTES};
use crate::part::{Checkpoint, PartFile};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use transport::driver::Control;
use transport::driver::Progress;
use transport::{AbortReason, Event};

/// The `.part` as the transport's writer thread and the download share it: the thread writes
/// what arrives; the download reads its figures before and keeps or finishes it after (on a
/// blocking thread: the writer may hold it for a write).
#[derive(Debug, Clone)]
pub(crate) struct SharedPart(Arc<Mutex<PartFile>>);

impl SharedPart {
    pub(crate) fn new(part: PartFile) -> Self {
        Self(Arc::new(Mutex::new(part)))
    }

    /// Runs `f` on the file; `None` if a writer panicked while holding it.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut PartFile) -> R) -> Option<R> {
        self.0.lock().ok().map(|mut part| f(&mut part))
    }

    /// The file alone, once no writer holds it any more.
    pub(crate) fn into_inner(self) -> Result<PartFile, String> {
        Arc::try_unwrap(self.0)
            .map_err(|_| "the download's writer is still running".to_string())?
            .into_inner()
            .map_err(|_| "the download's writer failed".to_string())
    }
}

impl transport::Sink for SharedPart {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.with(|part| part.write_at(offset, data))
            .unwrap_or_else(|| Err(io::Error::other("the download's writer failed")))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.with(PartFile::flush)
            .unwrap_or_else(|| Err(io::Error::other("the download's writer failed")))
    }
}

/// How a fetch ended, when it did not fail.
pub(crate) enum Ended {
    /// Every byte is in the part file.
    Complete,
    /// The user cancelled.
    Cancelled,
    /// The server took the port back from the transfer while it was paused: asking again
    /// continues it.
    Reclaimed,
}

/// Where and how to fetch one file.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The server's transfer port.
    pub server: SocketAddr,
    /// The transfer's secret.
    pub secret: transport::Secret,
    /// Pause by itself at this offset.
    pub pause_at: Option<u64>,
    /// Largest datagram (the transport's choice if `None`).
    pub max_datagram: Option<usize>,
    /// See [`crate::DownloadOptions::stall_timeout`].
    pub stall_timeout: Duration,
    /// Benchmarks only: no packet protection (see [`crate::Client::unprotected_transfers`]).
    pub unprotected: bool,
}

/// Checkpoints are written at most this often: each one syncs the `.part` to disk.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Receives the file from `target.server` into `part`, starting at its contiguous prefix,
/// obeying `control` and reporting through `reporter`. Fails when the transfer stalls.
pub(crate) async fn fetch(
    target: Target,
    part: &SharedPart,
    control: watch::Receiver<Control>,
    reporter: &mut Reporter<'_, impl Registry>,
) -> Result<Ended, String> {
    let server = target.server;
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    transport::driver::tune_socket(&socket);
    // Nothing writes the file yet: these take no time.
    let Some((offset, size, checkpoint)) =
        part.with(|p| (p.contiguous(), p.size(), p.checkpoint()))
    else {
        return Err("the download's writer failed".into());
    };
    let mut checkpoints = Checkpoints::new(checkpoint);
    let (progress_tx, mut progress) = mpsc::channel(4);
    let opts = transport::driver::FetchOptions {
        server,
        secret: target.secret.clone(),
        offset,
        pause_at: target.pause_at,
        config: transport::Config {
            max_datagram: target.max_datagram.unwrap_or(transport::MAX_DATAGRAM),
            unprotected: target.unprotected,
            ..transport::Config::default()
        },
    };
    let transfer =
        transport::driver::fetch(&socket, opts, part.clone(), control, Some(progress_tx));
    let mut transfer = std::pin::pin!(transfer);
    let mut stall = StallWatch::new(target.stall_timeout, offset, size);
    let mut check = tokio::time::interval(stall.check_every());
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let outcome = loop {
        // Reports first, and those left when the transfer ends too: pauses and resumes come
        // from the transport itself, in order with its progress (it is the one place that
        // knows when data stopped and started again), and none may be lost.
        tokio::select! {
            biased;
            Some(p) = progress.recv() => {
                stall.progress(Instant::now(), p.bytes, p.paused);
                report(p, &mut checkpoints, reporter).await;
            }
            (outcome, _) = &mut transfer => break outcome,
            _ = check.tick() => {
                if let Some(error) = stall.check(Instant::now()) {
                    checkpoints.finish().await;
                    return Err(error);
                }
            }
        }
    };
    while let Ok(p) = progress.try_recv() {
        report(p, &mut checkpoints, reporter).await;
    }
    checkpoints.finish().await;
    match outcome.event {
        Event::Finished { .. } => Ok(Ended::Complete),
        Event::Aborted {
            reason: AbortReason::Cancelled,
            by_peer: false,
        } => Ok(Ended::Cancelled),
        // Only a paused transfer can have been paused too long: from a running one this is a
        // lie, and taking it as a reclaim would ask again and again.
        Event::Aborted {
            reason: AbortReason::PauseTooLong,
            by_peer: true,
        } if stall.paused => Ok(Ended::Reclaimed),
        Event::Aborted {
            reason,
            by_peer: true,
        } => Err(format!("the server ended the transfer: {reason}")),
        Event::Aborted { reason, .. } => Err(format!("the transfer failed: {reason}")),
        Event::Connected { .. } | Event::PauseReached { .. } => {
            Err("the transfer ended unexpectedly".into())
        }
    }
}

/// Passes one transport report on to the user and records the progress on disk.
async fn report(
    p: Progress,
    checkpoints: &mut Checkpoints,
    reporter: &mut Reporter<'_, impl Registry>,
) {
    // About once a second, and at every pause: a client killed now resumes from about here.
    checkpoints.save(p.paused).await;
    // A resume is told before the progress it brings, a pause after the progress before it.
    if !p.paused {
        reporter.paused(false, p.bytes, false).await;
    }
    reporter.progress(p.bytes, p.rate_bps, &p.stats);
    if p.reached_pause_point {
        reporter.pause_point_reached(p.bytes).await;
    } else if p.paused {
        reporter.paused(true, p.bytes, false).await;
    }
}

/// Writes checkpoints on a blocking thread (each syncs the `.part`), one at a time, at most
/// every [`CHECKPOINT_EVERY`] unless asked to.
struct Checkpoints {
    checkpoint: Checkpoint,
    last: Option<Instant>,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl Checkpoints {
    fn new(checkpoint: Checkpoint) -> Self {
        Self {
            checkpoint,
            last: None,
            running: None,
        }
    }

    /// Starts a checkpoint if one is due. `now` forces one and waits until it is written (a
    /// pause: once the user hears of it, what arrived is on record); otherwise a checkpoint
    /// still being written makes this one wait for the next report.
    async fn save(&mut self, now: bool) {
        if now {
            self.finish().await;
        } else if self.running.as_ref().is_some_and(|r| !r.is_finished())
            || self.last.is_some_and(|t| t.elapsed() < CHECKPOINT_EVERY)
        {
            return;
        }
        self.last = Some(Instant::now());
        let checkpoint = self.checkpoint.clone();
        self.running = Some(tokio::task::spawn_blocking(move || {
            if let Err(err) = checkpoint.save() {
                tracing::warn!(%err, "cannot record download progress");
            }
        }));
        if now {
            self.finish().await;
        }
    }

    /// Waits for the checkpoint being written, if any.
    async fn finish(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.await;
        }
    }
}

/// Tells a transfer that still moves from one that only pretends to: while running, it must
/// receive [`STALL_BYTES`] (or all that is left) within every `timeout`.
struct StallWatch {
    timeout: Duration,
    size: u64,
    /// Start of the current period, and the bytes there were then.
    since: Instant,
    bytes_then: u64,
    bytes: u64,
    paused: bool,
}

impl StallWatch {
    fn new(timeout: Duration, bytes: u64, size: u64) -> Self {
        Self {
            timeout,
            size,
            since: Instant::now(),
            bytes_then: bytes,
            bytes,
            paused: false,
        }
    }

    /// How often to look.
    fn check_every(&self) -> Duration {
        (self.timeout / 4).max(Duration::from_millis(10))
    }

    fn progress(&mut self, now: Instant, bytes: u64, paused: bool) {
        if paused != self.paused {
            // Time paused does not count, and neither does the slow start of a resume.
            self.since = now;
            self.bytes_then = bytes;
        }
        self.paused = paused;
        self.bytes = bytes;
        if self.bytes - self.bytes_then.min(self.bytes) >= self.needed() {
            // Real progress: a new period starts.
            self.since = now;
            self.bytes_then = bytes;
        }
    }

    fn needed(&self) -> u64 {
        STALL_BYTES
            .min(self.size.saturating_sub(self.bytes_then))
            .max(1)
    }

    /// The error to fail with, once a whole period passed without real progress.
    fn check(&self, now: Instant) -> Option<String> {
        if self.paused || now.saturating_duration_since(self.since) < self.timeout {
            return None;
        }
        let got = self.bytes.saturating_sub(self.bytes_then);
        Some(format!(
            "the transfer stalled: {got} bytes arrived in the last {} s (at least {} were \
             expected); the server or the path may be overloaded or hostile; asking for the \
             file again resumes it",
            self.timeout.as_secs(),
            self.needed()
        ))
    }
}
