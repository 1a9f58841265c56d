//! A fuzzer for stable Rust: no coverage feedback, but libFuzzer's kinds of mutation (bit
//! flips, interesting values, length-field tweaks, insertions, erasures, splices, dictionary
//! tokens) applied to the seed corpus and to its own recent outputs, from a seeded generator so
//! a run can be repeated exactly.

use crate::Target;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::PathBuf;

const INTERESTING_8: &[u8] = &[0, 1, 0x7f, 0x80, 0xff];
const INTERESTING_32: &[u32] = &[
    0,
    1,
    2,
    4,
    0x7f,
    0xff,
    4096,
    4097,
    0xffff,
    0x10_0000,
    0x10_0001,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
];
const INTERESTING_64: &[u64] = &[0, 1, u64::MAX, u64::MAX - 1, 1 << 63, 1 << 32, 1 << 40];

/// Makes and mutates inputs.
#[derive(Debug)]
pub struct Mutator {
    rng: StdRng,
}

impl Mutator {
    /// A mutator whose choices all follow from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Random bytes, mostly short.
    pub fn random(&mut self, max_len: usize) -> Vec<u8> {
        let cap = if self.rng.random_bool(0.8) {
            max_len.min(64)
        } else {
            max_len
        };
        let len = self.rng.random_range(0..=cap);
        (0..len).map(|_| self.rng.random()).collect()
    }

    /// Applies one to five mutations to `data`, keeping it within `max_len` bytes; `others`
    /// are inputs to splice from, `dictionary` tokens to insert.
    pub fn mutate(
        &mut self,
        data: &mut Vec<u8>,
        others: &[Vec<u8>],
        dictionary: &[&[u8]],
        max_len: usize,
    ) {
        let rounds = self.rng.random_range(1..=5);
        for _ in 0..rounds {
            self.mutate_once(data, others, dictionary);
        }
        data.truncate(max_len);
    }

    fn pos(&mut self, data: &[u8]) -> usize {
        if data.is_empty() {
            0
        } else {
            self.rng.random_range(0..data.len())
        }
    }

    fn mutate_once(&mut self, data: &mut Vec<u8>, others: &[Vec<u8>], dictionary: &[&[u8]]) {
        let kind = self.rng.random_range(0..13);
        if data.is_empty() && kind < 9 {
            data.extend((0..self.rng.random_range(1..8)).map(|_| self.rng.random::<u8>()));
            return;
        }
        let at = self.pos(data);
        match kind {
            0 => data[at] ^= 1 << self.rng.random_range(0..8),
            1 => data[at] = self.rng.random(),
            2 => data[at] = INTERESTING_8[self.rng.random_range(0..INTERESTING_8.len())],
            3 => {
                // A length or number field: big-endian, like every field on our wires.
                let bytes: Vec<u8> = match self.rng.random_range(0..3) {
                    0 => {
                        let v = INTERESTING_32[self.rng.random_range(0..INTERESTING_32.len())];
                        (v as u16).to_be_bytes().to_vec()
                    }
                    1 => INTERESTING_32[self.rng.random_range(0..INTERESTING_32.len())]
                        .to_be_bytes()
                        .to_vec(),
                    _ => INTERESTING_64[self.rng.random_range(0..INTERESTING_64.len())]
                        .to_be_bytes()
                        .to_vec(),
                };
                overwrite(data, at, &bytes);
            }
            4 => {
                // Nudge a 32-bit length up or down a little.
                if data.len() >= 4 {
                    let at = self.rng.random_range(0..=data.len() - 4);
                    let old =
                        u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
                    let delta = self.rng.random_range(1..=16u32);
                    let new = if self.rng.random_bool(0.5) {
                        old.wrapping_add(delta)
                    } else {
                        old.wrapping_sub(delta)
                    };
                    data[at..at + 4].copy_from_slice(&new.to_be_bytes());
                }
            }
            5 => {
                let n = self.rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.random()).collect();
                data.splice(at..at, bytes);
            }
            6 => {
                let end = self.rng.random_range(at..=data.len());
                data.drain(at..end);
            }
            7 => data.truncate(at),
            8 => {
                let end = self.rng.random_range(at..=data.len().min(at + 64));
                let piece = data[at..end].to_vec();
                let to = self.pos(data);
                data.splice(to..to, piece);
            }
            9 | 12 => {
                if let Some(other) = self.pick(others) {
                    if kind == 12 {
                        data.extend_from_slice(&other);
                    } else {
                        let from = self.pos(&other);
                        data.truncate(at);
                        data.extend_from_slice(&other[from..]);
                    }
                }
            }
            _ => {
                if let Some(token) = self.pick_token(dictionary) {
                    if kind == 10 {
                        data.splice(at..at, token.iter().copied());
                    } else {
                        overwrite(data, at, token);
                    }
                }
            }
        }
    }

    fn pick(&mut self, others: &[Vec<u8>]) -> Option<Vec<u8>> {
        (!others.is_empty()).then(|| others[self.rng.random_range(0..others.len())].clone())
    }

    fn pick_token<'a>(&mut self, dictionary: &[&'a [u8]]) -> Option<&'a [u8]> {
        (!dictionary.is_empty()).then(|| dictionary[self.rng.random_range(0..dictionary.len())])
    }
}

