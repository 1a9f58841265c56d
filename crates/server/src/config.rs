//! Server settings, with the defaults the `messenger-server` flags document, the parser of a
//! UDP port range and the checks a configuration must pass: one place for both front ends
//! that start a server (`messenger-server` and the server window).

use crate::{TlsIdentity, UdpPorts};
use std::net::SocketAddr;
use std::num::IntErrorKind;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The smallest frame cap the server accepts: room for any hello and for a 4 KiB chat text
/// however it is escaped (six bytes a character at worst), with margin.
pub const MIN_MAX_FRAME: usize = 64 * 1024;

/// The smallest database bound accepted (`--max-db-size`).
pub const MIN_DB_BYTES: u64 = 1 << 20;

/// Hello attempts one connection may make at once before it gets one a second.
pub const HELLOS_PER_CONNECTION: u32 = 5;

/// Most broadcast messages a client can get as history right after its welcome.
pub const MAX_HISTORY_ON_JOIN: usize = 1000;

/// Where the server's database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// `messenger.db` in the data folder (`--data-dir`): what `messenger-server` uses.
    InDataDir,
    /// This file.
    File(PathBuf),
    /// A file in a new temporary folder, removed when the server is dropped: for tests and
    /// embedding that need no lasting state.
    Temporary,
}

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
    /// Where the database (accounts, history, offline messages) lives.
    pub database: Database,
    /// Refuse guests: every name must be an account (a new one registers at its hello).
    pub require_accounts: bool,
    /// How many of the latest broadcast messages a client gets, marked as history, right
    /// after its welcome (at most [`MAX_HISTORY_ON_JOIN`]).
    pub history_on_join: usize,
    /// Most private messages kept for one offline account; more get `mailbox_full`.
    pub max_offline_messages: usize,
    /// Most accounts the server keeps; past it registering gets `server_full`.
    pub max_accounts: usize,
    /// New accounts one source address may make in an hour; more get `rate_limited`.
    pub registrations_per_hour: u32,
    /// Messages older than this are deleted (`None`: kept until the size bound needs room).
    pub history_retention: Option<Duration>,
    /// Most bytes the database may use; the oldest messages are deleted to stay under it.
    pub max_db_bytes: u64,
    /// Commit with `synchronous=FULL`: a message is on disk, not just handed to the system,
    /// before anyone sees it (it survives a power cut, not only a crash of the server).
    pub db_full_sync: bool,
    /// Argon2id's cost for new password hashes.
    pub password_cost: crate::accounts::Cost,
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
            database: Database::Temporary,
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
            database: Database::InDataDir,
            require_accounts: false,
            history_on_join: 50,
            max_offline_messages: 1000,
            max_accounts: 100_000,
            registrations_per_hour: 10,
            history_retention: None,
            max_db_bytes: 1 << 30,
            db_full_sync: true,
            password_cost: crate::accounts::Cost::default(),
            hash_hook: None,
        }
    }
}

impl Config {
    /// Checks what the types cannot: counts that must be at least 1, a frame cap of at least
    /// [`MIN_MAX_FRAME`], a port range that is not empty. Front ends call it before
    /// [`Server::bind`](crate::Server::bind), so that a bad setting is refused with a message
    /// naming it instead of a server that refuses everyone.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let counts = [
            ("--max-clients", self.max_clients),
            ("--queue-limit", self.queue_limit),
            ("--max-transfers-per-client", self.max_transfers_per_client),
            ("--max-pending", self.max_pending),
            ("--max-pending-per-address", self.max_pending_per_address),
            ("--max-clients-per-address", self.max_clients_per_address),
        ];
        if let Some((flag, _)) = counts.into_iter().find(|(_, n)| *n == 0) {
            return Err(ConfigError::ZeroCount { flag });
        }
        if self.history_on_join > MAX_HISTORY_ON_JOIN {
            return Err(ConfigError::TooMuchHistory {
                asked: self.history_on_join,
            });
        }
        if self.max_db_bytes < MIN_DB_BYTES {
            return Err(ConfigError::DatabaseTooSmall {
                asked: self.max_db_bytes,
            });
        }
        if self.max_frame < MIN_MAX_FRAME {
            return Err(ConfigError::MaxFrameTooSmall {
                max_frame: self.max_frame,
            });
        }
        if let UdpPorts::Range(range) = &self.udp_ports {
            let (lo, hi) = (*range.start(), *range.end());
            if lo == 0 {
                return Err(ConfigError::Ports(PortRangeError::Zero));
            }
            if lo > hi {
                return Err(ConfigError::Ports(PortRangeError::Reversed { lo, hi }));
            }
        }
        Ok(())
    }
}

/// A setting [`Config::validate`] refuses. Messages name the setting by its
/// `messenger-server` flag, the one name users see for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A count that must be at least 1 is 0 (nobody could join, or nothing could be queued).
    #[error("{flag} must be at least 1")]
    ZeroCount {
        /// The setting, by its flag.
        flag: &'static str,
    },
    /// More history on join than a welcome carries.
    #[error("--history-on-join is at most {MAX_HISTORY_ON_JOIN}, not {asked}")]
    TooMuchHistory {
        /// Asked for.
        asked: usize,
    },
    /// A database bound too small to hold the schema and some messages.
    #[error("--max-db-size must be at least {MIN_DB_BYTES} bytes, not {asked}")]
    DatabaseTooSmall {
        /// Asked for.
        asked: u64,
    },
    /// The frame cap leaves no room for a hello and a 4 KiB chat text.
    #[error(
        "--max-frame must be at least {MIN_MAX_FRAME} bytes (room for a hello and a 4 KiB chat \
         text), not {max_frame}"
    )]
    MaxFrameTooSmall {
        /// The cap asked for.
        max_frame: usize,
    },
    /// The UDP port range holds no usable port.
    #[error("--udp-ports: {0}")]
    Ports(PortRangeError),
}

