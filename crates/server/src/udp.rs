//! Serving one file over the reliable UDP transport.

use crate::transfers::ServeFn;
use std::sync::Arc;

/// The function the transfer manager runs for each transfer: opens the file and serves it to
/// whoever shows the token, until the transfer ends or is cancelled.
pub fn serve_fn() -> ServeFn {
    Arc::new(|socket, token, path, cancel| {
        Box::pin(async move {
            let file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(err) => {
                    tracing::warn!(path = %path.display(), %err, "cannot open a shared file");
                    return;
                }
            };
            let config = transport::Config::default();
            let outcome =
                transport::driver::serve(&socket, token, file, config, cancel.cancelled()).await;
            let s = outcome.stats;
            tracing::info!(
                path = %path.display(),
                event = ?outcome.event,
                sent = s.bytes_sent,
                lost = s.packets_lost,
                retransmitted = s.packets_retransmitted,
                min_rtt_us = s.min_rtt.as_micros() as u64,
                "transfer ended"
            );
        })
    })
}
