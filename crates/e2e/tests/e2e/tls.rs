//! The control channel is TLS 1.3 and nothing else: the server's identity, kept across
//! restarts, and what a peer that does not finish its handshake, or speaks plain text, gets.

use crate::common::{ServerProcess, WAIT, spawn_server, start_with};
use client::{Client, Trust};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use wire::{ClientMsg, Fingerprint};

/// Reads until the peer closes (or fails) and returns what came, within `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the server kept the connection open");
    got
}

#[tokio::test]
async fn the_server_keeps_its_identity_across_restarts_with_its_key_readable_by_it_alone() {
    let files = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("created-at-start");
    let args = ["--data-dir", dir.to_str().unwrap()];
    let first = spawn_server(files.path(), &args);
    let key_file = dir.join(server::KEY_FILE);
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key is the owner's alone");
    let (_alice, _) = Client::connect(&first.addr, "alice", &first.trust())
        .await
        .unwrap();
    let ServerProcess { mut child, key, .. } = first;
    child.kill().unwrap();
    child.wait().unwrap();

    let second = spawn_server(files.path(), &args);
    assert_eq!(second.key, key, "the same key after a restart");
    Client::connect(&second.addr, "alice", &Trust::pinned(key))
        .await
        .unwrap();
    let ServerProcess { mut child, .. } = second;
    child.kill().unwrap();
    let _ = child.wait();
}

#[tokio::test]
async fn a_certificate_and_key_from_files_are_served_and_a_half_given_pair_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let identity = server::Identity::load(&server::TlsIdentity::SelfSigned, dir.path()).unwrap();
    let (cert, key) = (
        dir.path().join(server::CERT_FILE),
        dir.path().join(server::KEY_FILE),
    );
    let files = tempfile::tempdir().unwrap();
    let served = spawn_server(
        files.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(served.key, identity.fingerprint());
    Client::connect(&served.addr, "alice", &served.trust())
        .await
        .unwrap();
    let ServerProcess { mut child, .. } = served;
    child.kill().unwrap();
    let _ = child.wait();

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_e2e-messenger-server"))
        .args(["--tls-cert", cert.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--tls-key"));
}

#[tokio::test]
async fn a_data_folder_that_is_the_shared_folder_is_refused_so_the_key_is_never_shared() {
    let files = tempfile::tempdir().unwrap();
    let mut config = server::Config::local(files.path(), 1);
    config.tls = server::TlsIdentity::SelfSigned;
    config.data_dir = files.path().join(".").join("");
    let err = server::Server::bind(config).await.err().expect("refused");
    assert!(err.to_string().contains("shared"), "{err}");
    assert!(!files.path().join(server::KEY_FILE).exists());
}

#[tokio::test]
async fn on_a_fresh_machine_a_data_folder_spelled_otherwise_than_the_shared_one_is_still_refused() {
    // Neither folder exists yet (the first start): `files` and `./files` are the same folder.
    let root = tempfile::tempdir().unwrap();
    let mut config = server::Config::local(root.path().join("files"), 1);
    config.tls = server::TlsIdentity::SelfSigned;
    config.data_dir = root.path().join(".").join("files");
    let err = server::Server::bind(config).await.err().expect("refused");
    assert!(err.to_string().contains("shared"), "{err}");
    assert!(!root.path().join("files").join(server::KEY_FILE).exists());
}

#[tokio::test]
async fn a_key_file_given_inside_the_shared_folder_is_refused() {
    let files = tempfile::tempdir().unwrap();
    let mut config = server::Config::local(files.path(), 1);
    config.tls = server::TlsIdentity::Files {
        cert: files.path().join("cert.pem"),
        key: files.path().join("key.pem"),
    };
    let err = server::Server::bind(config).await.err().expect("refused");
    assert!(err.to_string().contains("shared"), "{err}");
}

// On tokio's paused clock: the timeout is the server's real one, and the test waits for it
// in virtual time, so a slow machine can neither make it pass early nor fail late.
#[tokio::test(start_paused = true)]
async fn a_connection_that_never_finishes_its_handshake_is_closed_in_time_and_holds_nobody_out() {
    let timeout = Duration::from_secs(10);
    let server = start_with(|c| {
        c.handshake_timeout = timeout;
        c.max_pending_per_address = 1;
    })
    .await;
    // An attacker's socket that never sends a ClientHello holds the address's one pending
    // place...
    let mut silent = TcpStream::connect(&server.addr).await.unwrap();
    let opened = Instant::now();
    // ...until the handshake timeout closes it, without a word.
    let got = read_until_closed(&mut silent, 6 * timeout).await;
    let held = opened.elapsed();
    assert!(got.is_empty(), "the server sent {got:?}");
    assert!(held >= timeout, "closed after {held:?}");
    assert!(
        held < timeout + Duration::from_secs(1),
        "closed only after {held:?}"
    );
    // Then the place is free again.
    Client::connect(&server.addr, "after", &server.trust())
        .await
        .unwrap();
}

// On tokio's paused clock, as above.
#[tokio::test(start_paused = true)]
async fn silent_sockets_beyond_the_pending_cap_are_refused_and_timed_out() {
    let timeout = Duration::from_secs(10);
    let server = start_with(|c| {
        c.handshake_timeout = timeout;
        c.max_pending = 4;
    })
    .await;
    let opened = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(&server.addr).await.unwrap());
    }
    // The crowd holds every pending place: a fifth connection is closed at once.
    assert!(
        Client::connect(&server.addr, "early", &server.trust())
            .await
            .is_err()
    );
    assert!(
        opened.elapsed() < timeout,
        "refused only after {:?}",
        opened.elapsed()
    );
    // Once the handshake timeout has closed the crowd, users get in.
    for socket in &mut silent {
        assert!(read_until_closed(socket, 6 * timeout).await.is_empty());
    }
    assert!(
        opened.elapsed() >= timeout,
        "closed after {:?}",
        opened.elapsed()
    );
    Client::connect(&server.addr, "late", &server.trust())
        .await
        .unwrap();
}

#[tokio::test]
async fn plain_json_gets_nothing_readable_back_and_the_server_lives_on() {
    let server = start_with(|_| {}).await;
    for payload in [
        ClientMsg::hello(1, "plain").to_frame().to_vec(),
        b"{\"type\":\"hello\",\"version\":1,\"name\":\"plain\"}\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ] {
        let mut plain = TcpStream::connect(&server.addr).await.unwrap();
        plain.write_all(&payload).await.unwrap();
        let got = read_until_closed(&mut plain, WAIT).await;
        // At most a TLS alert record (content type 21), never a frame or JSON.
        assert!(got.is_empty() || got[0] == 21, "{got:?}");
        assert!(got.len() <= 7, "{got:?}");
        assert!(!String::from_utf8_lossy(&got).contains('{'), "{got:?}");
    }
    assert!(server.handle.users().is_empty());
    Client::connect(&server.addr, "after", &server.trust())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_client_that_trusts_another_key_is_refused_before_it_says_hello() {
    let server = start_with(|_| {}).await;
    let other = Trust::pinned(Fingerprint::of_public_key(b"not this server's key"));
    let err = Client::connect(&server.addr, "victim", &other)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(client::ErrorCode::ServerKeyChanged),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&server.handle.fingerprint().to_string())
    );
    assert!(server.handle.users().is_empty(), "no hello was sent");
}
