//! The fuzz targets on stable Rust: each runs from a few thousand to a million inputs, built
//! by `arbitrary` from bytes of a seeded generator (`FUZZ_SCALE` multiplies the count,
//! `FUZZ_SEED` picks other inputs). Files libFuzzer left in `fuzz/corpus/TARGET/` are run
//! first. A failing input is saved under `target/fuzz-failures/` and printed in hex, with the
//! typed input it builds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

fn fuzz(name: &str) {
    let target = fuzzing::TARGETS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no target {name}"));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name);
    let inputs = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok());
    let started = Instant::now();
    let cases = fuzzing::Campaign::new(target).with_inputs(inputs).run();
    eprintln!("{name}: {cases} inputs in {:.1?}", started.elapsed());
}

#[test]
fn control_frame() {
    fuzz("control_frame");
}

#[test]
fn client_msg() {
    fuzz("client_msg");
}

#[test]
fn server_msg() {
    fuzz("server_msg");
}

#[test]
fn udp_packet() {
    fuzz("udp_packet");
}

#[test]
fn handshake() {
    fuzz("handshake");
}

#[test]
fn transport_receiver() {
    fuzz("transport_receiver");
}

#[test]
fn transport_sender() {
    fuzz("transport_sender");
}

#[test]
fn server_session() {
    fuzz("server_session");
}
