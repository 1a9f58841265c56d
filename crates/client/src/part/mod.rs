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
//!
//! A download folder may be shared with people who wish us harm: nothing here follows a
//! symbolic link, and a `.part` that this user did not create (a link to another file, or
//! someone else's file) is refused rather than truncated or written into. The meta file never
//! claims bytes that are not yet safe on disk: the `.part` is synced before each record.

mod folder;
mod record;

pub use folder::safe_file_name;
pub use record::Checkpoint;

use crate::prefix_hash::PrefixHasher;
use folder::{claim_free_name, open_part};
use record::read_meta;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use transport::RangeSet;

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
    /// What is on disk. The transport's receiver bounds its islands before data gets here.
    written: RangeSet,
    /// In-order data not yet written: it belongs at `pending_at`.
    pending: Vec<u8>,
    pending_at: u64,
    /// Hashes the prefix that is on disk as it grows.
    prefix_hash: PrefixHasher,
    checkpoint: Checkpoint,
    /// Why the last write to disk failed, if one did.
    write_error: Option<String>,
}

impl PartFile {
    /// Opens `dir/NAME.part` for the file version `hash`/`size`, keeping what an earlier
    /// attempt at the same version wrote and discarding anything else.
    pub fn open(dir: &Path, name: &str, hash: &str, size: u64) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.part"));
        let meta_path = dir.join(format!("{name}.part.meta"));
        let (file, new) = open_part(&path)?;
        let record = if new { None } else { read_meta(&meta_path) };
        if !new && record.is_none() {
            // A file of this user's, but no record of ours beside it: something else (another
            // program, or a download of a file that is itself called `NAME.part`) made it, and
            // truncating it would destroy it.
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} already exists without a record of a download beside it, so this \
                     client did not create it; move it away or download into another folder",
                    path.display()
                ),
            ));
        }
        let earlier = record.filter(|m| m.hash == hash && m.size == size);
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
            file: Arc::new(file.try_clone()?),
            sync: File::sync_data,
        };
        // What an earlier attempt wrote is hashed at once, beside the transfer.
        let prefix_hash = PrefixHasher::start(file.try_clone()?, contiguous)?;
        let mut part = Self {
            file,
            path,
            meta_path,
            hash: hash.to_owned(),
            size,
            written: RangeSet::starting_at(contiguous, usize::MAX),
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
        self.written.contiguous()
    }

    /// The file's size, as announced.
    pub fn size(&self) -> u64 {
        self.size
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
        self.written
            .insert(offset, offset + data.len() as u64)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let contiguous = self.written.contiguous();
        self.checkpoint
            .contiguous
            .store(contiguous, Ordering::Release);
        self.prefix_hash.advance(contiguous);
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
        if self.written.contiguous() != self.size {
            return Err(FinishError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file is incomplete: {} of {} bytes",
                    self.written.contiguous(),
                    self.size
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

#[cfg(test)]
mod tests {
    use super::record::read_meta;
    use super::*;

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

    /// A transfer that is ending saves its progress while the next attempt at the same file
    /// opens it and saves too: neither may fail because of the other.
    #[test]
    fn two_saves_of_one_part_at_once_both_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let mut part = PartFile::open(dir.path(), "a.bin", "h1", 100).unwrap();
        part.write_at(0, &[1; 40]).unwrap();
        part.flush().unwrap();
        let savers: Vec<_> = (0..2)
            .map(|_| {
                let checkpoint = part.checkpoint();
                std::thread::spawn(move || (0..300).map(|_| checkpoint.save()).collect::<Vec<_>>())
            })
            .collect();
        for saver in savers {
            for saved in saver.join().unwrap() {
                assert!(saved.is_ok(), "{saved:?}");
            }
        }
        drop(part);
        assert_eq!(
            PartFile::open(dir.path(), "a.bin", "h1", 100)
                .unwrap()
                .contiguous(),
            40
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.contains(".tmp")), "{names:?}");
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
    fn a_symlink_planted_at_the_part_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("a.bin.part")).unwrap();
        let err = PartFile::open(dir.path(), "a.bin", "h", 100).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn a_hard_link_planted_at_the_part_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, b"precious").unwrap();
        std::fs::hard_link(&victim, dir.path().join("a.bin.part")).unwrap();
        let err = PartFile::open(dir.path(), "a.bin", "h", 100).unwrap_err();
        assert!(err.to_string().contains("hard link"), "{err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn links_planted_at_the_meta_files_are_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("a.bin.part.meta")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("a.bin.part.meta.tmp")).unwrap();
        let mut part = PartFile::open(dir.path(), "a.bin", "h", 100).unwrap();
        part.write_at(0, &[1; 10]).unwrap();
        part.save_meta().unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let meta = dir.path().join("a.bin.part.meta");
        assert!(!meta.symlink_metadata().unwrap().is_symlink());
    }

    #[test]
    fn the_record_never_claims_data_that_was_not_synced() {
        let dir = tempfile::tempdir().unwrap();
        let mut part = PartFile::open(dir.path(), "s.bin", "h", 100).unwrap();
        part.write_at(0, &[1; 40]).unwrap();
        part.save_meta().unwrap();
        let meta = || {
            read_meta(&dir.path().join("s.bin.part.meta"))
                .unwrap()
                .contiguous
        };
        assert_eq!(meta(), 40);
        // The disk cannot make the new bytes durable: the record must not claim them.
        part.checkpoint.sync = |_| Err(io::Error::other("the disk is gone"));
        part.write_at(40, &[1; 40]).unwrap();
        assert!(part.save_meta().is_err());
        assert_eq!(meta(), 40);
    }

    #[test]
    fn a_part_of_this_user_without_our_record_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join("report.part");
        std::fs::write(&mine, b"the user's own report, not a download").unwrap();
        let err = PartFile::open(dir.path(), "report", "h", 100).unwrap_err();
        assert!(err.to_string().contains("did not create it"), "{err}");
        assert_eq!(
            std::fs::read(&mine).unwrap(),
            b"the user's own report, not a download"
        );
    }

    #[test]
    fn writes_past_the_end_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut part = PartFile::open(dir.path(), "x", "00", 3).unwrap();
        assert!(part.write_at(2, b"ab").is_err());
    }
}
