//! Content hashes of shared files, computed once per version of a file.
//!
//! A download offer carries the file's BLAKE3 hash so the client can verify what it got. Hashing
//! a large file takes a while, so each (path, size, mtime) is hashed at most once, concurrent
//! askers share the work, and the server warms the cache in the background at start-up.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::OnceCell;

type Version = (u64, Option<SystemTime>);

/// The hash of one version of a file, computed once by whoever asks first.
type Slot = (Version, Arc<OnceCell<String>>);

/// The hashes of the shared files, by path and version.
#[derive(Default)]
pub struct HashCache {
    entries: Mutex<HashMap<PathBuf, Slot>>,
}

/// Size and modification time: a file whose either changed is a new version.
fn version(path: &Path) -> io::Result<(Version, u64)> {
    let meta = std::fs::metadata(path)?;
    Ok(((meta.len(), meta.modified().ok()), meta.len()))
}

impl HashCache {
    /// The BLAKE3 hash (lowercase hex) and size of the file at `path`, as it is now.
    pub async fn get(&self, path: &Path) -> io::Result<(String, u64)> {
        let (ver, size) = version(path)?;
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let entry = entries
                .entry(path.to_path_buf())
                .or_insert_with(|| (ver, Arc::new(OnceCell::new())));
            if entry.0 != ver {
                *entry = (ver, Arc::new(OnceCell::new()));
            }
            Arc::clone(&entry.1)
        };
        let owned = path.to_path_buf();
        let hash = cell
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || wire::hash_file(&owned))
                    .await
                    .map_err(io::Error::other)?
            })
            .await?;
        Ok((hash.clone(), size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_changed_file_gets_a_new_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let cache = HashCache::default();
        let (first, size) = cache.get(&path).await.unwrap();
        assert_eq!(first, blake3::hash(b"one").to_hex().to_string());
        assert_eq!(size, 3);
        std::fs::write(&path, b"other").unwrap();
        let (second, _) = cache.get(&path).await.unwrap();
        assert_eq!(second, blake3::hash(b"other").to_hex().to_string());
    }
}
