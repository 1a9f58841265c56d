//! A server that wants to hurt its clients: it names files to write outside the download
//! folder, plants links where downloads land, floods the chat while a request waits, and
//! trickles data to keep a download alive for ever. Each test carries the attack out against
//! the real client library or the real `messenger` binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use client::{Client, Event, TransferState};
use common::fake_server::{FakeServer, Script, ready, serve_once, udp_socket};
use common::{WAIT, make_file, opts, outcome, start_with};
use std::path::Path;
use std::time::Duration;
use transport::packet::{self, Frame, Packet};
use wire::{ClientMsg, ServerMsg};

/// Runs `messenger get FILE` against `addr` (trusting `key`) in `dir` and returns its exit code, stdout and
/// stderr.
async fn get(
    addr: &str,
    key: &wire::Fingerprint,
    dir: &Path,
    file: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        common::messenger(Some(key))
            .args(["--server", addr, "--name", "victim"])
            .args(["--download-dir", dir.to_str().unwrap()])
            .args(extra)
            .args(["get", file])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("get never ended")
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

/// A server that answers every download by offering `offered` instead, and serves `data`.
async fn offering(offered: &'static str, data: &'static [u8]) -> FakeServer {
    FakeServer::start(move || -> Script {
        Box::new(move |msg| match msg {
            ClientMsg::Download { req, .. } => {
                let port = serve_once(data.to_vec());
                vec![ready(*req, 7, offered, data, port)]
            }
            _ => vec![],
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_under_another_name_is_refused_and_nothing_lands_outside() {
    for offered in ["../../x", "/tmp/messenger-attack-abs", "other.txt"] {
        let server = offering(offered, b"attacker's bytes").await;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b/downloads");
        std::fs::create_dir_all(&dir).unwrap();
        let (code, stdout, stderr) = get(
            &server.addr.to_string(),
            &server.key,
            &dir,
            "notes.txt",
            &[],
        )
        .await;
        assert_eq!(code, 1, "{offered}: {stdout} {stderr}");
        assert!(stderr.contains("instead of the file asked for"), "{stderr}");
        assert_eq!(files_under(root.path()), Vec::<String>::new(), "{offered}");
        assert!(!Path::new("/tmp/messenger-attack-abs").exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_offer_that_changes_its_name_when_ready_is_refused() {
    let data: &[u8] = b"attacker's bytes";
    let server = FakeServer::start(move || -> Script {
        Box::new(move |msg| match msg {
            ClientMsg::Download { req, file } => {
                let queued = ServerMsg::DownloadQueued {
                    req: *req,
                    id: 3,
                    file: file.clone(),
                    position: 0,
                    preparing: false,
                }
                .to_frame();
                let port = serve_once(data.to_vec());
                vec![queued, ready(None, 3, "../../queued-x", data, port)]
            }
            _ => vec![],
        })
    })
    .await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a/b/downloads");
    std::fs::create_dir_all(&dir).unwrap();
    let (client, mut events) = Client::connect(&server.addr.to_string(), "victim", &server.trust())
        .await
        .unwrap();
    let id = client.download("notes.txt", opts(&dir)).await.unwrap();
    match outcome(&mut events, id).await {
        TransferState::Failed { error } => {
            assert!(error.contains("instead of the file asked for"), "{error}");
        }
        other => panic!("the renamed offer was taken: {other:?}"),
    }
    assert_eq!(files_under(root.path()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_name_asked_for_is_saved_as_one_file_inside_the_folder() {
    // The server shares a file under a name that means a path; the client saves it inside
    // its folder under one safe name.
    let data: &'static [u8] = b"fine bytes";
    let server = offering("../../x", data).await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a/b/downloads");
    std::fs::create_dir_all(&dir).unwrap();
    let (code, stdout, stderr) =
        get(&server.addr.to_string(), &server.key, &dir, "../../x", &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(files_under(root.path()), vec!["a/b/downloads/.._.._x"]);
    assert_eq!(
        Path::new(stdout.trim()),
        dir.canonicalize().unwrap().join(".._.._x")
    );
    assert_eq!(std::fs::read(dir.join(".._.._x")).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_planted_at_the_part_file_is_refused_and_the_victims_file_kept() {
    let server = start_with(|_| {}).await;
    make_file(server.files.path(), "big.bin", 100_000);
    let shared = tempfile::tempdir().unwrap();
    let precious = shared.path().join("precious.txt");
    std::fs::write(&precious, b"the victim's own data").unwrap();
    std::os::unix::fs::symlink(&precious, shared.path().join("big.bin.part")).unwrap();
    let (code, _, stderr) = get(&server.addr, &server.key(), shared.path(), "big.bin", &[]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(std::fs::read(&precious).unwrap(), b"the victim's own data");
    assert!(!shared.path().join("big.bin").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_flood_never_holds_up_the_answer_to_a_request() {
    // While `users` waits for its answer, the server sends far more chat than the client
    // buffers for a front end that is not reading (this one reads nothing until the answer).
    const FLOOD: usize = 5000;
    let server = FakeServer::start(|| -> Script {
        Box::new(|msg| match msg {
            ClientMsg::ListUsers { req } => {
                let mut out: Vec<Bytes> = (0..FLOOD)
                    .map(|i| {
                        ServerMsg::Message {
                            from: "flooder".into(),
                            text: format!("spam {i}"),
                            private: false,
                            time: 0,
                        }
                        .to_frame()
                    })
                    .collect();
                out.push(
                    ServerMsg::Users {
                        req: *req,
                        names: vec!["victim".into()],
                    }
                    .to_frame(),
                );
                out
            }
            _ => vec![],
        })
    })
    .await;
    let (client, mut events) = Client::connect(&server.addr.to_string(), "victim", &server.trust())
        .await
        .unwrap();
    let names = tokio::time::timeout(WAIT, client.users())
        .await
        .expect("the answer waited behind the flood")
        .unwrap();
    assert_eq!(names, vec!["victim"]);
    // The front end hears that it fell behind, and how far.
    let (mut messages, mut missed) = (0, 0);
    while messages + missed < FLOOD as u64 {
        match tokio::time::timeout(WAIT, events.recv()).await.unwrap() {
            Some(Event::Message { .. }) => messages += 1,
            Some(Event::Lagged { missed: m }) => missed += m,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(missed > 0 && messages >= 1000, "{messages} {missed}");
}

/// A transfer port that answers the HELLO and then sends one byte every 100 ms, for ever:
/// enough to keep the flow from timing out, far too little to ever finish.
fn trickle(size: u64) -> u16 {
    let socket = udp_socket();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        let (n, peer) = socket.recv_from(&mut buf).await.unwrap();
        // The offer's secret is all zeros: this server has the keys, as a real one would.
        let secret = transport::Secret([0; 32]);
        let mut keys = transport::Keys::for_sender(&secret);
        let plain = keys.open(&mut buf[..n]).unwrap();
        let packet = packet::decode(&buf[..plain]).unwrap();
        let conn_id = packet.conn_id;
        if let Frame::Hello { suite, .. } = packet.frame {
            keys.set_suite(transport::Suite::from_code(suite).unwrap());
        }
        let send = |pn: u64, frame: Frame<'_>| {
            let mut out = vec![0u8; 2048];
            let n = packet::encode(&Packet { conn_id, pn, frame }, &mut out).unwrap();
            let n = keys.seal(&mut out, n).unwrap();
            out.truncate(n);
            out
        };
        let hello_ack = send(
            0,
            Frame::HelloAck {
                total: size,
                offset: 0,
            },
        );
        socket.send_to(&hello_ack, peer).await.unwrap();
        for i in 0..size {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let data = send(
                i + 1,
                Frame::Data {
                    offset: i,
                    payload: b"x",
                },
            );
            if socket.send_to(&data, peer).await.is_err() {
                return;
            }
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_trickles_data_fails_the_download_with_a_clear_message() {
    let server = FakeServer::start(|| -> Script {
        Box::new(|msg| match msg {
            ClientMsg::Download { req, file } => {
                let port = trickle(1 << 20);
                let frame = ServerMsg::DownloadReady {
                    req: *req,
                    id: 1,
                    file: file.clone(),
                    size: 1 << 20,
                    hash: wire::FileHash([0; 32]),
                    secret: wire::TransferSecret([0; 32]),
                    port,
                }
                .to_frame();
                vec![frame]
            }
            _ => vec![],
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = get(
        &server.addr.to_string(),
        &server.key,
        dir.path(),
        "slow.bin",
        &["--stall-timeout", "2"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("the transfer stalled"), "{stderr}");
    // What did arrive is kept, to resume from.
    assert!(dir.path().join("slow.bin.part").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_offer_fails_at_once_and_leaves_the_name_free() {
    let server = FakeServer::start(|| -> Script {
        Box::new(|msg| match msg {
            ClientMsg::Download { req, file } => {
                // The hash is 64 bytes but not hex: slicing it could panic.
                let offer = serde_json::json!({
                    "type": "download_ready", "req": req, "id": 1, "file": file, "size": 10,
                    "hash": "é".repeat(32), "secret": "00".repeat(32), "port": 9,
                });
                vec![wire::encode_frame(offer.to_string().as_bytes())]
            }
            _ => vec![],
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = get(
        &server.addr.to_string(),
        &server.key,
        dir.path(),
        "f.txt",
        &[],
    )
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("malformed"), "{stderr}");
    let (client, _events) = Client::connect(&server.addr.to_string(), "again", &server.trust())
        .await
        .unwrap();
    for _ in 0..2 {
        let err = client
            .download("f.txt", opts(dir.path()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("malformed"), "{err}");
    }
}

/// A queued download whose later offer (no `req`: nobody waits for it) is malformed fails
/// that transfer with a clear error; the connection and the chat carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_offer_for_a_queued_download_fails_that_transfer_only() {
    let server = FakeServer::start(|| -> Script {
        Box::new(|msg| match msg {
            ClientMsg::Download { req, file } => {
                let queued = ServerMsg::DownloadQueued {
                    req: *req,
                    id: 7,
                    file: file.clone(),
                    position: 0,
                    preparing: false,
                }
                .to_frame();
                let offer = serde_json::json!({
                    "type": "download_ready", "id": 7, "file": file, "size": 10,
                    "hash": "AB".repeat(32), "secret": "00".repeat(32), "port": 9,
                });
                vec![queued, wire::encode_frame(offer.to_string().as_bytes())]
            }
            ClientMsg::ListUsers { req } => vec![
                ServerMsg::Users {
                    req: *req,
                    names: vec!["victim".into()],
                }
                .to_frame(),
            ],
            _ => vec![],
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (client, mut events) = Client::connect(&server.addr.to_string(), "victim", &server.trust())
        .await
        .unwrap();
    let id = client.download("f.txt", opts(dir.path())).await.unwrap();
    match outcome(&mut events, id).await {
        TransferState::Failed { error } => assert!(error.contains("malformed"), "{error}"),
        other => panic!("the transfer ended as {other:?}"),
    }
    assert_eq!(client.users().await.unwrap(), vec!["victim".to_string()]);
}

/// A transfer port that answers every HELLO with ABORT 6 ("paused too long"), counting them.
fn claims_a_pause(hellos: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> u16 {
    let socket = udp_socket();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            // The offer's secret is all zeros: this server has the keys, as a real one would.
            let mut keys = transport::Keys::for_sender(&transport::Secret([0; 32]));
            let Ok(plain) = keys.open(&mut buf[..n]) else {
                continue;
            };
            let Ok(packet) = packet::decode(&buf[..plain]) else {
                continue;
            };
            let Frame::Hello { suite, .. } = packet.frame else {
                continue;
            };
            keys.set_suite(transport::Suite::from_code(suite).unwrap());
            hellos.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut out = vec![0u8; 64];
            let abort = Packet {
                conn_id: packet.conn_id,
                pn: 0,
                frame: Frame::Abort { reason: 6 },
            };
            let n = packet::encode(&abort, &mut out).unwrap();
            let n = keys.seal(&mut out, n).unwrap();
            let _ = socket.send_to(&out[..n], peer).await;
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_claiming_a_running_transfer_was_paused_too_long_fails_it_once() {
    let hellos = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&hellos);
    let server = FakeServer::start(move || -> Script {
        let hellos = std::sync::Arc::clone(&counted);
        let mut next_id = 0;
        Box::new(move |msg| match msg {
            ClientMsg::Download { req, file } => {
                next_id += 1;
                let port = claims_a_pause(std::sync::Arc::clone(&hellos));
                vec![ready(*req, next_id, file, &[1; 100], port)]
            }
            _ => vec![],
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = get(
        &server.addr.to_string(),
        &server.key,
        dir.path(),
        "f.bin",
        &[],
    )
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("paused for longer"), "{stderr}");
    let asked = hellos.load(std::sync::atomic::Ordering::Relaxed);
    assert!(asked <= 2, "the client asked again {asked} times");
}

/// A server whose `files` replies come from `page(after)`, for ever.
async fn paging(page: fn(Option<&str>) -> ServerMsg) -> FakeServer {
    FakeServer::start(move || -> Script {
        Box::new(move |msg| match msg {
            ClientMsg::ListFiles { req, after, .. } => {
                let mut reply = page(after.as_deref());
                if let ServerMsg::Files { req: r, .. } = &mut reply {
                    *r = *req;
                }
                vec![reply.to_frame()]
            }
            _ => vec![],
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_without_end_is_refused_before_it_fills_memory() {
    // Empty pages whose cursor always moves on.
    let empty = paging(|after| ServerMsg::Files {
        req: None,
        files: vec![],
        next: Some(format!("{}z", after.unwrap_or(""))),
    })
    .await;
    // One huge name a page.
    let huge = paging(|after| ServerMsg::Files {
        req: None,
        files: vec![wire::FileEntry {
            name: format!("{}{}", after.unwrap_or(""), "x".repeat(900_000)),
            size: 1,
        }],
        next: Some(format!("{}y", after.unwrap_or(""))),
    })
    .await;
    // Many short names a page, for ever.
    let many = paging(|after| {
        let base = after.unwrap_or("").to_owned();
        ServerMsg::Files {
            req: None,
            files: (0..1000)
                .map(|i| wire::FileEntry {
                    name: format!("{base}{i:04}"),
                    size: 1,
                })
                .collect(),
            next: Some(format!("{base}9999")),
        }
    })
    .await;
    for server in [&empty, &huge, &many] {
        let (client, _events) =
            Client::connect(&server.addr.to_string(), "lister", &server.trust())
                .await
                .unwrap();
        let listed = tokio::time::timeout(Duration::from_secs(60), client.files())
            .await
            .expect("the listing never ended");
        assert!(
            matches!(listed, Err(client::ClientError::Protocol(_))),
            "{listed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reclaimed_transfer_whose_request_again_is_refused_fails_instead_of_waiting() {
    let data = vec![5u8; 4 << 20];
    let server = FakeServer::start(move || -> Script {
        let data = data.clone();
        let mut asked = 0;
        Box::new(move |msg| match msg {
            ClientMsg::Download { req, file } => {
                asked += 1;
                if asked > 1 {
                    let busy = ServerMsg::error(*req, wire::ErrorCode::Busy, "no port for you");
                    return vec![busy.to_frame()];
                }
                // The real sender, taking the port back from a flow paused for 200 ms.
                let socket = udp_socket();
                let port = socket.local_addr().unwrap().port();
                let served = data.clone();
                tokio::spawn(async move {
                    let config = transport::Config {
                        max_pause: Some(Duration::from_millis(200)),
                        ..transport::Config::default()
                    };
                    let stop = std::future::pending::<()>();
                    let _ = transport::driver::serve(
                        &socket,
                        &transport::Secret([0; 32]),
                        served,
                        config,
                        stop,
                    )
                    .await;
                });
                vec![ready(*req, 1, file, &data, port)]
            }
            _ => vec![],
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (client, mut events) = Client::connect(&server.addr.to_string(), "victim", &server.trust())
        .await
        .unwrap();
    let o = client::DownloadOptions {
        pause_at: Some(10.0),
        ..opts(dir.path())
    };
    let id = client.download("f.bin", o).await.unwrap();
    // Paused at 10 %; the sender takes the port back; the transfer still shows paused.
    loop {
        if let TransferState::Paused { .. } = common::next_of(&mut events, id).await {
            break;
        }
    }
    common::wait_until(|| client.transfers()[0].state == "paused").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    client.resume(id).unwrap();
    match outcome(&mut events, id).await {
        TransferState::Failed { error } => assert!(error.contains("no port for you"), "{error}"),
        other => panic!("the refused continuation ended as {other:?}"),
    }
    assert_eq!(client.transfers()[0].state, "failed");
}
