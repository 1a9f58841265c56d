//! messenger's benchmarks: load generators and comparisons with the tools people would use
//! instead, measured on this machine in the same run, printed as tables.
//!
//! The binary (`cargo run --release -p bench -- --help`) runs them one at a time or all;
//! `cargo bench -p bench` runs them all with quinn added to the download comparison (quinn is
//! a dev-dependency of this crate, never a dependency of the product).

pub mod chat;
pub mod cpu;
pub mod download;
pub mod history;
pub mod hoard;
pub mod ports;
pub mod store;

use clap::Parser;
use download::Contender;

/// Benchmarks; each prints a table of medians.
#[derive(Debug, Parser)]
#[command(name = "bench", about)]
enum Cli {
    /// Loopback download of one big file: messenger (UDP transport) vs TCP (and quinn, under
    /// `cargo bench`).
    Download(download::Args),
    /// Chat fan-out: N clients, some sending to everyone; deliveries/s, latency, server RSS/CPU.
    Chat(chat::Args),
    /// Memory attack: clients asking for a big folder's file list without ever reading;
    /// server RSS before, at peak and after.
    Hoard(hoard::Args),
    /// The port-pool attack: how long an honest download waits for a UDP port while attackers
    /// hold ports with paused flows and fill the queue (not part of `all`: it waits out
    /// `--max-pause`).
    Ports(ports::Args),
    /// A login storm: 1,000 registered accounts log in at once (Argon2id each) while 100
    /// guests chat; how long the logins took and the chat's latency before and during (not
    /// part of `all`: it takes over a minute).
    Logins(chat::logins::Args),
    /// The store's write throughput: concurrent tasks storing messages through the server's
    /// writer thread into a database on disk; messages/s and write latency (not part of `all`).
    Store(store::Args),
    /// History pages from a database of 10 million messages (built first, or reused with
    /// `--keep`); latency of the latest, deep and private pages (not part of `all`: it
    /// writes about 1.2 GB).
    History(history::Args),
    /// Everything, with the default settings (the default).
    All,
}

/// Parses the command line (`--bench`, which `cargo bench` adds, is ignored; no subcommand
/// means `all`) and runs what it asks for, with `extra` contenders in download comparisons.
pub fn main_with(extra: &dyn Fn() -> Vec<Box<dyn Contender>>) -> anyhow::Result<()> {
    // RUST_LOG=info shows, for instance, each transfer's losses and retransmissions.
    logging::to_stderr("warn");
    let mut args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if args.len() < 2 {
        args.push("all".into());
    }
    match Cli::parse_from(args) {
        Cli::Download(args) => {
            let mut contenders = download::standard_contenders();
            contenders.extend(extra());
            download::run(&args, contenders)
        }
        Cli::Chat(args) => tokio::runtime::Runtime::new()?.block_on(chat::run(args)),
        Cli::Hoard(args) => tokio::runtime::Runtime::new()?.block_on(hoard::run(args)),
        Cli::Ports(args) => tokio::runtime::Runtime::new()?.block_on(ports::run(args)),
        Cli::Logins(args) => tokio::runtime::Runtime::new()?.block_on(chat::logins::run(args)),
        Cli::Store(args) => tokio::runtime::Runtime::new()?.block_on(store::run(args)),
        Cli::History(args) => tokio::runtime::Runtime::new()?.block_on(history::run(args)),
        Cli::All => all(extra),
    }
}

/// Runs every benchmark with its default settings and prints each table. `extra` adds
/// contenders to the download comparisons.
pub fn all(extra: &dyn Fn() -> Vec<Box<dyn Contender>>) -> anyhow::Result<()> {
    for datagram in [transport::MAX_DATAGRAM, transport::SAFE_DATAGRAM] {
        let args = download::Args {
            size_mib: 1024,
            rounds: 5,
            dir: None,
            datagram,
            only: None,
        };
        let mut contenders = download::standard_contenders();
        contenders.extend(extra());
        download::run(&args, contenders)?;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    for flags in [
        &[][..],
        &["--rate", "25"],
        &["--clients", "10000", "--senders", "0", "--rate", "0"],
    ] {
        let args = ChatFlags::parse_from(std::iter::once("chat").chain(flags.iter().copied()));
        runtime.block_on(chat::run(args.args))?;
    }
    Ok(())
}

/// The chat benchmark's settings from command-line flags.
#[derive(clap::Parser)]
struct ChatFlags {
    #[command(flatten)]
    args: chat::Args,
}
