//! Shared helpers: links, one-flow runs and the exactness check.
#![allow(dead_code, clippy::expect_used)]

use netsim::{FlowReport, FlowSpec, LinkConfig, Scenario, byte_at, run};
use std::time::Duration;
use transport::Event;

/// Both directions of a clean link of `mbit` Mbit/s and `rtt`.
pub fn links(mbit: u64, rtt: Duration) -> (LinkConfig, LinkConfig) {
    let link = LinkConfig::new(mbit * 1_000_000, rtt / 2);
    (link, link)
}

/// A one-flow scenario on a 20 Mbit/s, 30 ms link, seed 1, at most ten virtual minutes.
pub fn one_flow(flow: FlowSpec) -> Scenario {
    let (forward, reverse) = links(20, Duration::from_millis(30));
    Scenario {
        forward,
        reverse,
        flows: vec![flow],
        seed: 1,
        until: Duration::from_secs(600),
    }
}

/// Runs a one-flow scenario and returns its flow.
pub fn run_one(scenario: &Scenario) -> FlowReport {
    let report = run(scenario);
    report.flows.into_iter().next().expect("one flow")
}

/// Asserts the flow finished on both ends with every byte from `offset` to `size` exactly as
/// the sender had it, and nothing written below `offset`.
pub fn assert_exact(flow: &FlowReport, size: u64) {
    let last_byte = size.checked_sub(1).map(|i| byte_at(flow.stream_seed, i));
    let finished = Event::Finished {
        total: size,
        last_byte,
    };
    assert_eq!(
        flow.receiver_event.as_ref(),
        Some(&finished),
        "receiver: {flow:#?}"
    );
    assert_eq!(flow.sender_event.as_ref(), Some(&finished), "sender");
    assert_eq!(flow.contiguous, size);
    assert_eq!(flow.wrong_bytes, 0, "corrupted bytes");
    assert_eq!(flow.written_below_offset, 0);
}
