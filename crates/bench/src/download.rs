//! One big file over loopback, disk to disk: our download (server and client libraries, UDP
//! transport, the file written and verified) against the peers a user would pick instead.
//!
//! Every contender moves the same file from a RAM disk to a file on the same RAM disk. The
//! sending side runs on one named tokio runtime and the receiving side on another, so the CPU
//! time of each side is measured apart ([`crate::cpu`]). Contenders take turns, round after
//! round, and the table reports medians.

use crate::cpu;
use anyhow::{Context, bail};
use client::{Client, DownloadOptions, Event, Events, TransferState};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// Options of the download benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// File size in MiB.
    #[arg(long, default_value_t = 1024)]
    pub size_mib: u64,
    /// Rounds of each contender; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Folder for the test files (default: /dev/shm if present, so the disk is not measured).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Largest UDP datagram, bytes: 65507 (loopback's largest) or e.g. 1452 (a real path).
    #[arg(long, default_value_t = transport::MAX_DATAGRAM)]
    pub datagram: usize,
    /// Run only the contenders whose name contains one of these, in any case, separated by
    /// commas (e.g. `messenger`, `tcp`, `messenger,quinn`).
    #[arg(long)]
    pub only: Option<String>,
}

/// What one round moves.
pub struct Job {
    /// The shared folder (the server's `--files`).
    pub files: PathBuf,
    /// The file's name in it.
    pub name: String,
    /// Where the receiver writes.
    pub dest: PathBuf,
    /// Bytes.
    pub size: u64,
    /// BLAKE3 of the file, lowercase hex.
    pub hash: String,
    /// Largest UDP datagram, for contenders that use UDP.
    pub datagram: usize,
}

impl Job {
    /// The file to send.
    pub fn source(&self) -> PathBuf {
        self.files.join(&self.name)
    }
}

/// The two sides of a comparison, each on its own runtime with named threads.
pub struct Sides {
    /// Runs the sender (thread names start with [`SEND`]).
    pub send: Runtime,
    /// Runs the receiver (thread names start with [`RECV`]).
    pub recv: Runtime,
}

/// Longest a receiving side may take for one round.
const ROUND_LIMIT: Duration = Duration::from_secs(300);

/// Thread-name prefix of the sending side.
pub const SEND: &str = "bench-send";
/// Thread-name prefix of the receiving side.
pub const RECV: &str = "bench-recv";

impl Sides {
    /// Two runtimes of two worker threads each (this machine's core count), whose blocking
    /// threads outlive a round so that their CPU time is counted.
    pub fn new() -> anyhow::Result<Self> {
        let side = |name: &str| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(name)
                .thread_keep_alive(Duration::from_secs(3600))
                .enable_all()
                .build()
        };
        Ok(Self {
            send: side(SEND)?,
            recv: side(RECV)?,
        })
    }
}

impl Sides {
    /// Runs `task` on the receiving side's threads (`block_on` alone would run it on the
    /// calling thread, whose CPU time is nobody's) and waits for it.
    pub fn on_recv<T: Send + 'static>(
        &self,
        task: impl Future<Output = anyhow::Result<T>> + Send + 'static,
    ) -> anyhow::Result<T> {
        let task = self
            .recv
            .spawn(async move { tokio::time::timeout(ROUND_LIMIT, task).await });
        self.recv
            .block_on(task)?
            .map_err(|_| anyhow::anyhow!("gave up after {ROUND_LIMIT:?}"))?
    }

    /// Runs `task` on the sending side's threads and waits for it.
    pub fn on_send<T: Send + 'static>(
        &self,
        task: impl Future<Output = anyhow::Result<T>> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.send.block_on(self.send.spawn(task))?
    }
}

/// Something that moves a file from one side to the other.
pub trait Contender {
    /// Its name in the table.
    fn name(&self) -> String;
    /// Called once before the rounds: start servers, warm caches.
    fn prepare(&mut self, _sides: &Sides, _job: &Job) -> anyhow::Result<()> {
        Ok(())
    }
    /// Moves the file once, from connecting to having every byte in a file at the receiver
    /// (and, for those that do, verified); removes that file before returning.
    fn run(&mut self, sides: &Sides, job: &Job) -> anyhow::Result<()>;
}

/// One round of one contender.
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: Duration,
    send_cpu: Duration,
    recv_cpu: Duration,
}

/// True if contender `name` is one that `only` (comma-separated parts of names, any case)
/// asks for.
fn selected(name: &str, only: &str) -> bool {
    let name = name.to_lowercase();
    only.split(',')
        .map(|part| part.trim().to_lowercase())
        .any(|part| !part.is_empty() && name.contains(&part))
}

