//! Server settings, with the defaults the `messenger-server` flags document.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the server can be told at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    /// TCP address to listen on.
    pub bind: SocketAddr,
    /// Folder whose regular files are shared; created if missing.
    pub files_dir: PathBuf,
    /// UDP ports that file transfers may use.
    pub udp_ports: RangeInclusive<u16>,
    /// Most users online at once; the next one gets `server_full`.
    pub max_clients: usize,
    /// Most messages waiting to be written to one client before it is disconnected as too slow.
    pub queue_limit: usize,
    /// How long a new connection has to finish its hello.
    pub hello_timeout: Duration,
    /// How long a joined client may stay silent (clients ping well within it).
    pub idle_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 50000)),
            files_dir: PathBuf::from("files"),
            udp_ports: 55000..=55015,
            max_clients: 1024,
            queue_limit: 100,
            hello_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}
