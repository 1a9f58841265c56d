//! The server's TLS identity: a certificate chain and its private key, and the TLS 1.3
//! configuration built from them.
//!
//! By default the identity is self-signed and lives in the data folder: generated on the first
//! start (the key file created readable by its owner only), read back on every later one, so
//! the fingerprint clients pinned stays the same. A certificate from a CA comes from
//! `--tls-cert` and `--tls-key` instead. Everything here reads or writes files: call it on a
//! blocking thread (as [`crate::Server::bind`] does), never on an async worker.

use rustls::ServerConfig;
use rustls::server::ParsedCertificate;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wire::Fingerprint;

/// The self-signed certificate's file in the data folder.
pub const CERT_FILE: &str = "tls-cert.pem";
/// The private key's file in the data folder (mode 0600).
pub const KEY_FILE: &str = "tls-key.pem";

/// Largest PEM file read: a chain of a few certificates, or one key, is a few KiB.
const MAX_PEM: u64 = 1024 * 1024;

/// Where the server's identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsIdentity {
    /// A self-signed certificate in the data folder: generated there on the first start and
    /// reused on every later one.
    SelfSigned,
    /// A certificate chain (leaf first) and its private key, from PEM files: for a
    /// certificate from a CA.
    Files {
        /// The certificate chain's file.
        cert: PathBuf,
        /// The private key's file.
        key: PathBuf,
    },
    /// A self-signed identity made in memory at start-up and gone with the server: for tests
    /// and embedding, where nothing should be written.
    Ephemeral,
}

/// A loaded identity, ready to serve TLS.
#[derive(Debug)]
pub struct Identity {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    fingerprint: Fingerprint,
}

impl Identity {
    /// Loads (or, for [`TlsIdentity::SelfSigned`] on a first start, generates) the identity.
    /// Blocking.
    pub fn load(source: &TlsIdentity, data_dir: &Path) -> io::Result<Self> {
        match source {
            TlsIdentity::SelfSigned => Self::in_data_dir(data_dir),
            TlsIdentity::Files { cert, key } => Self::from_files(cert, key),
            TlsIdentity::Ephemeral => {
                let (cert, key) = self_signed(None)?;
                Self::from_pem(cert.as_bytes(), key.as_bytes())
                    .map_err(|e| io::Error::other(format!("a fresh identity is unusable: {e}")))
            }
        }
    }

    /// The identity kept in `dir`, made there first if it has none.
    fn in_data_dir(dir: &Path) -> io::Result<Self> {
        let context = |what: &str, path: &Path, e: io::Error| {
            io::Error::new(e.kind(), format!("cannot {what} {}: {e}", path.display()))
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| context("create the data folder", dir, e))?;
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        let key = match read_pem(&key_path) {
            Ok(key) => {
                warn_if_readable_by_others(&key_path);
                Some(key)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let cert = match read_pem(&cert_path) {
            Ok(cert) => Some(cert),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        match (cert, key) {
            (Some(cert), Some(key)) => Self::from_pem(&cert, &key).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the identity in {} is unusable: {e}", dir.display()),
                )
            }),
            (Some(_), None) => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} has a certificate but no key ({KEY_FILE}); restore the key, or remove \
                     {CERT_FILE} to make a new identity (clients will then refuse the new key \
                     until they forget the old one)",
                    dir.display()
                ),
            )),
            (None, key) => {
                // A key without its certificate (a first start cut short): a certificate is
                // made for that key, which keeps the fingerprint.
                let old_key = key.as_deref().map(String::from_utf8_lossy);
                let (cert, new_key) = self_signed(old_key.as_deref())?;
                if key.is_none() {
                    write_new(&key_path, new_key.as_bytes(), 0o600)
                        .map_err(|e| context("write", &key_path, e))?;
                }
                write_new(&cert_path, cert.as_bytes(), 0o644)
                    .map_err(|e| context("write", &cert_path, e))?;
                tracing::info!(dir = %dir.display(), "made a new self-signed TLS identity");
                Self::from_pem(cert.as_bytes(), new_key.as_bytes())
                    .map_err(|e| io::Error::other(format!("a fresh identity is unusable: {e}")))
            }
        }
    }

    /// The identity in PEM files `cert` (the chain, leaf first) and `key`.
    fn from_files(cert: &Path, key: &Path) -> io::Result<Self> {
        let cert_pem = read_pem(cert)?;
        let key_pem = read_pem(key)?;
        Self::from_pem(&cert_pem, &key_pem).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "cannot use {} and {} as the TLS identity: {e}",
                    cert.display(),
                    key.display()
                ),
            )
        })
    }

    /// The identity from PEM text: every certificate of `cert` (leaf first) and the first
    /// private key of `key`, which must be the leaf's.
    pub fn from_pem(cert: &[u8], key: &[u8]) -> Result<Self, String> {
        let certs = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the certificate is not PEM: {e}"))?;
        let Some(leaf) = certs.first() else {
            return Err("the certificate file holds no certificate".into());
        };
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| format!("the key is not a PEM private key: {e}"))?;
        let parsed =
            ParsedCertificate::try_from(leaf).map_err(|e| format!("bad certificate: {e}"))?;
        let fingerprint = Fingerprint::of_public_key(parsed.subject_public_key_info().as_ref());
        let identity = Self {
            certs,
            key,
            fingerprint,
        };
        // Refuses a key that is not the certificate's.
        identity.server_config()?;
        Ok(identity)
    }

    /// The fingerprint of the leaf certificate's key, as clients see it.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The TLS configuration: TLS 1.3 only, on the workspace's one provider, with the ALPN id
    /// of the control protocol; no session tickets (a reconnecting client does a whole
    /// handshake, and the server keeps no session cache).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| format!("the key does not fit the certificate: {e}"))?;
        config.alpn_protocols = vec![wire::ALPN.to_vec()];
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        Ok(Arc::new(config))
    }
}

