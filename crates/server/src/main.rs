//! `messenger-server`: the chat and file server.

use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Chat server with fast, reliable file downloads.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TCP address to listen on.
    #[arg(long, default_value = "0.0.0.0:50000")]
    bind: SocketAddr,
    /// Folder whose files are shared (created if missing).
    #[arg(long, default_value = "./files")]
    files: PathBuf,
    /// Folder of the server's own state (created if missing): the database (accounts,
    /// history, offline messages: messenger.db) and, without --tls-cert, the self-signed TLS
    /// identity, generated there on the first start and reused after.
    #[arg(long, default_value = "./messenger-data")]
    data_dir: PathBuf,
    /// TLS certificate chain (PEM, leaf first), for a certificate from a CA; with --tls-key.
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Seconds a new connection has to finish its TLS handshake (it holds a pending place
    /// meanwhile; see --max-pending).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    handshake_timeout: u64,
    /// UDP ports for file transfers, as LO-HI.
    #[arg(long, default_value = "55000-55015")]
    udp_ports: server::UdpPorts,
    /// Requests per second one client may make on average; more get `rate_limited`.
    #[arg(long, default_value_t = 50.0)]
    rate_limit: f64,
    /// Requests one client may make in a burst above that average.
    #[arg(long, default_value_t = 200)]
    rate_burst: u32,
    /// Most download requests waiting for a free UDP port.
    #[arg(long, default_value_t = 64)]
    max_queued: usize,
    /// Most downloads one client may have running or queued.
    #[arg(long, default_value_t = 8)]
    max_transfers_per_client: usize,
    /// Most UDP ports one client may hold at once (its further downloads wait their turn).
    #[arg(long, default_value_t = 4)]
    max_ports_per_client: usize,
    /// Most UDP ports the clients of one address (IPv4, or IPv6 /64) may hold at once.
    #[arg(long, default_value_t = 8)]
    max_ports_per_address: usize,
    /// Most download requests from one address that may wait for a port; more get `busy`.
    #[arg(long, default_value_t = 16)]
    max_queued_per_address: usize,
    /// Seconds a transfer may stay paused before its port goes back to the pool (the client
    /// continues by asking again).
    #[arg(long, default_value_t = 30)]
    max_pause: u64,
    /// Most users online at once.
    #[arg(long, default_value_t = 1024)]
    max_clients: usize,
    /// Most messages queued for one client before it is disconnected as too slow.
    #[arg(long, default_value_t = 100)]
    queue_limit: usize,
    /// Most bytes queued for one client before it is disconnected as too slow (a `files` page
    /// that would not fit is refused with `busy` instead).
    #[arg(long, default_value_t = 1024 * 1024)]
    queue_bytes: usize,
    /// Most connections that have not finished their TLS handshake and hello (more are closed
    /// at once).
    #[arg(long, default_value_t = 256)]
    max_pending: usize,
    /// Most connections from one address (IPv4, or IPv6 /64) that have not finished their TLS
    /// handshake and hello (more from it are closed at once).
    #[arg(long, default_value_t = 16)]
    max_pending_per_address: usize,
    /// Most users online from one address (IPv4, or IPv6 /64); the next gets `server_full`.
    #[arg(long, default_value_t = 64)]
    max_clients_per_address: usize,
    /// Hello attempts per second one address may make on average; more get `rate_limited`.
    #[arg(long, default_value_t = 10.0)]
    hello_rate: f64,
    /// Hello attempts one address may make in a burst above that average.
    #[arg(long, default_value_t = 50)]
    hello_burst: u32,
    /// Most bytes held for partly received frames, all clients together (a client's first
    /// 4 KiB excepted); a client whose frame finds no room waits for it.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    max_inbound_buffer: usize,
    /// Largest frame a client may send, in bytes (at least 65536); a longer one ends its
    /// connection.
    #[arg(long, default_value_t = wire::MAX_FRAME_LEN)]
    max_frame: usize,
    /// Seconds a new connection has to send its hello, once its TLS handshake is done.
    #[arg(long, default_value_t = 10)]
    hello_timeout: u64,
    /// Seconds a client may stay silent before it is disconnected (clients ping every 15 s).
    #[arg(long, default_value_t = 60)]
    idle_timeout: u64,
    /// Admit accounts only: a hello without the password of a registered name is refused
    /// (`auth_failed`); a new user registers with their first hello.
    #[arg(long)]
    require_accounts: bool,
    /// Latest broadcast messages a client gets, marked as history, right after joining
    /// (0 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=1000))]
    history_on_join: u64,
    /// Most private messages kept for one offline account; past it senders get
    /// `mailbox_full`.
    #[arg(long, default_value_t = 1000)]
    max_offline_messages: usize,
    /// Most accounts the server keeps; past it registering gets `server_full`.
    #[arg(long, default_value_t = 100_000)]
    max_accounts: usize,
    /// New accounts one source address (IPv4 address, IPv6 /64) may make in an hour; more get
    /// `rate_limited`.
    #[arg(long, default_value_t = 10)]
    registrations_per_hour: u32,
    /// Days messages are kept; older ones are deleted (0: kept until --max-db-size needs
    /// room).
    #[arg(long, default_value_t = 0)]
    history_days: u64,
    /// Most bytes the database may take on disk (suffixes K, M, G: powers of 1024); the
    /// oldest messages are deleted to stay under it. At least 1M.
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    max_db_size: u64,
    /// When a commit reaches the disk: `full` (a message survives a power cut before anyone
    /// sees it) or `normal` (it survives a crash of the server; faster on slow disks).
    #[arg(long, default_value = "full", value_parser = ["full", "normal"])]
    db_sync: String,
}

