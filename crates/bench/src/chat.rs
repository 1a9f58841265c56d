//! Chat load: N clients joined to a real server process; some of them send to everyone (and,
//! optionally, privately to one client picked at random) at a set rate; every receiver measures
//! end-to-end latency. Reports how long the crowd took to join, deliveries per second, latency
//! percentiles, and the CPU and memory of the server (from /proc) and the CPU of this generator.
//!
//! The server is `messenger-server`, or ngIRCd for comparison (its channel standing for
//! "everyone"). Senders talk to messenger through the client library; the crowd of receivers
//! speaks the protocol directly and looks at nothing but the chat messages, because all the
//! clients share the machine with the server and a heavier receiver would measure itself.

mod irc;
pub mod logins;

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use client::{Client, Event, Trust};
use std::borrow::Cow;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::task::JoinHandle;
use tokio_util::codec::Decoder;
use wire::{ClientMsg, FrameCodec, PROTOCOL_VERSION};

/// Options of the chat benchmark.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Clients joined.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Of those, how many send.
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Messages per second each sender sends to everyone (0 with --private-rate 0: only
    /// measure the joining and the idle clients).
    #[arg(long, default_value_t = 60.0)]
    rate: f64,
    /// Private messages per second each sender sends, each to one client picked at random.
    #[arg(long, default_value_t = 0.0)]
    private_rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Clients joining at the same time.
    #[arg(long, default_value_t = 50)]
    join_concurrency: usize,
    /// The server under load: messenger, or ngircd (an IRC server from Debian, `apt-get
    /// install ngircd`) with every client in one channel.
    #[arg(long, value_enum, default_value_t = Peer::Messenger)]
    server: Peer,
    /// A flag added to messenger-server's command line (repeat for more), such as
    /// `--server-arg=--db-sync=normal`: for comparing its settings.
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    server_args: Vec<String>,
}

/// Which server the load goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    /// `messenger-server`, built beside this binary.
    Messenger,
    /// ngIRCd, the IRC server packaged by Debian.
    Ngircd,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Peer::Messenger => "messenger",
            Peer::Ngircd => "ngIRCd",
        })
    }
}

/// How long after the last message was sent deliveries are still waited for. Whatever arrives
/// later counts as not delivered.
const DRAIN: Duration = Duration::from_secs(1);

