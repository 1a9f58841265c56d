//! Accounts, stored history and offline messages, over real servers: restarted (the same
//! database) and killed with SIGKILL.

use crate::common::{RawClient, TestServer, WAIT, serve, spawn_server, start_with};
use server::accounts::Cost;
use server::{Config, Database};
use std::path::Path;
use std::time::{Duration, Instant};
use wire::{ClientMsg, ErrorCode, PROTOCOL_VERSION, ServerMsg, StoredMessage};

/// Argon2id at its cheapest: these tests are about who gets in, not about the hash's cost.
fn cheap(config: &mut Config) {
    config.password_cost = Cost {
        memory_kib: 64,
        passes: 1,
        lanes: 1,
    };
}

/// A server keeping its database in `db` (so a second one started on it finds it all).
async fn on_database(db: &Path, tweak: impl FnOnce(&mut Config)) -> TestServer {
    let db = db.join("messenger.db");
    serve(tempfile::tempdir().unwrap(), move |c| {
        cheap(c);
        c.database = Database::File(db);
        tweak(c);
    })
    .await
}

/// A connection that said hello (protocol 3), and the server's first answer.
async fn hello(
    server: &str,
    name: &str,
    password: Option<&str>,
    register: bool,
) -> (RawClient, ServerMsg) {
    let mut raw = RawClient::connect(server).await;
    raw.send(&ClientMsg::Hello {
        version: PROTOCOL_VERSION,
        name: name.into(),
        password: password.map(Into::into),
        register,
    })
    .await;
    let first = raw.recv().await.expect("an answer to the hello");
    (raw, first)
}

/// A connection logged in (or registered, or a guest), past its welcome.
async fn joined(server: &str, name: &str, password: Option<&str>, register: bool) -> RawClient {
    let (raw, first) = hello(server, name, password, register).await;
    assert!(
        matches!(&first, ServerMsg::Welcome { account, .. } if *account == password.is_some()),
        "{name}: {first:?}"
    );
    raw
}

/// The next message that is not a join or leave notice.
async fn answer(raw: &mut RawClient) -> ServerMsg {
    loop {
        match raw.recv().await {
            Some(ServerMsg::Joined { .. } | ServerMsg::Left { .. }) => {}
            Some(msg) => return msg,
            None => panic!("the server closed the connection"),
        }
    }
}

fn code_of(msg: &ServerMsg) -> Option<ErrorCode> {
    match msg {
        ServerMsg::Error { code, .. } => Some(*code),
        _ => None,
    }
}

async fn quit(mut raw: RawClient) {
    raw.send(&ClientMsg::Quit).await;
    let _ = raw.until_closed(WAIT).await;
}

async fn say(raw: &mut RawClient, text: &str) {
    raw.send(&ClientMsg::SendAll {
        text: text.into(),
        req: None,
    })
    .await;
}

async fn page(
    raw: &mut RawClient,
    with: Option<&str>,
    before: Option<u64>,
    limit: u32,
) -> (Vec<StoredMessage>, bool) {
    raw.send(&ClientMsg::History {
        with: with.map(Into::into),
        before,
        limit: Some(limit),
        req: Some(7),
    })
    .await;
    loop {
        match answer(raw).await {
            ServerMsg::History {
                req: Some(7),
                messages,
                more,
                ..
            } => return (messages, more),
            // Live messages (or history on join) may come first.
            ServerMsg::Message { .. } => {}
            other => panic!("{other:?}"),
        }
    }
}

