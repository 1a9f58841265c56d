//! Serving one file over the reliable UDP transport.

use crate::catalog::{SharedFile, Version};
use crate::transfers::ServeFn;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use transport::AbortReason;

/// The shared file as it was hashed and announced, counting what the transport reads from it
/// (what it sends).
///
/// It reads from the handle that was hashed, so a name swapped for a link or another file
/// meanwhile changes nothing; and every read checks that the file is still the announced
/// version, so bytes written into it since are never sent under the old hash (the flow aborts
/// as unreadable instead).
struct Counted {
    shared: SharedFile,
    sent: Arc<AtomicU64>,
}

impl transport::Source for Counted {
    fn len(&self) -> u64 {
        self.shared.version.size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.shared.version.size;
        let want = usize::try_from(size.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let mut filled = 0;
        while filled < want {
            match self
                .shared
                .file
                .read_at(&mut buf[filled..want], offset + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // After the read: bytes that were read while the file changed are caught too.
        if filled < want || Version::of(&self.shared.file)? != self.shared.version {
            return Err(io::Error::other("the file changed since it was announced"));
        }
        self.sent.fetch_add(filled as u64, Ordering::Relaxed);
        Ok(filled)
    }
}

/// Resolves once no data has been read for the flow for `max_pause` after some was (the
/// handshake has its own timeout): the receiver has stopped granting window, it is paused.
///
/// Reads are the one sign of progress the sender's driver shows, and they come in blocks of up
/// to 1 MiB ahead of what is sent, so a flow slower than 1 MiB per `max_pause` looks paused too.
/// That costs such a flow nothing but a new request: its client continues from what it has.
async fn paused_too_long(sent: &AtomicU64, max_pause: Duration) {
    let step = (max_pause / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut last = sent.load(Ordering::Relaxed);
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(step).await;
        let now = sent.load(Ordering::Relaxed);
        if now != last || now == 0 {
            (last, since) = (now, tokio::time::Instant::now());
        } else if since.elapsed() >= max_pause {
            return;
        }
    }
}

/// The function the transfer manager runs for each transfer: serves the open file to whoever
/// shows the token, until the transfer ends, is cancelled, or stays paused longer than
/// `max_pause` (then the flow ends with [`AbortReason::PauseTooLong`] and the port goes back).
pub fn serve_fn(max_pause: Duration) -> ServeFn {
    Arc::new(move |socket, token, shared, cancel, sent| {
        Box::pin(async move {
            let config = transport::Config::default();
            let watched = Arc::clone(&sent);
            let stop = async move {
                tokio::select! {
                    () = cancel.cancelled() => AbortReason::Cancelled,
                    () = paused_too_long(&watched, max_pause) => AbortReason::PauseTooLong,
                }
            };
            let source = Counted { shared, sent };
            let outcome =
                transport::driver::serve_until(&socket, token, source, config, stop).await;
            let s = outcome.stats;
            tracing::info!(
                event = ?outcome.event,
                sent = s.bytes_sent,
                lost = s.packets_lost,
                retransmitted = s.packets_retransmitted,
                spurious = s.spurious_retransmits,
                received = s.packets_received,
                min_rtt_us = s.min_rtt.as_micros() as u64,
                srtt_us = s.smoothed_rtt.as_micros() as u64,
                "transfer ended"
            );
        })
    })
}