/// Runs the benchmark and prints its tables (markdown) on stdout.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let server = Server::start(args.server, args.clients, &args.server_args)?;
    let pid = server.child.id();
    let (rss_before, _) = usage(pid)?;
    let tally = Arc::new(Tally {
        epoch: Instant::now(),
        measuring: AtomicBool::new(false),
    });
    eprintln!("joining {} clients", args.clients);
    let joining = Instant::now();
    let crowd = join_all(&server, &args, &tally).await?;
    let join_secs = joining.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_idle, _) = usage(pid)?;
    println!("| server | clients | join time | server RSS idle | RSS per client |");
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.1} s | {:.1} MiB | {:.1} KiB |",
        args.server,
        args.clients,
        join_secs,
        mib(rss_idle),
        rss_idle.saturating_sub(rss_before) as f64 / 1024.0 / args.clients.max(1) as f64
    );
    let sending = args.senders > 0 && (args.rate > 0.0 || args.private_rate > 0.0);
    if !sending {
        return Ok(());
    }
    let (links, readers): (Vec<Link>, Vec<JoinHandle<Seen>>) = crowd.into_iter().unzip();
    let mut links = links.into_iter();
    let senders: Vec<Link> = links.by_ref().take(args.senders).collect();
    let mut idle: Vec<Link> = links.collect();

    let (_, cpu_before) = usage(pid)?;
    let own_before = crate::cpu::of_process().as_secs_f64();
    let start_us = tally.now_us();
    let started = Instant::now();
    tally.measuring.store(true, Ordering::Relaxed);
    let deadline = started + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for (me, link) in senders.into_iter().enumerate() {
        let load = Load {
            me,
            clients: args.clients,
            rate: args.rate,
            private_rate: args.private_rate,
            deadline,
            stop: Arc::new(AtomicBool::new(false)),
        };
        tasks.push(tokio::spawn(load.send(link, Arc::clone(&tally))));
    }
    let (mut sent_all, mut sent_private) = (0, 0);
    let mut senders = Vec::new();
    for task in tasks {
        let (link, all, private) = task.await?;
        sent_all += all;
        sent_private += private;
        senders.push(link);
    }
    tokio::time::sleep(DRAIN).await;
    tally.measuring.store(false, Ordering::Relaxed);
    let (rss_busy, cpu_after) = usage(pid)?;
    let own_after = crate::cpu::of_process().as_secs_f64();

    for link in senders.iter_mut().chain(idle.iter_mut()) {
        link.quit().await;
    }
    let mut seen = Seen::default();
    for reader in readers {
        if let Ok(Ok(part)) = tokio::time::timeout(Duration::from_secs(10), reader).await {
            seen.merge(part);
        }
    }
    let expected = sent_all * (args.clients as u64 - 1) + sent_private;
    // From the first send to the last delivery: the server's sustained rate, not the offer;
    // CPU over the same span (after the last delivery there is nothing to do).
    let elapsed = seen.last_us.saturating_sub(start_us).max(1) as f64 / 1e6;
    seen.all.sort_unstable();
    seen.private.sort_unstable();
    println!();
    println!(
        "| server | clients | senders x rate (+ private) | deliveries/s | delivered | p50 ms | p99 ms | max ms | server CPU | server RSS | generator CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} x {}/s{} | {:.0} | {:.2} % | {:.2} | {:.2} | {:.2} | {:.0} % | {:.1} MiB | {:.0} % |",
        args.server,
        args.clients,
        args.senders,
        args.rate,
        if args.private_rate > 0.0 {
            format!(" (+ {}/s private)", args.private_rate)
        } else {
            String::new()
        },
        seen.delivered as f64 / elapsed,
        seen.delivered as f64 * 100.0 / expected.max(1) as f64,
        percentile(&seen.all, 0.5),
        percentile(&seen.all, 0.99),
        percentile(&seen.all, 1.0),
        (cpu_after - cpu_before) / elapsed * 100.0,
        mib(rss_busy),
        (own_after - own_before) / elapsed * 100.0,
    );
    if args.private_rate > 0.0 {
        println!();
        println!(
            "Private messages: {} of {} delivered; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms.",
            seen.private.len(),
            sent_private,
            percentile(&seen.private, 0.5),
            percentile(&seen.private, 0.99),
            percentile(&seen.private, 1.0),
        );
    }
    Ok(())
}

/// What every receiver shares: the clock and whether deliveries count now.
struct Tally {
    epoch: Instant,
    measuring: AtomicBool,
}

impl Tally {
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// What one receiver saw while the load ran; merged at the end, so receivers share nothing
/// while they count.
#[derive(Default)]
struct Seen {
    delivered: u64,
    last_us: u64,
    /// Latency of every delivery, microseconds.
    all: Vec<u32>,
    /// Latency of the private deliveries, microseconds.
    private: Vec<u32>,
}

impl Seen {
    /// Counts one chat message whose text starts with the sender's timestamp.
    fn record(&mut self, tally: &Tally, text: &str, private: bool) {
        if !tally.measuring.load(Ordering::Relaxed) {
            return;
        }
        let now = tally.now_us();
        self.delivered += 1;
        self.last_us = now;
        let sent = text.split(' ').next().and_then(|t| t.parse::<u64>().ok());
        if let Some(sent) = sent {
            let latency = u32::try_from(now.saturating_sub(sent)).unwrap_or(u32::MAX);
            self.all.push(latency);
            if private {
                self.private.push(latency);
            }
        }
    }

