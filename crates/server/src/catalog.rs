//! The shared folder: which files a client may see and ask for.

use std::io;
use std::path::{Path, PathBuf};
use wire::FileEntry;

/// The files under one folder that the server shares: regular files only, no hidden files, and
/// nothing whose real path leaves the folder (a symlink pointing outside is not shared).
#[derive(Debug, Clone)]
pub struct FileCatalog {
    root: PathBuf,
}

impl FileCatalog {
    /// Opens (creating if needed) the shared folder.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            root: dir.canonicalize()?,
        })
    }

    /// The folder's real path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The shared files, sorted by name.
    pub async fn list(&self) -> io::Result<Vec<FileEntry>> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || list_dir(&root))
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

fn list_dir(root: &Path) -> io::Result<Vec<FileEntry>> {
    let root_cat = FileCatalog {
        root: root.to_path_buf(),
    };
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
