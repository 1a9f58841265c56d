//! The record beside a `.part` (`NAME.part.meta`): which version of the file it holds and how
//! many bytes from the start are safely on disk.

use super::folder::open_no_follow;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the meta file says.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Meta {
    pub(super) hash: String,
    pub(super) size: u64,
    pub(super) contiguous: u64,
}

/// A meta file is a few dozen bytes; one far larger was not written by us.
const MAX_META: u64 = 4096;

/// Records a [`super::PartFile`]'s progress in its meta file from another task while the transfer
/// writes to it, so that a client killed at any moment resumes from its last checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub(super) meta_path: PathBuf,
    pub(super) hash: String,
    pub(super) size: u64,
    pub(super) contiguous: Arc<AtomicU64>,
    /// The `.part`, synced before each record.
    pub(super) file: Arc<File>,
    /// How the `.part` is made durable (a test swaps it for one that fails).
    pub(super) sync: fn(&File) -> io::Result<()>,
}

impl Checkpoint {
    /// Writes the meta file (atomically: a temporary file renamed over it), claiming only the
    /// bytes that were written before the `.part` was synced: a power loss cannot leave a
    /// record of data the disk never got. Blocking: call it off the async workers.
    pub fn save(&self) -> io::Result<()> {
        let contiguous = self.contiguous.load(Ordering::Acquire);
        (self.sync)(&self.file)?;
        let meta = Meta {
            hash: self.hash.clone(),
            size: self.size,
            contiguous,
        };
        // A name of this save's own: two saves of one `.part` at once (a transfer that is
        // ending while the next attempt opens the file) must not remove each other's
        // temporary file. A fresh file, never one planted at that name (create_new follows no
        // link).
        static SAVES: AtomicU64 = AtomicU64::new(0);
        let tmp = self.meta_path.with_extension(format!(
            "meta.tmp.{}.{}",
            std::process::id(),
            SAVES.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let written = out
            .write_all(&serde_json::to_vec(&meta).map_err(io::Error::other)?)
            .and_then(|()| out.sync_data())
            .and_then(|()| std::fs::rename(&tmp, &self.meta_path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

/// The meta file beside a `.part`, if there is one we could have written.
pub(super) fn read_meta(path: &Path) -> Option<Meta> {
    let file = open_no_follow(path, false).ok()?;
    let info = file.metadata().ok()?;
    if !info.is_file() || info.uid() != nix::unistd::geteuid().as_raw() {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_META).read_to_end(&mut bytes).ok()?;
    serde_json::from_slice(&bytes).ok()
}
