//! `bench`: measures messenger against the tools people would use instead, on this machine,
//! in the same run, and prints a table.
//!
//! `cargo run --release -p bench -- chat` loads a real server with many clients;
//! `cargo run --release -p bench -- download` compares a loopback download through our UDP
//! transport with a plain TCP copy using the same file I/O.

mod chat;
mod download;

use clap::Parser;

/// Benchmarks; each prints a table of medians.
#[derive(Debug, Parser)]
#[command(about)]
enum Bench {
    /// Loopback download of one big file: messenger (UDP transport) vs plain TCP.
    Download(download::Args),
    /// Chat fan-out: N clients, some sending to everyone; deliveries/s, latency, server RSS/CPU.
    Chat(chat::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Bench::parse() {
        Bench::Download(args) => download::run(args).await,
        Bench::Chat(args) => chat::run(args).await,
    }
}
