//! The TLS 1.3 handshake with the server, and the check of its key once the handshake is done.
//!
//! rustls verifies the handshake itself: the server's signature over the transcript with the
//! key of the certificate it presented, with the provider's algorithms, so a server that shows
//! somebody else's certificate without its key fails here. Which keys to believe is decided
//! after that, outside the synchronous verifier ([`crate::trust::decide`]), where files can be
//! read on a blocking thread and a person can be asked, and before anything is sent.

use crate::ClientError;
use crate::connection::REQUEST_TIMEOUT;
use crate::known_servers;
use crate::trust::{KeyStatus, ServerKey, Trust, Verdict, decide};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::time::timeout;
use wire::Fingerprint;

/// The connection to the server, once TLS is up.
pub(crate) type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// Largest `--ca` file read.
const MAX_CA_FILE: u64 = 4 * 1024 * 1024;

/// Runs the TLS handshake on `tcp` to `addr` (`HOST:PORT`, as typed) and checks the server's
/// key against `trust`, recording it in `known_servers` if it is new and to be trusted.
pub(crate) async fn handshake(
    tcp: TcpStream,
    addr: &str,
    trust: &Trust,
) -> Result<(Tls, ServerKey), ClientError> {
    let tls_error = |reason: String| ClientError::Tls {
        addr: addr.to_owned(),
        reason,
    };
    let (host, port) =
        split_host_port(addr).ok_or_else(|| tls_error(format!("{addr:?} is not HOST:PORT")))?;
    let server_name = ServerName::try_from(host.clone())
        .map_err(|_| tls_error(format!("{host:?} is not a host name or address")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_error(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(DeferredVerifier {
            provider: Arc::clone(&provider),
        }))
        .with_no_client_auth();
    config.alpn_protocols = vec![wire::ALPN.to_vec()];
    // Every connection checks the server's certificate afresh.
    config.resumption = Resumption::disabled();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name.clone(), tcp)
        .await
        .map_err(|e| tls_error(e.to_string()))?;
    let (_, conn) = tls.get_ref();
    if conn.alpn_protocol() != Some(wire::ALPN) {
        return Err(tls_error(format!(
            "the server does not speak {} (ALPN)",
            String::from_utf8_lossy(wire::ALPN)
        )));
    }
    let chain: Vec<CertificateDer<'static>> = conn
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    let Some(leaf) = chain.first() else {
        return Err(tls_error("the server presented no certificate".into()));
    };
    let found = fingerprint_of(leaf).map_err(tls_error)?;
    let ca_ok = trust.pin.is_none() && chains_to_roots(trust, &chain, &server_name).await?;
    let server = known_servers::server_key(&host, port);
    let known = match &trust.known_servers {
        Some(path) if trust.pin.is_none() && !ca_ok => {
            let path = path.clone();
            blocking(move || known_servers::read(&path).map_err(|e| (path, e))).await?
        }
        _ => String::new(),
    };
    let key = match decide(trust, &server, found, ca_ok, &known)? {
        Verdict::Trusted(status) => ServerKey {
            fingerprint: found,
            status,
            recorded_in: None,
        },
        Verdict::Record(path) => {
            let file = path.clone();
            blocking(move || known_servers::add(&file, &server, &found).map_err(|e| (file, e)))
                .await?;
            ServerKey {
                fingerprint: found,
                status: KeyStatus::New,
                recorded_in: Some(path),
            }
        }
    };
    Ok((tls, key))
}

/// Runs `job` (file IO on `known_servers`) on a blocking thread.
async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, (std::path::PathBuf, std::io::Error)> + Send + 'static,
) -> Result<T, ClientError> {
    match tokio::task::spawn_blocking(job).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err((path, source))) => Err(ClientError::KnownServers { path, source }),
        Err(join) => Err(ClientError::KnownServers {
            path: "known_servers".into(),
            source: std::io::Error::other(join),
        }),
    }
}

/// The fingerprint of a certificate's key.
pub(crate) fn fingerprint_of(cert: &CertificateDer<'_>) -> Result<Fingerprint, String> {
    let parsed = ParsedCertificate::try_from(cert)
        .map_err(|e| format!("the server's certificate is malformed: {e}"))?;
    Ok(Fingerprint::of_public_key(
        parsed.subject_public_key_info().as_ref(),
    ))
}

