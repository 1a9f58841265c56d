//! Helpers shared by the server's integration tests: a server on 127.0.0.1 (in this process or
//! as the `messenger-server` binary), real clients, and a raw client for what the real one never
//! sends.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use client::{Client, Event, Events};
use server::{Config, Server, ServerHandle};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use wire::{ClientMsg, ErrorCode, FrameCodec, ServerMsg};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub handle: ServerHandle,
    pub addr: String,
    pub files: tempfile::TempDir,
}

pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    let files = tempfile::tempdir().unwrap();
    let mut config = Config::local(files.path(), 2);
    // Every test client comes from 127.0.0.1: the per-address limits would otherwise be the
    // limits of the whole server. Tests of those limits set them again in `tweak`.
    config.max_pending_per_address = config.max_pending;
    config.max_clients_per_address = config.max_clients;
    config.hello_rate = 1e6;
    config.hello_burst = 1_000_000;
    tweak(&mut config);
    let handle = Server::bind(config).await.unwrap().spawn().unwrap();
    let addr = handle.addr().to_string();
    TestServer {
        handle,
        addr,
        files,
    }
}

pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

pub async fn join(server: &TestServer, name: &str) -> (Client, Events) {
    Client::connect(&server.addr, name).await.unwrap()
}

/// The next event, failing the test if none comes in time.
pub async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("timed out waiting for an event")
        .expect("event stream ended")
}

/// Skips events until one matches.
pub async fn wait_for(events: &mut Events, mut pred: impl FnMut(&Event) -> bool) -> Event {
    loop {
        let event = next(events).await;
        if pred(&event) {
            return event;
        }
    }
}

/// Asserts nothing more arrives within a short while.
pub async fn assert_quiet(events: &mut Events) {
    let got = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
    assert!(got.is_err(), "unexpected event {got:?}");
}

/// Joins `n` clients named `{prefix}{i}` and drains the join notices among them, so each
/// stream starts clean.
pub async fn join_many(server: &TestServer, prefix: &str, n: usize) -> Vec<(Client, Events)> {
    let mut all = Vec::new();
    for i in 0..n {
        all.push(join(server, &format!("{prefix}{i}")).await);
    }
    for (i, (_, events)) in all.iter_mut().enumerate() {
        for _ in i + 1..n {
            assert!(matches!(next(events).await, Event::Joined { .. }));
        }
    }
    all
}

/// A client speaking the wire protocol by hand, for what the real client never does.
pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
    codec: FrameCodec,
}

impl RawClient {
    pub async fn connect(addr: &str) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
            codec: FrameCodec::default(),
        }
    }

    /// A client connecting from `local`, another loopback address than 127.0.0.1 (Linux
    /// answers on all of 127.0.0.0/8), to stand for another source address.
    pub async fn connect_from(addr: &str, local: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
        Self {
            stream: socket.connect(addr.parse().unwrap()).await.unwrap(),
            buf: BytesMut::new(),
            codec: FrameCodec::default(),
        }
    }

    /// A client with a tiny receive buffer, so that not reading fills it quickly.
    pub async fn connect_small_buffer(addr: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        Self {
            stream: socket.connect(addr.parse().unwrap()).await.unwrap(),
            buf: BytesMut::new(),
            codec: FrameCodec::default(),
        }
    }

    pub async fn hello(&mut self, name: &str) {
        self.send(&ClientMsg::Hello {
            version: 1,
            name: name.into(),
        })
        .await;
    }

    pub async fn send(&mut self, msg: &ClientMsg) {
        self.stream.write_all(&msg.to_frame()).await.unwrap();
    }

    pub async fn send_payload(&mut self, payload: &[u8]) {
        self.stream
            .write_all(&wire::encode_frame(payload))
            .await
            .unwrap();
    }

    /// The next message, or `None` when the server closed the connection.
    pub async fn recv(&mut self) -> Option<ServerMsg> {
        tokio::time::timeout(WAIT, self.recv_or_close())
            .await
            .expect("timed out waiting for the server")
    }

    /// As [`RawClient::recv`], however long it takes.
    pub async fn recv_or_close(&mut self) -> Option<ServerMsg> {
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buf).unwrap() {
                return Some(ServerMsg::decode(&frame).unwrap());
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Reads until the server closes the connection (within `limit`) and returns every
    /// message it sent before that.
    pub async fn until_closed(&mut self, limit: Duration) -> Vec<ServerMsg> {
        let mut got = Vec::new();
        tokio::time::timeout(limit, async {
            while let Some(msg) = self.recv_or_close().await {
                got.push(msg);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the server kept the connection open; it sent {got:?}"));
        got
    }
}

/// Starts the `messenger-server` binary on 127.0.0.1 with `args` (besides `--bind`, `--files`
/// and a pool of free UDP ports, unless `args` sets them) and returns it with the address it
/// logged. Its logs are drained so it never blocks on a full pipe.
pub fn spawn_server(files: &std::path::Path, args: &[&str]) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_messenger-server"));
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
    let addr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "server exited early"
        );
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in stderr.lines() {});
    (child, addr)
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `len` bytes that differ from place to place (so misplaced bytes show), and their hash.
pub fn content(len: usize) -> (Vec<u8>, String) {
    let data: Vec<u8> = (0..len).map(|i| (i * 31 + i / 7919) as u8).collect();
    let hash = blake3::hash(&data).to_hex().to_string();
    (data, hash)
}

/// Waits (a generous while) until `cond` holds.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// True for an `error` with code `bad_request`.
pub fn is_bad_request(msg: &ServerMsg) -> bool {
    matches!(
        msg,
        ServerMsg::Error {
            code: ErrorCode::BadRequest,
            ..
        }
    )
}