/// Why a text is not a range of UDP ports `LO-HI`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortRangeError {
    /// No `-` between two ports.
    #[error("expected LO-HI, like 55000-55015, not {0:?}")]
    NotARange(String),
    /// One end is not a number.
    #[error("{0:?} is not a port number")]
    NotANumber(String),
    /// One end is a number past 65535.
    #[error("{0:?} is past the last port, 65535")]
    OutOfRange(String),
    /// Port 0 means "any port" to the OS, not a port of the pool.
    #[error("port 0 is not a port to listen on: ports go from 1 to 65535")]
    Zero,
    /// The range runs backwards (and so holds no port).
    #[error("{lo}-{hi} runs backwards: ports go LO-HI with LO <= HI")]
    Reversed {
        /// The first port given.
        lo: u16,
        /// The last port given.
        hi: u16,
    },
}

/// `LO-HI`, both ends included, as the `--udp-ports` flag and the server window take it.
/// (Beside [`Config`] rather than [`UdpPorts`] because parsing a setting is the config's job.)
impl FromStr for UdpPorts {
    type Err = PortRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (lo, hi) = text
            .split_once('-')
            .ok_or_else(|| PortRangeError::NotARange(text.to_owned()))?;
        let (lo, hi) = (port(lo)?, port(hi)?);
        if lo == 0 || hi == 0 {
            return Err(PortRangeError::Zero);
        }
        if lo > hi {
            return Err(PortRangeError::Reversed { lo, hi });
        }
        Ok(Self::Range(lo..=hi))
    }
}

/// One end of a port range, spaces around it allowed.
fn port(text: &str) -> Result<u16, PortRangeError> {
    let text = text.trim();
    text.parse().map_err(|e: std::num::ParseIntError| {
        if *e.kind() == IntErrorKind::PosOverflow {
            PortRangeError::OutOfRange(text.to_owned())
        } else {
            PortRangeError::NotANumber(text.to_owned())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(text: &str) -> Result<UdpPorts, PortRangeError> {
        text.parse()
    }

    #[test]
    fn a_port_range_parses_with_both_ends_included() {
        assert_eq!(ports("55000-55015"), Ok(UdpPorts::Range(55000..=55015)));
        assert_eq!(ports(" 9000 - 9000 "), Ok(UdpPorts::Range(9000..=9000)));
        assert_eq!(ports("1-65535"), Ok(UdpPorts::Range(1..=65535)));
    }

    #[test]
    fn a_reversed_port_range_is_refused_naming_the_order() {
        let err = ports("9000-8000").unwrap_err();
        assert_eq!(err, PortRangeError::Reversed { lo: 9000, hi: 8000 });
        assert!(err.to_string().contains("LO <= HI"), "{err}");
    }

    #[test]
    fn ports_out_of_range_are_refused() {
        assert_eq!(
            ports("55000-70000"),
            Err(PortRangeError::OutOfRange("70000".into()))
        );
        assert_eq!(ports("0-10"), Err(PortRangeError::Zero));
        assert_eq!(ports("10-0"), Err(PortRangeError::Zero));
    }

    #[test]
    fn junk_is_refused_as_not_a_range_or_not_a_number() {
        assert_eq!(
            ports("55000"),
            Err(PortRangeError::NotARange("55000".into()))
        );
        assert_eq!(ports(""), Err(PortRangeError::NotARange(String::new())));
        assert_eq!(
            ports("low-high"),
            Err(PortRangeError::NotANumber("low".into()))
        );
        assert_eq!(ports("-5"), Err(PortRangeError::NotANumber(String::new())));
        assert_eq!(
            ports("1-2-3"),
            Err(PortRangeError::NotANumber("2-3".into()))
        );
    }

    #[test]
    fn the_defaults_and_a_local_config_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
        assert_eq!(Config::local("files", 0).validate(), Ok(()));
    }

    #[test]
    fn a_zero_count_is_refused_naming_its_flag() {
        let config = Config {
            max_pending_per_address: 0,
            ..Config::default()
        };
        let err = config.validate().unwrap_err();
        assert_eq!(
            err,
            ConfigError::ZeroCount {
                flag: "--max-pending-per-address"
            }
        );
        assert_eq!(
            err.to_string(),
            "--max-pending-per-address must be at least 1"
        );
    }

    #[test]
    fn a_frame_cap_below_the_minimum_is_refused() {
        let at_minimum = Config {
            max_frame: MIN_MAX_FRAME,
            ..Config::default()
        };
        assert_eq!(at_minimum.validate(), Ok(()));
        let below = Config {
            max_frame: MIN_MAX_FRAME - 1,
            ..Config::default()
        };
        let err = below.validate().unwrap_err();
        assert_eq!(
            err,
            ConfigError::MaxFrameTooSmall {
                max_frame: MIN_MAX_FRAME - 1
            }
        );
        assert!(err.to_string().contains("--max-frame"), "{err}");
        assert!(err.to_string().contains("65536"), "{err}");
    }

    #[test]
    fn a_port_range_built_in_code_is_checked_too() {
        let check = |range| {
            Config {
                udp_ports: UdpPorts::Range(range),
                ..Config::default()
            }
            .validate()
        };
        assert_eq!(check(1..=1), Ok(()));
        assert_eq!(check(0..=5), Err(ConfigError::Ports(PortRangeError::Zero)));
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 9..=8;
        assert_eq!(
            check(reversed),
            Err(ConfigError::Ports(PortRangeError::Reversed {
                lo: 9,
                hi: 8
            }))
        );
    }
}