/// True when `chain` leads to one of the trusted roots (the platform's, if `trust` says so,
/// and those of its `ca_file`) and its leaf names `server_name`.
async fn chains_to_roots(
    trust: &Trust,
    chain: &[CertificateDer<'static>],
    server_name: &ServerName<'static>,
) -> Result<bool, ClientError> {
    let mut roots = RootCertStore::empty();
    if trust.native_roots {
        roots.add_parsable_certificates(native_roots().await.iter().cloned());
    }
    if let Some(path) = &trust.ca_file {
        let path = path.clone();
        let certs = tokio::task::spawn_blocking(move || read_ca_file(&path))
            .await
            .map_err(|e| ClientError::CaFile {
                path: "--ca".into(),
                reason: e.to_string(),
            })??;
        roots.add_parsable_certificates(certs);
    }
    if roots.is_empty() {
        return Ok(false);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let Ok(verifier) =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build()
    else {
        return Ok(false);
    };
    let (leaf, intermediates) = match chain.split_first() {
        Some(split) => split,
        None => return Ok(false),
    };
    Ok(verifier
        .verify_server_cert(leaf, intermediates, server_name, &[], UnixTime::now())
        .is_ok())
}

/// The certificates of a PEM file of CA certificates (`--ca`).
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let error = |reason: String| ClientError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| error(e.to_string()))?;
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_CA_FILE + 1), &mut text)
        .map_err(|e| error(e.to_string()))?;
    if text.len() as u64 > MAX_CA_FILE {
        return Err(error(format!("larger than {MAX_CA_FILE} bytes")));
    }
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(error("holds no certificate".into()));
    }
    Ok(certs)
}

/// The platform's trusted roots, read once per process on a blocking thread.
async fn native_roots() -> Arc<Vec<CertificateDer<'static>>> {
    static ROOTS: tokio::sync::OnceCell<Arc<Vec<CertificateDer<'static>>>> =
        tokio::sync::OnceCell::const_new();
    ROOTS
        .get_or_init(|| async {
            let loaded = tokio::task::spawn_blocking(|| {
                let found = rustls_native_certs::load_native_certs();
                for err in &found.errors {
                    tracing::debug!(%err, "a platform root certificate could not be read");
                }
                found.certs
            })
            .await
            .unwrap_or_default();
            Arc::new(loaded)
        })
        .await
        .clone()
}

/// `HOST` and `PORT` of `HOST:PORT` (`[ADDRESS]:PORT` for IPv6).
pub(crate) fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = match addr.strip_prefix('[') {
        Some(rest) => {
            let (host, port) = rest.split_once(']')?;
            (host, port.strip_prefix(':')?)
        }
        None => {
            let (host, port) = addr.rsplit_once(':')?;
            if host.contains(':') {
                return None;
            }
            (host, port)
        }
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_owned(), port.parse().ok()?))
}

/// Lets every well-formed certificate through the handshake, and checks the handshake's
/// signature with it: the certificate is judged afterwards, by [`crate::trust::decide`].
#[derive(Debug)]
struct DeferredVerifier {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for DeferredVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        ParsedCertificate::try_from(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is offered; a server answering in TLS 1.2 never gets this far.
        Err(rustls::Error::General("TLS 1.2 is not spoken".into()))
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS connection to the server at `addr` (`host:port`) whose key `trust` accepts, before
/// any hello: for tools that speak the protocol by hand (load generators, fuzzers). Nothing is
/// sent on it yet.
pub async fn connect_tls(addr: &str, trust: &Trust) -> Result<(TlsStream, ServerKey), ClientError> {
    connect_tls_from(addr, None, trust).await
}

/// The TLS connection of a client.
pub type TlsStream = Tls;

/// As [`connect_tls`], from the local address `local` if given.
pub(crate) async fn connect_tls_from(
    addr: &str,
    local: Option<IpAddr>,
    trust: &Trust,
) -> Result<(TlsStream, ServerKey), ClientError> {
    let unreachable = |source| ClientError::Unreachable {
        addr: addr.to_owned(),
        source,
    };
    let stream = timeout(REQUEST_TIMEOUT, open_stream(addr, local))
        .await
        .map_err(|_| unreachable(std::io::ErrorKind::TimedOut.into()))?
        .map_err(unreachable)?;
    let _ = stream.set_nodelay(true);
    timeout(REQUEST_TIMEOUT, handshake(stream, addr, trust))
        .await
        .map_err(|_| ClientError::Tls {
            addr: addr.to_owned(),
            reason: "the TLS handshake did not finish in time".into(),
        })?
}

/// A TCP connection to `addr` (`host:port`), from `local` if given: each address the name
/// resolves to is tried in turn.
async fn open_stream(addr: &str, local: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(local) = local else {
        return TcpStream::connect(addr).await;
    };
    let mut last = std::io::Error::new(
        std::io::ErrorKind::AddrNotAvailable,
        format!("{addr} has no address of the family of {local}"),
    );
    for peer in tokio::net::lookup_host(addr).await? {
        if peer.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if peer.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(local, 0))?;
        match socket.connect(peer).await {
            Ok(stream) => return Ok(stream),
            Err(err) => last = err,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_are_split_as_typed() {
        let split = |a| split_host_port(a);
        assert_eq!(split("localhost:50000"), Some(("localhost".into(), 50000)));
        assert_eq!(split("[::1]:7"), Some(("::1".into(), 7)));
        assert_eq!(split("127.0.0.1:7"), Some(("127.0.0.1".into(), 7)));
        for bad in [
            "localhost",
            "::1:7",
            ":7",
            "h:",
            "h:99999",
            "[::1]7",
            "[]:7",
        ] {
            assert_eq!(split(bad), None, "{bad}");
        }
    }
}
