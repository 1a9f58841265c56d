//! Test files: bytes that differ from place to place (so that misplaced bytes show), and
//! their BLAKE3 hash in hex.

use std::io::Write;
use std::path::Path;

/// Writes a file of `size` pseudo-random bytes as `dir/name` and returns their hash.
pub fn make_file(dir: &Path, name: &str, size: u64) -> String {
    let mut file = std::io::BufWriter::new(std::fs::File::create(dir.join(name)).unwrap());
    let mut hasher = blake3::Hasher::new();
    let mut state: u64 = size ^ 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        for b in &mut chunk[..n] {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = (state >> 24) as u8;
        }
        file.write_all(&chunk[..n]).unwrap();
        hasher.update(&chunk[..n]);
        left -= n as u64;
    }
    file.flush().unwrap();
    hasher.finalize().to_hex().to_string()
}

/// `len` bytes in memory, and their hash.
pub fn content(len: usize) -> (Vec<u8>, String) {
    let data: Vec<u8> = (0..len).map(|i| (i * 31 + i / 7919) as u8).collect();
    let hash = blake3::hash(&data).to_hex().to_string();
    (data, hash)
}

/// Every file under `dir`, as paths relative to it.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}
