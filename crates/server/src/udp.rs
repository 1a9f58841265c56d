//! Serving one file over the reliable UDP transport.

use crate::transfers::ServeFn;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The shared file, counting what the transport reads from it (what it sends).
struct Counted {
    file: std::fs::File,
    sent: Arc<AtomicU64>,
}

impl transport::Source for Counted {
    fn len(&self) -> u64 {
        transport::Source::len(&self.file)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = transport::Source::read_at(&mut self.file, offset, buf)?;
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The function the transfer manager runs for each transfer: opens the file and serves it to
/// whoever shows the token, until the transfer ends or is cancelled.
pub fn serve_fn() -> ServeFn {
    Arc::new(|socket, token, path, cancel, sent| {
        Box::pin(async move {
            let file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(err) => {
                    tracing::warn!(path = %path.display(), %err, "cannot open a shared file");
                    return;
                }
            };
            let config = transport::Config::default();
            let source = Counted { file, sent };
            let outcome =
                transport::driver::serve(&socket, token, source, config, cancel.cancelled()).await;
            let s = outcome.stats;
            tracing::info!(
                path = %path.display(),
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
