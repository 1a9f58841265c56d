//! Helpers shared by the client library's tests: a real server on loopback, files to share,
//! and waiting for a transfer's events.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod fake_server;

use client::{DownloadOptions, Event, Events, Fingerprint, TransferEvent, TransferState, Trust};
use server::{Config, Server, ServerHandle};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(10);
/// How long a transfer may go without an event.
pub const TRANSFER_WAIT: Duration = Duration::from_secs(60);

pub struct TestServer {
    pub handle: ServerHandle,
    pub addr: String,
    pub files: tempfile::TempDir,
}

pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    serve(tempfile::tempdir().unwrap(), tweak).await
}

/// A server sharing `files` (e.g. those of a server that stopped).
pub async fn serve(files: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = Config::local(files.path(), 2);
    tweak(&mut config);
    let handle = Server::bind(config).await.unwrap().spawn().unwrap();
    let addr = handle.addr().to_string();
    TestServer {
        handle,
        addr,
        files,
    }
}

impl TestServer {
    /// The fingerprint of the server's key.
    pub fn key(&self) -> Fingerprint {
        self.handle.fingerprint()
    }

    /// Trust in this server's key (and no other), for the library clients of the tests.
    pub fn trust(&self) -> Trust {
        Trust::pinned(self.key())
    }
}

/// Writes a file of `size` pseudo-random bytes (so misplaced bytes show) and returns its bytes'
/// hash.
pub fn make_file(dir: &Path, name: &str, size: u64) -> String {
    let mut file = std::io::BufWriter::new(std::fs::File::create(dir.join(name)).unwrap());
    let mut hasher = blake3::Hasher::new();
    let mut state: u64 = size ^ 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        for b in &mut chunk[..n] {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = (state >> 24) as u8;
        }
        file.write_all(&chunk[..n]).unwrap();
        hasher.update(&chunk[..n]);
        left -= n as u64;
    }
    file.flush().unwrap();
    hasher.finalize().to_hex().to_string()
}

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

/// Waits (a generous while) until `cond` holds.
pub async fn wait_until(mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition never held");
}
