//! The `known_servers` file: the keys this user trusted on first use, as OpenSSH keeps
//! `known_hosts`. One server a line, `HOST:PORT SHA256:<base64>`; blank lines and lines
//! starting with `#` are comments. Everything here does blocking file IO: call it on a blocking
//! thread.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use wire::Fingerprint;

/// Largest file read: some ten thousand servers. A bigger one is refused, not read whole.
const MAX_FILE: u64 = 1024 * 1024;

/// The file's usual place: `$XDG_CONFIG_HOME/messenger/known_servers`, else
/// `~/.config/messenger/known_servers`; `None` when neither variable is set.
pub fn default_path() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|home| home.join(".config"))
        })?;
    Some(config.join("messenger").join("known_servers"))
}

/// What the file says about one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Known {
    /// No line names it.
    Unknown,
    /// A line names it with this key.
    Trusted,
    /// Lines name it, with other keys only (or a key that does not parse): the first of them.
    Other {
        /// 1-based line number.
        line: usize,
        /// The key on that line, if it parses.
        fingerprint: Option<Fingerprint>,
    },
}

/// Looks up `server` (`HOST:PORT` as [`server_key`] spells it) with key `found` in `text`.
pub(crate) fn lookup(text: &str, server: &str, found: &Fingerprint) -> Known {
    let mut other = None;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(host), key) = (fields.next(), fields.next()) else {
            continue;
        };
        if !host.eq_ignore_ascii_case(server) {
            continue;
        }
        let fingerprint = key.and_then(|k| k.parse::<Fingerprint>().ok());
        if fingerprint.as_ref() == Some(found) {
            return Known::Trusted;
        }
        other.get_or_insert(Known::Other {
            line: index + 1,
            fingerprint,
        });
    }
    other.unwrap_or(Known::Unknown)
}

/// The file's text; empty when it does not exist yet.
pub(crate) fn read(path: &Path) -> io::Result<String> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    file.take(MAX_FILE + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_FILE} bytes"),
        ));
    }
    Ok(text)
}

/// Adds the line `server fingerprint` to the file, creating it (and its folder) if missing.
/// The new file is written beside the old one and renamed over it, so a reader never sees half
/// a file and a crash loses nothing.
pub(crate) fn add(path: &Path, server: &str, fingerprint: &Fingerprint) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut text = read(path)?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{server} {fingerprint}\n"));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// How the file names a server: `HOST:PORT`, the host in lower case and an IPv6 address in
/// brackets, as the user would type it for `--server`.
pub(crate) fn server_key(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{}]:{port}", host.to_ascii_lowercase())
    } else {
        format!("{}:{port}", host.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(seed: &[u8]) -> Fingerprint {
        Fingerprint::of_public_key(seed)
    }

    #[test]
    fn a_server_is_trusted_only_with_the_key_on_its_line() {
        let (a, b) = (fp(b"a"), fp(b"b"));
        let text = format!("# comment\n\nlocalhost:1 {a}\n127.0.0.1:1 {b}\n");
        assert_eq!(lookup(&text, "localhost:1", &a), Known::Trusted);
        assert_eq!(lookup(&text, "LOCALHOST:1", &a), Known::Trusted);
        assert_eq!(lookup(&text, "localhost:2", &a), Known::Unknown);
        assert_eq!(
            lookup(&text, "localhost:1", &b),
            Known::Other {
                line: 3,
                fingerprint: Some(a)
            }
        );
    }

    #[test]
    fn a_line_with_a_broken_key_counts_as_another_key() {
        let a = fp(b"a");
        let text = "h:1 SHA256:broken\nh:1\n";
        assert_eq!(
            lookup(text, "h:1", &a),
            Known::Other {
                line: 1,
                fingerprint: None
            }
        );
    }

    #[test]
    fn adding_keeps_what_was_there_and_creates_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("known_servers");
        add(&path, "a:1", &fp(b"a")).unwrap();
        fs::write(&path, format!("# mine\na:1 {}", fp(b"a"))).unwrap();
        add(&path, "[::1]:2", &fp(b"b")).unwrap();
        let text = read(&path).unwrap();
        assert_eq!(
            text,
            format!("# mine\na:1 {}\n[::1]:2 {}\n", fp(b"a"), fp(b"b"))
        );
        let leftovers = fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }

    #[test]
    fn a_missing_file_is_empty_and_a_huge_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&dir.path().join("none")).unwrap(), "");
        let huge = dir.path().join("huge");
        fs::write(&huge, vec![b'#'; MAX_FILE as usize + 1]).unwrap();
        assert!(read(&huge).is_err());
    }

    #[test]
    fn servers_are_named_as_typed_with_ipv6_in_brackets() {
        assert_eq!(server_key("Example.ORG", 50000), "example.org:50000");
        assert_eq!(server_key("::1", 7), "[::1]:7");
        assert_eq!(server_key("127.0.0.1", 7), "127.0.0.1:7");
    }
}