/// A new self-signed certificate (and its key, new unless `key_pem` is given), as PEM: valid
/// for localhost, this host's name, 127.0.0.1 and ::1. Clients trust it by its fingerprint,
/// not by these names.
fn self_signed(key_pem: Option<&str>) -> io::Result<(String, String)> {
    let failed = |e: rcgen::Error| io::Error::other(format!("cannot make a certificate: {e}"));
    let key = match key_pem {
        Some(pem) => rcgen::KeyPair::from_pem(pem).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the key file is not a usable key: {e}"),
            )
        })?,
        None => rcgen::KeyPair::generate().map_err(failed)?,
    };
    let mut names = vec!["localhost".to_owned()];
    if let Some(host) = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty() && h != "localhost")
    {
        names.push(host);
    }
    names.extend(["127.0.0.1".to_owned(), "::1".to_owned()]);
    // A host name that is not a valid DNS name is left out rather than fail the start.
    let mut params = rcgen::CertificateParams::new(names.clone())
        .or_else(|_| rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]))
        .map_err(failed)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "messenger-server");
    let cert = params.self_signed(&key).map_err(failed)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Reads a PEM file of at most [`MAX_PEM`] bytes.
fn read_pem(path: &Path) -> io::Result<Vec<u8>> {
    let file = fs::File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    let mut text = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(file, MAX_PEM + 1), &mut text)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))?;
    if text.len() as u64 > MAX_PEM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {MAX_PEM} bytes", path.display()),
        ));
    }
    Ok(text)
}

/// Writes `bytes` to a new file at `path` with permissions `mode` from its creation on (never
/// readable by others in between): through a temporary file beside it, renamed into place
/// once complete, so a start cut short leaves no half-written file.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)
}

/// Warns when the key file can be read by anyone but its owner.
fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            key = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the TLS key can be read by others than its owner; chmod 600 it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_start_makes_an_identity_and_later_ones_keep_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = Identity::load(&TlsIdentity::SelfSigned, &data).unwrap();
        let mode = fs::metadata(data.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = Identity::load(&TlsIdentity::SelfSigned, &data).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert!(!data.join(format!("{KEY_FILE}.tmp")).exists());
    }

    #[test]
    fn a_key_left_without_its_certificate_gets_a_new_certificate_and_keeps_its_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let first = Identity::load(&TlsIdentity::SelfSigned, dir.path()).unwrap();
        fs::remove_file(dir.path().join(CERT_FILE)).unwrap();
        let renewed = Identity::load(&TlsIdentity::SelfSigned, dir.path()).unwrap();
        assert_eq!(first.fingerprint(), renewed.fingerprint());
    }

    #[test]
    fn a_certificate_without_its_key_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        Identity::load(&TlsIdentity::SelfSigned, dir.path()).unwrap();
        fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let err = Identity::load(&TlsIdentity::SelfSigned, dir.path()).unwrap_err();
        assert!(err.to_string().contains("no key"), "{err}");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let (cert, _) = self_signed(None).unwrap();
        let (_, other_key) = self_signed(None).unwrap();
        let err = Identity::from_pem(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
        assert!(Identity::from_pem(b"not pem", other_key.as_bytes()).is_err());
    }

    #[test]
    fn ephemeral_identities_differ() {
        let a = Identity::load(&TlsIdentity::Ephemeral, Path::new("/nonexistent")).unwrap();
        let b = Identity::load(&TlsIdentity::Ephemeral, Path::new("/nonexistent")).unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
