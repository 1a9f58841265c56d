//! Chat behaviour, proven with a real server on 127.0.0.1 and real clients.

use crate::common::{
    RawClient, WAIT, assert_quiet, is_bad_request, join, join_many, next, start, start_with,
    wait_for,
};
use client::{Client, ErrorCode, Event};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use wire::{ClientMsg, ServerMsg};

#[tokio::test]
async fn joins_and_leaves_are_seen_by_every_other_client() {
    let server = start().await;
    let mut crowd = join_many(&server, "user", 20).await;
    let (newcomer, _ev) = join(&server, "newcomer").await;
    for (_, events) in &mut crowd {
        assert!(matches!(next(events).await, Event::Joined { name, .. } if name == "newcomer"));
    }
    newcomer.quit().await.unwrap();
    for (_, events) in &mut crowd {
        let event = next(events).await;
        assert!(
            matches!(&event, Event::Left { name, reason, .. } if name == "newcomer" && reason == "quit"),
            "{event:?}"
        );
        assert_quiet(events).await;
    }
}

#[tokio::test]
async fn a_newcomers_first_message_comes_after_the_notice_of_its_join() {
    // Notices are gathered for a long while here; the message must not wait for them, nor
    // overtake them.
    let server = start_with(|c| c.notice_delay = Duration::from_secs(30)).await;
    let (_watcher, mut events) = join(&server, "watcher").await;
    let mut raw = RawClient::connect(&server.addr).await;
    raw.hello("eager").await;
    raw.send(&ClientMsg::SendAll {
        text: "first!".into(),
        req: None,
    })
    .await;
    let event = next(&mut events).await;
    assert!(
        matches!(&event, Event::Joined { name, .. } if name == "eager"),
        "{event:?}"
    );
    let event = next(&mut events).await;
    assert!(
        matches!(&event, Event::Message { from, text, .. } if from == "eager" && text == "first!"),
        "{event:?}"
    );
}

#[tokio::test]
async fn a_dropped_connection_is_announced_as_left() {
    let server = start().await;
    let (_watcher, mut events) = join(&server, "watcher").await;
    let mut raw = RawClient::connect(&server.addr).await;
    raw.hello("ghost").await;
    assert!(matches!(raw.recv().await, Some(ServerMsg::Welcome { .. })));
    wait_for(
        &mut events,
        |e| matches!(e, Event::Joined { name, .. } if name == "ghost"),
    )
    .await;
    drop(raw); // the socket closes without a quit, as when a process dies
    let event = next(&mut events).await;
    assert!(
        matches!(&event, Event::Left { name, reason, .. } if name == "ghost" && reason == "disconnected"),
        "{event:?}"
    );
}

#[tokio::test]
async fn broadcast_reaches_every_other_client_once_and_in_order() {
    let server = start().await;
    let mut crowd = join_many(&server, "c", 24).await;
    let senders = 4;
    let per_sender = 50;
    for round in 0..per_sender {
        for (client, _) in crowd.iter().take(senders) {
            client
                .send_all(format!("{}:{round}", client.name()))
                .await
                .unwrap();
        }
    }
    for (i, (client, events)) in crowd.iter_mut().enumerate() {
        let expected = if i < senders {
            (senders - 1) * per_sender
        } else {
            senders * per_sender
        };
        let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
        for _ in 0..expected {
            match next(events).await {
                Event::Message {
                    from,
                    text,
                    private: false,
                    ..
                } => {
                    let (who, n) = text.split_once(':').unwrap();
                    assert_eq!(who, from, "the server stamps the true sender");
                    seen.entry(from).or_default().push(n.parse().unwrap());
                }
                other => panic!("{} got {other:?}", client.name()),
            }
        }
        assert_quiet(events).await;
        assert!(
            !seen.contains_key(client.name()),
            "no copy of one's own message"
        );
        for (from, numbers) in seen {
            assert_eq!(
                numbers,
                (0..per_sender).collect::<Vec<_>>(),
                "order from {from}"
            );
        }
    }
}

