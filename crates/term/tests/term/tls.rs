//! Whom the terminal client trusts: a key seen first (trusted once by a script, asked about at
//! a terminal), then known; a changed key and a wrong pin refused; a certificate from a CA
//! given with `--ca`, accepted for its host only. (A man in the middle is refused by the
//! library itself: see the `client` crate's tests.)

use crate::common::{Cli, TestServer, WAIT, messenger, serve, start_with};
use client::{Client, ClientError, KeyStatus, NewKey, Trust};
use std::path::Path;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use wire::Fingerprint;

/// The `--json` client with `known_servers` in `file`, run until it has connected and quit, or
/// failed: its events and exit code.
async fn script(addr: &str, file: &Path, extra: &[&str]) -> (Vec<serde_json::Value>, i32, String) {
    let mut args = vec!["--known-servers", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut cli = Cli::spawn_to(addr, None, "scripted", &args);
    cli.type_line("/quit").await;
    cli.close_stdin();
    let mut events = Vec::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(WAIT, cli.stdout.next_line()).await {
        events.push(serde_json::from_str(&line).unwrap());
    }
    let output = cli.child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (events, output.status.code().unwrap_or(-1), stderr)
}

fn kinds(events: &[serde_json::Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["event"].as_str()).collect()
}

/// A server at `addr` (one that stopped there) with a fresh identity: the same address, another
/// key, as a man in the middle or a reinstalled server would show.
async fn impostor_at(addr: &str) -> TestServer {
    let addr = addr.parse().unwrap();
    serve(tempfile::tempdir().unwrap(), |c| c.bind = addr).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_trusts_a_new_key_once_then_knows_it_and_refuses_it_changed() {
    let server = start_with(|_| {}).await;
    let addr = server.addr.clone();
    let key = server.key().to_string();
    let config = tempfile::tempdir().unwrap();
    let file = config.path().join("messenger").join("known_servers");

    let (events, code, stderr) = script(&addr, &file, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        kinds(&events)[..2],
        ["server_key", "connected"],
        "{events:?}"
    );
    assert_eq!(events[0]["status"], "new");
    assert_eq!(events[0]["fingerprint"], key.as_str());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{addr} {key}\n")
    );

    let (events, code, _) = script(&addr, &file, &[]).await;
    assert_eq!(code, 0);
    assert_eq!(events[0]["event"], "server_key");
    assert_eq!(events[0]["status"], "known");

    // Another key at the same address: refused, whatever the script would like.
    server.handle.stop().await;
    let impostor = impostor_at(&addr).await;
    let (events, code, stderr) = script(&addr, &file, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(kinds(&events), ["error"], "{events:?}");
    assert_eq!(events[0]["code"], "server_key_changed");
    let message = events[0]["message"].as_str().unwrap();
    for text in [message, &stderr] {
        for part in [
            key.clone(),
            impostor.key().to_string(),
            file.display().to_string(),
            "line 1".into(),
        ] {
            assert!(text.contains(&part), "{text:?} lacks {part:?}");
        }
    }
    assert!(impostor.handle.users().is_empty(), "no hello reached it");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{addr} {key}\n"),
        "the file is left as it was"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_for_people_says_on_stderr_that_it_trusted_a_new_key() {
    let server = start_with(|_| {}).await;
    let config = tempfile::tempdir().unwrap();
    let file = config.path().join("known_servers");
    let output = messenger(None)
        .args(["--server", &server.addr, "--name", "piped"])
        .args(["--known-servers", file.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("trusting the new key") && stderr.contains(&server.key().to_string()),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_fingerprint_that_is_not_the_servers_is_refused_in_every_mode() {
    let server = start_with(|_| {}).await;
    std::fs::write(server.files.path().join("f.txt"), b"data").unwrap();
    let wrong = Fingerprint::of_public_key(b"someone else").to_string();
    let config = tempfile::tempdir().unwrap();
    let file = config.path().join("known_servers");
    let (events, code, stderr) = script(&server.addr, &file, &["--fingerprint", &wrong]).await;
    assert_eq!(code, 1);
    assert_eq!(events[0]["code"], "server_key_changed", "{events:?}");
    assert!(stderr.contains(&wrong) && stderr.contains(&server.key().to_string()));
    assert!(!file.exists(), "a pin writes nothing");

    let dest = tempfile::tempdir().unwrap();
    let output = messenger(None)
        .args(["--server", &server.addr, "--name", "getter"])
        .args(["--fingerprint", &wrong, "--download-dir"])
        .arg(dest.path())
        .args(["get", "f.txt"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("HAS CHANGED"));
    assert!(!dest.path().join("f.txt").exists());
    // The right pin connects (status known).
    let right = server.key().to_string();
    let (events, code, _) = script(&server.addr, &file, &["--fingerprint", &right]).await;
    assert_eq!(code, 0);
    assert_eq!(events[0]["status"], "known");
}

/// A CA, and a server certificate it signed for `localhost`, written into `dir`: the CA's PEM
/// path, and the server's identity.
fn ca_signed(dir: &Path) -> (std::path::PathBuf, server::TlsIdentity) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let paths = ["ca.pem", "cert.pem", "key.pem"].map(|n| dir.join(n));
    std::fs::write(&paths[0], ca_cert.pem()).unwrap();
    std::fs::write(&paths[1], leaf_cert.pem()).unwrap();
    std::fs::write(&paths[2], leaf_key.serialize_pem()).unwrap();
    let [ca, cert, key] = paths;
    (ca, server::TlsIdentity::Files { cert, key })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_the_ca_given_is_trusted_for_its_host_and_no_other() {
    let pki = tempfile::tempdir().unwrap();
    let (ca, identity) = ca_signed(pki.path());
    let server = start_with(|c| c.tls = identity).await;
    let port = server.handle.addr().port();
    let config = tempfile::tempdir().unwrap();
    let file = config.path().join("known_servers");

    let by_name = format!("localhost:{port}");
    let (events, code, stderr) = script(&by_name, &file, &["--ca", ca.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(events[0]["event"], "server_key");
    assert_eq!(events[0]["status"], "ca");
    assert!(!file.exists(), "a CA's word needs no record");

    // The same certificate reached under a name it does not carry is no CA's word: without a
    // known_servers file to trust it in, it is refused.
    let trust = Trust {
        pin: None,
        native_roots: false,
        ca_file: Some(ca.clone()),
        known_servers: None,
        new_key: NewKey::Accept,
    };
    let (client, _) = Client::connect(&by_name, "named", &trust).await.unwrap();
    assert_eq!(client.server_key().status, KeyStatus::Ca);
    let by_address = format!("127.0.0.1:{port}");
    let err = Client::connect(&by_address, "unnamed", &trust)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::UntrustedServer { .. }), "{err}");
    // Nor is one from another CA.
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _) = ca_signed(other.path());
    let err = Client::connect(
        &by_name,
        "wrong_ca",
        &Trust {
            ca_file: Some(other_ca),
            ..trust
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::UntrustedServer { .. }), "{err}");
}

/// Runs the human client on a terminal of its own (`script` gives it a pty), answers its
/// question with `answer`, and returns its exit code once it has ended.
async fn at_a_terminal(addr: &str, file: &Path, answer: &str, then: &str) -> i32 {
    let command = format!(
        "{} --server {addr} --name person --known-servers {}",
        env!("CARGO_BIN_EXE_messenger"),
        file.display()
    );
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("XDG_CONFIG_HOME", crate::common::NO_CONFIG)
        .env("TERM", "dumb")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Wait for the question before answering it.
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&seen).contains("(yes/no)") {
            let n = tokio::io::AsyncReadExt::read(&mut stdout, &mut buf)
                .await
                .unwrap();
            assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the question never came");
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(text.contains("is not known yet"), "{text}");
    stdin.write_all(answer.as_bytes()).await.unwrap();
    stdin.flush().await.unwrap();
    if !then.is_empty() {
        // Once connected, the line editor takes the terminal: `then` (Ctrl-D) ends the input.
        let deadline = tokio::time::Instant::now() + WAIT;
        while !std::fs::read_to_string(file).is_ok_and(|t| !t.is_empty()) {
            assert!(tokio::time::Instant::now() < deadline, "never recorded");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        stdin.write_all(then.as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
    }
    tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut sink).await;
    });
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the client never ended")
        .unwrap();
    drop(stdin);
    status.code().unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_at_a_terminal_is_asked_and_only_yes_trusts_the_key() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("no `script` here to give the client a terminal; skipped");
        return;
    }
    let server = start_with(|_| {}).await;
    let config = tempfile::tempdir().unwrap();
    let file = config.path().join("known_servers");
    assert_eq!(at_a_terminal(&server.addr, &file, "no\n", "").await, 1);
    assert!(!file.exists(), "a key declined is not recorded");
    assert!(server.handle.users().is_empty());

    assert_eq!(
        at_a_terminal(&server.addr, &file, "yes\n", "\u{4}").await,
        0
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{} {}\n", server.addr, server.key())
    );
}
