//! Where a download lands: `NAME.part` beside a small `NAME.part.meta`, renamed to a free name
//! once the hash matches.
//!
//! The meta file records which version of the file the `.part` holds (its hash and size) and how
//! many bytes from the start are known to be written. Data may arrive out of order, so the
//! `.part` can have holes past that point; a resumed download starts from the recorded prefix,
//! never from the file's length.
//!
//! Small pieces of data that arrive in order are gathered into large writes (a file system
//! takes one 1 MiB write several times faster than 700 of 1.4 KiB). The file's contiguous
//! prefix is hashed as it grows, on a thread of its own ([`PrefixHasher`]), so that the
//! transfer's thread only receives and writes, and verifying the finished file does not read
//! it all again.

use crate::prefix_hash::PrefixHasher;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    hash: String,
    size: u64,
    contiguous: u64,
}

/// Data gathered in order before it is written: this much at most.
const WRITE_BEHIND: usize = 1 << 20;
/// Pieces this large are written at once (a write of 64 KiB costs per byte what one of 1 MiB
/// does; one of 1.4 KiB costs several times more).
const WRITE_DIRECT: usize = 16 * 1024;

/// An open `.part` file and what is known about its contents.
#[derive(Debug)]
pub struct PartFile {
    file: File,
    path: PathBuf,
    meta_path: PathBuf,
    hash: String,
    size: u64,
    /// What is on disk.
    written: Written,
    /// In-order data not yet written: it belongs at `pending_at`.
    pending: Vec<u8>,
    pending_at: u64,
    /// Hashes the prefix that is on disk as it grows.
    prefix_hash: PrefixHasher,
    checkpoint: Checkpoint,
    /// Why the last write to disk failed, if one did.
    write_error: Option<String>,
}

/// Records a [`PartFile`]'s progress in its meta file from another task while the transfer
/// writes to it, so that a client killed at any moment resumes from its last checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    meta_path: PathBuf,
    hash: String,
    size: u64,
    contiguous: Arc<AtomicU64>,
}

impl Checkpoint {
    /// Writes the meta file (atomically: a temporary file renamed over it).
    pub fn save(&self) -> io::Result<()> {
        let meta = Meta {
            hash: self.hash.clone(),
            size: self.size,
            contiguous: self.contiguous.load(Ordering::Acquire),
        };
        let tmp = self.meta_path.with_extension("meta.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&meta).map_err(io::Error::other)?)?;
        std::fs::rename(&tmp, &self.meta_path)
    }
}

impl PartFile {
    /// Opens `dir/NAME.part` for the file version `hash`/`size`, keeping what an earlier
    /// attempt at the same version wrote and discarding anything else.
    pub fn open(dir: &Path, name: &str, hash: &str, size: u64) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.part"));
        let meta_path = dir.join(format!("{name}.part.meta"));
        let earlier = std::fs::read(&meta_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Meta>(&bytes).ok())
            .filter(|m| m.hash == hash && m.size == size);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let on_disk = file.metadata()?.len();
        let contiguous = earlier.map_or(0, |m| m.contiguous.min(on_disk).min(size));
        if contiguous == 0 {
            file.set_len(0)?;
        }
        let checkpoint = Checkpoint {
            meta_path: meta_path.clone(),
            hash: hash.to_owned(),
            size,
            contiguous: Arc::new(AtomicU64::new(contiguous)),
        };
        // What an earlier attempt wrote is hashed at once, beside the transfer.
        let prefix_hash = PrefixHasher::start(file.try_clone()?, contiguous)?;
        let mut part = Self {
            file,
            path,
            meta_path,
            hash: hash.to_owned(),
            size,
            written: Written::starting_at(contiguous),
            pending: Vec::new(),
            pending_at: 0,
            prefix_hash,
            checkpoint,
            write_error: None,
        };
        part.save_meta()?;
        Ok(part)
    }

    /// Bytes from the start known to be on disk: where a transfer resumes.
    pub fn contiguous(&self) -> u64 {
        self.written.contiguous
    }

    /// Bytes on disk in all, holes excluded (data held back is counted once written).
    pub fn bytes(&self) -> u64 {
        self.written.total()
    }

