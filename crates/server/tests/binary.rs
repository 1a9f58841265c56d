//! The `messenger-server` binary as an operator runs it: flags it refuses, and why. (The
//! binary serving real clients is tested end to end, in the `e2e` crate.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn a_bad_port_range_is_refused_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_messenger-server"))
        .args(["--udp-ports", "9000-8000"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("LO <= HI"), "{stderr}");
}

#[test]
fn a_max_frame_below_the_minimum_is_refused_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_messenger-server"))
        .args(["--max-frame", "1000"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--max-frame") && stderr.contains("65536"),
        "{stderr}"
    );
}