#[tokio::test]
async fn private_message_reaches_only_its_target() {
    let server = start().await;
    let mut crowd = join_many(&server, "p", 20).await;
    crowd[0].0.send_private("P7", "psst").await.unwrap(); // names match ignoring case
    for (i, (_, events)) in crowd.iter_mut().enumerate() {
        if i == 7 {
            let event = next(events).await;
            assert!(
                matches!(&event, Event::Message { from, text, private: true, .. } if from == "p0" && text == "psst"),
                "{event:?}"
            );
        }
        assert_quiet(events).await;
    }
}

#[tokio::test]
async fn messages_carry_the_server_time() {
    let server = start().await;
    let mut pair = join_many(&server, "t", 2).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    pair[0].0.send_all("tick").await.unwrap();
    let Event::Message { time, .. } = next(&mut pair[1].1).await else {
        panic!()
    };
    assert!(time >= before && time <= chrono::Utc::now() + chrono::Duration::seconds(1));
}

#[tokio::test]
async fn taken_and_invalid_names_are_refused() {
    let server = start().await;
    let _alice = join(&server, "Alice").await;
    for (name, code) in [
        ("alice", ErrorCode::NameTaken),
        ("ALICE", ErrorCode::NameTaken),
        ("", ErrorCode::InvalidName),
        ("has space", ErrorCode::InvalidName),
        ("x".repeat(33).as_str(), ErrorCode::InvalidName),
        ("bad/slash", ErrorCode::InvalidName),
    ] {
        let err = Client::connect(&server.addr, name, &server.trust())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(code), "{name:?}: {err}");
    }
}

#[tokio::test]
async fn a_refused_name_can_be_retried_on_the_same_connection() {
    let server = start().await;
    let _bob = join(&server, "bob").await;
    let mut raw = RawClient::connect(&server.addr).await;
    raw.hello("bob").await;
    assert!(matches!(
        raw.recv().await,
        Some(ServerMsg::Error {
            code: ErrorCode::NameTaken,
            ..
        })
    ));
    raw.hello("bob2").await;
    assert!(matches!(raw.recv().await, Some(ServerMsg::Welcome { name, .. }) if name == "bob2"));
}

#[tokio::test]
async fn private_message_to_nobody_is_no_such_user() {
    let server = start().await;
    let (client, mut events) = join(&server, "lonely").await;
    client.send_private("ghost", "hello?").await.unwrap();
    let event = next(&mut events).await;
    assert!(
        matches!(
            event,
            Event::Error {
                code: ErrorCode::NoSuchUser,
                ..
            }
        ),
        "{event:?}"
    );
}

#[tokio::test]
async fn texts_over_4_kib_are_too_long_and_not_delivered() {
    let server = start().await;
    let mut pair = join_many(&server, "l", 2).await;
    pair[0].0.send_all("x".repeat(4097)).await.unwrap();
    pair[0]
        .0
        .send_private("l1", "y".repeat(5000))
        .await
        .unwrap();
    for _ in 0..2 {
        let event = next(&mut pair[0].1).await;
        assert!(
            matches!(
                event,
                Event::Error {
                    code: ErrorCode::TooLong,
                    ..
                }
            ),
            "{event:?}"
        );
    }
    pair[0].0.send_all("x".repeat(4096)).await.unwrap();
    let Event::Message { text, .. } = next(&mut pair[1].1).await else {
        panic!()
    };
    assert_eq!(text.len(), 4096, "exactly 4 KiB is allowed");
    assert_quiet(&mut pair[1].1).await;
}

#[tokio::test]
async fn over_max_clients_a_newcomer_gets_server_full() {
    let server = start_with(|c| c.max_clients = 3).await;
    let _crowd = join_many(&server, "f", 3).await;
    let err = Client::connect(&server.addr, "late", &server.trust())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ServerFull));
}

