//! Serving one file over the reliable UDP transport.

use crate::catalog::{SharedFile, Version};
use crate::transfers::ServeFn;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

/// The shared file as it was hashed and announced, read by the transport's reader thread a
/// block at a time.
///
/// It reads from the handle that was hashed, so a name swapped for a link or another file
/// meanwhile changes nothing; and every read checks that the file is still the announced
/// version, so bytes written into it since are never sent under the old hash (the flow aborts
/// as unreadable instead).
struct Announced {
    shared: SharedFile,
}

impl transport::Source for Announced {
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
        Ok(filled)
    }
}

/// The function the transfer manager runs for each transfer: serves the open file to whoever
/// knows the transfer's secret (its HELLO opens), until the transfer ends, is cancelled, or its receiver stays paused longer
/// than `max_pause` (then the sender ends the flow with [`transport::AbortReason::PauseTooLong`]
/// and the port goes back).
pub fn serve_fn(max_pause: Duration, unprotected: bool) -> ServeFn {
    Arc::new(move |socket, secret, shared, cancel, sent| {
        Box::pin(async move {
            let config = transport::Config {
                max_pause: Some(max_pause),
                unprotected,
                ..transport::Config::default()
            };
            let source = Announced { shared };
            let outcome = transport::driver::serve_counting(
                &socket,
                &secret,
                source,
                config,
                cancel.cancelled(),
                &sent,
            )
            .await;
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
