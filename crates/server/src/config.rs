//! Server settings, with the defaults the `messenger-server` flags document.

use crate::{TlsIdentity, UdpPorts};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The smallest frame cap the server accepts: room for any hello and for a 4 KiB chat text
/// however it is escaped (six bytes a character at worst), with margin.
pub const MIN_MAX_FRAME: usize = 64 * 1024;

/// Hello attempts one connection may make at once before it gets one a second.
pub const HELLOS_PER_CONNECTION: u32 = 5;

/// Everything the server can be told at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    /// TCP address to listen on.
    pub bind: SocketAddr,
    /// Folder whose regular files are shared; created if missing.
    pub files_dir: PathBuf,
    /// Folder of the server's own state (its self-signed TLS identity); created if missing.
    pub data_dir: PathBuf,
    /// Where the TLS identity comes from.
    pub tls: TlsIdentity,
    /// How long a new connection has to finish its TLS handshake. The connection holds one of
    /// the pending places (`max_pending`, `max_pending_per_address`) meanwhile, and its hello
    /// deadline starts after it.
    pub handshake_timeout: Duration,
    /// UDP ports that file transfers may use, one transfer per port at a time.
    pub udp_ports: UdpPorts,
    /// Most download requests waiting for a free port; more get `busy`.
    pub max_queued: usize,
    /// Most transfers one client may have running or queued; more get `busy`.
    pub max_transfers_per_client: usize,
    /// Most UDP ports one client may hold at once; its further downloads wait their turn.
    pub max_ports_per_client: usize,
    /// Most UDP ports the clients of one source address (an IPv4 address or an IPv6 /64) may
    /// hold at once; their further downloads wait their turn.
    pub max_ports_per_address: usize,
    /// Most download requests from one source address that may wait; more get `busy`.
    pub max_queued_per_address: usize,
    /// A transfer whose receiver stays paused (acknowledges less than 1 KiB of new data) longer
    /// than this gives its port back: the flow ends with the transport's `PauseTooLong`, and
    /// the client asks again to continue.
    pub max_pause: Duration,
    /// Benchmarks only: UDP transfers go unprotected (see `transport::Config::unprotected`), to
    /// measure what sealing costs. No flag sets it; clients that seal open nothing of it.
    #[doc(hidden)]
    pub unprotected_transfers: bool,
    /// Most users online at once; the next one gets `server_full`.
    pub max_clients: usize,
    /// Most messages waiting to be written to one client before it is disconnected as too slow.
    pub queue_limit: usize,
    /// Most bytes waiting to be written to one client before it is disconnected as too slow;
    /// a reply that would not fit (a page of `files`) is refused with `busy` before it is built.
    pub queue_bytes: usize,
    /// Most connections that have not finished their hello; more are closed at once.
    pub max_pending: usize,
    /// Most connections from one source address (an IPv4 address or an IPv6 /64) that have not
    /// finished their hello; more from that address are closed at once.
    pub max_pending_per_address: usize,
    /// Most users online from one source address; the next one gets `server_full`.
    pub max_clients_per_address: usize,
    /// Hello attempts per second one source address may make on average; more get
    /// `rate_limited` (each connection also gets at most one a second, after a burst of
    /// [`HELLOS_PER_CONNECTION`]).
    pub hello_rate: f64,
    /// Hello attempts one source address may make in a burst above that average.
    pub hello_burst: u32,
    /// Most bytes the server holds for partly received frames, all connections together (each
    /// connection's first 4 KiB excepted); a connection whose frame finds no room waits, its
    /// sender held back by TCP, until there is. Never less than `max_frame` plus its header.
    pub max_inbound_buffer: usize,
    /// Largest frame payload a client may send, in bytes; a longer one ends its connection
    /// (with `bad_request`) before any of it is buffered. At least [`MIN_MAX_FRAME`].
    pub max_frame: usize,
    /// How long a new connection has to finish its hello.
    pub hello_timeout: Duration,
    /// How long a joined client may stay silent (clients ping well within it).
    pub idle_timeout: Duration,
    /// Requests per second one client may make on average (pings excepted); more get
    /// `rate_limited` and are dropped.
    pub rate_limit: f64,
    /// Requests one client may make in a burst above the average.
    pub rate_burst: u32,
    /// How long join and leave notices are gathered before they go out together (they go out
    /// at once when a message from the user concerned is about to be delivered).
    pub notice_delay: Duration,
    /// Runs before each shared file is hashed, on the hashing thread: for tests that hold
    /// hashing up to see what clients meet meanwhile. `None` in real use.
    #[doc(hidden)]
    pub hash_hook: Option<crate::HashHook>,
}

impl Config {
    /// A server on 127.0.0.1 with OS-chosen ports (TCP and a pool of `udp_ports` UDP ports),
    /// sharing `files_dir`, with an ephemeral TLS identity (nothing written to a data folder):
    /// for tests and embedding, where fixed ports would collide.
    pub fn local(files_dir: impl Into<PathBuf>, udp_ports: usize) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            files_dir: files_dir.into(),
            udp_ports: UdpPorts::Ephemeral(udp_ports),
            tls: TlsIdentity::Ephemeral,
            ..Self::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 50000)),
            files_dir: PathBuf::from("files"),
            data_dir: PathBuf::from("messenger-data"),
            tls: TlsIdentity::SelfSigned,
            handshake_timeout: Duration::from_secs(10),
            udp_ports: UdpPorts::Range(55000..=55015),
            max_queued: 64,
            max_transfers_per_client: 8,
            max_ports_per_client: 4,
            max_ports_per_address: 8,
            max_queued_per_address: 16,
            max_pause: Duration::from_secs(30),
            unprotected_transfers: false,
            max_clients: 1024,
            queue_limit: 100,
            queue_bytes: 1024 * 1024,
            max_pending: 256,
            max_pending_per_address: 16,
            max_clients_per_address: 64,
            hello_rate: 10.0,
            hello_burst: 50,
            max_inbound_buffer: 64 * 1024 * 1024,
            max_frame: wire::MAX_FRAME_LEN,
            hello_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            rate_limit: 50.0,
            rate_burst: 200,
            notice_delay: Duration::from_millis(50),
            hash_hook: None,
        }
    }
}
