//! Moving one file's bytes over the reliable UDP transport into a [`PartFile`].

use crate::download::Reporter;
use crate::part::{Checkpoint, PartFile};
use std::net::SocketAddr;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
pub use transport::driver::Control;
use transport::driver::Progress;
use transport::{AbortReason, Event};

/// How a fetch ended, when it did not fail.
pub(crate) enum Ended {
    /// Every byte is in the part file.
    Complete,
    /// The user cancelled.
    Cancelled,
}

/// Receives the file from `server` into `part`, starting at its contiguous prefix, pausing by
/// itself at `pause_at` (an offset), in datagrams of at most `max_datagram` bytes (the
/// transport's choice if `None`), obeying `control` and reporting through `reporter`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn fetch(
    server: SocketAddr,
    token: [u8; 16],
    pause_at: Option<u64>,
    max_datagram: Option<usize>,
    part: &mut PartFile,
    control: watch::Receiver<Control>,
    reporter: &mut Reporter<'_>,
) -> Result<Ended, String> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    transport::driver::tune_socket(&socket);
    let offset = part.contiguous();
    let checkpoint = part.checkpoint();
    let (progress_tx, mut progress) = mpsc::channel(4);
    let opts = transport::driver::FetchOptions {
        server,
        token,
        offset,
        pause_at,
        config: transport::Config {
            max_datagram: max_datagram.unwrap_or(transport::MAX_DATAGRAM),
            ..transport::Config::default()
        },
    };
    let transfer = transport::driver::fetch(&socket, opts, &mut *part, control, Some(progress_tx));
    let mut transfer = std::pin::pin!(transfer);
    let outcome = loop {
        // Reports first, and those left when the transfer ends too: pauses and resumes come
        // from the transport itself, in order with its progress (it is the one place that
        // knows when data stopped and started again), and none may be lost.
        tokio::select! {
            biased;
            Some(p) = progress.recv() => report(p, &checkpoint, reporter).await,
            (outcome, _) = &mut transfer => break outcome,
        }
    };
    while let Ok(p) = progress.try_recv() {
        report(p, &checkpoint, reporter).await;
    }
    match outcome.event {
        Event::Finished { .. } => Ok(Ended::Complete),
        Event::Aborted {
            reason: AbortReason::Cancelled,
            by_peer: false,
        } => Ok(Ended::Cancelled),
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
async fn report(p: Progress, checkpoint: &Checkpoint, reporter: &mut Reporter<'_>) {
    // A few times a second: a client killed now resumes from about here.
    if let Err(err) = checkpoint.save() {
        tracing::warn!(%err, "cannot record download progress");
    }
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
