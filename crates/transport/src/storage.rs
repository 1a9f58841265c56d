//! The stream's file work, off the async workers: a reader thread serves the sender's reads
//! from its [`Source`], a writer thread stores what the receiver hands out in its [`Sink`].
//! The driver's task only passes messages over bounded channels.

use crate::{Batch, ReadRequest, Receiver, Sender, Sink, Source};
use std::io;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Reads the sender may have outstanding: it asks at most a few blocks ahead.
const READS: usize = 8;
/// Batches on their way to the writer. With the receiver's own outbox, at most this many
/// plus one are held in memory, each at most a few MiB.
const BATCHES: usize = 2;

/// A reader thread for one flow.
pub(crate) struct Reader {
    requests: mpsc::Sender<(ReadRequest, Option<Vec<u8>>)>,
    data: mpsc::Receiver<(u64, io::Result<Vec<u8>>)>,
}

impl Reader {
    /// Starts reading `source` on a blocking thread; it ends when the reader is dropped.
    pub(crate) fn spawn<S: Source + Send + 'static>(mut source: S) -> Self {
        let (requests, mut asked) = mpsc::channel::<(ReadRequest, Option<Vec<u8>>)>(READS);
        let (give, data) = mpsc::channel(READS);
        tokio::task::spawn_blocking(move || {
            while let Some((read, spare)) = asked.blocking_recv() {
                // A block the sender let go of is read over as it is: zeroing it again would
                // only cost time.
                let mut buf = spare.unwrap_or_default();
                buf.resize(read.len, 0);
                let result = read_exact_at(&mut source, read.offset, &mut buf).map(|()| buf);
                if give.blocking_send((read.offset, result)).is_err() {
                    break;
                }
            }
        });
        Self { requests, data }
    }

    /// Passes on every read `conn` wants now.
    pub(crate) fn ask(&self, conn: &mut Sender) {
        while let Some(read) = conn.poll_read() {
            // The sender asks at most `READS` ahead, so there is always room; if there is not,
            // the thread is gone.
            if self.requests.try_send((read, conn.spare_buffer())).is_err() {
                conn.read_failed();
                return;
            }
        }
    }

    /// The next bytes read, once they are; `None` if the thread is gone.
    pub(crate) async fn recv(&mut self) -> Option<(u64, io::Result<Vec<u8>>)> {
        self.data.recv().await
    }

    /// Hands `conn` what was read (`None`: the thread is gone), then whatever else is ready.
    pub(crate) fn supply(&mut self, conn: &mut Sender, first: Option<(u64, io::Result<Vec<u8>>)>) {
        let Some(first) = first else {
            conn.read_failed();
            return;
        };
        let mut next = Some(first);
        while let Some((offset, result)) = next {
            match result {
                Ok(data) => conn.supply(offset, data),
                Err(err) => {
                    tracing::warn!(%err, "cannot read the stream");
                    conn.read_failed();
                }
            }
            next = self.data.try_recv().ok();
        }
    }
}

