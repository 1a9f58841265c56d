//! Fuzz targets for every decoder the network feeds, as plain functions of a byte string.
//!
//! Each target takes any input, drives one decoder or state machine with it, and asserts the
//! properties that must hold for every input (a panic is a finding). The same functions run two
//! ways:
//!
//! - under libFuzzer, with coverage feedback, from `fuzz/` (`cargo +nightly fuzz run NAME`);
//! - on stable Rust, in this crate's tests, which replay the seed corpus in `fuzz/corpus/` and
//!   then run about four million inputs made by [`Mutator`] (see `docs/FUZZING.md`).
//!
//! [`TARGETS`] lists them all, with their seeds and their share of the stable run.
#![forbid(unsafe_code)]

mod control;
mod handshake;
mod input;
mod mutate;
mod net;
mod packet;
mod protection;
mod receiver;
mod sealed;
mod seeds;
mod sender;
mod session;

pub use control::{client_msg, control_frame, server_msg};
pub use handshake::handshake;
pub use input::{Input, Recipe};
pub use mutate::{Campaign, DEFAULT_SEED, Mutator, hex, run_one};
pub use packet::udp_packet;
pub use receiver::transport_receiver;
pub use sender::transport_sender;
pub use session::{server_session, session_script};

/// Turns random bytes into an input of a target whose inputs have structure.
pub type Generate = fn(&[u8]) -> Vec<u8>;

/// A fuzz target: its name (the libFuzzer binary and the corpus folder), the function, and
/// how the stable runner treats it.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Name of the target, of its `fuzz/fuzz_targets/NAME.rs` and its `fuzz/corpus/NAME/`.
    pub name: &'static str,
    /// Runs one input; panics on a finding.
    pub run: fn(&[u8]),
    /// The seed corpus: named inputs worth starting from.
    pub seeds: fn() -> Vec<(&'static str, Vec<u8>)>,
    /// Inputs the stable runner makes by default (a tenth of that in a debug build).
    pub cases: usize,
    /// Largest input the stable runner makes.
    pub max_len: usize,
    /// For targets whose inputs have a structure random bytes rarely hit: turns random bytes
    /// into an input (the stable runner uses it for some of its inputs).
    pub generate: Option<Generate>,
    /// Tokens the mutator splices in.
    pub dictionary: &'static [&'static [u8]],
}

/// Tokens of the control protocol: JSON syntax, message types, field names, odd values.
const JSON_TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"\"",
    b":",
    b",",
    b"[]",
    b"null",
    b"true",
    b"\"type\"",
    b"\"hello\"",
    b"\"send_all\"",
    b"\"send_private\"",
    b"\"list_users\"",
    b"\"list_files\"",
    b"\"download\"",
    b"\"cancel\"",
    b"\"ping\"",
    b"\"quit\"",
    b"\"welcome\"",
    b"\"error\"",
    b"\"download_ready\"",
    b"\"bye\"",
    b"\"req\"",
    b"\"text\"",
    b"\"name\"",
    b"\"version\"",
    b"\"code\"",
    b"\"to\"",
    b"\"id\"",
    b"\"file\"",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-1",
    b"1e999",
    b"0.5",
    b"\\u0000",
    b"\\ud800",
    b"\\udc00\\ud800",
    b"\\\"",
    b"\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\x00\x10\x00\x01",
    b"\xff\xff\xff\xff",
];

/// Every target, in the order the docs list them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "control_frame",
        run: control_frame,
        seeds: seeds::control_frame,
        cases: 1_000_000,
        max_len: 512,
        generate: None,
        dictionary: JSON_TOKENS,
    },
    Target {
        name: "client_msg",
        run: client_msg,
        seeds: seeds::client_msg,
        cases: 1_000_000,
        max_len: 512,
        generate: None,
        dictionary: JSON_TOKENS,
    },
    Target {
        name: "server_msg",
        run: server_msg,
        seeds: seeds::server_msg,
        cases: 600_000,
        max_len: 512,
        generate: None,
        dictionary: JSON_TOKENS,
    },
    Target {
        name: "udp_packet",
        run: udp_packet,
        seeds: seeds::udp_packet,
        // Fewer than the other decoders: deriving the keys of a case costs most of it.
        cases: 400_000,
        max_len: 1500,
        generate: None,
        dictionary: &[],
    },
    Target {
        name: "handshake",
        run: handshake,
        seeds: seeds::handshake,
        cases: 300_000,
        max_len: 256,
        generate: None,
        // A HELLO's version and type, which send garbage all the way to the tag check.
        dictionary: &[b"\x02\x01"],
    },
    Target {
        name: "transport_receiver",
        run: transport_receiver,
        seeds: seeds::transport_receiver,
        cases: 150_000,
        max_len: 1024,
        generate: None,
        dictionary: &[],
    },
    Target {
        name: "transport_sender",
        run: transport_sender,
        seeds: seeds::transport_sender,
        cases: 150_000,
        max_len: 1024,
        generate: None,
        dictionary: &[],
    },
    Target {
        name: "server_session",
        run: server_session,
        seeds: seeds::server_session,
        cases: 20_000,
        max_len: 4096,
        generate: Some(session_script),
        dictionary: JSON_TOKENS,
    },
];