/// The contenders every run has: ours (sealed, as shipped, and with sealing off to measure
/// its price), plain TCP, TCP hashing what it receives as we do, and the same over TLS (what
/// an HTTPS download that verifies would cost).
pub fn standard_contenders() -> Vec<Box<dyn Contender>> {
    vec![
        Box::new(Messenger::default()),
        Box::new(Messenger::unprotected()),
        Box::new(Tcp::plain()),
        Box::new(Tcp::verifying()),
        Box::new(Tcp::tls()),
    ]
}

/// Runs the comparison and prints its table (markdown) on stdout; progress goes to stderr.
pub fn run(args: &Args, mut contenders: Vec<Box<dyn Contender>>) -> anyhow::Result<()> {
    if let Some(only) = &args.only {
        let names = contenders
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ");
        contenders.retain(|c| selected(&c.name(), only));
        if contenders.is_empty() {
            bail!("--only {only:?} matches none of the contenders: {names}");
        }
    }
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
    let name = "big.bin".to_owned();
    let hash = make_file(&files.join(&name), size)?;
    let job = Job {
        files,
        name,
        dest,
        size,
        hash,
        datagram: args.datagram,
    };
    let sides = Sides::new()?;
    for contender in &mut contenders {
        contender
            .prepare(&sides, &job)
            .with_context(|| format!("preparing {}", contender.name()))?;
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); contenders.len()];
    for round in 1..=args.rounds {
        // Each round starts with the next contender: the one that runs right after another
        // finds the memory that one just freed (which a VM's host may have taken back), so a
        // fixed order would favour some positions.
        let n = contenders.len();
        for k in 0..n {
            let i = (round - 1 + k) % n;
            let (contender, samples) = (&mut contenders[i], &mut samples[i]);
            // The receiving side is everything but the sending runtime and this thread (which
            // waits, and removes the file afterwards): the client's hashing thread is its own,
            // and gone by the end of the round.
            let (send0, all0, main0) = (
                cpu::of_threads(SEND),
                cpu::of_process(),
                cpu::of_this_thread(),
            );
            let started = Instant::now();
            contender
                .run(&sides, &job)
                .with_context(|| format!("round {round} of {}", contender.name()))?;
            let sample = Sample {
                wall: started.elapsed(),
                send_cpu: cpu::of_threads(SEND).saturating_sub(send0),
                recv_cpu: cpu::of_process()
                    .saturating_sub(all0)
                    .saturating_sub(cpu::of_threads(SEND).saturating_sub(send0))
                    .saturating_sub(cpu::of_this_thread().saturating_sub(main0)),
            };
            eprintln!(
                "round {round}: {:<28} {:>6.2} s",
                contender.name(),
                sample.wall.as_secs_f64()
            );
            samples.push(sample);
        }
    }
    println!(
        "\nloopback download of {} MiB, RAM disk to RAM disk, datagrams up to {} bytes, \
         median of {} rounds",
        args.size_mib, args.datagram, args.rounds
    );
    println!(
        "| contender | goodput (Gbit/s) | time (s) | sender CPU (s/GiB) | receiver CPU (s/GiB) |"
    );
    println!("|---|---|---|---|---|");
    let gib = size as f64 / f64::from(1u32 << 30);
    for (contender, samples) in contenders.iter().zip(&samples) {
        let wall = median(samples.iter().map(|s| s.wall));
        let send = median(samples.iter().map(|s| s.send_cpu));
        let recv = median(samples.iter().map(|s| s.recv_cpu));
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            contender.name(),
            size as f64 * 8.0 / wall.as_secs_f64() / 1e9,
            wall.as_secs_f64(),
            send.as_secs_f64() / gib,
            recv.as_secs_f64() / gib,
        );
    }
    Ok(())
}