/// Writes `bytes` over `data` from `at`, growing it if they run past its end.
fn overwrite(data: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    let end = at + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[at..end].copy_from_slice(bytes);
}

/// One stable fuzzing run of one target.
#[derive(Debug)]
pub struct Campaign {
    target: Target,
    seed: u64,
    cases: usize,
    corpus: Vec<Vec<u8>>,
}

/// Seed of the stable runs when `FUZZ_SEED` is not set: the same inputs every run, so CI is
/// repeatable; set `FUZZ_SEED` to explore further.
pub const DEFAULT_SEED: u64 = 0x6d65_7373;

impl Campaign {
    /// A run of `target` over its seeds, as long and with the seed that the environment says:
    /// `FUZZ_SEED` (a number) and `FUZZ_SCALE` (a factor on the target's default case count,
    /// e.g. `10` or `0.1`; 0.1 by default in a debug build).
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
        let corpus = (target.seeds)()
            .into_iter()
            .map(|(_, input)| input)
            .collect();
        Self {
            target: *target,
            seed,
            cases: (target.cases as f64 * scale) as usize,
            corpus,
        }
    }

    /// Adds inputs to start from (the files of the corpus folder, say).
    pub fn with_inputs(mut self, inputs: impl IntoIterator<Item = Vec<u8>>) -> Self {
        self.corpus.extend(inputs);
        self
    }

    /// Runs the inputs; panics, after saving the input, at the first finding. Returns the
    /// number of inputs run.
    pub fn run(&self) -> usize {
        let seed = self.seed ^ fnv(self.target.name.as_bytes());
        let mut mutator = Mutator::new(seed);
        let mut recent: Vec<Vec<u8>> = Vec::new();
        let max_len = self.target.max_len;
        for case in 0..self.cases {
            let roll: f64 = mutator.rng.random();
            let input = match self.target.generate {
                Some(generate) if roll < 0.4 => {
                    let raw = mutator.random(max_len);
                    let mut input = generate(&raw);
                    input.truncate(max_len);
                    input
                }
                _ if roll < 0.5 => mutator.random(max_len),
                _ => {
                    let from_recent = !recent.is_empty() && mutator.rng.random_bool(0.5);
                    let pool = if from_recent { &recent } else { &self.corpus };
                    let mut input = mutator.pick(pool).unwrap_or_default();
                    mutator.mutate(&mut input, &self.corpus, self.target.dictionary, max_len);
                    input
                }
            };
            run_one(
                &self.target,
                &input,
                &format!("case {case}, FUZZ_SEED={}", self.seed),
            );
            if recent.len() < 256 {
                recent.push(input);
            } else {
                let at = mutator.rng.random_range(0..recent.len());
                recent[at] = input;
            }
        }
        self.cases
    }
}

/// Runs `target` on `input`; on a finding, saves the input under `target/fuzz-failures/` and
/// fails with how to reproduce it.
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
         reproduce: cargo +nightly fuzz run {} {}  (or add it to fuzz/corpus/{}/ and run \
         cargo test -p fuzzing --release)",
        target.name,
        input.len(),
        hex(input),
        target.name,
        path.display(),
        target.name,
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