#[tokio::test]
async fn a_place_frees_when_someone_leaves() {
    let server = start_with(|c| c.max_clients = 1).await;
    let (first, _events) = join(&server, "first").await;
    first.quit().await.unwrap();
    let mut joined = None;
    for _ in 0..50 {
        match Client::connect(&server.addr, "second", &server.trust()).await {
            Ok(c) => {
                joined = Some(c);
                break;
            }
            Err(e) => assert_eq!(e.code(), Some(ErrorCode::ServerFull)),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(joined.is_some());
}

#[tokio::test]
async fn an_unknown_protocol_version_is_refused() {
    let server = start().await;
    let mut raw = RawClient::connect(&server.addr).await;
    raw.send(&ClientMsg::hello(0, "old")).await;
    let msg = raw.recv().await;
    assert!(
        matches!(
            msg,
            Some(ServerMsg::Error {
                code: ErrorCode::UnsupportedVersion,
                ..
            })
        ),
        "{msg:?}"
    );
    assert_eq!(raw.recv().await, None, "and the connection closes");
}

#[tokio::test]
async fn a_newer_client_is_answered_in_our_version() {
    let server = start().await;
    let mut raw = RawClient::connect(&server.addr).await;
    raw.send(&ClientMsg::hello(99, "future")).await;
    let msg = raw.recv().await;
    assert!(
        matches!(
            msg,
            Some(ServerMsg::Welcome {
                version: wire::PROTOCOL_VERSION,
                ..
            })
        ),
        "{msg:?}"
    );
}

#[tokio::test]
async fn garbage_gets_bad_request_and_the_connection_survives() {
    let server = start().await;
    let mut raw = RawClient::connect(&server.addr).await;
    raw.hello("messy").await;
    assert!(matches!(raw.recv().await, Some(ServerMsg::Welcome { .. })));
    raw.send_payload(b"{\"type\":\"nonsense\"}").await;
    raw.send_payload(b"\xff\xfe not json").await;
    for _ in 0..2 {
        let msg = raw.recv().await;
        assert!(msg.as_ref().is_some_and(is_bad_request), "{msg:?}");
    }
    raw.send(&ClientMsg::ListUsers { req: Some(9) }).await;
    assert_eq!(
        raw.recv().await,
        Some(ServerMsg::Users {
            req: Some(9),
            names: vec!["messy".into()]
        })
    );
}

#[tokio::test]
async fn an_oversized_frame_disconnects_only_its_sender() {
    let server = start().await;
    let mut pair = join_many(&server, "o", 2).await;
    let mut raw = RawClient::connect(&server.addr).await;
    raw.hello("huge").await;
    assert!(matches!(raw.recv().await, Some(ServerMsg::Welcome { .. })));
    raw.send_bytes(&[0xff, 0xff, 0xff, 0xff]).await;
    let mut saw_error = false;
    while let Some(msg) = raw.recv().await {
        saw_error |= is_bad_request(&msg);
    }
    assert!(saw_error);
    let left = wait_for(&mut pair[0].1, |e| matches!(e, Event::Left { .. })).await;
    assert!(
        matches!(left, Event::Left { name, reason, .. } if name == "huge" && reason == "protocol_error")
    );
    pair[1].0.send_all("still here").await.unwrap();
    let msg = wait_for(&mut pair[0].1, |e| matches!(e, Event::Message { .. })).await;
    assert!(matches!(msg, Event::Message { text, .. } if text == "still here"));
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_stalls_nobody() {
    let server = start_with(|c| {
        c.queue_limit = 20;
        c.rate_limit = 1e9; // this sender floods on purpose
    })
    .await;
    let mut pair = join_many(&server, "s", 2).await;
    let mut sleeper = RawClient::connect_small_buffer(&server.addr).await;
    sleeper.hello("sleeper").await;
    for (_, events) in &mut pair {
        wait_for(events, |e| matches!(e, Event::Joined { .. })).await;
    }
    // The sleeper never reads: its socket buffers fill, then its outbox, then it is dropped.
    // Meanwhile a reader that keeps up gets every message, in order.
    let text = "z".repeat(4000);
    let mut sent = 0;
    let mut received = 0;
    let mut sleeper_left = false;
    while !sleeper_left {
        assert!(sent < 20_000, "the sleeper was never disconnected");
        for _ in 0..10 {
            pair[0].0.send_all(format!("{sent} {text}")).await.unwrap();
            sent += 1;
        }
        while received < sent {
            match next(&mut pair[1].1).await {
                Event::Message { text, .. } => {
                    assert!(text.starts_with(&format!("{received} ")), "in order");
                    received += 1;
                }
                Event::Left { name, reason, .. } => {
                    assert_eq!(
                        (name.as_str(), reason.as_str()),
                        ("sleeper", "slow_consumer")
                    );
                    sleeper_left = true;
                }
                other => panic!("{other:?}"),
            }
        }
    }
    // Its connection ends (after whatever was already in the socket buffers).
    let mut buf = vec![0u8; 1 << 16];
    let closed = tokio::time::timeout(WAIT, async {
        while sleeper.stream.read(&mut buf).await.unwrap_or(0) > 0 {}
    })
    .await;
    assert!(closed.is_ok(), "the slow consumer's socket was closed");
}

// On tokio's paused clock: the server's own timeouts, waited for in virtual time, so that a
// slow machine can neither make these pass early nor fail late.
#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_dropped_after_the_hello_timeout() {
    let timeout = Duration::from_secs(10);
    let server = start_with(|c| c.hello_timeout = timeout).await;
    let mut raw = RawClient::connect(&server.addr).await;
    let started = tokio::time::Instant::now();
    let msg = raw.recv_or_close().await;
    assert!(
        matches!(&msg, Some(ServerMsg::Bye { reason, .. }) if reason == "timeout"),
        "{msg:?}"
    );
    assert_eq!(raw.recv_or_close().await, None);
    let waited = started.elapsed();
    assert!(waited >= timeout, "dropped after {waited:?}");
    assert!(
        waited < timeout + Duration::from_secs(1),
        "dropped only after {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_joined_client_silent_past_the_idle_timeout_is_dropped() {
    // Longer than the clients' keepalive (a ping every 15 s): the watcher, which only pings,
    // stays; the mute one, which says nothing after its hello, goes.
    let timeout = Duration::from_secs(40);
    let server = start_with(|c| c.idle_timeout = timeout).await;
    let (watcher, mut events) = join(&server, "watcher").await;
    let mut raw = RawClient::connect(&server.addr).await;
    raw.hello("mute").await;
    let welcome = raw.recv_or_close().await;
    assert!(
        matches!(welcome, Some(ServerMsg::Welcome { .. })),
        "{welcome:?}"
    );
    let joined = tokio::time::Instant::now();
    let left = wait_for_long(&mut events, |e| matches!(e, Event::Left { .. })).await;
    assert!(
        matches!(&left, Event::Left { name, reason, .. } if name == "mute" && reason == "timeout"),
        "{left:?}"
    );
    let waited = joined.elapsed();
    assert!(waited >= timeout, "dropped after {waited:?}");
    assert!(
        waited < timeout + Duration::from_secs(1),
        "dropped only after {waited:?}"
    );
    // Long after, the watcher is still there: its pings kept it.
    tokio::time::sleep(3 * timeout).await;
    let users = watcher.users().await.unwrap();
    assert_eq!(users, ["watcher"]);
}

/// As [`wait_for`], for events that come only after a timeout longer than [`crate::common::WAIT`].
async fn wait_for_long(events: &mut client::Events, mut pred: impl FnMut(&Event) -> bool) -> Event {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(600), events.recv())
            .await
            .expect("no event in 10 minutes")
            .expect("event stream ended");
        if pred(&event) {
            return event;
        }
    }
}

#[tokio::test]
async fn shutdown_tells_every_client() {
    let server = start().await;
    let mut crowd = join_many(&server, "d", 20).await;
    server.handle.stop().await;
    for (_, events) in &mut crowd {
        let event = next(events).await;
        assert!(
            matches!(&event, Event::Disconnected { reason, .. } if reason == "server_shutdown"),
            "{event:?}"
        );
    }
}

#[tokio::test]
async fn users_and_files_are_listed() {
    let server = start().await;
    std::fs::write(server.files.path().join("b.bin"), [1u8; 10]).unwrap();
    std::fs::write(server.files.path().join("a.txt"), b"hello").unwrap();
    std::fs::write(server.files.path().join(".secret"), b"no").unwrap();
    std::fs::create_dir(server.files.path().join("folder")).unwrap();
    let crowd = join_many(&server, "u", 3).await;
    assert_eq!(crowd[1].0.users().await.unwrap(), vec!["u0", "u1", "u2"]);
    let files: Vec<(String, u64)> = crowd[0]
        .0
        .files()
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.name, f.size))
        .collect();
    assert_eq!(
        files,
        vec![("a.txt".to_string(), 5), ("b.bin".to_string(), 10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_clients_chat_at_once() {
    let server = start().await;
    let mut crowd = join_many(&server, "m", 300).await;
    for (client, _) in crowd.iter().step_by(30) {
        client
            .send_all(format!("from {}", client.name()))
            .await
            .unwrap();
    }
    for (i, (_, events)) in crowd.iter_mut().enumerate() {
        let expected = if i % 30 == 0 { 9 } else { 10 };
        for _ in 0..expected {
            assert!(matches!(next(events).await, Event::Message { .. }));
        }
    }
}

#[tokio::test]
async fn a_flooding_client_is_rate_limited_and_others_are_not_slowed() {
    let server = start_with(|c| {
        c.rate_limit = 20.0;
        c.rate_burst = 10;
    })
    .await;
    let mut trio = join_many(&server, "r", 3).await;
    for i in 0..100 {
        trio[0].0.send_all(format!("flood {i}")).await.unwrap();
    }
    trio[1].0.send_all("normal").await.unwrap();
    // The flooder hears rate_limited for what it sent past its burst.
    let mut limited = 0;
    while limited < 80 {
        match next(&mut trio[0].1).await {
            Event::Error {
                code: ErrorCode::RateLimited,
                message,
            } => {
                assert!(message.contains("slow down"), "{message}");
                limited += 1;
            }
            Event::Message { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    // The others got the burst only, and the normal sender's message all the same.
    let mut floods = 0;
    loop {
        match next(&mut trio[2].1).await {
            Event::Message { text, .. } if text == "normal" => break,
            Event::Message { .. } => floods += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(floods <= 20, "{floods} flood messages got through");
}

#[tokio::test]
async fn silent_connections_beyond_the_pending_cap_are_refused_and_users_still_get_in() {
    let server = start_with(|c| {
        c.max_pending = 20;
        c.hello_timeout = Duration::from_secs(30);
    })
    .await;
    // A slowloris crowd: connections that never say hello.
    let mut crowd = Vec::new();
    for _ in 0..20 {
        crowd.push(RawClient::connect(&server.addr).await);
    }
    // Past the cap, a new connection is closed at once (not even a TLS handshake).
    assert!(RawClient::try_connect(&server.addr).await.is_none());
    // When the crowd goes, real users get in again.
    drop(crowd);
    let mut joined = None;
    for _ in 0..100 {
        if let Ok(c) = Client::connect(&server.addr, "real", &server.trust()).await {
            joined = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(joined.is_some());
}
