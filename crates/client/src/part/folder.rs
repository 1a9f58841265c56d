//! Files in a download folder that others may write to: opened without following links,
//! refused when this user did not make them, and claimed under names that are free.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Opens `path` for reading without following a symbolic link at its last component.
pub(super) fn open_no_follow(path: &Path, write: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
}

/// Opens `NAME.part` for writing: a new one, or one that an earlier attempt of this user
/// left. Anything else at that name (a symbolic link, a hard link to some other file, a file
/// of another user, a device) is refused: writing into it would overwrite someone's data or
/// hand them ours. Returns the file and whether it is new.
pub(super) fn open_part(path: &Path) -> io::Result<(File, bool)> {
    let created = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(file) => return Ok((file, true)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let refuse = |why: &str| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} already exists and {why}, so this client did not create it; remove it or \
                 download into another folder",
                path.display()
            ),
        )
    };
    let file = match open_no_follow(path, true) {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(refuse("is a symbolic link"));
        }
        Err(e) => return Err(e),
    };
    let info = file.metadata()?;
    if !info.is_file() {
        return Err(refuse("is not a regular file"));
    }
    if info.nlink() != 1 {
        return Err(refuse("has other names (a hard link)"));
    }
    if info.uid() != nix::unistd::geteuid().as_raw() {
        return Err(refuse("belongs to another user"));
    }
    Ok((file, false))
}

/// The name a download is saved under, made from the one the user asked for: a single file
/// name, with path separators and characters that could hide or forge text (control
/// characters, bidirectional overrides) replaced by `_`. `None` for a name that would still
/// mean a folder (empty, `.`, `..`).
pub fn safe_file_name(name: &str) -> Option<String> {
    let safe: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || wire::is_hidden_control(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    match safe.as_str() {
        "" | "." | ".." => None,
        _ => Some(safe),
    }
}

/// Creates (empty, exclusively) the first free name among `NAME`, `NAME (1).ext`, ... and
/// returns it; the rename that follows replaces only our own placeholder.
pub(super) fn claim_free_name(dir: &Path, name: &str) -> io::Result<PathBuf> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_name_is_one_file_name_in_the_folder() {
        for (asked, saved) in [
            ("notes.txt", Some("notes.txt")),
            ("../../x", Some(".._.._x")),
            ("/etc/passwd", Some("_etc_passwd")),
            ("a\\b", Some("a_b")),
            ("line\nbreak\u{1b}[2J", Some("line_break_[2J")),
            ("evil\u{202e}txt.exe", Some("evil_txt.exe")),
            ("..", None),
            (".", None),
            ("", None),
        ] {
            assert_eq!(safe_file_name(asked).as_deref(), saved, "{asked:?}");
        }
    }
}
