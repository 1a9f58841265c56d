//! The port-pool attack (issue 14, item 9), timed: attackers hold transfer ports with paused
//! flows and fill the queue, then an honest client asks for a file. Prints how long the honest
//! download waited for a port, against a real server with the default pool (16 ports) and
//! limits.
//!
//! Two attacks: from one address (two connections each asking for 8 transfers that pause at
//! once, and 8 more connections that only queue), where the per-address caps keep ports free;
//! and from eight addresses at once, enough to hold every port, where the honest download waits
//! for the server to take a port back from a flow paused longer than `--max-pause`.

use anyhow::{Context, bail};
use client::{Client, DownloadOptions, Event, Events, TransferState};
use std::time::{Duration, Instant};

/// Settings of the port-pool benchmark.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Honest downloads to time per attack.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The server's --max-pause, in seconds.
    #[arg(long, default_value_t = 30)]
    pub max_pause: u64,
}

/// One attack: `addresses` loopback addresses (127.0.0.2, ...), each with `holders`
/// connections asking for `per_holder` transfers that pause at once, plus `queuers`
/// connections asking for `per_holder` transfers each and never opening them.
struct Attack {
    name: &'static str,
    addresses: u8,
    holders: usize,
    queuers: usize,
    per_holder: usize,
}

/// Runs the benchmark and prints its table.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let attacks = [
        Attack {
            name: "one address: 2 holders + 8 queuers",
            addresses: 1,
            holders: 2,
            queuers: 8,
            per_holder: 8,
        },
        Attack {
            name: "8 addresses: 2 holders each",
            addresses: 8,
            holders: 2,
            queuers: 0,
            per_holder: 4,
        },
    ];
    println!(
        "\nport pool under attack: 16 ports, --max-pause {} s, {} honest downloads per attack",
        args.max_pause, args.rounds
    );
    println!("| attack | ports held by attackers | honest wait for a port (median, max) |");
    println!("|---|---|---|");
    for attack in &attacks {
        let (held, waits) = measure(attack, &args).await?;
        let mut sorted = waits.clone();
        sorted.sort();
        let median = sorted[sorted.len() / 2];
        let max = sorted[sorted.len() - 1];
        println!(
            "| {} | {held} | {:.3} s, {:.3} s |",
            attack.name,
            median.as_secs_f64(),
            max.as_secs_f64()
        );
    }
    Ok(())
}

/// Runs `attack` against a fresh server and times `args.rounds` honest downloads; returns the
/// ports the attackers held when the first honest request went out, and the waits.
async fn measure(attack: &Attack, args: &Args) -> anyhow::Result<(usize, Vec<Duration>)> {
    let files = tempfile::tempdir()?;
    // Big enough that a paused flow never finishes, small enough to write at once.
    std::fs::write(files.path().join("bait.bin"), vec![7u8; 64 << 20])?;
    std::fs::write(files.path().join("honest.bin"), vec![1u8; 1 << 20])?;
    let config = server::Config {
        max_pause: Duration::from_secs(args.max_pause),
        ..server::Config::local(files.path(), 16)
    };
    let server = server::Server::bind(config).await?.spawn()?;
    let port = server.addr().port();
    let addr = format!("127.0.0.1:{port}");
    let trust = client::Trust::pinned(server.fingerprint());
    let dest = tempfile::tempdir()?;
    let mut attackers = Vec::new();
    for a in 0..attack.addresses {
        let from = std::net::IpAddr::from([127, 0, 0, 2 + a]);
        for h in 0..attack.holders + attack.queuers {
            let name = format!("attacker-{a}-{h}");
            let (client, events) = Client::connect_from(&addr, &name, Some(from), &trust).await?;
            let pause = h < attack.holders;
            for i in 0..attack.per_holder {
                let opts = DownloadOptions {
                    dir: dest.path().join(&name),
                    save_as: Some(format!("bait-{i}.bin")),
                    // A paused flow from its first byte: it holds its port and moves nothing.
                    pause_at: pause.then_some(0.01),
                    ..DownloadOptions::default()
                };
                // Refusals (busy) are part of the attack's outcome.
                let _ = client.download("bait.bin", opts).await;
            }
            attackers.push((client, events));
        }
    }
    // Let the holders' flows open and pause.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = 16 - server.transfers().free_ports();
    let (honest, mut events) = Client::connect(&addr, "honest", &trust).await?;
    let mut waits = Vec::new();
    for round in 0..args.rounds {
        let opts = DownloadOptions {
            dir: dest.path().join("honest"),
            save_as: Some(format!("honest-{round}.bin")),
            ..DownloadOptions::default()
        };
        let asked = Instant::now();
        let id = match honest.download("honest.bin", opts).await {
            Ok(id) => id,
            Err(err) => bail!("the honest request was refused: {err} ({:?})", err.code()),
        };
        waits.push(wait_for_start(&mut events, id, asked).await?);
        drain_until_done(&mut events, id).await?;
    }
    drop(attackers);
    server.stop().await;
    Ok((held, waits))
}

/// Waits until transfer `id` starts moving data; returns how long after `asked` it did.
async fn wait_for_start(events: &mut Events, id: u64, asked: Instant) -> anyhow::Result<Duration> {
    loop {
        match next_of(events, id).await? {
            TransferState::Started { .. } => return Ok(asked.elapsed()),
            TransferState::Failed { error } => bail!("the honest download failed: {error}"),
            _ => {}
        }
    }
}

/// Waits until transfer `id` is done.
async fn drain_until_done(events: &mut Events, id: u64) -> anyhow::Result<()> {
    loop {
        match next_of(events, id).await? {
            TransferState::Done { .. } => return Ok(()),
            TransferState::Failed { error } => bail!("the honest download failed: {error}"),
            _ => {}
        }
    }
}

async fn next_of(events: &mut Events, id: u64) -> anyhow::Result<TransferState> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(120), events.recv())
            .await
            .context("no event for two minutes")?
            .context("the honest client was disconnected")?;
        if let Event::Transfer(t) = event
            && t.id == id
        {
            return Ok(t.state);
        }
    }
}
