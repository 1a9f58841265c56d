//! messenger's reliable UDP transport: the protocol of `transport-proto` (re-exported here
//! whole) run on tokio sockets by [`driver`], with batched UDP I/O (GSO and GRO) in `udp`.
//!
//! The protocol crate is sans-IO; everything that touches the outside world (sockets, the
//! clock, randomness, and the threads that read and write the stream: the server's `Source`,
//! the client's `Sink`) lives in this crate or in its callers.
#![forbid(unsafe_code)]

pub mod driver;
mod storage;
mod udp;

pub use transport_proto::*;

/// A fresh, unguessable transfer secret: 256 bits from a cryptographically secure generator
/// seeded by the operating system (rand's `ThreadRng`).
pub fn random_secret() -> Secret {
    Secret(rand::random())
}
