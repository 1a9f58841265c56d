//! Runs exact-delivery scenarios over many seeds and prints any that fail.
//!
//! `cargo run --release -p netsim --example seeds -- 200`

use netsim::{FlowSpec, LinkConfig, Scenario, byte_at, run};
use std::time::Duration;
use transport::{Algorithm, Event};

fn main() {
    let seeds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let mut failures = 0;
    for seed in 0..seeds {
        let mut rng = netsim::Rng::new(seed);
        let rtt = Duration::from_millis(1 + rng.next_u64() % 400);
        let mut link = LinkConfig::new(1_000_000 + rng.next_u64() % 50_000_000, rtt / 2);
        link.loss = [0.0, 0.01, 0.05, 0.2, 0.5][(rng.next_u64() % 5) as usize];
        link.jitter = Duration::from_micros(rng.next_u64() % 5_000);
        link.reorder = rng.next_f64() * 0.1;
        link.reorder_delay = Duration::from_millis(rng.next_u64() % 20);
        link.duplicate = rng.next_f64() * 0.1;
        let size = [0, 1, 1425, 1426, 1427, 300_000, 2_000_000][(rng.next_u64() % 7) as usize];
        let mut flow = FlowSpec::new(size);
        flow.offset = if rng.chance(0.3) {
            rng.next_u64() % (size + 1)
        } else {
            0
        };
        if rng.chance(0.5) {
            flow.config.algorithm = Algorithm::Cubic;
        }
        if rng.chance(0.3) {
            flow.pause = Some((
                Duration::from_millis(rng.next_u64() % 3000),
                Duration::from_secs(5 + rng.next_u64() % 100),
            ));
        }
        let scenario = Scenario {
            forward: link,
            reverse: link,
            flows: vec![flow.clone()],
            seed,
            until: Duration::from_secs(3600),
        };
        let report = run(&scenario);
        let f = &report.flows[0];
        let last_byte = size.checked_sub(1).map(|i| byte_at(f.stream_seed, i));
        let want = Event::Finished {
            total: size,
            last_byte,
        };
        let ok = f.receiver_event.as_ref() == Some(&want)
            && f.contiguous == size
            && f.wrong_bytes == 0
            && f.written_below_offset == 0;
        if !ok {
            failures += 1;
            println!(
                "seed {seed}: size {size} offset {} loss {} rtt {rtt:?} {:?} -> receiver {:?} sender {:?} contiguous {} wrong {} below {} pause {:?} stats {:?} ended {:?} finished {:?}",
                flow.offset,
                link.loss,
                flow.config.algorithm,
                f.receiver_event,
                f.sender_event,
                f.contiguous,
                f.wrong_bytes,
                f.written_below_offset,
                flow.pause,
                f.sender_stats,
                report.ended_at,
                f.finished_at
            );
        }
    }
    println!("{failures} failures in {seeds} seeds");
}
