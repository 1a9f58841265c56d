//! Reading the client library's events in tests: the next one, the next of a transfer, how a
//! transfer ended; and, with a real server (feature `server`), real clients joining it.

use crate::{TRANSFER_WAIT, WAIT};
use client::{DownloadOptions, Event, Events, TransferEvent, TransferState};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The next event, failing the test if none comes in time.
pub async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("timed out waiting for an event")
        .expect("event stream ended")
}

/// Skips events until one matches.
pub async fn wait_for(events: &mut Events, mut pred: impl FnMut(&Event) -> bool) -> Event {
    loop {
        let event = next(events).await;
        if pred(&event) {
            return event;
        }
    }
}

/// Asserts nothing more arrives within a short while.
pub async fn assert_quiet(events: &mut Events) {
    let got = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
    assert!(got.is_err(), "unexpected event {got:?}");
}

/// Download options that save into `dir`.
pub fn opts(dir: &Path) -> DownloadOptions {
    DownloadOptions {
        dir: dir.to_path_buf(),
        ..DownloadOptions::default()
    }
}

/// The next event of transfer `id`, skipping chat and other transfers.
pub async fn next_of(events: &mut Events, id: u64) -> TransferState {
    loop {
        let event = tokio::time::timeout(TRANSFER_WAIT, events.recv())
            .await
            .expect("timed out waiting for a transfer event")
            .expect("event stream ended");
        match event {
            Event::Transfer(TransferEvent { id: got, state, .. }) if got == id => return state,
            Event::Disconnected { message, .. } => panic!("disconnected: {message}"),
            _ => {}
        }
    }
}

/// Waits for transfer `id` to end and returns how.
pub async fn outcome(events: &mut Events, id: u64) -> TransferState {
    loop {
        match next_of(events, id).await {
            TransferState::Progress { .. }
            | TransferState::Started { .. }
            | TransferState::Queued { .. }
            | TransferState::Resumed { .. } => {}
            other => return other,
        }
    }
}

/// Asserts that transfer `id` completed with exactly the expected bytes.
pub async fn assert_done(events: &mut Events, id: u64, expected_hash: &str, size: u64) -> PathBuf {
    match outcome(events, id).await {
        TransferState::Done {
            bytes,
            path,
            hash,
            last_byte,
        } => {
            assert_eq!(bytes, size);
            assert_eq!(hash, expected_hash);
            let on_disk = std::fs::read(&path).unwrap();
            assert_eq!(on_disk.len() as u64, size);
            assert_eq!(blake3::hash(&on_disk).to_hex().to_string(), expected_hash);
            assert_eq!(
                last_byte,
                on_disk.last().copied(),
                "the last byte is reported"
            );
            assert!(path.is_absolute());
            path
        }
        other => panic!("transfer {id} ended as {other:?}"),
    }
}

#[cfg(feature = "server")]
mod with_server {
    use super::next;
    use crate::{ServerProcess, TestServer};
    use client::{Client, Event, Events, Trust};

    impl TestServer {
        /// Trust in this server's key (and no other), for the real clients of the tests.
        pub fn trust(&self) -> Trust {
            Trust::pinned(self.handle.fingerprint())
        }
    }

    impl ServerProcess {
        /// Trust in this server's key (and no other).
        pub fn trust(&self) -> Trust {
            Trust::pinned(self.key)
        }
    }

    /// A real client joined to `server` as `name`.
    pub async fn join(server: &TestServer, name: &str) -> (Client, Events) {
        Client::connect(&server.addr, name, &server.trust())
            .await
            .unwrap()
    }

    /// Joins `n` clients named `{prefix}{i}` and drains the join notices among them, so each
    /// stream starts clean.
    pub async fn join_many(server: &TestServer, prefix: &str, n: usize) -> Vec<(Client, Events)> {
        let mut all = Vec::new();
        for i in 0..n {
            all.push(join(server, &format!("{prefix}{i}")).await);
        }
        for (i, (_, events)) in all.iter_mut().enumerate() {
            for _ in i + 1..n {
                assert!(matches!(next(events).await, Event::Joined { .. }));
            }
        }
        all
    }
}

#[cfg(feature = "server")]
pub use with_server::{join, join_many};
