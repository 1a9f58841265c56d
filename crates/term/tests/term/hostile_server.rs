//! A server that wants to hurt its clients: it names files to write outside the download
//! folder, plants links where downloads land, floods the chat while a request waits, and
//! trickles data to keep a download alive for ever. Each test carries the attack out against
//! the real `messenger` binary (those against the library are in the `client` crate).

use crate::common::fake_server::{FakeServer, Script, ready, serve_once, udp_socket};
use crate::common::{files_under, make_file, opts, start_with};
use client::Client;
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
        crate::common::messenger(Some(key))
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
