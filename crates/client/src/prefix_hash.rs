//! The BLAKE3 hash of a file's contiguous prefix, computed on a thread of its own as the prefix
//! grows, by reading the file back.
//!
//! A download's thread then only receives and writes; hashing (about a quarter of a second per
//! GiB on one core here) runs beside it on another core. Reading the data back from the file,
//! rather than hashing what was handed to the writer, verifies what the file holds.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// Bytes read and hashed at a time.
const CHUNK: usize = 1 << 20;

/// What the two threads share.
#[derive(Debug, Default)]
struct State {
    /// Bytes from the start that may be hashed (they are written and will not change).
    target: u64,
    /// Bytes hashed so far.
    hashed: u64,
    /// No more bytes will come: hash up to `target` and stop.
    closing: bool,
    /// Stop as soon as possible; the hash is not wanted.
    abandoned: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic on the other side leaves the counters as they were: still meaningful.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Hashes a file's prefix in the background; see the module comment.
#[derive(Debug)]
pub(crate) struct PrefixHasher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<io::Result<blake3::Hasher>>>,
}

impl PrefixHasher {
    /// Starts hashing `file` from its first byte; `target` bytes may be hashed at once.
    pub(crate) fn start(file: File, target: u64) -> io::Result<Self> {
        let shared = Arc::new(Shared::default());
        shared.lock().target = target;
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("part-hash".into())
            .spawn(move || run(&file, &theirs))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// The first `target` bytes are written and will not change: they may be hashed.
    pub(crate) fn advance(&self, target: u64) {
        let mut state = self.shared.lock();
        if target > state.target {
            state.target = target;
            self.shared.changed.notify_all();
        }
    }

    /// Waits until every byte up to the last target is hashed and returns the hash.
    pub(crate) fn finish(mut self) -> io::Result<blake3::Hash> {
        self.shared.lock().closing = true;
        self.shared.changed.notify_all();
        let thread = self
            .thread
            .take()
            .ok_or_else(|| io::Error::other("the hash was already taken"))?;
        let hasher = thread
            .join()
            .map_err(|_| io::Error::other("the hashing thread panicked"))??;
        Ok(hasher.finalize())
    }
}

impl Drop for PrefixHasher {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let mut state = self.shared.lock();
        state.abandoned = true;
        drop(state);
        self.shared.changed.notify_all();
        // It stops within one chunk.
        let _ = thread.join();
    }
}

/// The hashing thread: hashes up to the target as it moves, until closed and caught up.
fn run(file: &File, shared: &Shared) -> io::Result<blake3::Hasher> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let (from, to) = {
            let mut state = shared.lock();
            loop {
                if state.abandoned || (state.closing && state.hashed >= state.target) {
                    return Ok(hasher);
                }
                if state.hashed < state.target {
                    break;
                }
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            (state.hashed, state.target.min(state.hashed + CHUNK as u64))
        };
        let len = usize::try_from(to - from).map_err(io::Error::other)?;
        file.read_exact_at(&mut buf[..len], from)?;
        hasher.update(&buf[..len]);
        shared.lock().hashed = to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(data: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut tmp = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        tmp.write_all(data).unwrap_or_else(|e| panic!("{e}"));
        let file = File::open(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
        (tmp, file)
    }

    #[test]
    fn hashes_the_prefix_as_it_grows_and_matches_the_whole() {
        let data: Vec<u8> = (0..5 * CHUNK + 333)
            .map(|i| (i * 7 + i / 991) as u8)
            .collect();
        let (_tmp, file) = file_with(&data);
        let hasher = PrefixHasher::start(file, 10).unwrap_or_else(|e| panic!("{e}"));
        for target in [10, 4000, 3 * CHUNK as u64, data.len() as u64] {
            hasher.advance(target);
        }
        let hash = hasher.finish().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hash, blake3::hash(&data));
    }

    #[test]
    fn stops_at_the_target_even_if_the_file_is_longer() {
        let data = vec![5u8; 100_000];
        let (_tmp, file) = file_with(&data);
        let hasher = PrefixHasher::start(file, 1234).unwrap_or_else(|e| panic!("{e}"));
        let hash = hasher.finish().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hash, blake3::hash(&data[..1234]));
    }

    #[test]
    fn a_target_past_the_file_is_an_error_not_a_hang() {
        let (_tmp, file) = file_with(&[1, 2, 3]);
        let hasher = PrefixHasher::start(file, 10).unwrap_or_else(|e| panic!("{e}"));
        assert!(hasher.finish().is_err());
    }

    #[test]
    fn dropping_it_unfinished_returns_at_once() {
        let data = vec![9u8; 3 * CHUNK];
        let (_tmp, file) = file_with(&data);
        let hasher = PrefixHasher::start(file, 1).unwrap_or_else(|e| panic!("{e}"));
        // The thread waits for more that never comes: dropping must stop it, not wait for it.
        let (done, dropped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(hasher);
            let _ = done.send(());
        });
        let waited = dropped.recv_timeout(std::time::Duration::from_secs(30));
        assert!(waited.is_ok(), "dropping the hasher hung");
    }
}