    fn merge(&mut self, other: Seen) {
        self.delivered += other.delivered;
        self.last_us = self.last_us.max(other.last_us);
        self.all.extend(other.all);
        self.private.extend(other.private);
    }
}

/// The `p` quantile of sorted microseconds, in milliseconds.
pub(crate) fn percentile(sorted: &[u32], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).max(0.0) as usize;
    f64::from(sorted.get(i).copied().unwrap_or(0)) / 1000.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// One joined client's sending side.
enum Link {
    /// Through the client library (messenger's senders).
    Lib(Client),
    /// The messenger protocol spoken directly (the crowd), over TLS as the product does.
    Messenger(WriteHalf<client::TlsStream>),
    /// IRC.
    Irc(OwnedWriteHalf),
}

impl Link {
    /// Sends `text` to everyone, or to `to` alone.
    async fn send(&mut self, to: Option<String>, text: String) -> anyhow::Result<()> {
        match (self, to) {
            (Link::Lib(client), None) => client.send_all(text).await?,
            (Link::Lib(client), Some(to)) => client.send_private(to, text).await?,
            (Link::Messenger(wr), to) => {
                let msg = match to {
                    None => ClientMsg::SendAll { text, req: None },
                    Some(to) => ClientMsg::SendPrivate {
                        to,
                        text,
                        req: None,
                    },
                };
                wr.write_all(&msg.to_frame()).await?;
                wr.flush().await?;
            }
            (Link::Irc(wr), to) => {
                wr.write_all(irc::privmsg(to.as_deref(), &text).as_bytes())
                    .await?
            }
        }
        Ok(())
    }

    /// Leaves; the server then closes the connection, which ends its receiver.
    async fn quit(&mut self) {
        let _ = match self {
            Link::Lib(client) => client.quit().await.map_err(anyhow::Error::from),
            Link::Messenger(wr) => async {
                wr.write_all(&ClientMsg::Quit.to_frame()).await?;
                wr.flush().await
            }
            .await
            .map_err(anyhow::Error::from),
            Link::Irc(wr) => wr.write_all(irc::QUIT).await.map_err(anyhow::Error::from),
        };
    }
}

/// A joined connection: its writing half and whatever reads the rest.
struct Member<W, R> {
    wr: W,
    rx: R,
}

/// Client `i`'s name on either server.
fn name(i: usize) -> String {
    format!("u{i}")
}

/// Joins every client, `join_concurrency` at a time, each with its receiver running; in the
/// order of their names.
async fn join_all(
    server: &Server,
    args: &Args,
    tally: &Arc<Tally>,
) -> anyhow::Result<Vec<(Link, JoinHandle<Seen>)>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.join_concurrency.max(1) {
        let next = Arc::clone(&next);
        let tally = Arc::clone(tally);
        let addr = server.addr.clone();
        let trust = server.trust.clone();
        let (peer, clients, senders) = (server.peer, args.clients, args.senders);
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= clients {
                    break;
                }
                let joined = join_one(peer, &addr, &trust, i, i < senders, Arc::clone(&tally))
                    .await
                    .with_context(|| format!("client {i} could not join"))?;
                mine.push((i, joined));
            }
            anyhow::Ok(mine)
        }));
    }
    let mut all = Vec::with_capacity(args.clients);
    for worker in workers {
        all.extend(worker.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, joined)| joined).collect())
}

