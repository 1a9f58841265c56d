//! Attacks through the shared folder itself: a file swapped or rewritten between the moment the
//! server announced it (size and hash) and the moment it serves it. What leaves the server must
//! be exactly the bytes it announced, or nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{RawClient, TestServer, start_with};
use std::net::SocketAddr;
use tokio::sync::watch;
use transport::driver::{Control, FetchOptions};
use transport::{AbortReason, Event};
use wire::{ClientMsg, ServerMsg};

const INNOCENT: &[u8] = b"innocent";

/// A server with one UDP port, sharing `innocent.txt` and `blocker.bin`, and a secret file
/// beside (outside) its folder.
async fn server_with_secret() -> (TestServer, tempfile::TempDir) {
    let server = start_with(|c| c.udp_ports = server::UdpPorts::Ephemeral(1)).await;
    std::fs::write(server.files.path().join("innocent.txt"), INNOCENT).unwrap();
    std::fs::write(server.files.path().join("blocker.bin"), b"x").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), [b'S'; 260]).unwrap();
    (server, outside)
}

async fn joined(server: &TestServer, name: &str) -> RawClient {
    let mut raw = RawClient::connect(&server.addr).await;
    raw.hello(name).await;
    assert!(matches!(raw.recv().await, Some(ServerMsg::Welcome { .. })));
    raw
}

/// Asks for `file` and returns the first answer that is not a join notice.
async fn ask(raw: &mut RawClient, file: &str) -> ServerMsg {
    raw.send(&ClientMsg::Download {
        file: file.into(),
        req: Some(1),
    })
    .await;
    skip_notices(raw).await
}

async fn skip_notices(raw: &mut RawClient) -> ServerMsg {
    loop {
        match raw.recv().await {
            Some(ServerMsg::Joined { .. } | ServerMsg::Left { .. }) => {}
            Some(msg) => return msg,
            None => panic!("the server closed the connection"),
        }
    }
}

/// Takes the only port with a transfer nobody opens, queues `innocent.txt` behind it, lets
/// `meanwhile` tamper with the folder, frees the port, and fetches what the server then sends.
/// Returns the announced size, how the flow ended and the bytes that arrived.
async fn queue_tamper_fetch(
    server: &TestServer,
    meanwhile: impl FnOnce(),
) -> (u64, Event, Vec<u8>) {
    let mut holder = joined(server, "holder").await;
    let ServerMsg::DownloadReady { id: held, .. } = ask(&mut holder, "blocker.bin").await else {
        panic!("the first download should get the port");
    };
    let mut victim = joined(server, "victim").await;
    let queued = ask(&mut victim, "innocent.txt").await;
    assert!(
        matches!(queued, ServerMsg::DownloadQueued { .. }),
        "{queued:?}"
    );
    meanwhile();
    holder
        .send(&ClientMsg::Cancel {
            id: held,
            req: None,
        })
        .await;
    let ServerMsg::DownloadReady {
        size, token, port, ..
    } = skip_notices(&mut victim).await
    else {
        panic!("the queued download should be offered once the port is free");
    };
    let (event, bytes) = fetch_raw(port, &token).await;
    (size, event, bytes)
}

/// Fetches a whole transfer with the transport alone (no hash check, no file): what the
/// server really sends.
async fn fetch_raw(port: u16, token: &str) -> (Event, Vec<u8>) {
    let token: [u8; 16] = (0..16)
        .map(|i| u8::from_str_radix(&token[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .try_into()
        .unwrap();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let opts = FetchOptions {
        server: SocketAddr::from(([127, 0, 0, 1], port)),
        token,
        offset: 0,
        pause_at: None,
        config: transport::Config::default(),
    };
    let (_control_tx, control) = watch::channel(Control::Run);
    let fetched = transport::driver::fetch(&socket, opts, Vec::new(), control, None);
    let (outcome, bytes) = tokio::time::timeout(common::WAIT, fetched)
        .await
        .expect("the transfer never ended");
    (outcome.event, bytes)
}

#[tokio::test]
async fn a_queued_file_swapped_for_a_link_outside_serves_the_announced_bytes_only() {
    let (server, outside) = server_with_secret().await;
    let name = server.files.path().join("innocent.txt");
    let secret = outside.path().join("secret");
    let (size, event, bytes) = queue_tamper_fetch(&server, || {
        std::fs::remove_file(&name).unwrap();
        std::os::unix::fs::symlink(&secret, &name).unwrap();
    })
    .await;
    assert!(!bytes.contains(&b'S'), "the outside file leaked: {bytes:?}");
    assert_eq!(size, INNOCENT.len() as u64);
    assert!(matches!(event, Event::Finished { .. }), "{event:?}");
    assert_eq!(bytes, INNOCENT);
}

#[tokio::test]
async fn a_queued_file_rewritten_in_place_is_refused_rather_than_served_under_the_old_hash() {
    let (server, _outside) = server_with_secret().await;
    let name = server.files.path().join("innocent.txt");
    let (_, event, bytes) = queue_tamper_fetch(&server, || {
        std::fs::write(&name, b"REWRITTEN, and longer").unwrap();
    })
    .await;
    assert!(
        matches!(
            event,
            Event::Aborted {
                reason: AbortReason::SourceFailed,
                by_peer: true
            }
        ),
        "{event:?}"
    );
    assert!(!bytes.contains(&b'R'), "new bytes went out: {bytes:?}");
}

#[tokio::test]
async fn a_link_to_a_file_outside_is_not_shared_and_a_fifo_does_not_hang_the_server() {
    let (server, outside) = server_with_secret().await;
    let dir = server.files.path();
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.join("escape")).unwrap();
    nix::unistd::mkfifo(&dir.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let mut raw = joined(&server, "asker").await;
    for name in ["escape", "fifo", "innocent.txt"] {
        let answer = ask(&mut raw, name).await;
        match name {
            "innocent.txt" => assert!(
                matches!(answer, ServerMsg::DownloadReady { .. }),
                "{answer:?}"
            ),
            _ => assert!(
                matches!(
                    answer,
                    ServerMsg::Error {
                        code: wire::ErrorCode::NoSuchFile,
                        ..
                    }
                ),
                "{name}: {answer:?}"
            ),
        }
    }
}
