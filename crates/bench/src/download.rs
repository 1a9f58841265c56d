//! One big file over loopback: our download (server and client libraries, UDP transport, file
//! written to disk and verified) against plain TCP moving the same file with the same
//! positional reads and writes. Both run in this process, alternating, several rounds.

use anyhow::{Context, bail};
use client::{Client, DownloadOptions, Event, TransferState};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Options of the download benchmark.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// File size in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Rounds of each contender; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Folder for the test files (default: /dev/shm if present, so the disk is not measured).
    #[arg(long)]
    dir: Option<PathBuf>,
}

const CHUNK: usize = 1 << 20;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let base = args.dir.clone().unwrap_or_else(|| {
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        }
    });
    let work = tempfile::tempdir_in(&base).context("cannot create a work folder")?;
    let files = work.path().join("files");
    let dest = work.path().join("dest");
    std::fs::create_dir_all(&files)?;
    std::fs::create_dir_all(&dest)?;
    let size = args.size_mib * 1024 * 1024;
    eprintln!(
        "writing a {} MiB test file in {}",
        args.size_mib,
        base.display()
    );
    let hash = make_file(&files.join("big.bin"), size)?;

    let mut ours = Vec::new();
    let mut tcp = Vec::new();
    for round in 1..=args.rounds {
        let t = messenger_download(&files, &dest, &hash).await?;
        eprintln!("round {round}: messenger {:.2} s", t.as_secs_f64());
        ours.push(t);
        let t = tcp_copy(&files.join("big.bin"), &dest.join("tcp.bin"), size).await?;
        eprintln!("round {round}: tcp       {:.2} s", t.as_secs_f64());
        tcp.push(t);
    }
    let gbps = |d: Duration| size as f64 * 8.0 / d.as_secs_f64() / 1e9;
    println!(
        "loopback download of {} MiB, median of {} rounds",
        args.size_mib, args.rounds
    );
    println!("| contender | time (s) | goodput (Gbit/s) |");
    println!("|---|---|---|");
    for (name, times) in [
        ("messenger (UDP transport)", &mut ours),
        ("plain TCP (tokio)", &mut tcp),
    ] {
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "| {name} | {:.2} | {:.2} |",
            median.as_secs_f64(),
            gbps(median)
        );
    }
    Ok(())
}

fn make_file(path: &Path, size: u64) -> anyhow::Result<String> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut hasher = blake3::Hasher::new();
    let mut chunk = vec![0u8; CHUNK];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        for b in &mut chunk[..n] {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = (state >> 24) as u8;
        }
        file.write_all(&chunk[..n])?;
        hasher.update(&chunk[..n]);
        left -= n as u64;
    }
    file.flush()?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// A full download through our server and client, verified, file renamed into place.
async fn messenger_download(files: &Path, dest: &Path, hash: &str) -> anyhow::Result<Duration> {
    let server = server::Server::bind(server::Config::local(files, 1))
        .await?
        .spawn()?;
    let (client, mut events) = Client::connect(&server.addr().to_string(), "bench").await?;
    // Hash the file on the server before timing (a real server warms its cache at start-up).
    let _ = client.files().await?;
    let opts = DownloadOptions {
        dir: dest.to_path_buf(),
        ..DownloadOptions::default()
    };
    let started = Instant::now();
    let id = client.download("big.bin", opts).await?;
    let path = loop {
        match events.recv().await {
            Some(Event::Transfer(t)) if t.id == id => match t.state {
                TransferState::Done {
                    path, hash: got, ..
                } => {
                    if got != hash {
                        bail!("hash mismatch");
                    }
                    break path;
                }
                TransferState::Failed { error } => bail!("download failed: {error}"),
                _ => {}
            },
            Some(_) => {}
            None => bail!("connection lost"),
        }
    };
    let elapsed = started.elapsed();
    std::fs::remove_file(path)?;
    server.stop().await;
    Ok(elapsed)
}

/// The same file over one TCP connection, positional reads and writes of 1 MiB.
async fn tcp_copy(src: &Path, dst: &Path, size: u64) -> anyhow::Result<Duration> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let src = std::fs::File::open(src)?;
    let sender = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await?;
        let mut buf = vec![0u8; CHUNK];
        let mut offset = 0u64;
        while offset < size {
            let n = src.read_at(&mut buf, offset)?;
            sock.write_all(&buf[..n]).await?;
            offset += n as u64;
        }
        anyhow::Ok(())
    });
    let started = Instant::now();
    let mut sock = tokio::net::TcpStream::connect(addr).await?;
    let out = std::fs::File::create(dst)?;
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    while offset < size {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            bail!("tcp sender stopped early");
        }
        out.write_all_at(&buf[..n], offset)?;
        offset += n as u64;
    }
    out.sync_data()?;
    let elapsed = started.elapsed();
    sender.await??;
    std::fs::remove_file(dst)?;
    Ok(elapsed)
}
