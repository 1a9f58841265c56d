//! Prints the simulator's table: goodput, fairness and RTT inflation per scenario and
//! controller, on a 100 Mbit/s bottleneck with 40 ms RTT and a one-BDP drop-tail queue.
//!
//! `cargo run --release -p netsim --example table`

use netsim::{BurstLoss, FlowSpec, LinkConfig, Report, Scenario, jain, run};
use std::time::{Duration, Instant};
use transport::{Algorithm, Config};

const RATE: f64 = 100e6;
const SECS: u64 = 30;

struct Case {
    name: &'static str,
    flows: usize,
    loss: f64,
    burst: bool,
    late: bool,
}

fn scenario(case: &Case, algorithm: Algorithm) -> Scenario {
    let mut forward = LinkConfig::new(RATE as u64, Duration::from_millis(20));
    forward.loss = case.loss;
    if case.burst {
        forward.burst = Some(BurstLoss {
            enter_bad: 0.002,
            leave_bad: 0.2,
            bad_loss: 0.5,
        });
    }
    let config = Config {
        algorithm,
        ..FlowSpec::new(0).config
    };
    let flows = (0..case.flows)
        .map(|i| FlowSpec {
            config: config.clone(),
            start: if case.late && i == case.flows - 1 {
                Duration::from_secs(10)
            } else {
                Duration::ZERO
            },
            ..FlowSpec::new(1 << 40)
        })
        .collect();
    Scenario {
        forward,
        reverse: LinkConfig::new(RATE as u64, Duration::from_millis(20)),
        flows,
        seed: 7, // the seed of tests/performance.rs
        until: Duration::from_secs(SECS),
    }
}

fn row(case: &Case, algorithm: Algorithm, report: &Report, wall: Duration) {
    let end = Duration::from_secs(SECS);
    let total: f64 = report
        .flows
        .iter()
        .map(|f| f.goodput_between(Duration::ZERO, end))
        .sum();
    let from = Duration::from_secs(if case.late { 15 } else { 5 });
    let rates: Vec<f64> = report
        .flows
        .iter()
        .map(|f| f.goodput_between(from, end))
        .collect();
    let inflation = report
        .flows
        .iter()
        .map(|f| f.mean_rtt().as_secs_f64() / f.sender_stats.min_rtt.as_secs_f64().max(1e-9))
        .sum::<f64>()
        / report.flows.len() as f64;
    let lost: u64 = report
        .flows
        .iter()
        .map(|f| f.sender_stats.packets_lost)
        .sum();
    let late = if case.late {
        let last = &report.flows[case.flows - 1];
        let share = last.goodput_between(Duration::from_secs(15), Duration::from_secs(20)) / RATE;
        format!("{:.0} %", share * 100.0 * case.flows as f64)
    } else {
        "-".into()
    };
    println!(
        "| {} | {algorithm:?} | {:.1} | {:.3} | {:.2} | {late} | {lost} | {} | {:.2} s |",
        case.name,
        total / RATE * 100.0,
        jain(&rates),
        inflation,
        report.queue_drops,
        wall.as_secs_f64()
    );
}

fn main() {
    let cases = [
        Case {
            name: "1 flow, no loss",
            flows: 1,
            loss: 0.0,
            burst: false,
            late: false,
        },
        Case {
            name: "1 flow, 1 % loss",
            flows: 1,
            loss: 0.01,
            burst: false,
            late: false,
        },
        Case {
            name: "1 flow, 5 % loss",
            flows: 1,
            loss: 0.05,
            burst: false,
            late: false,
        },
        Case {
            name: "1 flow, 20 % loss",
            flows: 1,
            loss: 0.20,
            burst: false,
            late: false,
        },
        Case {
            name: "1 flow, burst loss",
            flows: 1,
            loss: 0.0,
            burst: true,
            late: false,
        },
        Case {
            name: "2 flows",
            flows: 2,
            loss: 0.0,
            burst: false,
            late: false,
        },
        Case {
            name: "4 flows",
            flows: 4,
            loss: 0.0,
            burst: false,
            late: false,
        },
        Case {
            name: "8 flows",
            flows: 8,
            loss: 0.0,
            burst: false,
            late: false,
        },
        Case {
            name: "4 flows, 1 % loss",
            flows: 4,
            loss: 0.01,
            burst: false,
            late: false,
        },
        Case {
            name: "2 flows, 2nd at 10 s",
            flows: 2,
            loss: 0.0,
            burst: false,
            late: true,
        },
    ];
    println!(
        "| scenario | controller | goodput % of link (all flows) | Jain | mean RTT / min RTT \
         | late flow, 5-10 s after start, % of fair share | packets lost | queue drops | wall time to simulate |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for case in &cases {
        for algorithm in [Algorithm::Bbr, Algorithm::Cubic] {
            let wall = Instant::now();
            let report = run(&scenario(case, algorithm));
            row(case, algorithm, &report, wall.elapsed());
        }
    }
    mixed();
    minute();
}

/// How fast the simulator runs: a minute of one flow at 100 Mbit/s with 1 % loss.
fn minute() {
    let case = Case {
        name: "",
        flows: 1,
        loss: 0.01,
        burst: false,
        late: false,
    };
    let mut scenario = scenario(&case, Algorithm::Bbr);
    scenario.until = Duration::from_secs(60);
    let (cpu, wall) = (thread_cpu_time(), Instant::now());
    let report = run(&scenario);
    let (cpu, wall) = (thread_cpu_time().saturating_sub(cpu), wall.elapsed());
    let goodput = report.flows[0].goodput_between(Duration::ZERO, scenario.until) / RATE;
    println!(
        "a minute at 100 Mbit/s with 1 % loss ({:.1} % goodput): simulated in {:.2} s of CPU \
         ({:.2} s wall)",
        goodput * 100.0,
        cpu.as_secs_f64(),
        wall.as_secs_f64()
    );
}

/// CPU time this thread has used (Linux only; zero elsewhere).
fn thread_cpu_time() -> Duration {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::resource::{UsageWho, getrusage};
        use nix::sys::time::TimeValLike;
        if let Ok(usage) = getrusage(UsageWho::RUSAGE_THREAD) {
            let micros =
                usage.user_time().num_microseconds() + usage.system_time().num_microseconds();
            return Duration::from_micros(u64::try_from(micros).unwrap_or(0));
        }
    }
    Duration::ZERO
}

/// One flow of each controller on the same bottleneck: what the loss-based one keeps.
fn mixed() {
    let case = Case {
        name: "",
        flows: 2,
        loss: 0.0,
        burst: false,
        late: false,
    };
    let mut scenario = scenario(&case, Algorithm::Bbr);
    scenario.flows[1].config.algorithm = Algorithm::Cubic;
    let report = run(&scenario);
    let rate = |i: usize| {
        report.flows[i].goodput_between(Duration::from_secs(5), Duration::from_secs(SECS)) / 1e6
    };
    let (bbr, cubic) = (rate(0), rate(1));
    println!(
        "\none Bbr and one Cubic flow, 5-30 s: Bbr {bbr:.1} Mbit/s, Cubic {cubic:.1} Mbit/s \
         (Cubic keeps {:.0} %)",
        100.0 * cubic / (bbr + cubic)
    );
}