/// Fills `buf` from `offset`: a short read is an error (the source shrank).
fn read_exact_at(source: &mut impl Source, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read_at(offset + filled as u64, &mut buf[filled..]) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What the writer thread has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stored {
    /// Bytes written and flushed.
    pub(crate) bytes: u64,
    /// Batches done (each frees a place in the writer's queue).
    pub(crate) batches: u64,
    /// The sink failed: nothing more is stored.
    pub(crate) failed: bool,
}

/// A writer thread for one flow.
pub(crate) struct Writer<K> {
    batches: Option<mpsc::Sender<Batch>>,
    /// Emptied batches, back for reuse.
    spare: mpsc::Receiver<Batch>,
    stored: watch::Receiver<Stored>,
    thread: JoinHandle<K>,
}

impl<K: Sink + Send + 'static> Writer<K> {
    /// Starts storing into `sink` on a blocking thread. Each batch is written as it comes, and
    /// the sink is flushed whenever no other batch waits (and at the end): only flushed bytes
    /// count as stored.
    pub(crate) fn spawn(mut sink: K) -> Self {
        let (batches, mut incoming) = mpsc::channel::<Batch>(BATCHES);
        let (give_back, spare) = mpsc::channel(BATCHES + 1);
        let (report, stored) = watch::channel(Stored::default());
        let thread = tokio::task::spawn_blocking(move || {
            let mut written = 0u64;
            let mut failed = false;
            while let Some(mut batch) = incoming.blocking_recv() {
                // Flushed when nothing else waits: the bytes count as stored then.
                let idle = incoming.is_empty();
                if !failed {
                    written += batch.len() as u64;
                    let result = batch
                        .write_to(&mut sink)
                        .and_then(|()| if idle { sink.flush() } else { Ok(()) });
                    if let Err(err) = result {
                        tracing::warn!(%err, "cannot write the stream");
                        failed = true;
                        report.send_modify(|s| s.failed = true);
                    }
                }
                batch.clear();
                let _ = give_back.try_send(batch);
                report.send_modify(|s| {
                    s.batches += 1;
                    if idle && !failed {
                        s.bytes = written;
                    }
                });
            }
            if !failed {
                match sink.flush() {
                    Ok(()) => report.send_modify(|s| s.bytes = written),
                    Err(err) => {
                        tracing::warn!(%err, "cannot write the stream");
                        report.send_modify(|s| s.failed = true);
                    }
                }
            }
            sink
        });
        Self {
            batches: Some(batches),
            spare,
            stored,
            thread,
        }
    }
}

impl<K> Writer<K> {
    /// Hands the writer what `conn` holds, if the writer can take it now (otherwise it stays
    /// in the receiver, which drops new data unread once its outbox is full). False if the
    /// writer's queue is full: wait for [`Writer::changed`] before trying again.
    pub(crate) fn hand(&mut self, conn: &mut Receiver) -> bool {
        if conn.pending_data() == 0 {
            return true;
        }
        let Some(batches) = &self.batches else {
            return true;
        };
        let Ok(permit) = batches.try_reserve() else {
            return false;
        };
        let mut batch = self.spare.try_recv().unwrap_or_default();
        conn.take_data(&mut batch);
        permit.send(batch);
        true
    }

    /// Tells `conn` what has been stored since it last heard.
    pub(crate) fn report(&mut self, conn: &mut Receiver, now: std::time::Instant) {
        let stored = *self.stored.borrow_and_update();
        if stored.failed {
            conn.sink_failed();
        } else {
            conn.stored(now, stored.bytes);
        }
    }

    /// True once the writer could not store what it was handed.
    pub(crate) fn failed(&self) -> bool {
        self.stored.borrow().failed
    }

    /// Resolves when the writer has stored more (or failed); never, once it has ended.
    pub(crate) async fn changed(&mut self) {
        if self.stored.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Hands the writer everything `conn` holds and waits until all of it is stored (or the
    /// writer failed): what arrived is on disk, e.g. before a pause is reported.
    pub(crate) async fn settle(
        &mut self,
        conn: &mut Receiver,
        now: impl Fn() -> std::time::Instant,
    ) {
        loop {
            if conn.pending_data() > 0
                && let Some(batches) = &self.batches
                && let Ok(permit) = batches.reserve().await
            {
                let mut batch = self.spare.try_recv().unwrap_or_default();
                conn.take_data(&mut batch);
                permit.send(batch);
            }
            self.report(conn, now());
            if conn.unstored() == 0 || self.stored.borrow().failed {
                return;
            }
            if self.stored.changed().await.is_err() {
                return;
            }
        }
    }

    /// Hands over what is left, lets the writer finish (a last flush) and gives the sink
    /// back, with whether everything handed to it was stored.
    pub(crate) async fn finish(mut self, conn: &mut Receiver) -> (K, bool) {
        if conn.pending_data() > 0
            && let Some(batches) = &self.batches
            && let Ok(permit) = batches.reserve().await
        {
            let mut batch = Batch::new();
            conn.take_data(&mut batch);
            permit.send(batch);
        }
        self.batches = None; // the thread ends once it has written what it has
        let sink = match self.thread.await {
            Ok(sink) => sink,
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        };
        let stored = *self.stored.borrow();
        (sink, !stored.failed)
    }
}
