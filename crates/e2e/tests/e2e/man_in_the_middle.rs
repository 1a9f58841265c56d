//! Whom the client library trusts, at the handshake: a man in the middle showing the server's
//! certificate without its key is refused. (The trust the terminal client's flags ask for is
//! tested with the binary, in the `term` crate.)

use client::{Client, ClientError, NewKey, Trust};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Shows a chosen certificate chain, and signs the handshake with a key of its own.
#[derive(Debug)]
struct Impersonate(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Impersonate {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_man_in_the_middle_showing_the_servers_certificate_without_its_key_fails_the_handshake() {
    // The real server's identity, whose certificate anyone may copy.
    let data = tempfile::tempdir().unwrap();
    let real = server::Identity::load(&server::TlsIdentity::SelfSigned, data.path()).unwrap();
    let cert_pem = std::fs::read(data.path().join(server::CERT_FILE)).unwrap();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .unwrap();
    // The impostor's own key.
    let theirs = rcgen::KeyPair::generate().unwrap();
    let key = PrivateKeyDer::from_pem_slice(theirs.serialize_pem().as_bytes()).unwrap();
    let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Impersonate(Arc::new(
            rustls::sign::CertifiedKey::new(chain, signer),
        ))));
    config.alpn_protocols = vec![wire::ALPN.to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (heard_tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let heard = heard_tx.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 256];
                    if let Ok(n @ 1..) = tokio::io::AsyncReadExt::read(&mut tls, &mut buf).await {
                        let _ = heard.send(buf[..n].to_vec());
                    }
                }
            });
        }
    });

    // Pinned, or known from an earlier visit: the key is the real one, the signature is not.
    let config = tempfile::tempdir().unwrap();
    let file = config.path().join("known_servers");
    std::fs::write(&file, format!("{addr} {}\n", real.fingerprint())).unwrap();
    let known = Trust {
        native_roots: false,
        known_servers: Some(file),
        ..Trust::for_user(NewKey::Accept)
    };
    for trust in [Trust::pinned(real.fingerprint()), known] {
        let err = Client::connect(&addr, "victim", &trust).await.unwrap_err();
        assert!(matches!(err, ClientError::Tls { .. }), "{err}");
    }
    assert!(heard.try_recv().is_err(), "the impostor heard nothing");
}
