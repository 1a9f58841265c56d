//! Users against users: the attacks of issue 14 (items 7, 8, 10, 11, 14) carried out against a
//! real server, each asserting that the attack no longer works.

use crate::common::process::rss;
use crate::common::*;
use client::{Client, Event, Trust};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;
use wire::{ClientMsg, ErrorCode, ServerMsg};

fn is_error(msg: &ServerMsg, wanted: ErrorCode) -> bool {
    matches!(msg, ServerMsg::Error { code, .. } if *code == wanted)
}

/// A raw client joined as `name`, its welcome read.
async fn joined(addr: &str, name: &str) -> RawClient {
    welcomed(RawClient::connect(addr).await, name).await
}

/// As [`joined`], with a tiny receive buffer ([`RawClient::connect_small_buffer`]).
async fn joined_small_buffer(addr: &str, name: &str) -> RawClient {
    welcomed(RawClient::connect_small_buffer(addr).await, name).await
}

/// `raw` after its hello as `name` and the welcome it got.
async fn welcomed(mut raw: RawClient, name: &str) -> RawClient {
    raw.hello(name).await;
    let welcome = raw.recv().await;
    assert!(
        matches!(welcome, Some(ServerMsg::Welcome { .. })),
        "{welcome:?}"
    );
    raw
}

/// Sends every hello of `names` in one write and returns the answers, in order.
async fn hellos(raw: &mut RawClient, names: &[&str]) -> Vec<ServerMsg> {
    let mut bytes = Vec::new();
    for name in names {
        let hello = ClientMsg::hello(1, *name);
        bytes.extend_from_slice(&hello.to_frame());
    }
    raw.send_bytes(&bytes).await;
    let mut answers = Vec::new();
    for _ in names {
        answers.push(raw.recv().await.expect("the server closed the connection"));
    }
    answers
}

// Small ones ------------------------------------------------------------------------------

