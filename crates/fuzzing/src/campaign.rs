//! The stable-Rust runner: bytes from a seeded generator, built into each target's typed input
//! by `arbitrary` exactly as libFuzzer's are, so a run can be repeated exactly and a finding
//! replays under libFuzzer too. No coverage feedback: the typed inputs do the work a mutator
//! would (every input is a well-formed scenario, with its values often at their edges).

use crate::Target;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::PathBuf;

/// Seed of the stable runs when `FUZZ_SEED` is not set: the same inputs every run, so CI is
/// repeatable; set `FUZZ_SEED` to explore further.
pub const DEFAULT_SEED: u64 = 0x6d65_7373;

/// One stable fuzzing run of one target.
#[derive(Debug)]
pub struct Campaign {
    target: Target,
    seed: u64,
    cases: usize,
    inputs: Vec<Vec<u8>>,
}

impl Campaign {
    /// A run of `target`, as long and with the seed that the environment says: `FUZZ_SEED` (a
    /// number) and `FUZZ_SCALE` (a factor on the target's default case count, e.g. `10` or
    /// `0.1`; 0.1 by default in a debug build).
    pub fn new(target: &Target) -> Self {
        let seed = std::env::var("FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_SEED);
        // A debug build (overflow checks, as under cargo fuzz) is about ten times slower.
        let default_scale = if cfg!(debug_assertions) { 0.1 } else { 1.0 };
        let scale: f64 = std::env::var("FUZZ_SCALE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default_scale);
        Self {
            target: *target,
            seed,
            cases: (target.cases as f64 * scale) as usize,
            inputs: Vec::new(),
        }
    }

    /// Adds inputs to replay before the generated ones (the files libFuzzer left in a corpus
    /// folder, say).
    pub fn with_inputs(mut self, inputs: impl IntoIterator<Item = Vec<u8>>) -> Self {
        self.inputs.extend(inputs);
        self
    }

    /// Runs the inputs; panics, after saving the input, at the first finding. Returns the
    /// number of inputs run.
    pub fn run(&self) -> usize {
        for (i, input) in self.inputs.iter().enumerate() {
            run_one(&self.target, input, &format!("given input {i}"));
        }
        let mut rng = StdRng::seed_from_u64(self.seed ^ fnv(self.target.name.as_bytes()));
        let mut input = Vec::with_capacity(self.target.max_len);
        for case in 0..self.cases {
            // Mostly short: a short input is a short scenario, and most corners are near.
            let cap = if rng.random_bool(0.5) {
                self.target.max_len.min(128)
            } else {
                self.target.max_len
            };
            input.resize(rng.random_range(0..=cap), 0);
            rng.fill(&mut input[..]);
            run_one(
                &self.target,
                &input,
                &format!("case {case}, FUZZ_SEED={}", self.seed),
            );
        }
        self.inputs.len() + self.cases
    }
}

/// Runs `target` on `input`; on a finding, saves the input under `target/fuzz-failures/` and
/// fails with the input in hex, the typed input it builds, and how to reproduce it.
pub fn run_one(target: &Target, input: &[u8], context: &str) {
    let Err(panic) = catch_unwind(AssertUnwindSafe(|| (target.run)(input))) else {
        return;
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/fuzz-failures")
        .join(target.name);
    let path = dir.join(format!("crash-{:016x}", fnv(input)));
    let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input));
    let whence = match saved {
        Ok(()) => format!("saved as {}", path.display()),
        Err(err) => format!("could not be saved: {err}"),
    };
    eprintln!(
        "fuzz target {} failed ({context}) on a {}-byte input, {whence}\ninput: {}\n\
         which builds:\n{}\n\
         reproduce: cargo +nightly fuzz run {} {}  (or keep the typed input above as a test \
         in crates/fuzzing/tests/regressions.rs)",
        target.name,
        input.len(),
        hex(input),
        (target.show)(input),
        target.name,
        path.display(),
    );
    resume_unwind(panic);
}

/// FNV-1a: a stable hash for file names and per-target seeds.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
