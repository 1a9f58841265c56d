//! A deterministic network simulator for the transport: virtual time, a seeded random number
//! generator, no threads and no sockets. Links have a rate, a delay, jitter, random and burst
//! loss, reordering, duplication and a drop-tail queue; [`run`] puts any number of transfers on
//! one bottleneck (a dumbbell) and reports goodput, RTT and exactness per flow.
#![forbid(unsafe_code)]

mod data;
mod link;
mod rng;
mod sim;

pub use data::{CheckingSink, PatternSource, byte_at};
pub use link::{BurstLoss, Link, LinkConfig};
pub use rng::Rng;
pub use sim::{FlowReport, FlowSpec, Report, Scenario, TIMELINE_STEP, jain, run};
