//! A real server for tests: in the test's process ([`TestServer`]), or the `messenger-server`
//! binary as a child ([`spawn_server`]).

use server::{Config, Server, ServerHandle};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use wire::Fingerprint;

use crate::free_udp_port;

/// A server in the test's process, on 127.0.0.1 (port 0), sharing a folder of its own.
pub struct TestServer {
    /// The running server.
    pub handle: ServerHandle,
    /// Its address, `127.0.0.1:PORT`.
    pub addr: String,
    /// The folder it shares.
    pub files: tempfile::TempDir,
}

/// A server with two UDP ports, configured by `tweak`.
pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    serve(tempfile::tempdir().unwrap(), tweak).await
}

/// A server as [`start_with`] makes it, untweaked.
pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

/// A server sharing `files` (e.g. those of a server that stopped), as [`start_with`] makes it.
pub async fn serve(files: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = Config::local(files.path(), 2);
    // Every test client comes from 127.0.0.1: the per-address limits would otherwise be the
    // limits of the whole server. Tests of those limits set them again in `tweak`.
    config.max_pending_per_address = config.max_pending;
    config.max_clients_per_address = config.max_clients;
    config.hello_rate = 1e6;
    config.hello_burst = 1_000_000;
    config.registrations_per_hour = u32::MAX;
    tweak(&mut config);
    let handle = Server::bind(config).await.unwrap().spawn().unwrap();
    let addr = handle.addr().to_string();
    TestServer {
        handle,
        addr,
        files,
    }
}

impl TestServer {
    /// The fingerprint of the server's key.
    pub fn key(&self) -> Fingerprint {
        self.handle.fingerprint()
    }
}

/// A `messenger-server` process, as [`spawn_server`] started it.
pub struct ServerProcess {
    /// The process (killed when this is dropped).
    pub child: KillOnDrop,
    /// The address it logged.
    pub addr: String,
    /// The fingerprint it logged.
    pub key: Fingerprint,
    /// Its data folder (unless the test gave `--data-dir`), removed with this.
    pub data: Option<tempfile::TempDir>,
}

/// A child process that is killed when dropped, so that no server outlives its test (holding
/// the test's output pipe open) when the test ends or fails with it still running.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the `messenger-server` binary `exe` (a test has its path from cargo:
/// `env!("CARGO_BIN_EXE_...")`) on 127.0.0.1 with `args` (besides `--bind`, `--files`,
/// a data folder of its own and a pool of free UDP ports, unless `args` sets them) and returns
/// it with the address and fingerprint it logged. Its logs are drained so it never blocks on a
/// full pipe.
pub fn spawn_server(exe: &str, files: &Path, args: &[&str]) -> ServerProcess {
    let mut cmd = Command::new(exe);
    let data = (!args.contains(&"--data-dir")).then(|| tempfile::tempdir().unwrap());
    if let Some(data) = &data {
        cmd.arg("--data-dir").arg(data.path());
    }
    if !args.contains(&"--bind") {
        cmd.args(["--bind", "127.0.0.1:0"]);
    }
    if !args.contains(&"--udp-ports") {
        // A UDP port the OS just handed out (and took back) is free for the pool.
        let udp = free_udp_port();
        cmd.args(["--udp-ports", &format!("{udp}-{udp}")]);
    }
    // As in `start_with`: every test client comes from 127.0.0.1.
    for (flag, value) in [
        ("--max-pending-per-address", "100000"),
        ("--max-clients-per-address", "100000"),
        ("--hello-rate", "1000000"),
        ("--hello-burst", "1000000"),
        ("--registrations-per-hour", "1000000"),
    ] {
        if !args.contains(&flag) {
            cmd.args([flag, value]);
        }
    }
    let mut child = cmd
        .args(args)
        .arg("--files")
        .arg(files)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let (addr, key) = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "server exited early"
        );
        let field = |name: &str| {
            let rest = line.split(&format!(" {name}=")).nth(1)?;
            Some(rest.split_whitespace().next()?.to_string())
        };
        if let (Some(addr), Some(key)) = (field("addr"), field("fingerprint")) {
            break (addr, key.parse().unwrap());
        }
    };
    std::thread::spawn(move || for _ in stderr.lines() {});
    ServerProcess {
        child: KillOnDrop(child),
        addr,
        key,
        data,
    }
}
