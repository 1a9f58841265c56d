//! The memory attack of issue 14 (item 8) against a real `messenger-server` with its default
//! limits: many clients each ask for the file list of a big folder again and again and never
//! read the answers. Prints the server's resident memory before, at its peak during the attack
//! and after the attackers left, and the CPU time the attack cost.

use anyhow::{Context, bail};
use clap::Parser;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wire::ClientMsg;

/// The attack's settings.
#[derive(Debug, Clone, Parser)]
pub struct Args {
    /// Attacking connections.
    #[arg(long, default_value_t = 40)]
    pub clients: usize,
    /// `list_files` requests each one sends without reading.
    #[arg(long, default_value_t = 95)]
    pub requests: usize,
    /// Files in the shared folder.
    #[arg(long, default_value_t = 2000)]
    pub files: usize,
    /// Seconds the attackers stay connected.
    #[arg(long, default_value_t = 5)]
    pub hold_secs: u64,
}

/// A server process that is killed when this is dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the attack once and prints what the server's memory did.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for i in 0..args.files {
        std::fs::write(
            dir.path().join(format!("shared-file-{i:05}.bin")),
            vec![0u8; i % 4096],
        )?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let exe = std::env::current_exe()?.with_file_name("messenger-server");
    if !exe.exists() {
        bail!(
            "{} not found: run `cargo build --release` first",
            exe.display()
        );
    }
    // Its identity is made beforehand (outside the shared folder), so its key is known.
    let data = tempfile::tempdir()?;
    let identity = server::Identity::load(&server::TlsIdentity::SelfSigned, data.path())?;
    let trust = client::Trust::pinned(identity.fingerprint());
    // Default limits: the attack is against the server as it ships.
    let server = Server(
        Command::new(exe)
            .arg("--data-dir")
            .arg(data.path())
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--udp-ports", &format!("{udp}-{udp}")])
            .arg("--files")
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?,
    );
    let pid = server.0.id();
    let addr = format!("127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..250 {
        if TcpStream::connect(&addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !up {
        bail!("the server did not start");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss_before, cpu_before) = crate::chat::usage(pid)?;

    let mut attack = Vec::new();
    for i in 0..args.requests {
        let ask = ClientMsg::ListFiles {
            req: Some(i as u64),
            after: None,
            limit: None,
        };
        attack.extend_from_slice(&ask.to_frame());
    }
    let mut attackers = Vec::new();
    for i in 0..args.clients {
        let (mut stream, _) = client::connect_tls(&addr, &trust).await?;
        let hello = ClientMsg::hello(wire::PROTOCOL_VERSION, format!("hoarder{i}"));
        stream.write_all(&hello.to_frame()).await?;
        stream.flush().await?;
        // Written from a task of its own: a server that stops reading must not stall us.
        let attack = attack.clone();
        attackers.push(tokio::spawn(async move {
            let _ = stream.write_all(&attack).await;
            let _ = stream.flush().await;
            // Never read; keep the connection until aborted.
            std::future::pending::<()>().await;
            drop(stream);
        }));
    }
    let mut peak = rss_before;
    let until = Instant::now() + Duration::from_secs(args.hold_secs);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak = peak.max(crate::chat::usage(pid)?.0);
    }
    for attacker in attackers {
        attacker.abort();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_after, cpu_after) = crate::chat::usage(pid).context("the server died")?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "hoard: {} clients x {} list_files of a {}-file folder, never read",
        args.clients, args.requests, args.files
    );
    println!("| server RSS before | peak during | after they left | server CPU |");
    println!("|---|---|---|---|");
    println!(
        "| {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.2} s |",
        mib(rss_before),
        mib(peak),
        mib(rss_after),
        cpu_after - cpu_before
    );
    Ok(())
}
