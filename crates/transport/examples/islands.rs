//! The islands attack, timed: a sender that sends one byte at every other offset, so that
//! every packet leaves a hole. Prints what the receiver pays per packet as the holes grow, and
//! how many islands it keeps.
//!
//! `cargo run --release -p transport --example islands`

use std::time::Instant;
use transport::packet::{self, Frame, Packet};
use transport::{Config, Keys, Receiver, Secret};

fn main() {
    // A bound below the attack's size, so that both sides of it show.
    let config = Config {
        max_islands: 100_000,
        ..Config::default()
    };
    let t0 = Instant::now();
    let secret = Secret([1; 32]);
    let mut rx = Receiver::new(t0, 9, &secret, 0, config.clone());
    let mut sink = Vec::new();
    // The attacker is the sender: it has the keys (a server attacking its client).
    let mut keys = Keys::for_sender(&secret);
    keys.set_suite(config.suite);
    let mut buf = vec![0u8; 2048];
    let mut out = vec![0u8; 65_536];
    let packets: u64 = 200_000;
    let step = 20_000;
    println!("packets     kept  refused  ns/packet (last {step})");
    let mut started = Instant::now();
    for i in 0..packets {
        let n = packet::encode(
            &Packet {
                conn_id: 9,
                pn: i,
                frame: Frame::Data {
                    offset: 2 * i + 1,
                    payload: &[7],
                },
            },
            &mut buf,
        )
        .unwrap_or(0);
        let n = keys.seal(&mut buf, n).unwrap_or(0);
        rx.handle_datagram(t0, &mut buf[..n]);
        let _ = rx.write_to(t0, &mut sink); // a Vec never fails
        while rx.poll_transmit(t0, &mut out).is_some() {}
        if (i + 1) % step == 0 {
            let per = started.elapsed().as_nanos() / u128::from(step);
            let stats = rx.stats();
            println!(
                "{:>7}  {:>7}  {:>7}  {per:>9}",
                i + 1,
                stats.packets_received - stats.islands_refused,
                stats.islands_refused,
            );
            started = Instant::now();
        }
    }
}
