//! Every byte arrives exactly, whatever the network does to the packets.

mod common;

use common::{assert_exact, one_flow, run_one};
use netsim::{BurstLoss, FlowSpec};
use std::time::Duration;
use transport::Algorithm;
use transport::packet::{DATA_HEADER_LEN, HEADER_LEN};

const MB: u64 = 1_000_000;

fn exact_with(size: u64, tweak: impl FnOnce(&mut netsim::Scenario)) {
    let mut scenario = one_flow(FlowSpec::new(size));
    tweak(&mut scenario);
    let flow = run_one(&scenario);
    assert_exact(&flow, size);
}

fn exact_at_loss(loss: f64) {
    exact_with(2 * MB, |s| {
        s.forward.loss = loss;
        s.reverse.loss = loss;
    });
}

#[test]
fn exact_without_loss() {
    exact_at_loss(0.0);
}

#[test]
fn exact_at_1_percent_loss_both_ways() {
    exact_at_loss(0.01);
}

#[test]
fn exact_at_5_percent_loss_both_ways() {
    exact_at_loss(0.05);
}

#[test]
fn exact_at_20_percent_loss_both_ways() {
    exact_at_loss(0.20);
}

#[test]
fn exact_at_50_percent_loss_both_ways() {
    exact_at_loss(0.50);
}

#[test]
fn exact_with_cubic_at_5_percent_loss() {
    let mut flow = FlowSpec::new(MB);
    flow.config.algorithm = Algorithm::Cubic;
    let mut scenario = one_flow(flow);
    scenario.forward.loss = 0.05;
    scenario.reverse.loss = 0.05;
    assert_exact(&run_one(&scenario), MB);
}

#[test]
fn exact_under_burst_loss() {
    exact_with(2 * MB, |s| {
        let burst = Some(BurstLoss {
            enter_bad: 0.01,
            leave_bad: 0.2,
            bad_loss: 0.8,
        });
        s.forward.burst = burst;
        s.reverse.burst = burst;
    });
}

#[test]
fn exact_under_heavy_reordering() {
    exact_with(2 * MB, |s| {
        s.forward.reorder = 0.1;
        s.forward.reorder_delay = Duration::from_millis(8);
        s.reverse.reorder = 0.1;
        s.reverse.reorder_delay = Duration::from_millis(8);
    });
}

#[test]
fn exact_with_duplicated_packets() {
    exact_with(2 * MB, |s| {
        s.forward.duplicate = 0.2;
        s.reverse.duplicate = 0.2;
    });
}

#[test]
fn exact_with_jitter() {
    exact_with(2 * MB, |s| {
        s.forward.jitter = Duration::from_millis(10);
        s.reverse.jitter = Duration::from_millis(10);
    });
}

#[test]
fn exact_with_everything_at_once() {
    exact_with(2 * MB, |s| {
        for link in [&mut s.forward, &mut s.reverse] {
            link.loss = 0.03;
            link.jitter = Duration::from_millis(3);
            link.reorder = 0.05;
            link.reorder_delay = Duration::from_millis(5);
            link.duplicate = 0.05;
        }
    });
}

#[test]
fn exact_from_1_ms_to_600_ms_rtt() {
    for rtt_ms in [1, 10, 100, 300, 600] {
        exact_with(MB, |s| {
            let (forward, reverse) = common::links(20, Duration::from_millis(rtt_ms));
            s.forward = forward;
            s.reverse = reverse;
            s.forward.loss = 0.01;
        });
    }
}

#[test]
fn exact_for_sizes_around_one_datagram() {
    let payload = (FlowSpec::new(0).config.datagram() - HEADER_LEN - DATA_HEADER_LEN) as u64;
    for size in [0, 1, payload - 1, payload, payload + 1, 3 * payload + 1] {
        exact_with(size, |_| {});
        exact_with(size, |s| s.forward.loss = 0.3);
    }
}

#[test]
fn exact_for_sizes_around_one_large_datagram() {
    let mut flow = FlowSpec::new(0);
    flow.config.max_datagram = transport::MAX_DATAGRAM;
    let payload = (transport::MAX_DATAGRAM - HEADER_LEN - DATA_HEADER_LEN) as u64;
    for size in [payload - 1, payload, payload + 1, 20 * MB] {
        let mut scenario = one_flow(FlowSpec {
            size,
            ..flow.clone()
        });
        scenario.forward.queue_bytes = 4 * MB;
        assert_exact(&run_one(&scenario), size);
    }
}

#[test]
fn exact_for_a_multi_megabyte_stream() {
    exact_with(50 * MB, |s| s.forward.loss = 0.01);
}

#[test]
fn resuming_from_an_offset_sends_only_the_rest() {
    let size = 3 * MB;
    let mut flow = FlowSpec::new(size);
    flow.offset = MB + 17;
    let mut scenario = one_flow(flow);
    scenario.forward.loss = 0.02;
    let report = run_one(&scenario);
    assert_exact(&report, size);
    // The first megabyte is never sent; the rest once, plus retransmissions.
    let s = report.sender_stats;
    let resent = s.packets_retransmitted * 1500;
    assert!(s.bytes_sent <= size - MB - 17 + resent, "{s:?}");
}

#[test]
fn a_long_pause_costs_next_to_nothing_and_resume_completes() {
    let size = 20 * MB;
    let mut flow = FlowSpec::new(size);
    // Pause two seconds in, for an hour of virtual time.
    flow.pause = Some((Duration::from_secs(2), Duration::from_secs(3602)));
    let mut scenario = one_flow(flow);
    scenario.until = Duration::from_secs(4000);
    scenario.forward.loss = 0.01;
    scenario.reverse.loss = 0.01;
    let report = run_one(&scenario);
    assert_exact(&report, size);
    // What was in flight drains; after that only one 18-byte PING answers each keepalive
    // (every 5 s): about 720 in the hour, a few kilobytes.
    let keepalives = 3600 / 5;
    assert!(
        report.sent_while_paused < keepalives + 100,
        "sent {} while paused",
        report.sent_while_paused
    );
    let at_pause = report.timeline[20];
    let before_resume = report.timeline[36_010];
    assert!(at_pause < size && before_resume < size, "paused too late");
    assert!(
        report
            .finished_at
            .is_some_and(|t| t > Duration::from_secs(3602))
    );
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let mut scenario = one_flow(FlowSpec::new(MB));
    scenario.forward.loss = 0.05;
    let (a, b) = (run_one(&scenario), run_one(&scenario));
    assert_eq!(a.timeline, b.timeline);
    assert_eq!(a.sender_stats, b.sender_stats);
}

#[test]
fn a_peer_that_never_hears_back_ends_in_idle_timeout_on_both_sides() {
    let mut scenario = one_flow(FlowSpec::new(MB));
    scenario.forward.loss = 1.0; // the sender's packets never arrive
    let report = netsim::run(&scenario);
    let flow = &report.flows[0];
    let idle = transport::Event::Aborted {
        reason: transport::AbortReason::IdleTimeout,
        by_peer: false,
    };
    assert_eq!(flow.receiver_event.as_ref(), Some(&idle));
    assert_eq!(flow.sender_event.as_ref(), Some(&idle));
    assert_eq!(
        flow.sender_stats.bytes_sent, 0,
        "no data to an address that never acked"
    );
    assert!(
        report.ended_at < Duration::from_secs(90),
        "ended at {:?}",
        report.ended_at
    );
}
