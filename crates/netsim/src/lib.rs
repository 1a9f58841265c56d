//! A deterministic network simulator for the transport: virtual time, a seeded random number
//! generator, no threads and no sockets. Two ways to put a transfer on a network, both on the
//! one [`Transfer`] type that runs its two ends as the driver does:
//!
//! - [`run`]: seeded links with a rate, a delay, jitter, random and burst loss, reordering,
//!   duplication and a drop-tail queue, any number of transfers on one bottleneck (a
//!   dumbbell), reporting goodput, RTT and exactness per flow;
//! - [`Pair`]: one transfer whose network its caller steps by hand, datagram by datagram (the
//!   fuzz targets' bench).
#![forbid(unsafe_code)]

mod data;
mod link;
mod pair;
mod rng;
mod sim;
mod transfer;

pub use data::{CheckingSink, PatternSource, byte_at};
pub use link::{BurstLoss, Link, LinkConfig};
pub use pair::{Observer, Pair};
pub use rng::Rng;
pub use sim::{FlowReport, FlowSpec, Report, Scenario, TIMELINE_STEP, jain, run};
pub use transfer::{Side, Transfer};
