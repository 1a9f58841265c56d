//! Clients that speak the protocol by hand, over TLS, for what the real client never sends:
//! they accept any certificate (they test the server, not its identity) but check the
//! handshake's signature as a real client does.

use bytes::BytesMut;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use wire::{ClientMsg, ErrorCode, Fingerprint, FrameCodec, ServerMsg};

use crate::WAIT;

/// A raw client's connection: TLS over TCP.
pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

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
    let (config, fingerprint) = crate::identity::ephemeral();
    (tokio_rustls::TlsAcceptor::from(config), fingerprint)
}

/// A client speaking the wire protocol by hand (over TLS), for what the real client never
/// does.
pub struct RawClient {
    /// The TLS connection, for tests that write to it directly.
    pub stream: TlsStream,
    buf: BytesMut,
    codec: FrameCodec,
}

impl RawClient {
    /// A client whose TLS handshake with `addr` completed (or the test fails).
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
        // As the real client does. With Nagle, a hello written just after the handshake waits
        // for the server's delayed ACK: 40 ms of real time, in which a paused clock jumps to
        // the next timeout.
        tcp.set_nodelay(true).unwrap();
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

    /// Sends a hello (protocol version 1) as `name`.
    pub async fn hello(&mut self, name: &str) {
        self.send(&ClientMsg::hello(1, name)).await;
    }

    /// Sends `msg` in a frame.
    pub async fn send(&mut self, msg: &ClientMsg) {
        self.send_bytes(&msg.to_frame()).await;
    }

    /// Sends `payload`, whatever it is, in a frame.
    pub async fn send_payload(&mut self, payload: &[u8]) {
        self.send_bytes(&wire::encode_frame(payload)).await;
    }

    /// Writes `bytes` as they are (inside TLS) and flushes them out.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// As [`RawClient::send_bytes`], but an error when the connection is gone.
    pub async fn try_send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
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
