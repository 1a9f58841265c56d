//! The harness of messenger's tests, in one place: a real server in the test's process
//! ([`TestServer`], feature `server`) or as the `messenger-server` binary ([`spawn_server`]),
//! servers that lie ([`fake_server`]), clients that speak the protocol by hand ([`RawClient`]),
//! test files, and the memory of a process. Only tests depend on it.
//!
//! The server and the client library are optional (features `server` and `client`), so that
//! each crate's own tests build only what they test: the client's tests need no server, the
//! server's no client; the end-to-end tests (crate `e2e`) take both.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod data;
#[cfg(feature = "client")]
mod events;
pub mod fake_server;
pub mod identity;
pub mod process;
mod raw;
#[cfg(feature = "server")]
mod server;

pub use data::{content, files_under, make_file};
#[cfg(feature = "client")]
pub use events::*;
pub use raw::{RawClient, TlsStream, is_bad_request, tls_acceptor, tls_connect, tls_connector};
#[cfg(feature = "server")]
pub use server::*;

use std::time::Duration;

/// How long a test waits for an answer or an event before it fails.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a transfer may go without an event.
pub const TRANSFER_WAIT: Duration = Duration::from_secs(60);

/// Waits (a generous while: 30 s) until `cond` holds; fails naming `what` otherwise.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