/// A size in bytes, with an optional K, M or G (powers of 1024).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let scale: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        other => return Err(format!("unknown unit {other:?}: use K, M, G or T")),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (like 500M or 2G)"))?;
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    logging::to_stderr("info");
    let args = Args::parse();
    let config = server::Config {
        bind: args.bind,
        files_dir: args.files,
        data_dir: args.data_dir,
        tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => server::TlsIdentity::Files { cert, key },
            _ => server::TlsIdentity::SelfSigned,
        },
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        udp_ports: args.udp_ports,
        max_queued: args.max_queued,
        max_transfers_per_client: args.max_transfers_per_client,
        max_ports_per_client: args.max_ports_per_client.max(1),
        max_ports_per_address: args.max_ports_per_address.max(1),
        max_queued_per_address: args.max_queued_per_address,
        max_pause: Duration::from_secs(args.max_pause.max(1)),
        max_clients: args.max_clients,
        queue_limit: args.queue_limit,
        max_pending: args.max_pending,
        queue_bytes: args.queue_bytes,
        max_pending_per_address: args.max_pending_per_address,
        max_clients_per_address: args.max_clients_per_address,
        hello_rate: args.hello_rate,
        hello_burst: args.hello_burst,
        max_inbound_buffer: args.max_inbound_buffer,
        max_frame: args.max_frame,
        hello_timeout: Duration::from_secs(args.hello_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
        rate_limit: args.rate_limit,
        rate_burst: args.rate_burst,
        require_accounts: args.require_accounts,
        history_on_join: args.history_on_join as usize,
        max_offline_messages: args.max_offline_messages,
        max_accounts: args.max_accounts,
        registrations_per_hour: args.registrations_per_hour,
        history_retention: (args.history_days > 0)
            .then(|| Duration::from_secs(args.history_days.saturating_mul(24 * 3600))),
        max_db_bytes: args.max_db_size,
        db_full_sync: args.db_sync == "full",
        ..server::Config::default()
    };
    config.validate()?;
    let server = server::Server::bind(config).await?;
    tracing::info!(
        addr = %server.local_addr().context("no local address")?,
        data = %server.data_dir().display(),
        files = %server.files_dir().display(),
        fingerprint = %server.fingerprint(),
        "listening (TLS 1.3; clients see this fingerprint)"
    );
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    server.run(stop).await;
    Ok(())
}

async fn stop_on_signal(stop: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    stop.cancel();
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_suffixes_and_refuse_nonsense() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("12345"), Ok(12345));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
