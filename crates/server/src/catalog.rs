//! The shared folder: which files a client may see and ask for.

use nix::fcntl::OFlag;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wire::FileEntry;

/// The files under one folder that the server shares: regular files only, no hidden files, and
/// nothing whose real path leaves the folder (a symlink pointing outside is not shared).
#[derive(Debug, Clone)]
pub struct FileCatalog {
    root: PathBuf,
    /// The folder itself, held open: files are opened beneath it (`openat`), so what is served
    /// comes from this folder even if its path is renamed or swapped meanwhile.
    dir: Arc<OwnedFd>,
    /// The latest listing and when it was made, for [`FileCatalog::list_cached`]. An async
    /// lock, so that requests arriving together wait for one scan instead of each making one.
    listing: Arc<tokio::sync::Mutex<Option<Listing>>>,
}

/// A listing of the folder, and when it was made.
type Listing = (Instant, Arc<Vec<FileEntry>>);

/// How long a listing answers `list_files` requests: paging through a folder of 20,000 files
/// (20 pages) or a crowd asking at once costs one scan of it, not one per request.
const LISTING_TTL: Duration = Duration::from_secs(1);

/// Which version of which file: a file whose inode, size or modification time differs is
/// another file as far as hashes go. (Not the change time: renaming or unlinking a name of the
/// file changes it, and the bytes stay the same. Someone who rewrites a file and sets its
/// modification time back is caught by the client's hash check.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    dev: u64,
    ino: u64,
    /// Length in bytes.
    pub size: u64,
    mtime: (i64, i64),
}

impl Version {
    /// The version of the file open as `file`, as it is now.
    pub fn of(file: &File) -> io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata()?;
        Ok(Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        })
    }
}

/// A shared file, open: the one handle it is hashed from and served from, whatever happens to
/// its name on disk meanwhile.
#[derive(Debug, Clone)]
pub struct SharedFile {
    /// The open file (reads are positional, so one handle serves every reader).
    pub file: Arc<File>,
    /// Its version when it was opened.
    pub version: Version,
}

impl FileCatalog {
    /// Opens (creating if needed) the shared folder.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let root = dir.canonicalize()?;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(&root, flags, nix::sys::stat::Mode::empty())?;
        Ok(Self {
            root,
            dir: Arc::new(fd),
            listing: Arc::default(),
        })
    }

    /// [`FileCatalog::open_file`] on a blocking thread.
    pub async fn open_shared(&self, name: &str) -> io::Result<Option<SharedFile>> {
        let (this, name) = (self.clone(), name.to_owned());
        tokio::task::spawn_blocking(move || this.open_file(&name))
            .await
            .map_err(io::Error::other)?
    }

    /// Opens the shared file called `name` for serving, or `None` when no such file is shared.
    ///
    /// The file is opened once, beneath the folder, without following a symlink at the last
    /// step: a link inside the folder to another file of the folder is followed by name (as
    /// [`FileCatalog::resolve`] does), but if the name is swapped for a link (or anything other
    /// than a regular file) between that check and the open, the open fails instead of leaving
    /// the folder. Non-blocking, so a FIFO planted under the name cannot hang the open. Blocking
    /// work: call it on a blocking thread.
    pub fn open_file(&self, name: &str) -> io::Result<Option<SharedFile>> {
        let Some(real) = self.resolve(name) else {
            return Ok(None);
        };
        let Some(real_name) = real.file_name() else {
            return Ok(None);
        };
        let flags = OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        let fd = match nix::fcntl::openat(
            self.dir.as_ref(),
            real_name,
            flags,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(fd) => fd,
            // A symlink (ELOOP), or gone: not a shared file any more.
            Err(nix::errno::Errno::ELOOP | nix::errno::Errno::ENOENT) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Ok(None);
        }
        let version = Version::of(&file)?;
        Ok(Some(SharedFile {
            file: Arc::new(file),
            version,
        }))
    }

    /// The folder's real path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The shared files, sorted by name, as listed at most [`LISTING_TTL`] ago.
    pub async fn list_cached(&self) -> io::Result<Arc<Vec<FileEntry>>> {
        let mut listing = self.listing.lock().await;
        if let Some((at, files)) = listing.as_ref()
            && at.elapsed() < LISTING_TTL
        {
            return Ok(Arc::clone(files));
        }
        let files = Arc::new(self.list().await?);
        *listing = Some((Instant::now(), Arc::clone(&files)));
        Ok(files)
    }

    /// The shared files, sorted by name, listed now.
    pub async fn list(&self) -> io::Result<Vec<FileEntry>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || list_dir(&this))
            .await
            .map_err(io::Error::other)?
    }

    /// The real path of the shared file called `name`, or `None` when no such file is shared.
    ///
    /// `name` comes from the network: anything with a path separator, `..`, a leading dot, or
    /// a real path outside the folder is refused.
    pub fn resolve(&self, name: &str) -> Option<PathBuf> {
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\', '\0']) {
            return None;
        }
        let real = self.root.join(name).canonicalize().ok()?;
        let inside = real.parent() == Some(self.root.as_path());
        (inside && real.is_file()).then_some(real)
    }
}

fn list_dir(root_cat: &FileCatalog) -> io::Result<Vec<FileEntry>> {
    let root = root_cat.root();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let Ok(entry) = entry else { continue };
        let Ok(name) = entry.file_name().into_string() else {
            continue; // names that are not UTF-8 cannot be asked for on the wire
        };
        if let Some(path) = root_cat.resolve(&name)
            && let Ok(meta) = std::fs::metadata(&path)
        {
            files.push(FileEntry {
                name,
                size: meta.len(),
            });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_regular_visible_files_inside_the_folder_only() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path();
        let shared = base.join("shared");
        std::fs::create_dir_all(shared.join("sub")).unwrap();
        std::fs::write(shared.join("b.txt"), b"hello").unwrap();
        std::fs::write(shared.join("a.bin"), b"").unwrap();
        std::fs::write(shared.join(".hidden"), b"x").unwrap();
        std::fs::write(base.join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(base.join("secret"), shared.join("escape")).unwrap();
        std::os::unix::fs::symlink(shared.join("b.txt"), shared.join("alias")).unwrap();

        let catalog = FileCatalog::open(&shared).unwrap();
        let names: Vec<(String, u64)> = catalog
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|f| (f.name, f.size))
            .collect();
        assert_eq!(
            names,
            vec![
                ("a.bin".into(), 0),
                ("alias".into(), 5),
                ("b.txt".into(), 5)
            ]
        );
    }

    #[test]
    fn resolve_refuses_escapes() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path();
        std::fs::write(base.join("ok"), b"x").unwrap();
        let catalog = FileCatalog::open(base).unwrap();
        assert!(catalog.resolve("ok").is_some());
        for bad in ["", "..", "../ok", "/etc/passwd", ".hidden", "a/b", "nope"] {
            assert_eq!(catalog.resolve(bad), None, "{bad:?} must not resolve");
        }
    }
}
