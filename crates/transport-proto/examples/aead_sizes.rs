//! What one AEAD call costs at the sizes the transport seals: a datagram's body at 1452 bytes
//! (1418 bytes: 1452 less the 18-byte header and the 16-byte tag), nearby sizes, a TLS record
//! (16 KiB) and a 64 KiB datagram. Each row seals 2 GiB in place in one hot buffer.
//!
//! ```sh
//! cargo run --release -p transport-proto --example aead_sizes
//! ```

use aws_lc_rs::aead::{
    AES_256_GCM, Aad, Algorithm, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey,
};
use std::time::Instant;

const SIZES: [usize; 6] = [1344, 1408, 1418, 1440, 16 * 1024, 65_507 - 34];

fn main() -> Result<(), aws_lc_rs::error::Unspecified> {
    println!("| suite | body (bytes) | GB/s | ns per call |");
    println!("|---|---|---|---|");
    for (name, suite) in [
        ("AES-256-GCM", &AES_256_GCM),
        ("ChaCha20-Poly1305", &CHACHA20_POLY1305),
    ] {
        for size in SIZES {
            let (rate, ns) = seal(suite, size)?;
            println!("| {name} | {size} | {rate:.2} | {ns:.0} |");
        }
    }
    Ok(())
}

/// Seals 2 GiB in `size`-byte messages; returns GB/s and nanoseconds per call.
fn seal(
    suite: &'static Algorithm,
    size: usize,
) -> Result<(f64, f64), aws_lc_rs::error::Unspecified> {
    let key = LessSafeKey::new(UnboundKey::new(suite, &[7u8; 32])?);
    let mut buf = vec![1u8; size];
    let aad = [3u8; 18];
    let calls = (2usize << 30) / size;
    let start = Instant::now();
    for i in 0..calls {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
        let tag = key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut buf,
        )?;
        let _ = std::hint::black_box(tag);
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((
        (calls * size) as f64 / secs / 1e9,
        secs * 1e9 / calls as f64,
    ))
}