fn median(values: impl Iterator<Item = Duration>) -> Duration {
    let mut values: Vec<Duration> = values.collect();
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Chunk of the file I/O of the peers (and of the file made for the test).
pub const CHUNK: usize = 1 << 20;

/// Writes `size` bytes that differ everywhere (so misplaced data shows) and returns their hash.
fn make_file(path: &Path, size: u64) -> anyhow::Result<String> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut hasher = blake3::Hasher::new();
    let mut chunk = vec![0u8; CHUNK];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        for word in chunk[..n].chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        file.write_all(&chunk[..n])?;
        hasher.update(&chunk[..n]);
        left -= n as u64;
    }
    file.flush()?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Writes the first `size` bytes of `src` to `out` in [`CHUNK`]s read at their offsets (the
/// peers' sending side).
pub async fn send_file(
    src: &std::fs::File,
    size: u64,
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> anyhow::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    while offset < size {
        let n = src.read_at(&mut buf, offset)?;
        if n == 0 {
            bail!("the file shrank");
        }
        out.write_all(&buf[..n]).await?;
        offset += n as u64;
    }
    Ok(())
}

/// Checks that `path` holds the job's file, then removes it.
pub fn check_and_remove(path: &Path, job: &Job) -> anyhow::Result<()> {
    let len = std::fs::metadata(path)?.len();
    if len != job.size {
        bail!("{} has {len} bytes, not {}", path.display(), job.size);
    }
    std::fs::remove_file(path)?;
    Ok(())
}

/// A complete download through our server and client: TCP request, UDP transfer, positional
/// writes into `NAME.part`, BLAKE3 verification and the rename. One server serves every
/// round (its hash of the file is computed once, as a running server's would be).
#[derive(Default)]
pub struct Messenger {
    server: Option<server::ServerHandle>,
    client: Option<(Client, Events)>,
    /// Sealing off on both ends (a bench-only switch of the server and client libraries).
    unprotected: bool,
}

impl Messenger {
    /// Ours with every datagram left unsealed: the same build and code path otherwise, to
    /// measure what sealing costs.
    pub fn unprotected() -> Self {
        Self {
            unprotected: true,
            ..Self::default()
        }
    }
}

impl Contender for Messenger {
    fn name(&self) -> String {
        if self.unprotected {
            "messenger (UDP, ours, unsealed)".into()
        } else {
            "messenger (UDP, ours)".into()
        }
    }

    fn prepare(&mut self, sides: &Sides, job: &Job) -> anyhow::Result<()> {
        let mut config = server::Config::local(&job.files, 1);
        config.unprotected_transfers = self.unprotected;
        let unprotected = self.unprotected;
        let server = sides.on_send(async { Ok(server::Server::bind(config).await?.spawn()?) })?;
        let addr = server.addr().to_string();
        let trust = client::Trust::pinned(server.fingerprint());
        let (name, dest) = (job.name.clone(), job.dest.clone());
        // Ask once and cancel at the first pause: the offer carries the hash, so the server
        // has hashed the file by then.
        let connected = sides.on_recv(async move {
            let (client, mut events) = Client::connect(&addr, "bench", &trust).await?;
            client.unprotected_transfers(unprotected);
            let opts = DownloadOptions {
                dir: dest,
                pause_at: Some(0.001),
                ..DownloadOptions::default()
            };
            let id = client.download(&name, opts).await?;
            loop {
                match next_state(&mut events, id).await? {
                    TransferState::Paused { .. } => client.cancel(id).await?,
                    TransferState::Cancelled => break,
                    TransferState::Failed { error } => bail!("warm-up failed: {error}"),
                    _ => {}
                }
            }
            Ok((client, events))
        })?;
        self.server = Some(server);
        self.client = Some(connected);
        Ok(())
    }

    fn run(&mut self, sides: &Sides, job: &Job) -> anyhow::Result<()> {
        let Some((client, mut events)) = self.client.take() else {
            bail!("not prepared");
        };
        let opts = DownloadOptions {
            dir: job.dest.clone(),
            max_datagram: Some(job.datagram),
            ..DownloadOptions::default()
        };
        let (name, hash) = (job.name.clone(), job.hash.clone());
        let (client, events, path) = sides.on_recv(async move {
            let id = client.download(&name, opts).await?;
            let path = loop {
                match next_state(&mut events, id).await? {
                    TransferState::Done {
                        path, hash: got, ..
                    } => {
                        if got.to_hex() != hash {
                            bail!("hash mismatch");
                        }
                        break path;
                    }
                    TransferState::Failed { error } => bail!("download failed: {error}"),
                    _ => {}
                }
            };
            Ok((client, events, path))
        })?;
        self.client = Some((client, events));
        check_and_remove(&path, job)
    }
}

async fn next_state(events: &mut Events, id: u64) -> anyhow::Result<TransferState> {
    loop {
        match events.recv().await {
            Some(Event::Transfer(t)) if t.id == id => return Ok(t.state),
            Some(_) => {}
            None => bail!("connection lost"),
        }
    }
}

/// The same file over one TCP connection: tokio on both sides, positional reads and writes of
/// 1 MiB, as a program written for the job would do. With `verify`, the receiver also hashes
/// what it writes, as ours does, and checks the hash; with `tls`, the connection is TLS 1.3
/// (rustls, the workspace's aws-lc-rs provider, the suite it prefers: AES-256-GCM here).
pub struct Tcp {
    /// Hash at the receiver too.
    pub verify: bool,
    /// Over TLS: the acceptor and connector, made once in [`Contender::prepare`].
    tls: Option<Tls>,
    want_tls: bool,
}

struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    connector: tokio_rustls::TlsConnector,
}

