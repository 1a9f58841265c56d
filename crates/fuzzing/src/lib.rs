//! Fuzz targets for every decoder the network feeds, as plain functions of typed inputs.
//!
//! Each target takes an input built by [`arbitrary`] (`#[derive(Arbitrary)]` types: for the
//! endpoint targets, a transfer's setup and a list of operations such as deliver, lose,
//! duplicate, reorder, wait, inject a forged packet; for the decoders, any bytes next to
//! structured values encoded and then spoiled), drives one decoder or state machine with it,
//! and asserts the properties that must hold for every input (a panic is a finding). The same
//! functions run two ways:
//!
//! - under libFuzzer, with coverage feedback, from `fuzz/` (`cargo +nightly fuzz run NAME`),
//!   which builds each input from libFuzzer's bytes with `arbitrary`;
//! - on stable Rust, in this crate's tests, from bytes of a seeded generator through the same
//!   `arbitrary` types ([`Campaign`]; see `docs/FUZZING.md`).
//!
//! Either way, an input is a byte string: [`Target::run`] turns bytes into the typed input
//! exactly as libFuzzer does, so a failing input found by one replays in the other.
//! [`TARGETS`] lists them all, with their share of the stable run.
#![forbid(unsafe_code)]

mod bench;
mod campaign;
mod choice;
mod control;
mod handshake;
mod messages;
mod packet;
mod protection;
mod receiver;
mod script;
mod sealed;
mod sender;
mod session;

pub use bench::{Change, Conn, Ending, FirstPn, Injection, Net, Outcome, Resume, Setup};
pub use campaign::{Campaign, DEFAULT_SEED, hex, run_one};
pub use choice::{End, Number, SuiteChoice, Text};
pub use control::{
    ClientMsgChoice, FrameCap, FrameInput, JsonSpoil, MsgInput, Payload, Piece, ServerMsgChoice,
    client_msg, control_frame, server_msg,
};
pub use handshake::{DatagramSetting, FirstDatagram, HandshakeInput, SuiteCode, handshake};
pub use messages::{Message, Reason};
pub use packet::{Datagram, FrameChoice, PacketChoice, PacketInput, Ranges, Top, udp_packet};
pub use protection::{NextPn, ReplayStep, Replays, SealChoice};
pub use receiver::{ReceiverOp, ReceiverScenario, transport_receiver, transport_receiver_ending};
pub use script::{FileName, Header, Name, Opening, Said, Session, Step, To, Version};
pub use sealed::Spoil;
pub use sender::{SenderOp, SenderScenario, transport_sender, transport_sender_ending};
pub use session::{server_session, server_stream};

use arbitrary::{Arbitrary, Unstructured};

/// A fuzz target: its name (the libFuzzer binary), how it runs a byte string, and how the
/// stable runner treats it.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Name of the target and of its `fuzz/fuzz_targets/NAME.rs`.
    pub name: &'static str,
    /// Runs one input, given as the bytes its typed input is built from; panics on a finding.
    pub run: fn(&[u8]),
    /// The typed input those bytes build, spelled out (for reports and regression tests).
    pub show: fn(&[u8]) -> String,
    /// Inputs the stable runner makes by default (a tenth of that in a debug build).
    pub cases: usize,
    /// Longest byte string the stable runner builds an input from.
    pub max_len: usize,
}

/// The typed input `data` builds, as libFuzzer's `fuzz_target!(|input: T| ...)` builds it
/// (the whole of `data`, the last field or list taking the rest); `None` for the few byte
/// strings that build none (libFuzzer skips those too).
pub fn typed<T: for<'a> Arbitrary<'a>>(data: &[u8]) -> Option<T> {
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}

/// Runs `target` on the input `data` builds, if it builds one.
fn run_typed<T: for<'a> Arbitrary<'a>>(data: &[u8], target: fn(&T)) {
    if let Some(input) = typed::<T>(data) {
        target(&input);
    }
}

/// The input `data` builds, spelled out.
fn show_typed<T: for<'a> Arbitrary<'a> + std::fmt::Debug>(data: &[u8]) -> String {
    match typed::<T>(data) {
        Some(input) => format!("{input:#?}"),
        None => "(no input)".into(),
    }
}

macro_rules! target {
    ($name:ident, $input:ty, $cases:expr, $max_len:expr) => {
        Target {
            name: stringify!($name),
            run: |data| run_typed::<$input>(data, $name),
            show: show_typed::<$input>,
            cases: $cases,
            max_len: $max_len,
        }
    };
}

/// Every target, in the order the docs list them.
pub const TARGETS: &[Target] = &[
    target!(control_frame, FrameInput, 1_000_000, 512),
    target!(client_msg, MsgInput<ClientMsgChoice>, 1_000_000, 512),
    target!(server_msg, MsgInput<ServerMsgChoice>, 600_000, 512),
    // Fewer than the other decoders: deriving the keys of a case costs most of it.
    target!(udp_packet, PacketInput, 400_000, 1500),
    target!(handshake, HandshakeInput, 300_000, 256),
    target!(transport_receiver, ReceiverScenario, 150_000, 1024),
    target!(transport_sender, SenderScenario, 150_000, 1024),
    target!(server_session, Session, 20_000, 2048),
];