/// Everything `raw` receives up to the first message `last` accepts, that one included.
async fn collect_until(raw: &mut RawClient, last: impl Fn(&ServerMsg) -> bool) -> Vec<ServerMsg> {
    let mut got = Vec::new();
    loop {
        let msg = raw.recv().await.expect("the server closed the connection");
        let done = last(&msg);
        got.push(msg);
        if done {
            return got;
        }
    }
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Waits until `raw` has the broadcast `text` (the sender does not get its own).
async fn until_text(raw: &mut RawClient, text: &str) -> ServerMsg {
    loop {
        let msg = answer(raw).await;
        if matches!(&msg, ServerMsg::Message { text: t, .. } if t == text) {
            return msg;
        }
    }
}

#[tokio::test]
async fn a_registered_name_needs_its_password_and_guest_names_still_work() {
    let server = start_with(cheap).await;
    let alice = joined(&server.addr, "Alice", Some("correct horse"), true).await;
    let guest = joined(&server.addr, "bob", None, false).await;
    quit(alice).await;

    // Without its password, or with a wrong one, the name is refused; and the refusal reads
    // the same as a password for a name that is nobody's.
    let (_, none) = hello(&server.addr, "alice", None, false).await;
    assert_eq!(code_of(&none), Some(ErrorCode::AuthFailed), "{none:?}");
    let (_, wrong) = hello(&server.addr, "alice", Some("battery staple"), false).await;
    // Past the wait a failure from this address brings (see the brute-force test).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, nobody) = hello(&server.addr, "nobody", Some("battery staple"), false).await;
    match (&wrong, &nobody) {
        (
            ServerMsg::Error {
                code: ErrorCode::AuthFailed,
                message: a,
                ..
            },
            ServerMsg::Error {
                code: ErrorCode::AuthFailed,
                message: b,
                ..
            },
        ) => assert_eq!(a, b),
        other => panic!("{other:?}"),
    }

    // With it (typed in any case, once the doubled wait is over) the account joins under its
    // registered name.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (mut alice, welcome) = hello(&server.addr, "ALICE", Some("correct horse"), false).await;
    assert!(
        matches!(&welcome, ServerMsg::Welcome { name, account: true, .. } if name == "Alice"),
        "{welcome:?}"
    );
    // Registering a name that is an account already is refused the same way.
    let (_, again) = hello(&server.addr, "alice", Some("other password"), true).await;
    assert_eq!(code_of(&again), Some(ErrorCode::AuthFailed), "{again:?}");

    // The guest chats as before.
    say(&mut alice, "hi bob").await;
    let mut guest = guest;
    let msg = until_text(&mut guest, "hi bob").await;
    assert!(
        matches!(&msg, ServerMsg::Message { from, id: Some(_), .. } if from == "Alice"),
        "{msg:?}"
    );
}

#[tokio::test]
async fn a_guest_registers_after_its_welcome_and_a_short_password_is_refused() {
    let server = start_with(cheap).await;
    let mut carol = joined(&server.addr, "carol", None, false).await;
    carol
        .send(&ClientMsg::Register {
            password: "short".into(),
            req: Some(1),
        })
        .await;
    let msg = answer(&mut carol).await;
    assert_eq!(code_of(&msg), Some(ErrorCode::InvalidPassword), "{msg:?}");
    carol
        .send(&ClientMsg::Register {
            password: "long enough".into(),
            req: Some(2),
        })
        .await;
    let msg = answer(&mut carol).await;
    assert!(
        matches!(&msg, ServerMsg::Registered { req: Some(2), name } if name == "carol"),
        "{msg:?}"
    );
    quit(carol).await;
    let (_, refused) = hello(&server.addr, "carol", None, false).await;
    assert_eq!(code_of(&refused), Some(ErrorCode::AuthFailed));
    joined(&server.addr, "carol", Some("long enough"), false).await;
}

#[tokio::test]
async fn require_accounts_refuses_guests_and_lets_new_users_register() {
    let server = start_with(|c| {
        cheap(c);
        c.require_accounts = true;
    })
    .await;
    let (_, refused) = hello(&server.addr, "guest", None, false).await;
    assert_eq!(
        code_of(&refused),
        Some(ErrorCode::AuthFailed),
        "{refused:?}"
    );
    joined(&server.addr, "dave", Some("a good password"), true).await;
}

#[tokio::test]
async fn a_newcomer_gets_the_latest_history_then_live_messages_with_no_gap_or_duplicate() {
    let server = start_with(|c| {
        cheap(c);
        c.history_on_join = 20;
        c.rate_limit = 1e9;
        c.rate_burst = u32::MAX;
    })
    .await;
    let mut talker = joined(&server.addr, "talker", None, false).await;
    const TOTAL: usize = 1000;
    // The talker keeps talking while the newcomer joins.
    let addr = server.addr.clone();
    let talking = tokio::spawn(async move {
        for i in 0..TOTAL {
            say(&mut talker, &format!("m{i}")).await;
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        talker
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut newcomer = joined(&addr, "newcomer", None, false).await;
    let mut seen: Vec<(u64, usize, bool)> = Vec::new();
    while seen.last().is_none_or(|(_, i, _)| *i + 1 < TOTAL) {
        if let ServerMsg::Message {
            id: Some(id),
            text,
            history,
            ..
        } = answer(&mut newcomer).await
        {
            let i = text[1..].parse().unwrap();
            seen.push((id, i, history));
        }
    }
    let _talker = talking.await.unwrap();
    let history = seen.iter().take_while(|(_, _, h)| *h).count();
    assert!(
        history > 0 && history <= 20,
        "{history} messages of history"
    );
    assert!(
        seen[history..].iter().all(|(_, _, h)| !h),
        "history came after live messages"
    );
    // From the first message of history on, every message once, in order.
    let first = seen[0].1;
    let texts: Vec<usize> = seen.iter().map(|(_, i, _)| *i).collect();
    assert_eq!(texts, (first..TOTAL).collect::<Vec<_>>());
    let ids: Vec<u64> = seen.iter().map(|(id, _, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids not increasing");
}

#[tokio::test]
async fn history_pages_backwards_to_the_first_message() {
    let server = start_with(cheap).await;
    let mut talker = joined(&server.addr, "talker", None, false).await;
    let mut reader = joined(&server.addr, "reader", None, false).await;
    for i in 0..45 {
        say(&mut talker, &format!("n{i}")).await;
    }
    until_text(&mut reader, "n44").await;
    let mut before = None;
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let (messages, more) = page(&mut reader, None, before, 10).await;
        assert!(messages.len() <= 10);
        pages += 1;
        before = messages.first().map(|m| m.id);
        all.splice(0..0, messages);
        if !more {
            break;
        }
    }
    assert_eq!(pages, 5);
    let texts: Vec<String> = all.iter().map(|m| m.text.clone()).collect();
    assert_eq!(texts, (0..45).map(|i| format!("n{i}")).collect::<Vec<_>>());
    assert!(all.iter().all(|m| m.from == "talker" && m.to.is_none()));
    // A limit past the most is held to it; a page never has more.
    let (messages, _) = page(&mut reader, None, None, 100_000).await;
    assert_eq!(messages.len(), 45);
}

#[tokio::test]
async fn a_private_conversation_is_only_its_two_parties_history() {
    let server = start_with(cheap).await;
    let mut alice = joined(&server.addr, "alice", Some("alice's password"), true).await;
    let mut bob = joined(&server.addr, "bob", Some("bob's password"), true).await;
    let mut eve = joined(&server.addr, "eve", Some("eve's password"), true).await;
    let mut guest = joined(&server.addr, "guest", None, false).await;
    alice
        .send(&ClientMsg::SendPrivate {
            to: "bob".into(),
            text: "for bob only".into(),
            req: None,
        })
        .await;
    until_text(&mut bob, "for bob only").await;

    for (who, other) in [(&mut alice, "bob"), (&mut bob, "ALICE")] {
        let (messages, more) = page(who, Some(other), None, 50).await;
        assert!(!more);
        assert!(
            matches!(messages.as_slice(), [m] if m.text == "for bob only" && m.from == "alice"
                && m.to.as_deref() == Some("bob")),
            "{messages:?}"
        );
    }
    // Eve asking for "her" conversation with either gets hers (there is none), not theirs.
    for other in ["alice", "bob"] {
        let (messages, _) = page(&mut eve, Some(other), None, 50).await;
        assert!(messages.is_empty(), "{messages:?}");
    }
    // Nor is it in the broadcast history.
    let (messages, _) = page(&mut eve, None, None, 50).await;
    assert!(messages.iter().all(|m| m.text != "for bob only"));
    // A guest has no private history at all.
    guest
        .send(&ClientMsg::History {
            with: Some("alice".into()),
            before: None,
            limit: None,
            req: Some(3),
        })
        .await;
    let msg = answer(&mut guest).await;
    assert_eq!(code_of(&msg), Some(ErrorCode::NotRegistered), "{msg:?}");
}

#[tokio::test]
async fn private_messages_wait_for_an_offline_account_also_across_a_restart() {
    let db = tempfile::tempdir().unwrap();
    let server = on_database(db.path(), |c| c.max_offline_messages = 3).await;
    quit(joined(&server.addr, "bob", Some("bob's password"), true).await).await;
    let mut alice = joined(&server.addr, "alice", None, false).await;
    let mut queued = Vec::new();
    for i in 0..4 {
        alice
            .send(&ClientMsg::SendPrivate {
                to: "Bob".into(),
                text: format!("while you were out {i}"),
                req: Some(i),
            })
            .await;
        queued.push(answer(&mut alice).await);
    }
    for (i, msg) in queued.iter().take(3).enumerate() {
        assert!(
            matches!(msg, ServerMsg::MessageQueued { req: Some(r), to, .. } if *r == i as u64 && to == "bob"),
            "{msg:?}"
        );
    }
    assert_eq!(
        code_of(&queued[3]),
        Some(ErrorCode::MailboxFull),
        "{:?}",
        queued[3]
    );
    // A name that is nobody's account is still no such user.
    alice
        .send(&ClientMsg::SendPrivate {
            to: "nobody".into(),
            text: "hello?".into(),
            req: Some(9),
        })
        .await;
    assert_eq!(
        code_of(&answer(&mut alice).await),
        Some(ErrorCode::NoSuchUser)
    );
    let before_restart = now_millis();
    quit(alice).await;
    server.handle.stop().await;

    let server = on_database(db.path(), |_| {}).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut bob = joined(&server.addr, "bob", Some("bob's password"), false).await;
    let mut got = Vec::new();
    while got.len() < 3 {
        if let ServerMsg::Message {
            text,
            private: true,
            offline: true,
            time,
            from,
            ..
        } = answer(&mut bob).await
        {
            assert_eq!(from, "alice");
            got.push((text, time));
        }
    }
    let texts: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        texts,
        [
            "while you were out 0",
            "while you were out 1",
            "while you were out 2"
        ]
    );
    // Their original time, from before the restart.
    assert!(got.iter().all(|(_, t)| *t <= before_restart), "{got:?}");
    // Delivered once: the next login finds nothing waiting.
    quit(bob).await;
    let mut bob = joined(&server.addr, "bob", Some("bob's password"), false).await;
    bob.send(&ClientMsg::Ping).await;
    assert!(matches!(answer(&mut bob).await, ServerMsg::Pong));
}

#[tokio::test]
async fn two_sessions_of_one_account_get_every_message_and_count_as_one_user() {
    let server = start_with(|c| {
        cheap(c);
        c.notice_delay = Duration::from_millis(1);
    })
    .await;
    let mut watcher = joined(&server.addr, "watcher", None, false).await;
    let mut phone = joined(&server.addr, "alice", Some("alice's password"), true).await;
    let mut laptop = joined(&server.addr, "alice", Some("alice's password"), false).await;
    watcher
        .send(&ClientMsg::SendPrivate {
            to: "alice".into(),
            text: "to both".into(),
            req: None,
        })
        .await;
    until_text(&mut phone, "to both").await;
    until_text(&mut laptop, "to both").await;
    // What one session says, the other sees too.
    say(&mut phone, "from the phone").await;
    until_text(&mut laptop, "from the phone").await;
    watcher.send(&ClientMsg::ListUsers { req: Some(1) }).await;
    let mut notices = Vec::new();
    let users = loop {
        match watcher.recv().await.unwrap() {
            ServerMsg::Users { names, .. } => break names,
            other => notices.push(other),
        }
    };
    assert_eq!(users, ["alice", "watcher"]);
    quit(phone).await;
    say(&mut laptop, "still here").await;
    notices.extend(
        collect_until(
            &mut watcher,
            |m| matches!(m, ServerMsg::Message { text, .. } if text == "still here"),
        )
        .await,
    );
    quit(laptop).await;
    notices.extend(
        collect_until(
            &mut watcher,
            |m| matches!(m, ServerMsg::Left { name, .. } if name == "alice"),
        )
        .await,
    );
    notices.pop(); // the one left, for the last session
    let joins = notices
        .iter()
        .filter(|m| matches!(m, ServerMsg::Joined { name, .. } if name == "alice"))
        .count();
    let lefts = notices
        .iter()
        .filter(|m| matches!(m, ServerMsg::Left { .. }))
        .count();
    assert_eq!((joins, lefts), (1, 0), "{notices:?}");
}

#[tokio::test]
async fn guessing_a_password_is_slowed_per_name_and_per_address_and_the_server_stays_responsive() {
    let server = start_with(cheap).await;
    quit(joined(&server.addr, "alice", Some("the right one"), true).await).await;
    let mut bystander = joined(&server.addr, "bystander", None, false).await;

    let (mut raw, first) = hello(&server.addr, "alice", Some("guess 0001"), false).await;
    assert_eq!(code_of(&first), Some(ErrorCode::AuthFailed));
    let mut told = Vec::new();
    for guess in 2..5 {
        // At once: refused unchecked, however right.
        raw.send(&ClientMsg::Hello {
            version: PROTOCOL_VERSION,
            name: "alice".into(),
            password: Some("the right one".into()),
            register: false,
        })
        .await;
        let msg = raw.recv().await.unwrap();
        let ServerMsg::Error {
            code: ErrorCode::RateLimited,
            message,
            ..
        } = &msg
        else {
            panic!("{msg:?}")
        };
        let ms: u64 = message
            .split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap();
        told.push(ms);
        // The bystander is answered meanwhile.
        let asked = Instant::now();
        bystander.send(&ClientMsg::Ping).await;
        assert!(matches!(answer(&mut bystander).await, ServerMsg::Pong));
        assert!(asked.elapsed() < Duration::from_secs(2));
        // A wrong guess once the wait is over doubles the next wait.
        tokio::time::sleep(Duration::from_millis(ms + 20)).await;
        let (r, msg) = hello(
            &server.addr,
            "alice",
            Some(&format!("guess {guess:04}")),
            false,
        )
        .await;
        assert_eq!(code_of(&msg), Some(ErrorCode::AuthFailed), "{msg:?}");
        raw = r;
    }
    assert!(
        told.windows(2).all(|w| w[1] > w[0] * 3 / 2),
        "the waits do not grow: {told:?}"
    );
    // Another name from the same address waits too (guessing many names is no faster).
    let (_, other) = hello(&server.addr, "somebody", Some("guess"), false).await;
    assert_eq!(code_of(&other), Some(ErrorCode::RateLimited), "{other:?}");
}

#[tokio::test]
async fn a_password_is_changed_with_the_old_one_and_a_deleted_account_frees_its_name() {
    let server = start_with(cheap).await;
    let mut alice = joined(&server.addr, "alice", Some("first password"), true).await;
    let mut other = joined(&server.addr, "alice", Some("first password"), false).await;
    alice
        .send(&ClientMsg::ChangePassword {
            password: "not the password".into(),
            new_password: "second password".into(),
            req: Some(1),
        })
        .await;
    assert_eq!(
        code_of(&answer(&mut alice).await),
        Some(ErrorCode::AuthFailed)
    );
    // Past the wait a failure brings.
    tokio::time::sleep(Duration::from_millis(600)).await;
    alice
        .send(&ClientMsg::ChangePassword {
            password: "first password".into(),
            new_password: "second password".into(),
            req: Some(2),
        })
        .await;
    let msg = answer(&mut alice).await;
    assert!(
        matches!(msg, ServerMsg::PasswordChanged { req: Some(2) }),
        "{msg:?}"
    );
    let (_, old) = hello(&server.addr, "alice", Some("first password"), false).await;
    assert_eq!(code_of(&old), Some(ErrorCode::AuthFailed));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    joined(&server.addr, "alice", Some("second password"), false).await;

    alice
        .send(&ClientMsg::DeleteAccount {
            password: "second password".into(),
            req: Some(3),
        })
        .await;
    let msg = answer(&mut alice).await;
    assert!(
        matches!(msg, ServerMsg::AccountDeleted { req: Some(3) }),
        "{msg:?}"
    );
    // The account's other sessions are closed; this one stays, as a guest.
    let closed = other.until_closed(WAIT).await;
    assert!(
        matches!(closed.last(), Some(ServerMsg::Bye { reason, .. }) if *reason == "account_deleted"),
        "{closed:?}"
    );
    alice.send(&ClientMsg::Ping).await;
    assert!(matches!(answer(&mut alice).await, ServerMsg::Pong));
    quit(alice).await;
    joined(&server.addr, "alice", None, false).await;
}

/// Reads every page of the broadcast history, oldest first.
async fn whole_history(raw: &mut RawClient) -> Vec<StoredMessage> {
    let (mut all, mut before) = (Vec::new(), None);
    loop {
        let (messages, more) = page(raw, None, before, wire::MAX_HISTORY_PAGE as u32).await;
        before = messages.first().map(|m| m.id);
        all.splice(0..0, messages);
        if !more {
            return all;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_anyone_received_is_in_the_history_after_a_kill_dash_9() {
    let files = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_owned();
    let args = [
        "--data-dir",
        &dir,
        "--rate-limit",
        "1000000",
        "--rate-burst",
        "1000000",
        "--queue-limit",
        "1000000",
        "--queue-bytes",
        "1000000000",
    ];
    let mut server = spawn_server(files.path(), &args);
    let mut listener = RawClient::connect(&server.addr).await;
    listener
        .send(&ClientMsg::hello(PROTOCOL_VERSION, "listener"))
        .await;
    assert!(matches!(
        listener.recv().await,
        Some(ServerMsg::Welcome { .. })
    ));
    // Four talkers, as fast as they can.
    let mut talkers = Vec::new();
    for t in 0..4 {
        let mut raw = RawClient::connect(&server.addr).await;
        raw.send(&ClientMsg::hello(PROTOCOL_VERSION, format!("talker{t}")))
            .await;
        assert!(matches!(raw.recv().await, Some(ServerMsg::Welcome { .. })));
        talkers.push(tokio::spawn(async move {
            for i in 0u64.. {
                let frame = ClientMsg::SendAll {
                    text: format!("t{t} {i}"),
                    req: None,
                }
                .to_frame();
                if raw.try_send_bytes(&frame).await.is_err() {
                    return;
                }
                if i % 32 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    // The listener records what it received until the server dies under it.
    let kill_at = Instant::now() + Duration::from_millis(1500);
    let mut received = Vec::new();
    let mut killed = false;
    loop {
        if !killed && Instant::now() >= kill_at {
            server.child.kill().unwrap(); // SIGKILL
            killed = true;
        }
        match tokio::time::timeout(Duration::from_millis(100), listener.recv_or_close()).await {
            Ok(Some(ServerMsg::Message {
                id: Some(id), text, ..
            })) => received.push((id, text)),
            Ok(Some(_)) | Err(_) => {}
            Ok(None) if killed => break,
            Ok(None) => panic!("the listener was disconnected before the kill"),
        }
    }
    server.child.wait().unwrap();
    for talker in talkers {
        talker.abort();
    }
    assert!(
        received.len() > 100,
        "only {} messages went out",
        received.len()
    );

    let server = spawn_server(files.path(), &args);
    let mut reader = RawClient::connect(&server.addr).await;
    reader
        .send(&ClientMsg::hello(PROTOCOL_VERSION, "reader"))
        .await;
    assert!(matches!(
        reader.recv().await,
        Some(ServerMsg::Welcome { .. })
    ));
    let stored: std::collections::HashMap<u64, String> = whole_history(&mut reader)
        .await
        .into_iter()
        .map(|m| (m.id, m.text))
        .collect();
    let lost: Vec<_> = received
        .iter()
        .filter(|(id, text)| stored.get(id) != Some(text))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} received messages are not in the history, e.g. {:?}",
        lost.len(),
        received.len(),
        lost.first()
    );
}

/// The client library end to end: it registers, logs in with a password, queues a message for
/// an offline account and receives it as such, pages history, changes the password and
/// deletes the account.
#[tokio::test]
async fn the_client_library_does_accounts_history_and_offline_messages() {
    use client::{Client, Event, HistoryQuery, Login, Password};
    use test_support::wait_for;
    let server = start_with(cheap).await;
    let trust = server.trust();
    let addr = server.addr.clone();
    let login = |name: &str, password: &str, register: bool| Login {
        name: name.into(),
        password: Some(Password::new(password)),
        register,
    };
    // Registered on joining, and after joining as a guest.
    let (carol, _carol_events) = Client::connect_as(
        &addr,
        &login("carol", "carol's password", true),
        None,
        &trust,
    )
    .await
    .unwrap();
    assert!(carol.is_account());
    let (dave, _dave_events) = Client::connect(&addr, "dave", &trust).await.unwrap();
    assert!(!dave.is_account());
    let short = dave.register(&Password::new("short")).await;
    assert_eq!(
        short.as_ref().err().and_then(|e| e.code()),
        Some(ErrorCode::InvalidPassword),
        "{short:?}"
    );
    dave.register(&Password::new("dave's password"))
        .await
        .unwrap();
    assert!(dave.is_account());
    dave.quit().await.unwrap();

    // Dave is offline: carol's private message is kept for him, and she is told so.
    let mut carol_events = _carol_events;
    wait_for(
        &mut carol_events,
        |e| matches!(e, Event::Left { name, .. } if name == "dave"),
    )
    .await;
    for i in 0..3 {
        carol
            .send_private("dave", format!("while you were out {i}"))
            .await
            .unwrap();
        let queued = wait_for(&mut carol_events, |e| matches!(e, Event::Queued { .. })).await;
        assert!(
            matches!(&queued, Event::Queued { to, .. } if to == "dave"),
            "{queued:?}"
        );
    }
    for i in 0..25 {
        carol.send_all(format!("broadcast {i}")).await.unwrap();
    }

    // Dave logs in: the latest broadcasts as history, then what waited for him, in order.
    let wrong = Client::connect_as(
        &addr,
        &login("dave", "not his password", false),
        None,
        &trust,
    )
    .await
    .map(|_| ());
    assert_eq!(
        wrong.as_ref().err().and_then(|e| e.code()),
        Some(ErrorCode::AuthFailed),
        "{wrong:?}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (dave, mut dave_events) = Client::connect_as(
        &addr,
        &login("DAVE", "dave's password", false),
        None,
        &trust,
    )
    .await
    .unwrap();
    assert_eq!(dave.name(), "dave");
    let mut history = 0;
    let mut offline = Vec::new();
    while offline.len() < 3 {
        match wait_for(&mut dave_events, |e| matches!(e, Event::Message { .. })).await {
            Event::Message {
                history: true,
                private: false,
                ..
            } => history += 1,
            Event::Message {
                offline: true,
                private: true,
                text,
                from,
                ..
            } => {
                assert_eq!(from, "carol");
                offline.push(text);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(history, 25);
    let texts: Vec<String> = (0..3).map(|i| format!("while you were out {i}")).collect();
    assert_eq!(offline, texts);

    // History pages back through the broadcasts, and the private conversation is dave's.
    let page = dave
        .history(HistoryQuery {
            limit: Some(10),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 10);
    assert_eq!(page.messages[9].text, "broadcast 24");
    let older = dave.history(page.older(Some(10)).unwrap()).await.unwrap();
    assert_eq!(older.messages[9].text, "broadcast 14");
    let private = dave
        .history(HistoryQuery {
            with: Some("carol".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let private: Vec<String> = private.messages.into_iter().map(|m| m.text).collect();
    assert_eq!(private, texts);

    // The password changes; the account goes, and its name is free for a guest.
    dave.change_password(
        &Password::new("dave's password"),
        &Password::new("a new password"),
    )
    .await
    .unwrap();
    dave.delete_account(&Password::new("a new password"))
        .await
        .unwrap();
    assert!(!dave.is_account());
    dave.quit().await.unwrap();
    let (guest, _) = Client::connect(&addr, "dave", &trust).await.unwrap();
    assert!(!guest.is_account());
}

/// One address registering names by the thousand would fill the server's accounts and lock
/// everyone else out of registering: each address makes a few an hour, and the server keeps
/// `--max-accounts` in all.
#[tokio::test]
async fn new_accounts_are_bounded_per_address_and_in_all() {
    let server = start_with(|c| {
        cheap(c);
        c.registrations_per_hour = 3;
        c.max_accounts = 5;
    })
    .await;
    let register_from = |local: &'static str, name: String| {
        let addr = server.addr.clone();
        async move {
            let mut raw = RawClient::connect_from(&addr, local).await;
            raw.send(&ClientMsg::Hello {
                version: PROTOCOL_VERSION,
                name,
                password: Some("a good password".into()),
                register: true,
            })
            .await;
            raw.recv().await.expect("an answer to the hello")
        }
    };
    for i in 0..3 {
        let msg = register_from("127.0.0.1", format!("spam{i}")).await;
        assert!(
            matches!(msg, ServerMsg::Welcome { account: true, .. }),
            "{msg:?}"
        );
    }
    // The fourth from the same address waits, and so does a guest's `register` from it.
    let msg = register_from("127.0.0.1", "spam3".into()).await;
    assert_eq!(code_of(&msg), Some(ErrorCode::RateLimited), "{msg:?}");
    let mut guest = joined(&server.addr, "guest", None, false).await;
    guest
        .send(&ClientMsg::Register {
            password: "a good password".into(),
            req: Some(1),
        })
        .await;
    assert_eq!(
        code_of(&answer(&mut guest).await),
        Some(ErrorCode::RateLimited)
    );
    // Another address may; past five accounts in all, nobody may.
    for i in 0..2 {
        let msg = register_from("127.0.0.2", format!("other{i}")).await;
        assert!(
            matches!(msg, ServerMsg::Welcome { account: true, .. }),
            "{msg:?}"
        );
    }
    let msg = register_from("127.0.0.3", "late".into()).await;
    assert_eq!(code_of(&msg), Some(ErrorCode::ServerFull), "{msg:?}");
    // Those who have accounts still log in.
    let (_, welcome) = hello(&server.addr, "spam0", Some("a good password"), false).await;
    assert!(
        matches!(welcome, ServerMsg::Welcome { account: true, .. }),
        "{welcome:?}"
    );
}