/// Joins client `i` and starts its receiver.
async fn join_one(
    peer: Peer,
    addr: &str,
    trust: &Trust,
    i: usize,
    sender: bool,
    tally: Arc<Tally>,
) -> anyhow::Result<(Link, JoinHandle<Seen>)> {
    Ok(match peer {
        Peer::Messenger if sender => {
            let (client, mut events) = Client::connect(addr, &name(i), trust).await?;
            let reader = tokio::spawn(async move {
                let mut seen = Seen::default();
                while let Some(event) = events.recv().await {
                    match event {
                        Event::Message { text, private, .. } => {
                            seen.record(&tally, &text, private);
                        }
                        Event::Disconnected { .. } => break,
                        _ => {}
                    }
                }
                seen
            });
            (Link::Lib(client), reader)
        }
        Peer::Messenger => {
            let hello = ClientMsg::hello(PROTOCOL_VERSION, name(i));
            let Member { wr, rx } = join_messenger(addr, trust, &hello).await?;
            let reader = tokio::spawn(async move {
                let mut seen = Seen::default();
                receive_messenger(rx, |text, private| seen.record(&tally, text, private)).await;
                seen
            });
            (Link::Messenger(wr), reader)
        }
        Peer::Ngircd => {
            let Member { wr, rx } = irc::join(addr, &name(i)).await?;
            let reader = tokio::spawn(async move {
                let mut seen = Seen::default();
                irc::receive(rx, |text, private| seen.record(&tally, text, private)).await;
                seen
            });
            (Link::Irc(wr), reader)
        }
    })
}

/// Frames from a messenger server, read into one reusable buffer.
struct Frames {
    rd: ReadHalf<client::TlsStream>,
    buf: BytesMut,
    codec: FrameCodec,
}

impl Frames {
    /// The next frame's payload, or `None` when the connection ended.
    async fn next(&mut self) -> anyhow::Result<Option<Bytes>> {
        loop {
            if let Some(payload) = self.codec.decode(&mut self.buf)? {
                return Ok(Some(payload));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(8192);
            }
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }
}

/// The members of a server message the receivers look at; the rest is skipped unread.
#[derive(serde::Deserialize)]
struct Peek<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    private: bool,
}

/// Connects over TLS (trusting the server as `trust` says), says `hello` and waits for the
/// welcome.
async fn join_messenger(
    addr: &str,
    trust: &Trust,
    hello: &ClientMsg,
) -> anyhow::Result<Member<WriteHalf<client::TlsStream>, Frames>> {
    let (stream, _) = client::connect_tls(addr, trust).await?;
    let (rd, mut wr) = tokio::io::split(stream);
    wr.write_all(&hello.to_frame()).await?;
    wr.flush().await?;
    let mut frames = Frames {
        rd,
        buf: BytesMut::with_capacity(8192),
        codec: FrameCodec::default(),
    };
    let first = frames.next().await?.context("closed before the welcome")?;
    let peek: Peek<'_> = serde_json::from_slice(&first)?;
    if peek.kind != "welcome" {
        bail!("refused: {}", String::from_utf8_lossy(&first));
    }
    Ok(Member { wr, rx: frames })
}

/// Reads until the connection ends, passing each chat message's text (and whether it was sent
/// to this client alone) to `each`.
async fn receive_messenger(mut frames: Frames, mut each: impl FnMut(&str, bool)) {
    while let Ok(Some(payload)) = frames.next().await {
        let Ok(peek) = serde_json::from_slice::<Peek<'_>>(&payload) else {
            continue;
        };
        match (peek.kind.as_ref(), peek.text) {
            ("message", Some(text)) => each(&text, peek.private),
            ("bye", _) => break,
            _ => {}
        }
    }
}

/// What one sender does.
struct Load {
    me: usize,
    clients: usize,
    rate: f64,
    private_rate: f64,
    deadline: Instant,
    /// Stops the sending early when set (for loads whose end is not known in advance).
    stop: Arc<AtomicBool>,
}

impl Load {
    /// Sends until the deadline; gives the link back with the counts of messages sent to
    /// everyone and privately.
    async fn send(self, mut link: Link, tally: Arc<Tally>) -> (Link, u64, u64) {
        let every =
            |rate: f64| Duration::from_secs_f64(if rate > 0.0 { 1.0 / rate } else { 3600.0 });
        let mut all = tokio::time::interval(every(self.rate));
        let mut private = tokio::time::interval(every(self.private_rate));
        all.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        private.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        // xorshift: picks private recipients without a dependency, differently per sender.
        let mut seed = self.me as u64 * 0x9E37_79B9_7F4A_7C15 + 1;
        let (mut sent_all, mut sent_private) = (0, 0);
        loop {
            let to_one = tokio::select! {
                _ = all.tick(), if self.rate > 0.0 => false,
                _ = private.tick(), if self.private_rate > 0.0 => true,
            };
            if Instant::now() >= self.deadline || self.stop.load(Ordering::Relaxed) {
                break;
            }
            let to = to_one.then(|| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let other = (seed % (self.clients as u64 - 1).max(1)) as usize;
                name(if other >= self.me { other + 1 } else { other })
            });
            let text = format!("{} load", tally.now_us());
            if link.send(to, text).await.is_err() {
                break;
            }
            if to_one {
                sent_private += 1;
            } else {
                sent_all += 1;
            }
        }
        (link, sent_all, sent_private)
    }
}

