//! Attacks through the shared folder itself: a file swapped or rewritten between the moment the
//! server announced it (size and hash) and the moment it serves it. What leaves the server must
//! be exactly the bytes it announced, or nothing.

use crate::common::{RawClient, TestServer, start_with};
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

/// As [`ask`], past the notice that the file is being hashed.
async fn ask_hashed(raw: &mut RawClient, file: &str) -> ServerMsg {
    match ask(raw, file).await {
        ServerMsg::DownloadQueued {
            preparing: true, ..
        } => skip_notices(raw).await,
        answer => answer,
    }
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
    let ServerMsg::DownloadReady { id: held, .. } = ask_hashed(&mut holder, "blocker.bin").await
    else {
        panic!("the first download should get the port");
    };
    let mut victim = joined(server, "victim").await;
    let queued = ask_hashed(&mut victim, "innocent.txt").await;
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
        size, secret, port, ..
    } = skip_notices(&mut victim).await
    else {
        panic!("the queued download should be offered once the port is free");
    };
    let (event, bytes) = fetch_raw(port, &secret).await;
    (size, event, bytes)
}

/// Fetches a whole transfer with the transport alone (no hash check, no file): what the
/// server really sends.
async fn fetch_raw(port: u16, secret: &wire::TransferSecret) -> (Event, Vec<u8>) {
    let secret = transport::Secret(secret.0);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let opts = FetchOptions {
        server: SocketAddr::from(([127, 0, 0, 1], port)),
        secret,
        offset: 0,
        pause_at: None,
        config: transport::Config::default(),
    };
    let (_control_tx, control) = watch::channel(Control::Run);
    let fetched = transport::driver::fetch(&socket, opts, Vec::new(), control, None);
    let (outcome, bytes) = tokio::time::timeout(crate::common::WAIT, fetched)
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
        let answer = ask_hashed(&mut raw, name).await;
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

/// A hook that holds the first hashing of `name` until `release` is sent (or dropped).
fn hold_hashing_of(name: &'static str) -> (server::HashHook, std::sync::mpsc::Sender<()>) {
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = std::sync::Mutex::new((held, false));
    let hook = move |file: &str| {
        let mut held = held.lock().unwrap();
        if file == name && !held.1 {
            let _ = held.0.recv();
            held.1 = true;
        }
    };
    (server::HashHook(std::sync::Arc::new(hook)), release)
}

#[tokio::test]
async fn the_first_download_of_a_file_still_being_hashed_is_told_so_and_does_not_time_out() {
    let (hook, release) = hold_hashing_of("big.bin");
    let server = start_with(|c| c.hash_hook = Some(hook)).await;
    let (data, hash) = crate::common::content(3 << 20);
    std::fs::write(server.files.path().join("big.bin"), &data).unwrap();
    let (client, mut events) = crate::common::join(&server, "patient").await;
    let dest = tempfile::tempdir().unwrap();
    let opts = client::DownloadOptions {
        dir: dest.path().to_path_buf(),
        ..client::DownloadOptions::default()
    };
    // Hashing is held for as long as the test likes: the request is answered all the same
    // (before, it waited for the hash and failed after the client's 10 s request timeout).
    let id = tokio::time::timeout(crate::common::WAIT, client.download("big.bin", opts))
        .await
        .expect("the request waited for the hash")
        .unwrap();
    let first = crate::common::next(&mut events).await;
    assert_eq!(
        first,
        client::Event::Transfer(client::TransferEvent {
            id,
            file: "big.bin".into(),
            state: client::TransferState::Preparing,
        })
    );
    let listed = server.handle.transfers().list();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].port, None);
    crate::common::assert_quiet(&mut events).await;
    release.send(()).unwrap();
    let done = crate::common::wait_for(&mut events, |e| {
        matches!(
            e,
            client::Event::Transfer(client::TransferEvent {
                state: client::TransferState::Done { .. } | client::TransferState::Failed { .. },
                ..
            })
        )
    })
    .await;
    let client::Event::Transfer(client::TransferEvent {
        state: client::TransferState::Done { hash: got, .. },
        ..
    }) = done
    else {
        panic!("the download failed: {done:?}");
    };
    assert_eq!(got.to_hex(), hash);
    assert_eq!(std::fs::read(dest.path().join("big.bin")).unwrap(), data);
}

#[tokio::test]
async fn a_file_that_cannot_be_prepared_fails_its_waiting_download_with_a_word() {
    let (hook, release) = hold_hashing_of("going.bin");
    let server = start_with(|c| c.hash_hook = Some(hook)).await;
    let path = server.files.path().join("going.bin");
    std::fs::write(&path, b"soon gone").unwrap();
    let mut raw = joined(&server, "asker").await;
    let ServerMsg::DownloadQueued {
        id,
        preparing: true,
        ..
    } = ask(&mut raw, "going.bin").await
    else {
        panic!("the download should wait for its hash");
    };
    // Truncated while hashed, and gone for the retry: the transfer ends, and says why.
    std::fs::write(&path, b"").unwrap();
    std::fs::remove_file(&path).unwrap();
    release.send(()).unwrap();
    let said = skip_notices(&mut raw).await;
    assert!(
        matches!(
            said,
            ServerMsg::Error {
                req: None,
                code: wire::ErrorCode::NoSuchFile,
                ..
            }
        ),
        "{said:?}"
    );
    assert_eq!(
        skip_notices(&mut raw).await,
        ServerMsg::Cancelled { req: None, id }
    );
    assert!(server.handle.transfers().list().is_empty());
}
