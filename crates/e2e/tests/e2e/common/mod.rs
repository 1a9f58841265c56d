//! The harness of the end-to-end tests: test-support's, with the server's binary as built in
//! this crate.
#![allow(dead_code, unused_imports)]

pub use test_support::*;

/// Starts the `messenger-server` binary (built here as `e2e-messenger-server`), as
/// [`test_support::spawn_server`] does.
pub fn spawn_server(files: &std::path::Path, args: &[&str]) -> ServerProcess {
    test_support::spawn_server(env!("CARGO_BIN_EXE_e2e-messenger-server"), files, args)
}
