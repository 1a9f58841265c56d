//! A TLS identity made up for one test: what a fake server, or a relay in the middle, shows
//! its clients. It is built as the server builds its own (TLS 1.3 only, the protocol's ALPN
//! id), without the server crate, so that the client's tests need no server.

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;
use wire::Fingerprint;

/// A fresh self-signed identity for `localhost` and 127.0.0.1: the TLS configuration that
/// presents it, and the fingerprint a client pins to trust it.
pub fn ephemeral() -> (Arc<rustls::ServerConfig>, Fingerprint) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = CertificateDer::from(params.self_signed(&key).unwrap().der().to_vec());
    // As the client computes it: over the certificate's public key.
    let parsed = rustls::server::ParsedCertificate::try_from(&cert).unwrap();
    let fingerprint = Fingerprint::of_public_key(parsed.subject_public_key_info().as_ref());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    config.alpn_protocols = vec![wire::ALPN.to_vec()];
    (Arc::new(config), fingerprint)
}
