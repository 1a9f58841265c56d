//! Keeps bursts of TLS handshakes from stalling the chat.
//!
//! The costly part of a server's handshake (the key exchange and the signature, a few hundred
//! microseconds) happens inside one poll of its future, on an async worker. A thousand clients
//! connecting at once put a thousand such polls in the workers' run queues, ahead of the
//! sessions already online, whose messages then wait for all of them: a stall of a few hundred
//! milliseconds (measured by `bench logins`, second by second). [`Paced`] makes each poll of a
//! handshake take a permit first, and give it back as soon as the poll returns: at most
//! `permits` handshakes compute at once, and the others wait in the semaphore's queue, not in
//! the run queue, so a session woken meanwhile runs after one handshake step at most, not a
//! thousand. A permit is never held across an await, so a client that stalls in the middle of
//! its handshake holds none (its handshake timeout still ends it).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

type Acquire = Pin<Box<dyn Future<Output = Option<OwnedSemaphorePermit>> + Send>>;

/// The semaphore handshakes share: how many may compute at once.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    permits: Arc<Semaphore>,
}

impl Pacer {
    /// At most `permits` (at least one) polls at once.
    pub(crate) fn new(permits: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
        }
    }

    /// Half the cores (at least one), as for password hashing: the rest stay with the chat.
    pub(crate) fn default_permits() -> usize {
        std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
    }

    /// `future`, each of whose polls waits for a permit.
    pub(crate) fn pace<F: Future>(&self, future: F) -> Paced<F> {
        Paced {
            inner: Box::pin(future),
            permits: Arc::clone(&self.permits),
            acquire: None,
        }
    }
}

/// A future polled only while it holds one of its [`Pacer`]'s permits.
pub(crate) struct Paced<F> {
    inner: Pin<Box<F>>,
    permits: Arc<Semaphore>,
    acquire: Option<Acquire>,
}

impl<F: Future> Future for Paced<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Every field is Unpin (the inner future is boxed), so the pin can be set aside.
        let this = self.get_mut();
        let acquire = this.acquire.get_or_insert_with(|| {
            let permits = Arc::clone(&this.permits);
            Box::pin(async move { permits.acquire_owned().await.ok() })
        });
        let permit = match acquire.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(permit) => permit,
        };
        this.acquire = None;
        let polled = this.inner.as_mut().poll(cx);
        // Given back before the task yields: the next handshake's poll can start at once.
        drop(permit);
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A future that needs `steps` polls, each of which marks itself busy while it runs and
    /// records the most polls that ever ran at once; it lets the thread go between polls.
    struct Steps {
        left: usize,
        busy: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl Future for Steps {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let now = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            // Work that takes a moment, as a key exchange would.
            std::thread::sleep(Duration::from_micros(200));
            self.busy.fetch_sub(1, Ordering::SeqCst);
            if self.left == 0 {
                return Poll::Ready(());
            }
            self.left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn steps(busy: &Arc<AtomicUsize>, most: &Arc<AtomicUsize>) -> Steps {
        Steps {
            left: 3,
            busy: Arc::clone(busy),
            most: Arc::clone(most),
        }
    }

    async fn most_at_once(pacer: Option<Pacer>) -> usize {
        let (busy, most) = (Arc::default(), Arc::default());
        let tasks: Vec<_> = (0..64)
            .map(|_| match &pacer {
                Some(pacer) => tokio::spawn(pacer.pace(steps(&busy, &most))),
                None => tokio::spawn(steps(&busy, &most)),
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        most.load(Ordering::SeqCst)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn paced_futures_are_polled_one_at_a_time_and_all_finish() {
        assert_eq!(most_at_once(Some(Pacer::new(1))).await, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn unpaced_the_same_futures_run_side_by_side() {
        // The check above can fail: without the pacer, four workers poll them at once.
        assert!(most_at_once(None).await > 1);
    }

    #[tokio::test]
    async fn a_paced_future_waiting_on_io_holds_no_permit() {
        let pacer = Pacer::new(1);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // Stalls, as a client that stops mid-handshake would.
        let stalled = tokio::spawn(pacer.pace(rx));
        tokio::task::yield_now().await;
        let other = pacer.pace(async { 7 });
        let done = tokio::time::timeout(Duration::from_secs(5), other).await;
        assert_eq!(done.ok(), Some(7));
        tx.send(()).unwrap();
        assert!(stalled.await.unwrap().is_ok());
    }
}
