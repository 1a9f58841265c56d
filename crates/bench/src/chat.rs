//! Chat load: N clients joined to a real `messenger-server` process; some send to everyone at a
//! set rate; every receiver measures end-to-end latency. Reports deliveries per second, latency
//! percentiles and the server's memory and CPU (from /proc).

use anyhow::{Context, bail};
use client::{Client, Event};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Options of the chat benchmark.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Clients joined.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Of those, how many send.
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Messages per second each sender sends to everyone (0 = only measure idle clients).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `messenger-server` (built beside this binary) on a free port, with limits raised for
/// the load.
fn start_server(clients: usize) -> anyhow::Result<Server> {
    let exe = std::env::current_exe()?.with_file_name("messenger-server");
    if !exe.exists() {
        bail!(
            "{} not found: run `cargo build --release` first",
            exe.display()
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let files = tempfile::tempdir()?;
    let child = Command::new(exe)
        .args([
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--udp-ports",
            &format!("{udp}-{udp}"),
        ])
        .args([
            "--max-clients",
            &(clients + 10).to_string(),
            "--max-pending",
            "4096",
        ])
        .args([
            "--rate-limit",
            "100000",
            "--rate-burst",
            "100000",
            "--queue-limit",
            "1000",
        ])
        .arg("--files")
        .arg(files.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    std::mem::forget(files); // lives as long as the server process
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..200 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return Ok(Server { child, addr });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("the server did not start")
}

/// Resident memory (bytes) and CPU time (seconds) of a process, from /proc.
fn usage(pid: u32) -> anyhow::Result<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("bad stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    Ok((rss_kb * 1024, ticks as f64 / 100.0))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let server = start_server(args.clients)?;
    let pid = server.child.id();
    let (rss_before, _) = usage(pid)?;
    eprintln!("joining {} clients", args.clients);
    let epoch = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let mut clients = Vec::new();
    let mut readers = Vec::new();
    for i in 0..args.clients {
        let (client, mut events) = Client::connect(&server.addr, &format!("u{i}"))
            .await
            .with_context(|| format!("client {i} could not join"))?;
        clients.push(client);
        let delivered = Arc::clone(&delivered);
        let latencies = Arc::clone(&latencies);
        readers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(event) = events.recv().await {
                if let Event::Message { text, .. } = &event {
                    delivered.fetch_add(1, Ordering::Relaxed);
                    if let Some(sent) = text.split(' ').next().and_then(|t| t.parse::<u64>().ok()) {
                        let now = epoch.elapsed().as_micros() as u64;
                        mine.push(now.saturating_sub(sent));
                    }
                }
                if let Event::Disconnected { .. } = event {
                    break;
                }
            }
            latencies.lock().await.extend(mine);
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_idle, cpu_idle) = usage(pid)?;
    println!("| clients | server RSS idle | RSS per client |");
    println!("|---|---|---|");
    println!(
        "| {} | {:.1} MiB | {:.1} KiB |",
        args.clients,
        rss_idle as f64 / 1048576.0,
        rss_idle.saturating_sub(rss_before) as f64 / 1024.0 / args.clients as f64
    );
    if args.rate > 0.0 && args.senders > 0 {
        delivered.store(0, Ordering::Relaxed);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(args.seconds);
        let mut senders = Vec::new();
        for client in clients.iter().take(args.senders) {
            let client = client.clone();
            let period = Duration::from_secs_f64(1.0 / args.rate);
            senders.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                while Instant::now() < deadline {
                    tick.tick().await;
                    let stamp = epoch.elapsed().as_micros();
                    if client.send_all(format!("{stamp} load")).await.is_err() {
                        break;
                    }
                }
            }));
        }
        for s in senders {
            let _ = s.await;
        }
        // Let the last messages arrive.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let elapsed = started.elapsed().as_secs_f64();
        let (rss_busy, cpu_busy) = usage(pid)?;
        let count = delivered.load(Ordering::Relaxed);
        for c in &clients {
            let _ = c.quit().await;
        }
        for r in readers {
            let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
        }
        let mut lat = latencies.lock().await.clone();
        lat.sort_unstable();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 - 1.0) * p) as usize)
                .copied()
                .unwrap_or(0) as f64
                / 1000.0
        };
        println!();
        println!(
            "| clients | senders x rate | deliveries/s | p50 ms | p99 ms | max ms | server CPU | server RSS |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        println!(
            "| {} | {} x {}/s | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} % | {:.1} MiB |",
            args.clients,
            args.senders,
            args.rate,
            count as f64 / elapsed,
            pct(0.5),
            pct(0.99),
            pct(1.0),
            (cpu_busy - cpu_idle) / elapsed * 100.0,
            rss_busy as f64 / 1048576.0
        );
    }
    Ok(())
}
