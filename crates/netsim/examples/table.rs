//! Prints the simulator's table: goodput, fairness and RTT inflation per scenario and
//! controller, on a 100 Mbit/s bottleneck with 40 ms RTT and a one-BDP queue.
//!
//! `cargo run --release -p netsim --example table`

use netsim::{FlowSpec, LinkConfig, Scenario, jain, run};
use std::time::{Duration, Instant};
use transport::{Algorithm, Config};

const RATE: u64 = 100_000_000;

fn scenario(flows: usize, loss: f64, algorithm: Algorithm, secs: u64) -> Scenario {
    let mut forward = LinkConfig::new(RATE, Duration::from_millis(20));
    forward.loss = loss;
    let config = Config {
        algorithm,
        ..Config::default()
    };
    Scenario {
        forward,
        reverse: LinkConfig::new(RATE, Duration::from_millis(20)),
        flows: (0..flows)
            .map(|_| FlowSpec {
                config: config.clone(),
                ..FlowSpec::new(u64::MAX / 4)
            })
            .collect(),
        seed: 1,
        until: Duration::from_secs(secs),
    }
}

fn main() {
    println!(
        "| scenario | controller | goodput (% of link) | Jain | mean RTT / min RTT | lost | sim time |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (flows, loss) in [
        (1, 0.0),
        (1, 0.01),
        (1, 0.05),
        (1, 0.2),
        (2, 0.0),
        (4, 0.0),
        (8, 0.0),
        (4, 0.01),
    ] {
        for algorithm in [Algorithm::Bbr, Algorithm::Cubic] {
            let secs = 30;
            let wall = Instant::now();
            let report = run(&scenario(flows, loss, algorithm, secs));
            let wall = wall.elapsed();
            let end = Duration::from_secs(secs);
            let rates: Vec<f64> = report
                .flows
                .iter()
                .map(|f| f.goodput_between(Duration::ZERO, end))
                .collect();
            let fair: Vec<f64> = report
                .flows
                .iter()
                .map(|f| f.goodput_between(Duration::from_secs(5), end))
                .collect();
            let total: f64 = rates.iter().sum();
            let inflation: f64 = report
                .flows
                .iter()
                .map(|f| {
                    f.mean_rtt().as_secs_f64() / f.sender_stats.min_rtt.as_secs_f64().max(1e-9)
                })
                .sum::<f64>()
                / flows as f64;
            let lost: u64 = report
                .flows
                .iter()
                .map(|f| f.sender_stats.packets_lost)
                .sum();
            println!(
                "| {flows} flow(s), {:.0} % loss | {algorithm:?} | {:.1} | {:.3} | {:.2} | {lost} | {:.2} s |",
                loss * 100.0,
                total / RATE as f64 * 100.0,
                jain(&fair),
                inflation,
                wall.as_secs_f64()
            );
        }
    }
}
