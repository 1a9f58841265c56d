//! Helpers shared by the server's integration tests: a server on 127.0.0.1 (in this process or
//! as the `messenger-server` binary), real clients, and a raw client for what the real one never
//! sends.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use client::{Client, Event, Events, Trust};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use server::{Config, Server, ServerHandle};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use wire::{ClientMsg, ErrorCode, Fingerprint, FrameCodec, ServerMsg};

/// A raw client's connection: TLS over TCP.
pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

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

impl TestServer {
    /// Trust in this server's key (and no other), for the real clients of the tests.
    pub fn trust(&self) -> Trust {
        Trust::pinned(self.handle.fingerprint())
    }
}

pub async fn join(server: &TestServer, name: &str) -> (Client, Events) {
    Client::connect(&server.addr, name, &server.trust())
        .await
        .unwrap()
}

/// Accepts any certificate (the raw clients test the server, not its identity), but checks
/// the handshake's signature as a real client does.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS side of the raw clients: TLS 1.3 with the protocol's ALPN id, any certificate.
pub fn tls_connector() -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![wire::ALPN.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Runs the TLS handshake on `tcp`; an error when the server closes instead.
pub async fn tls_connect(tcp: TcpStream) -> std::io::Result<TlsStream> {
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(WAIT, tls_connector().connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// A TLS server side with a fresh identity of its own (for relays in the middle), and the
/// fingerprint a client pins to trust it.
pub fn tls_acceptor() -> (tokio_rustls::TlsAcceptor, Fingerprint) {
    let identity =
        server::Identity::load(&server::TlsIdentity::Ephemeral, std::path::Path::new(".")).unwrap();
    let config = identity.server_config().unwrap();
    (
        tokio_rustls::TlsAcceptor::from(config),
        identity.fingerprint(),
    )
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

/// A client speaking the wire protocol by hand (over TLS), for what the real client never
/// does.
pub struct RawClient {
    pub stream: TlsStream,
    buf: BytesMut,
    codec: FrameCodec,
}

impl RawClient {
    pub async fn connect(addr: &str) -> Self {
        Self::try_connect(addr)
            .await
            .expect("the server closed the connection in the TLS handshake")
    }

    /// A client whose TLS handshake completed, or `None` when the server closed the
    /// connection instead (as it does past the pending caps).
    pub async fn try_connect(addr: &str) -> Option<Self> {
        Self::over(TcpStream::connect(addr).await.unwrap()).await
    }

    async fn over(tcp: TcpStream) -> Option<Self> {
        Some(Self {
            stream: tls_connect(tcp).await.ok()?,
            buf: BytesMut::new(),
            codec: FrameCodec::default(),
        })
    }

    /// A client connecting from `local`, another loopback address than 127.0.0.1 (Linux
    /// answers on all of 127.0.0.0/8), to stand for another source address.
    pub async fn connect_from(addr: &str, local: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
        let tcp = socket.connect(addr.parse().unwrap()).await.unwrap();
        Self::over(tcp).await.expect("TLS handshake")
    }

    /// A client with a tiny receive buffer, so that not reading fills it quickly.
    pub async fn connect_small_buffer(addr: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(addr.parse().unwrap()).await.unwrap();
        Self::over(tcp).await.expect("TLS handshake")
    }

    pub async fn hello(&mut self, name: &str) {
        self.send(&ClientMsg::Hello {
            version: 1,
            name: name.into(),
        })
        .await;
    }

    pub async fn send(&mut self, msg: &ClientMsg) {
        self.send_bytes(&msg.to_frame()).await;
    }

    pub async fn send_payload(&mut self, payload: &[u8]) {
        self.send_bytes(&wire::encode_frame(payload)).await;
    }

    /// Writes `bytes` as they are (inside TLS) and flushes them out.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
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

/// A `messenger-server` process, as [`spawn_server`] started it.
pub struct ServerProcess {
    pub child: Child,
    /// The address it logged.
    pub addr: String,
    /// The fingerprint it logged.
    pub key: Fingerprint,
    /// Its data folder (unless the test gave `--data-dir`), removed with this.
    pub data: Option<tempfile::TempDir>,
}

impl ServerProcess {
    /// Trust in this server's key (and no other).
    pub fn trust(&self) -> Trust {
        Trust::pinned(self.key)
    }
}

/// Starts the `messenger-server` binary on 127.0.0.1 with `args` (besides `--bind`, `--files`,
/// a data folder of its own and a pool of free UDP ports, unless `args` sets them) and returns
/// it with the address and fingerprint it logged. Its logs are drained so it never blocks on a
/// full pipe.
pub fn spawn_server(files: &std::path::Path, args: &[&str]) -> ServerProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_messenger-server"));
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
        child,
        addr,
        key,
        data,
    }
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