impl Tcp {
    /// Plain TCP, nothing checked.
    pub fn plain() -> Self {
        Self {
            verify: false,
            tls: None,
            want_tls: false,
        }
    }

    /// TCP, the receiver hashing what it writes.
    pub fn verifying() -> Self {
        Self {
            verify: true,
            ..Self::plain()
        }
    }

    /// TCP + TLS 1.3, the receiver hashing what it writes.
    pub fn tls() -> Self {
        Self {
            verify: true,
            tls: None,
            want_tls: true,
        }
    }
}

/// A self-signed identity for `localhost`, and a client that trusts only it.
fn tls_pair() -> anyhow::Result<Tls> {
    use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let cert_der = CertificateDer::from(cert.cert);
    let key = PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key.into())?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der)?;
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Tls {
        acceptor: tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server)),
        connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(client)),
    })
}

/// A stream the TCP contender reads from or writes to: plain or TLS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

impl Contender for Tcp {
    fn name(&self) -> String {
        match (self.want_tls, self.verify) {
            (true, _) => "TCP + TLS + BLAKE3 (rustls)".into(),
            (false, true) => "TCP + BLAKE3 (tokio)".into(),
            (false, false) => "TCP (tokio)".into(),
        }
    }

    fn prepare(&mut self, _sides: &Sides, _job: &Job) -> anyhow::Result<()> {
        if self.want_tls {
            self.tls = Some(tls_pair()?);
        }
        Ok(())
    }

    fn run(&mut self, sides: &Sides, job: &Job) -> anyhow::Result<()> {
        let listener =
            sides.on_send(async { Ok(tokio::net::TcpListener::bind("127.0.0.1:0").await?) })?;
        let addr = listener.local_addr()?;
        let src = std::fs::File::open(job.source())?;
        let size = job.size;
        let acceptor = self.tls.as_ref().map(|t| t.acceptor.clone());
        let connector = self.tls.as_ref().map(|t| t.connector.clone());
        let sender = sides.send.spawn(async move {
            let (sock, _) = listener.accept().await?;
            let mut sock: Box<dyn Stream> = match acceptor {
                Some(acceptor) => Box::new(acceptor.accept(sock).await?),
                None => Box::new(sock),
            };
            send_file(&src, size, &mut sock).await?;
            // A TLS stream holds the last records until flushed, and says it is done.
            sock.shutdown().await?;
            anyhow::Ok(())
        });
        let dst = job.dest.join("tcp.bin");
        let verify = self.verify;
        let out_path = dst.clone();
        let hash = sides.on_recv(async move {
            let sock = tokio::net::TcpStream::connect(addr).await?;
            let mut sock: Box<dyn Stream> = match connector {
                Some(connector) => {
                    let name = rustls::pki_types::ServerName::try_from("localhost")?;
                    Box::new(connector.connect(name, sock).await?)
                }
                None => Box::new(sock),
            };
            let out = std::fs::File::create(&out_path)?;
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; CHUNK];
            let mut offset = 0u64;
            while offset < size {
                let n = sock.read(&mut buf).await?;
                if n == 0 {
                    bail!("the TCP sender stopped early");
                }
                out.write_all_at(&buf[..n], offset)?;
                if verify {
                    hasher.update(&buf[..n]);
                }
                offset += n as u64;
            }
            out.sync_data()?;
            anyhow::Ok(hasher.finalize().to_hex().to_string())
        })?;
        sides.send.block_on(sender)??;
        if verify && hash != job.hash {
            bail!("hash mismatch");
        }
        check_and_remove(&dst, job)
    }
}

#[cfg(test)]
mod tests {
    use super::selected;

    #[test]
    fn only_takes_comma_separated_parts_of_names_in_any_case() {
        assert!(selected("TCP + BLAKE3 (tokio)", "tcp"));
        assert!(selected("messenger (UDP, ours)", "quinn, Messenger"));
        assert!(!selected("quinn (QUIC)", "messenger,tcp"));
        assert!(!selected("quinn (QUIC)", ","));
    }
}
