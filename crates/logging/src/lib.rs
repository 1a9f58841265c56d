//! The one tracing set-up of every messenger binary (`messenger`, `messenger-server`,
//! `messenger-gui`, `messenger-server-gui`, the benchmarks): log lines filtered by `RUST_LOG`,
//! or by the binary's own default level when it is unset or malformed.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Logs to stderr, in colour only when stderr is a terminal. `default` is the filter without
/// `RUST_LOG` (`"warn"` for clients, `"info"` for servers).
pub fn to_stderr(default: &str) {
    init(default, std::io::stderr, std::io::stderr().is_terminal());
}

/// Logs to `writer` (a window's log panel, ...), coloured when `ansi`.
pub fn init<W>(default: &str, writer: W, ansi: bool)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_env_filter(filter(default))
        .init();
}

/// `RUST_LOG`'s filter, or `default`.
fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}
