//! The content hash a download offer announces: BLAKE3 of the whole file, lowercase hex.

use std::io::{self, Read};
use std::path::Path;

/// Hashes the file at `path` in 1 MiB reads (never more than that in memory) and returns the
/// hash as 64 lowercase hex digits, as `download_ready.hash` carries it.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_hex().to_string())
}
