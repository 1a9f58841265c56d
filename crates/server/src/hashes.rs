//! Content hashes of shared files, computed once per version of a file.
//!
//! A download offer carries the file's BLAKE3 hash so the client can verify what it got. The
//! hash is computed from the very handle the file is then served from (see
//! [`crate::catalog::SharedFile`]), and remembered by name and [`Version`]: a later request
//! that opens the same inode, unchanged, reuses it; concurrent askers share the work. Hashing
//! uses every core (BLAKE3's tree hashing on rayon), a few files at a time, and the server does
//! it in the background at start-up and whenever a file changes, so that a request seldom
//! waits for it, and never without being told (see `download_queued.preparing`).

use crate::catalog::{SharedFile, Version};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex};
use tokio::sync::{OnceCell, Semaphore};
use wire::FileHash;

/// Bytes read from the file per step of hashing: large enough for the rayon tree hashing to
/// split across every core.
const HASH_READ: usize = 8 << 20;
/// Files hashed at once. Each uses every core, so more would only share them and hold more
/// buffers; two let a small file go past a huge one.
const HASHING_AT_ONCE: usize = 2;

/// The hash of one version of a file, computed once by whoever asks first.
type Slot = (Version, Arc<OnceCell<FileHash>>);

/// Called with a file's shared name on the hashing thread just before that file is hashed.
/// For tests, to hold hashing up and look at what clients see meanwhile.
#[derive(Clone)]
pub struct HashHook(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for HashHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashHook")
    }
}

/// The hashes of the shared files, by name and version. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct HashCache {
    entries: Arc<Mutex<HashMap<String, Slot>>>,
    permits: Arc<Semaphore>,
    hook: Option<HashHook>,
}

impl Default for HashCache {
    fn default() -> Self {
        Self::new(None)
    }
}

/// The file changed while it was being hashed: the hash matches no version of it.
fn changed() -> io::Error {
    io::Error::other("the file changed while it was being hashed")
}

/// BLAKE3 (lowercase hex) of the first `version.size` bytes of `file`, which must still be at
/// `version` when the last byte has been read (else the bytes read may mix two versions).
///
/// Positional reads from our handle, hashed with `update_rayon`. (Not `update_mmap_rayon`: it
/// opens the file again by path, which is what must not happen, and mapping our own handle
/// needs `unsafe`, which this crate forbids; a mapped file truncated underneath also kills the
/// process with SIGBUS.)
fn hash_open(file: &File, version: &Version) -> io::Result<FileHash> {
    use std::os::unix::fs::FileExt;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; HASH_READ.min(usize::try_from(version.size).unwrap_or(HASH_READ))];
    let mut offset = 0u64;
    while offset < version.size {
        let want = usize::try_from(version.size - offset)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = match file.read_at(&mut buf[..want], offset) {
            Ok(0) => return Err(changed()), // shorter than it was
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update_rayon(&buf[..n]);
        offset += n as u64;
    }
    if Version::of(file)? != *version {
        return Err(changed());
    }
    Ok(FileHash(*hasher.finalize().as_bytes()))
}

/// The BLAKE3 hash of the whole file at `path`, read in 1 MiB pieces (never more than that in
/// memory): what a `download_ready` for it carries. Blocking: call it off the async workers.
pub fn hash_file(path: &std::path::Path) -> io::Result<FileHash> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
    }
    Ok(FileHash(*hasher.finalize().as_bytes()))
}

impl HashCache {
    /// An empty cache; `hook` (for tests) runs before each file is hashed.
    pub fn new(hook: Option<HashHook>) -> Self {
        Self {
            entries: Arc::default(),
            permits: Arc::new(Semaphore::new(HASHING_AT_ONCE)),
            hook,
        }
    }

    /// The hash of the file shared as `name` at `version`, if it is known now.
    pub fn known(&self, name: &str, version: &Version) -> Option<FileHash> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (ver, cell) = entries.get(name)?;
        (ver == version).then(|| cell.get().copied()).flatten()
    }

    /// Forgets the files not in `names` (gone from the folder), so the cache holds no more
    /// entries than the folder has files.
    pub fn retain(&self, names: &std::collections::HashSet<&str>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|name, _| names.contains(name.as_str()));
    }

    /// The BLAKE3 hash (lowercase hex) of `shared`, the file shared as `name`: remembered if
    /// this version was hashed before, else computed from its handle on a blocking thread.
    pub async fn get(&self, name: &str, shared: &SharedFile) -> io::Result<FileHash> {
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let entry = entries
                .entry(name.to_owned())
                .or_insert_with(|| (shared.version, Arc::new(OnceCell::new())));
            if entry.0 != shared.version {
                *entry = (shared.version, Arc::new(OnceCell::new()));
            }
            Arc::clone(&entry.1)
        };
        let (file, version) = (Arc::clone(&shared.file), shared.version);
        let (hook, owned_name) = (self.hook.clone(), name.to_owned());
        let hash = cell
            .get_or_try_init(|| async move {
                let _permit = self.permits.acquire().await.map_err(io::Error::other)?;
                tokio::task::spawn_blocking(move || {
                    if let Some(hook) = hook {
                        (hook.0)(&owned_name);
                    }
                    hash_open(&file, &version)
                })
                .await
                .map_err(io::Error::other)?
            })
            .await?;
        Ok(*hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FileCatalog;

    #[tokio::test]
    async fn a_changed_file_gets_a_new_hash() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"one").unwrap();
        let catalog = FileCatalog::open(dir.path()).unwrap();
        let cache = HashCache::default();
        let first = catalog.open_file("f").unwrap().unwrap();
        assert_eq!(
            cache.get("f", &first).await.unwrap().0,
            *blake3::hash(b"one").as_bytes()
        );
        assert_eq!(first.version.size, 3);
        std::fs::write(dir.path().join("f"), b"other").unwrap();
        let second = catalog.open_file("f").unwrap().unwrap();
        assert_eq!(
            cache.get("f", &second).await.unwrap().0,
            *blake3::hash(b"other").as_bytes()
        );
    }

    #[tokio::test]
    async fn a_file_rewritten_since_it_was_opened_is_not_hashed_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"one").unwrap();
        let catalog = FileCatalog::open(dir.path()).unwrap();
        let opened = catalog.open_file("f").unwrap().unwrap();
        // Same inode. (A rewrite of the same size within one tick of the kernel's file clock
        // would keep every time stamp: that version is new to the client's hash check only.)
        std::fs::write(dir.path().join("f"), b"two!").unwrap();
        let got = HashCache::default().get("f", &opened).await;
        assert!(got.is_err(), "hashed a file that changed: {got:?}");
    }
}