    /// Writes `data` at `offset` (perhaps later, with the data that follows it: see
    /// [`PartFile::flush`]).
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        offset
            .checked_add(data.len() as u64)
            .filter(|&end| end <= self.size)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "data beyond the file's end")
            })?;
        let follows = !self.pending.is_empty()
            && offset == self.pending_at + self.pending.len() as u64
            && self.pending.len() + data.len() <= WRITE_BEHIND;
        if !follows {
            self.flush()?;
            if data.len() >= WRITE_DIRECT {
                // Large enough to write as it is: gathering it would only copy it once more.
                return self.write_now(offset, data);
            }
            self.pending_at = offset;
        }
        if self.pending.capacity() == 0 {
            self.pending.reserve_exact(WRITE_BEHIND);
        }
        self.pending.extend_from_slice(data);
        if self.pending.len() == WRITE_BEHIND {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes out the data held back.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let result = self.write_now(self.pending_at, &pending);
        // Keep the allocation for the next run of data.
        self.pending = pending;
        self.pending.clear();
        result
    }

    fn write_now(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if let Err(err) = std::os::unix::fs::FileExt::write_all_at(&self.file, data, offset) {
            self.write_error = Some(format!("cannot write {}: {err}", self.path.display()));
            return Err(err);
        }
        self.written.add(offset, offset + data.len() as u64);
        self.checkpoint
            .contiguous
            .store(self.written.contiguous, Ordering::Release);
        self.prefix_hash.advance(self.written.contiguous);
        Ok(())
    }

    /// Why the last write to disk failed (the disk is full, ...), if one did.
    pub fn write_error(&self) -> Option<&str> {
        self.write_error.as_deref()
    }

    /// A handle that saves this file's progress from elsewhere.
    pub fn checkpoint(&self) -> Checkpoint {
        self.checkpoint.clone()
    }

    /// Writes out what is held back and records progress so that a restart resumes from here.
    pub fn save_meta(&mut self) -> io::Result<()> {
        self.flush()?;
        self.checkpoint.save()
    }

    /// Checks the whole file against the expected hash and, if it matches, moves it to a free
    /// name in its folder (`NAME`, or `NAME (1).ext`, ... never overwriting). Returns the final
    /// path and the last byte's value.
    pub fn finish(mut self, name: &str) -> Result<(PathBuf, Option<u8>), FinishError> {
        self.flush().map_err(FinishError::Io)?;
        self.file.sync_all().map_err(FinishError::Io)?;
        if self.written.contiguous != self.size {
            return Err(FinishError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file is incomplete: {} of {} bytes",
                    self.written.contiguous, self.size
                ),
            )));
        }
        let actual = self
            .prefix_hash
            .finish()
            .map_err(FinishError::Io)?
            .to_hex()
            .to_string();
        if actual != self.hash {
            // Nothing in it can be trusted: start clean next time.
            let _ = std::fs::remove_file(&self.path);
            let _ = std::fs::remove_file(&self.meta_path);
            return Err(FinishError::HashMismatch {
                expected: self.hash,
                actual,
            });
        }
        let last_byte = match self.size {
            0 => None,
            n => {
                let mut byte = [0u8];
                std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut byte, n - 1)
                    .map_err(FinishError::Io)?;
                Some(byte[0])
            }
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let target = claim_free_name(dir, name).map_err(FinishError::Io)?;
        std::fs::rename(&self.path, &target).map_err(FinishError::Io)?;
        let _ = std::fs::remove_file(&self.meta_path);
        let target = target.canonicalize().unwrap_or(target);
        Ok((target, last_byte))
    }

    /// Removes the `.part` and its meta (after a cancel).
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(&self.meta_path);
    }
}

impl transport::Sink for PartFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        PartFile::write_at(self, offset, data)
    }

    fn flush(&mut self) -> io::Result<()> {
        PartFile::flush(self)
    }
}

/// Why a finished download was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    /// The bytes do not hash to what the server announced.
    #[error(
        "the downloaded data does not match the server's hash (expected {expected}, got {actual}); \
         the file may have changed on the server: ask for it again"
    )]
    HashMismatch {
        /// Announced.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// The disk failed.
    #[error("cannot finish the file: {0}")]
    Io(io::Error),
}