#[tokio::test]
async fn a_bad_request_still_carries_the_req_it_was_sent_with() {
    let server = start().await;
    let mut raw = joined(&server.addr, "messy").await;
    raw.send_payload(br#"{"type":"launch_missiles","req":42}"#)
        .await;
    raw.send_payload(br#"{"type":"send_private","req":43}"#)
        .await;
    raw.send_payload(br#"{"type":"nonsense","req":"not a number"}"#)
        .await;
    for wanted in [Some(42), Some(43), None] {
        let msg = raw.recv().await.unwrap();
        assert!(is_bad_request(&msg), "{msg:?}");
        assert!(
            matches!(&msg, ServerMsg::Error { req, .. } if *req == wanted),
            "{msg:?} should carry req {wanted:?}"
        );
    }
}

// 7. Eviction as a weapon -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_flood_from_forty_connections_never_evicts_a_reader_that_keeps_up() {
    let server = start_with(|c| {
        c.queue_limit = 20;
        c.rate_limit = 1e9; // the flooders are not slowed down by the request rate
        c.rate_burst = 1_000_000;
    })
    .await;
    // The reader reads all the time, as fast as its (small) socket buffer lets it: like a
    // user on a real link, it cannot take megabytes at once.
    let mut reader = joined_small_buffer(&server.addr, "reader").await;
    let mut flooders = Vec::new();
    for i in 0..40 {
        flooders.push(joined(&server.addr, &format!("flood{i}")).await);
    }
    let reading = tokio::spawn(async move {
        let mut messages = 0usize;
        loop {
            match tokio::time::timeout(Duration::from_secs(2), reader.recv_or_close()).await {
                Ok(Some(ServerMsg::Message { .. })) => messages += 1,
                Ok(Some(ServerMsg::Bye { reason, .. })) => return Err(reason.to_string()),
                Ok(Some(_)) => {}
                Ok(None) => return Err("closed".to_string()),
                Err(_quiet) => return Ok((reader, messages)),
            }
        }
    });
    // Each flooder sends 50 private 4 KB messages at once: 8 MB aimed at one queue of 20.
    let text = "x".repeat(4000);
    let mut burst = Vec::new();
    for i in 0..50 {
        let msg = ClientMsg::SendPrivate {
            to: "reader".into(),
            text: format!("{i} {text}"),
            req: Some(i),
        };
        burst.extend_from_slice(&msg.to_frame());
    }
    let mut writers = Vec::new();
    for flooder in flooders {
        let burst = burst.clone();
        writers.push(tokio::spawn(async move {
            // Flooders read their answers while they write, so they stay online themselves.
            let (mut rd, mut wr) = tokio::io::split(flooder.stream);
            let reading = tokio::spawn(async move {
                let mut codec = wire::FrameCodec::default();
                let mut buf = bytes::BytesMut::new();
                let mut refused = 0;
                loop {
                    while let Some(frame) = codec.decode(&mut buf).unwrap() {
                        let msg = ServerMsg::decode(&frame).unwrap();
                        refused += usize::from(is_error(&msg, ErrorCode::RateLimited));
                    }
                    let read =
                        tokio::time::timeout(Duration::from_millis(1500), rd.read_buf(&mut buf));
                    match read.await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return refused,
                    }
                }
            });
            wr.write_all(&burst).await.unwrap();
            let refused = reading.await.unwrap();
            (wr, refused)
        }));
    }
    let mut refused = 0;
    let mut flooders = Vec::new();
    for writer in writers {
        let (flooder, n) = writer.await.unwrap();
        refused += n;
        flooders.push(flooder);
    }
    let (_reader, delivered) = reading.await.unwrap().expect("the reader was disconnected");
    assert!(refused > 0, "no flooder was refused");
    assert!(delivered > 0, "nothing reached the reader");
    assert!(delivered + refused <= 40 * 50, "a message counted twice");
    // The reader is still online, so its name cannot be taken.
    assert!(server.handle.users().contains(&"reader".to_string()));
    let answers = hellos(&mut RawClient::connect(&server.addr).await, &["reader"]).await;
    assert!(is_error(&answers[0], ErrorCode::NameTaken), "{answers:?}");
    eprintln!("private flood: {delivered} delivered, {refused} refused with rate_limited");
}

// 8. Memory held for clients that never read ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_asking_for_files_without_reading_holds_one_queue_of_replies_at_most() {
    let queue_bytes = 1024 * 1024;
    let server = start_with(|c| {
        c.queue_bytes = queue_bytes;
        c.rate_limit = 1e9; // the hoarder asks as fast as it likes
        c.rate_burst = 1_000_000;
    })
    .await;
    for i in 0..2000 {
        std::fs::write(server.files.path().join(format!("file-{i:05}.bin")), b"x").unwrap();
    }
    // Online before it asks (the TLS handshake and the hello take a moment on a busy machine):
    // from here on it does not read.
    let mut hoarder = joined_small_buffer(&server.addr, "hoarder").await;
    let mut asks = Vec::new();
    // Far more than the socket buffers hold: 400 pages of 38 KB.
    for i in 0..400 {
        let ask = ClientMsg::ListFiles {
            req: Some(i),
            after: None,
            limit: None,
        };
        asks.extend_from_slice(&ask.to_frame());
    }
    hoarder.send_bytes(&asks).await;
    // While it does not read, what waits for it never passes the byte cap: once its queue is
    // full, the server reads no more of its requests until there is room again.
    let mut most = 0;
    let mut last = (0, 0);
    let mut still = 0;
    while still < 10 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = server
            .handle
            .queued_for("hoarder")
            .expect("the hoarder was evicted for the answers it asked for");
        assert!(now.1 <= queue_bytes, "{} bytes queued", now.1);
        most = most.max(now.1);
        still = if now == last && now.0 > 0 {
            still + 1
        } else {
            0
        };
        last = now;
    }
    // Once it reads, it gets an answer to every request: the server held its requests back
    // while its queue was full (refusing with `busy` the pages that found no room), and did
    // not evict it for the answers it asked for.
    let (mut pages, mut busy) = (0, 0);
    while pages + busy < 400 {
        match hoarder.recv().await {
            Some(ServerMsg::Files { files, next, .. }) => {
                assert_eq!(files.len(), 1000);
                assert!(next.is_some());
                pages += 1;
            }
            Some(msg) if is_error(&msg, ErrorCode::Busy) => busy += 1,
            other => panic!("after {pages} pages and {busy} busy: {other:?}"),
        }
    }
    eprintln!("hoarder: {pages} pages and {busy} busy; at most {most} bytes queued");
    assert!(most > 0, "nothing was ever queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_faster_than_it_reads_its_answers_is_held_back_not_evicted() {
    // Every request past the first is refused (`rate_limited`), so each one has an answer.
    let server = start_with(|c| {
        c.rate_limit = 0.001;
        c.rate_burst = 1;
    })
    .await;
    let mut hasty = joined_small_buffer(&server.addr, "hasty").await;
    // Ten megabytes of answers: far more than its queue (100 frames) and the socket buffers
    // between (the kernel's send buffer on loopback, up to tcp_wmem's 4 MiB) can hold.
    let asks = 60_000u64;
    let frames: Vec<u8> = (1..=asks)
        .flat_map(|i| {
            ClientMsg::SendAll {
                text: "hi".into(),
                req: Some(i),
            }
            .to_frame()
        })
        .collect();
    let (mut rd, mut wr) = tokio::io::split(hasty.stream);
    // Written from another task: once the server holds its reading back, this write waits.
    let writer = tokio::spawn(async move {
        wr.write_all(&frames).await.unwrap();
        wr.flush().await.unwrap();
        wr
    });
    // It reads nothing until its queue has been full for a while.
    wait_until("hasty's queue fills or hasty is evicted", || {
        server.handle.queued_for("hasty").is_none_or(|q| q.0 >= 100)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        server.handle.queued_for("hasty").is_some(),
        "hasty was evicted for the answers it asked for"
    );
    // Then it reads: every answer, in order, and no `bye`.
    let mut codec = wire::FrameCodec::default();
    let mut buf = bytes::BytesMut::new();
    let mut refused = Vec::new();
    let read_all = async {
        while refused.len() < asks as usize - 1 {
            if let Some(frame) = codec.decode(&mut buf).unwrap() {
                match ServerMsg::decode(&frame).unwrap() {
                    ServerMsg::Error {
                        code: ErrorCode::RateLimited,
                        req,
                        ..
                    } => refused.push(req),
                    other => panic!("after {} answers: {other:?}", refused.len()),
                }
                continue;
            }
            let read = rd.read_buf(&mut buf).await.unwrap();
            assert!(read > 0, "closed after {} answers", refused.len());
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read_all)
        .await
        .expect("the answers stopped coming");
    let wanted: Vec<Option<u64>> = (2..=asks).map(Some).collect();
    assert!(refused == wanted, "answers out of order or missing");
    let wr = writer.await.unwrap();
    hasty.stream = rd.unsplit(wr);
    hasty.send(&ClientMsg::Ping).await;
    assert_eq!(hasty.recv().await, Some(ServerMsg::Pong));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_frames_of_a_hundred_connections_are_held_within_one_budget() {
    let files = tempfile::tempdir().unwrap();
    let budget = 8 * 1024 * 1024;
    let ServerProcess {
        child,
        addr,
        key,
        data: _data,
    } = spawn_server(
        files.path(),
        &[
            "--max-inbound-buffer",
            &budget.to_string(),
            "--max-pending",
            "1000",
        ],
    );
    let before = rss(child.0.id());
    // A hundred connections each announce a 1 MiB frame and send all of it but its last byte.
    let mut frame = (1024u32 * 1024).to_be_bytes().to_vec();
    frame.resize(4 + 1024 * 1024 - 1, b' ');
    let mut senders = Vec::new();
    for _ in 0..100 {
        let mut raw = RawClient::connect(&addr).await;
        let frame = frame.clone();
        senders.push(tokio::spawn(async move {
            let _ = raw.stream.write_all(&frame).await;
            raw
        }));
    }
    // Give the server time to take in all it will take.
    let mut most = before;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        most = most.max(rss(child.0.id()));
    }
    // Users still get in and chat: small frames need nothing from the budget.
    let trust = Trust::pinned(key);
    let (alice, _) = Client::connect(&addr, "alice", &trust).await.unwrap();
    let (_bob, mut bob_events) = Client::connect(&addr, "bob", &trust).await.unwrap();
    alice.send_private("bob", "still here").await.unwrap();
    wait_for(
        &mut bob_events,
        |e| matches!(e, Event::Message { text, .. } if text == "still here"),
    )
    .await;
    eprintln!(
        "partial frames: server RSS {} MiB before, at most {} MiB with 100 MiB announced",
        before >> 20,
        most >> 20
    );
    // Without the budget the server takes in the 100 MiB; with it, the budget and some slack.
    assert!(
        most < before + 48 * 1024 * 1024,
        "RSS went from {} MiB to {} MiB",
        before >> 20,
        most >> 20
    );
    for sender in senders {
        sender.abort();
    }
}

// 10. Control-port lockout ----------------------------------------------------------------

#[tokio::test]
async fn one_address_cannot_fill_the_pending_slots() {
    let server = start_with(|c| {
        c.max_pending = 50;
        c.max_pending_per_address = 4;
        c.hello_timeout = Duration::from_secs(30);
    })
    .await;
    let mut squatters = Vec::new();
    for _ in 0..4 {
        squatters.push(RawClient::connect(&server.addr).await);
    }
    // The same address gets no more, at once (not even a TLS handshake)...
    assert!(RawClient::try_connect(&server.addr).await.is_none());
    // ...while another address is served as usual.
    let mut other = RawClient::connect_from(&server.addr, "127.0.0.2").await;
    other.hello("honest").await;
    let welcome = other.recv().await;
    assert!(
        matches!(welcome, Some(ServerMsg::Welcome { .. })),
        "{welcome:?}"
    );
    // A squatter that leaves gives its place back to its address.
    drop(squatters.pop());
    let mut joined = None;
    for _ in 0..100 {
        let mut again = RawClient::connect(&server.addr).await;
        again.hello("again").await;
        if let Some(ServerMsg::Welcome { .. }) = again.recv().await {
            joined = Some(again);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(joined.is_some());
}

#[tokio::test]
async fn one_address_cannot_fill_the_server_with_users() {
    let server = start_with(|c| {
        c.max_clients = 50;
        c.max_clients_per_address = 3;
    })
    .await;
    let _squatters = join_many(&server, "squat", 3).await;
    let err = Client::connect(&server.addr, "squat3", &server.trust())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ServerFull), "{err}");
    let mut other = RawClient::connect_from(&server.addr, "127.0.0.2").await;
    other.hello("honest").await;
    let welcome = other.recv().await;
    assert!(
        matches!(welcome, Some(ServerMsg::Welcome { .. })),
        "{welcome:?}"
    );
}

// 11. Names -------------------------------------------------------------------------------

#[tokio::test]
async fn a_squatter_retrying_hello_on_one_connection_is_rate_limited() {
    let server = start().await;
    let _alice = join(&server, "alice").await;
    let mut squatter = RawClient::connect(&server.addr).await;
    let answers = hellos(&mut squatter, &["alice"; 20]).await;
    let taken = answers
        .iter()
        .filter(|m| is_error(m, ErrorCode::NameTaken))
        .count();
    let limited = answers
        .iter()
        .filter(|m| is_error(m, ErrorCode::RateLimited))
        .count();
    // A burst of five, then one a second.
    assert!(
        taken <= server::HELLOS_PER_CONNECTION as usize + 1,
        "{answers:?}"
    );
    assert_eq!(taken + limited, 20, "{answers:?}");
}

#[tokio::test]
async fn squatters_retrying_hello_from_one_address_are_rate_limited_together() {
    let server = start_with(|c| {
        c.hello_rate = 0.01;
        c.hello_burst = 8;
    })
    .await;
    let mut owner = RawClient::connect_from(&server.addr, "127.0.0.3").await;
    owner.hello("alice").await;
    assert!(matches!(
        owner.recv().await,
        Some(ServerMsg::Welcome { .. })
    ));
    let mut taken = 0;
    let mut limited = 0;
    for _ in 0..4 {
        let mut squatter = RawClient::connect(&server.addr).await;
        for answer in hellos(&mut squatter, &["alice"; 5]).await {
            taken += usize::from(is_error(&answer, ErrorCode::NameTaken));
            limited += usize::from(is_error(&answer, ErrorCode::RateLimited));
        }
    }
    assert_eq!((taken, limited), (8, 12));
    // Another address is not held back by them.
    let mut other = RawClient::connect_from(&server.addr, "127.0.0.2").await;
    assert!(matches!(
        &hellos(&mut other, &["bob"]).await[..],
        [ServerMsg::Welcome { .. }]
    ));
}

#[tokio::test]
async fn names_that_only_look_like_one_online_and_dot_names_are_refused() {
    let server = start().await;
    let _alice = join(&server, "alice").await;
    let _bob = join(&server, "B0B").await;
    for (name, code) in [
        ("aIice", ErrorCode::NameTaken),
        ("a1ice", ErrorCode::NameTaken),
        ("AIice", ErrorCode::NameTaken),
        ("bob", ErrorCode::NameTaken),
        (".", ErrorCode::InvalidName),
        ("..", ErrorCode::InvalidName),
        (".alice", ErrorCode::InvalidName),
        ("alice.", ErrorCode::InvalidName),
    ] {
        let err = Client::connect(&server.addr, name, &server.trust())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(code), "{name:?}: {err}");
    }
    // Names merely close to hers are fine.
    let _ok = join(&server, "alicia").await;
    let _dots = join(&server, "a.lice").await;
}

// 14. Big folders -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_of_twenty_thousand_files_is_listed_in_pages_and_the_client_gets_them_all() {
    let server = start().await;
    let mut expected = Vec::new();
    for i in 0..20_000 {
        // Long names: the whole listing is well over any frame cap.
        let name = format!("{i:05}-a-rather-long-file-name-for-a-big-folder.dat");
        std::fs::write(server.files.path().join(&name), b"").unwrap();
        expected.push(name);
    }
    // A version-1 client asking plainly gets a valid, bounded first page.
    let mut raw = joined(&server.addr, "plain").await;
    raw.send(&ClientMsg::ListFiles {
        req: Some(1),
        after: None,
        limit: None,
    })
    .await;
    let Some(ServerMsg::Files { files, next, .. }) = raw.recv().await else {
        panic!("no files page");
    };
    assert!(!files.is_empty() && files.len() <= wire::MAX_FILES_PAGE);
    assert_eq!(next.as_deref(), files.last().map(|f| f.name.as_str()));
    // The client library fetches every page.
    let (client, _events) = join(&server, "lister").await;
    let listed: Vec<String> = client
        .files()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(listed.len(), expected.len());
    assert!(listed == expected, "every file once, in order");
}
