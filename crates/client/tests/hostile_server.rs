//! A server that wants to hurt its clients: it names files to write outside the download
//! folder, plants links where downloads land, floods the chat while a request waits, and
//! trickles data to keep a download alive for ever. Each test carries the attack out against
//! the real client library (those against the `messenger` binary are in the `term` crate).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use client::{Client, Event, TransferState};
use std::time::Duration;
use test_support::fake_server::{FakeServer, Script, ready, serve_once, udp_socket};
use test_support::{WAIT, files_under, next_of, opts, outcome, wait_until};
use wire::{ClientMsg, ServerMsg};

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
async fn a_chat_flood_never_holds_up_the_answer_to_a_request() {
    // While `users` waits for its answer, the server sends far more chat than the client
    // buffers for a front end that is not reading (this one reads nothing until the answer).
    const FLOOD: usize = 5000;
    let server = FakeServer::start(|| -> Script {
        Box::new(|msg| match msg {
            ClientMsg::ListUsers { req } => {
                let mut out: Vec<Bytes> = (0..FLOOD)
                    .map(|i| {
                        ServerMsg::message(None, "flooder", &format!("spam {i}"), false, 0)
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
        if let TransferState::Paused { .. } = next_of(&mut events, id).await {
            break;
        }
    }
    wait_until("the transfer is paused", || {
        client.transfers()[0].state == "paused"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    client.resume(id).unwrap();
    match outcome(&mut events, id).await {
        TransferState::Failed { error } => assert!(error.contains("no port for you"), "{error}"),
        other => panic!("the refused continuation ended as {other:?}"),
    }
    assert_eq!(client.transfers()[0].state, "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_page_out_of_order_or_beyond_what_was_asked_is_refused() {
    let stored = |id| wire::StoredMessage {
        id,
        from: "liar".into(),
        to: None,
        text: format!("m{id}"),
        time: 0,
    };
    let server = FakeServer::start(move || -> Script {
        Box::new(move |msg| match msg {
            ClientMsg::History { req, before, .. } => {
                // Asked for the page before 10, it sends ids from above; asked for the latest,
                // it sends them newest first; and a page of more than was asked for.
                let messages = match before {
                    Some(10) => vec![stored(5), stored(12)],
                    Some(_) => (1..=5).map(stored).collect(),
                    None => vec![stored(9), stored(8)],
                };
                vec![
                    ServerMsg::History {
                        req: *req,
                        with: None,
                        messages,
                        more: true,
                    }
                    .to_frame(),
                ]
            }
            _ => vec![],
        })
    })
    .await;
    let (client, _events) = Client::connect(&server.addr.to_string(), "victim", &server.trust())
        .await
        .unwrap();
    for query in [
        client::HistoryQuery {
            before: Some(10),
            ..Default::default()
        },
        client::HistoryQuery::default(),
        client::HistoryQuery {
            before: Some(100),
            limit: Some(2),
            ..Default::default()
        },
    ] {
        let answer = client.history(query.clone()).await;
        assert!(
            matches!(&answer, Err(client::ClientError::Protocol(_))),
            "{query:?} gave {answer:?}"
        );
    }
}