/// Creates (empty, exclusively) the first free name among `NAME`, `NAME (1).ext`, ... and
/// returns it; the rename that follows replaces only our own placeholder.
fn claim_free_name(dir: &Path, name: &str) -> io::Result<PathBuf> {
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if dot > 0 => (&name[..dot], &name[dot..]),
        _ => (name, ""),
    };
    for n in 0..10_000u32 {
        let candidate = if n == 0 {
            dir.join(name)
        } else {
            dir.join(format!("{stem} ({n}){ext}"))
        };
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(_) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free name for {name}"),
    ))
}

/// Which byte ranges are on disk: a contiguous prefix plus the islands beyond it.
#[derive(Debug, Default)]
struct Written {
    contiguous: u64,
    /// start -> end of ranges past `contiguous`, disjoint and not touching it.
    islands: BTreeMap<u64, u64>,
}

impl Written {
    fn starting_at(contiguous: u64) -> Self {
        Self {
            contiguous,
            islands: BTreeMap::new(),
        }
    }

    fn total(&self) -> u64 {
        self.contiguous + self.islands.iter().map(|(s, e)| e - s).sum::<u64>()
    }

    fn add(&mut self, mut start: u64, mut end: u64) {
        if end <= self.contiguous {
            return;
        }
        start = start.max(self.contiguous);
        // Merge with every island that overlaps or touches [start, end).
        let touching: Vec<(u64, u64)> = self
            .islands
            .range(..=end)
            .filter(|&(_, &e)| e >= start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in touching {
            self.islands.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        if start <= self.contiguous {
            self.contiguous = end;
        } else {
            self.islands.insert(start, end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_writes_advance_the_prefix_only_when_holes_fill() {
        let mut w = Written::default();
        w.add(10, 20);
        w.add(30, 40);
        assert_eq!((w.contiguous, w.total()), (0, 20));
        w.add(0, 10);
        assert_eq!(w.contiguous, 20);
        w.add(20, 30);
        assert_eq!((w.contiguous, w.total()), (40, 40));
        w.add(5, 15); // duplicates change nothing
        assert_eq!((w.contiguous, w.total()), (40, 40));
    }

    #[test]
    fn a_part_of_the_same_version_resumes_and_another_version_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut part = PartFile::open(dir.path(), "a.bin", "h1", 100).unwrap();
        part.write_at(0, &[1; 40]).unwrap();
        part.write_at(60, &[1; 10]).unwrap();
        part.save_meta().unwrap();
        drop(part);
        let part = PartFile::open(dir.path(), "a.bin", "h1", 100).unwrap();
        assert_eq!(part.contiguous(), 40);
        drop(part);
        let part = PartFile::open(dir.path(), "a.bin", "h2", 100).unwrap();
        assert_eq!(part.contiguous(), 0);
    }

    #[test]
    fn finishing_never_overwrites_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"mine").unwrap();
        std::fs::write(dir.path().join("a (1).txt"), b"mine too").unwrap();
        let data = b"downloaded";
        let hash = blake3::hash(data).to_hex().to_string();
        let mut part = PartFile::open(dir.path(), "a.txt", &hash, data.len() as u64).unwrap();
        part.write_at(0, data).unwrap();
        let (path, last) = part.finish("a.txt").unwrap();
        assert_eq!(path.file_name().unwrap(), "a (2).txt");
        assert_eq!(last, Some(b'd'));
        assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), b"mine");
        assert_eq!(std::fs::read(path).unwrap(), data);
        assert!(!dir.path().join("a.txt.part").exists());
    }