/// The server process under load; killed when dropped.
struct Server {
    peer: Peer,
    child: Child,
    addr: String,
    /// How clients trust it: the messenger's key, pinned (ngIRCd's speaks no TLS).
    trust: Trust,
    /// The messenger's shared folder or ngIRCd's configuration; lives as long as the server.
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the server on a free port, with limits raised for the load.
    fn start(peer: Peer, clients: usize, extra: &[String]) -> anyhow::Result<Server> {
        Self::start_in(peer, clients, tempfile::tempdir()?, extra)
    }

    /// [`Server::start`] in `dir`, which may hold a messenger data folder made beforehand
    /// (see [`data_dir`]); `extra` goes on messenger-server's command line.
    fn start_in(
        peer: Peer,
        clients: usize,
        dir: tempfile::TempDir,
        extra: &[String],
    ) -> anyhow::Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let (child, trust) = match peer {
            Peer::Messenger => start_messenger(port, clients, dir.path(), extra)?,
            Peer::Ngircd => (
                irc::start_server(port, dir.path())?,
                Trust::pinned(wire::Fingerprint::of_public_key(b"")),
            ),
        };
        let addr = format!("127.0.0.1:{port}");
        let server = Server {
            peer,
            child,
            addr,
            trust,
            _dir: dir,
        };
        for _ in 0..250 {
            if std::net::TcpStream::connect(&server.addr).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("the server did not start")
    }
}

/// The messenger's data folder (its identity and database) in a server's `dir`.
fn data_dir(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("data")
}

/// Starts `messenger-server` (built beside this binary), sharing a folder in `dir`, with a
/// self-signed identity made beforehand in `dir` so that its key is known to the clients.
fn start_messenger(
    port: u16,
    clients: usize,
    dir: &std::path::Path,
    extra: &[String],
) -> anyhow::Result<(Child, Trust)> {
    let data = data_dir(dir);
    let files = dir.join("files");
    let identity = server::Identity::load(&server::TlsIdentity::SelfSigned, &data)?;
    let exe = std::env::current_exe()?.with_file_name("messenger-server");
    if !exe.exists() {
        bail!(
            "{} not found: run `cargo build --release` first",
            exe.display()
        );
    }
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(exe)
        .arg("--data-dir")
        .arg(&data)
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
            // The whole crowd comes from 127.0.0.1.
            "--max-pending-per-address",
            "4096",
            "--max-clients-per-address",
            &(clients + 10).to_string(),
            "--hello-rate",
            "1000000",
            "--hello-burst",
            "1000000",
            "--registrations-per-hour",
            "1000000",
            // The crowd does not ping.
            "--idle-timeout",
            "3600",
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
        .arg(files)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    Ok((child, Trust::pinned(identity.fingerprint())))
}

/// Resident memory (bytes) and CPU time (seconds) of another process (the server), from
/// /proc: `getrusage` only speaks of this process and its children once they have exited.
pub(crate) fn usage(pid: u32) -> anyhow::Result<(u64, f64)> {
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
    // utime and stime, in clock ticks: as many a second as the kernel says, not always 100.
    let ticks: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&n| n > 0)
        .context("no clock tick rate")?;
    Ok((rss_kb * 1024, ticks as f64 / per_second as f64))
}