    #[test]
    fn a_hash_mismatch_is_refused_and_the_part_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut part = PartFile::open(dir.path(), "x", "00", 3).unwrap();
        part.write_at(0, b"abc").unwrap();
        assert!(matches!(
            part.finish("x"),
            Err(FinishError::HashMismatch { .. })
        ));
        assert!(!dir.path().join("x").exists());
        assert!(!dir.path().join("x.part").exists());
    }

    /// `len` bytes that differ from place to place, and their hash.
    fn content(len: usize) -> (Vec<u8>, String) {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 + i / 7919) as u8).collect();
        let hash = blake3::hash(&data).to_hex().to_string();
        (data, hash)
    }

    #[test]
    fn data_out_of_order_and_repeated_is_gathered_hashed_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let (data, hash) = content(3 * WRITE_BEHIND + 12_345);
        let mut part = PartFile::open(dir.path(), "d.bin", &hash, data.len() as u64).unwrap();
        // Datagram-sized pieces: the second half first, a hole filled late, repeats.
        let pieces: Vec<(usize, usize)> = (0..data.len())
            .step_by(65_000)
            .map(|at| (at, (at + 65_000).min(data.len())))
            .collect();
        let (first, second) = pieces.split_at(pieces.len() / 2);
        for &(a, b) in second.iter().chain(&first[1..]).chain(&first[..1]) {
            part.write_at(a as u64, &data[a..b]).unwrap();
        }
        for &(a, b) in &pieces[3..6] {
            part.write_at(a as u64, &data[a..b]).unwrap();
        }
        let (path, last) = part.finish("d.bin").unwrap();
        assert_eq!(std::fs::read(path).unwrap(), data);
        assert_eq!(last, data.last().copied());
    }

    #[test]
    fn in_order_data_reaches_the_disk_on_flush_or_when_a_megabyte_is_gathered() {
        let dir = tempfile::tempdir().unwrap();
        let (data, hash) = content(2 * WRITE_BEHIND);
        let mut part = PartFile::open(dir.path(), "f.bin", &hash, data.len() as u64).unwrap();
        part.write_at(0, &data[..1000]).unwrap();
        assert_eq!(part.bytes(), 0, "held back");
        part.flush().unwrap();
        assert_eq!(part.bytes(), 1000);
        for at in (1000..WRITE_BEHIND + 1000).step_by(1024) {
            part.write_at(at as u64, &data[at..at + 1024]).unwrap();
        }
        assert_eq!(
            part.bytes(),
            (WRITE_BEHIND + 1000) as u64,
            "a full megabyte went out"
        );
        assert_eq!(
            part.checkpoint.contiguous.load(Ordering::Acquire),
            part.bytes()
        );
        // A large piece is not gathered: it goes out as it is.
        let at = WRITE_BEHIND + 1000;
        part.write_at(at as u64, &data[at..at + WRITE_DIRECT])
            .unwrap();
        assert_eq!(part.bytes(), (at + WRITE_DIRECT) as u64);
    }

    #[test]
    fn a_resumed_part_hashes_what_the_earlier_attempt_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let (data, hash) = content(WRITE_BEHIND + 777);
        let half = data.len() / 2;
        let mut part = PartFile::open(dir.path(), "r.bin", &hash, data.len() as u64).unwrap();
        part.write_at(0, &data[..half]).unwrap();
        part.save_meta().unwrap();
        drop(part);
        let mut part = PartFile::open(dir.path(), "r.bin", &hash, data.len() as u64).unwrap();
        assert_eq!(part.contiguous(), half as u64);
        part.write_at(half as u64, &data[half..]).unwrap();
        let (path, _) = part.finish("r.bin").unwrap();
        assert_eq!(std::fs::read(path).unwrap(), data);
    }

    #[test]
    fn a_file_with_a_hole_is_not_finished() {
        let dir = tempfile::tempdir().unwrap();
        let (data, hash) = content(10_000);
        let mut part = PartFile::open(dir.path(), "h.bin", &hash, data.len() as u64).unwrap();
        part.write_at(0, &data[..4000]).unwrap();
        part.write_at(5000, &data[5000..]).unwrap();
        assert!(matches!(part.finish("h.bin"), Err(FinishError::Io(_))));
        assert!(!dir.path().join("h.bin").exists());
    }

    #[test]
    fn writes_past_the_end_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut part = PartFile::open(dir.path(), "x", "00", 3).unwrap();
        assert!(part.write_at(2, b"ab").is_err());
    }
}
