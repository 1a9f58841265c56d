//! The terminal client's `--json` contract and exit codes, proven by running the real binary
//! against a real server on 127.0.0.1.

use crate::common::{Cli, WAIT, start_with};
use client::{Client, Event, Events};
use serde_json::Value;
use std::process::Stdio;

async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap()
        .unwrap()
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

#[tokio::test]
async fn json_events_follow_the_contract() {
    let server = start_with(|_| {}).await;
    std::fs::write(server.files.path().join("a.bin"), [7u8; 123]).unwrap();
    let mut cli = Cli::spawn(&server, "alice");
    let connected = cli.connected().await;
    assert_eq!(connected["name"], "alice");
    assert_eq!(connected["server"], server.addr.as_str());

    let (bob, mut bob_events) = Client::connect(&server.addr, "bob", &server.trust())
        .await
        .unwrap();
    let joined = cli.event().await;
    assert_eq!(
        (joined["event"].as_str(), joined["name"].as_str()),
        (Some("joined"), Some("bob"))
    );

    bob.send_all("hi").await.unwrap();
    let msg = cli.event().await;
    assert_eq!(msg["event"], "message");
    assert_eq!(msg["from"], "bob");
    assert_eq!(msg["text"], "hi");
    assert_eq!(msg["private"], false);
    assert!(is_rfc3339(&msg["time"]), "{msg}");

    bob.send_private("alice", "just you").await.unwrap();
    let msg = cli.event().await;
    assert_eq!(
        (msg["event"].as_str(), msg["private"].as_bool()),
        (Some("message"), Some(true))
    );
    assert_eq!(msg["text"], "just you");

    cli.type_line("hello bob").await;
    cli.type_line("/msg bob psst").await;
    let Event::Message {
        text,
        private: false,
        ..
    } = next(&mut bob_events).await
    else {
        panic!()
    };
    assert_eq!(text, "hello bob");
    let Event::Message {
        text,
        private: true,
        ..
    } = next(&mut bob_events).await
    else {
        panic!()
    };
    assert_eq!(text, "psst");

    cli.type_line("/users").await;
    let users = cli.event().await;
    assert_eq!(
        users,
        serde_json::json!({"event": "users", "names": ["alice", "bob"]})
    );

    cli.type_line("/files").await;
    let files = cli.event().await;
    assert_eq!(
        files,
        serde_json::json!({"event": "files", "files": [{"name": "a.bin", "size": 123}]})
    );

    for (line, code) in [
        ("/msg nobody hello", "no_such_user"),
        ("/frobnicate", "unknown_command"),
        (&"x".repeat(5000), "too_long"),
    ] {
        cli.type_line(line).await;
        let err = cli.event().await;
        assert_eq!(
            (err["event"].as_str(), err["code"].as_str()),
            (Some("error"), Some(code)),
            "{err}"
        );
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    bob.quit().await.unwrap();
    let left = cli.event().await;
    assert_eq!(
        (left["event"].as_str(), left["name"].as_str()),
        (Some("left"), Some("bob"))
    );

    cli.type_line("/quit").await;
    let bye = cli.event().await;
    assert_eq!(
        (bye["event"].as_str(), bye["reason"].as_str()),
        (Some("disconnected"), Some("quit"))
    );
    assert_eq!(cli.exit_code().await, 0);
}

#[tokio::test]
async fn end_of_input_quits_cleanly() {
    let server = start_with(|_| {}).await;
    let mut cli = Cli::spawn(&server, "eof");
    cli.connected().await;
    cli.close_stdin();
    let bye = cli.event().await;
    assert_eq!(bye["reason"], "quit");
    assert_eq!(cli.exit_code().await, 0);
}

#[tokio::test]
async fn refused_names_exit_non_zero_with_an_error_event() {
    let server = start_with(|c| c.max_clients = 1).await;
    let _taken = Client::connect(&server.addr, "carol", &server.trust())
        .await
        .unwrap();
    for (name, code) in [
        ("CAROL", "name_taken"),
        ("no spaces", "invalid_name"),
        ("dave", "server_full"),
    ] {
        let mut cli = Cli::spawn(&server, name);
        let err = cli.event().await;
        assert_eq!(
            (err["event"].as_str(), err["code"].as_str()),
            (Some("error"), Some(code)),
            "{err}"
        );
        let output = cli.child.wait_with_output().await.unwrap();
        assert_ne!(output.status.code(), Some(0));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("refused"), "{stderr}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_one_clear_sentence_and_a_failure() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for addr in [format!("127.0.0.1:{port}"), "not an address".to_string()] {
        let output = crate::common::messenger(None)
            .args(["--server", &addr, "--name", "x", "--json"])
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert!(output.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("cannot connect"), "{stderr}");
    }
}

#[tokio::test]
async fn a_killed_client_is_seen_leaving() {
    let server = start_with(|_| {}).await;
    let (_watcher, mut events) = Client::connect(&server.addr, "watcher", &server.trust())
        .await
        .unwrap();
    let mut cli = Cli::spawn(&server, "doomed");
    cli.connected().await;
    assert!(matches!(next(&mut events).await, Event::Joined { name, .. } if name == "doomed"));
    cli.child.kill().await.unwrap(); // SIGKILL: no goodbye
    let left = next(&mut events).await;
    assert!(
        matches!(&left, Event::Left { name, reason, .. } if name == "doomed" && reason == "disconnected"),
        "{left:?}"
    );
}

#[tokio::test]
async fn server_shutdown_is_reported_and_exits_non_zero() {
    let server = start_with(|_| {}).await;
    let mut cli = Cli::spawn(&server, "stayer");
    cli.connected().await;
    server.handle.stop().await;
    let bye = cli.event().await;
    assert_eq!(
        (bye["event"].as_str(), bye["reason"].as_str()),
        (Some("disconnected"), Some("server_shutdown"))
    );
    assert_eq!(cli.exit_code().await, 1);
}

/// Waits for the client to exit while its stdin stays open, and returns its exit code and
/// what it wrote on stderr.
async fn exit_with_stdin_open(cli: &mut Cli) -> (i32, String) {
    let status = tokio::time::timeout(WAIT, cli.child.wait())
        .await
        .expect("the client did not exit while its stdin stayed open")
        .unwrap();
    let mut stderr = String::new();
    if let Some(mut err) = cli.child.stderr.take() {
        tokio::io::AsyncReadExt::read_to_string(&mut err, &mut stderr)
            .await
            .unwrap();
    }
    (status.code().unwrap_or(-1), stderr)
}

#[tokio::test]
async fn quit_exits_at_once_even_while_stdin_stays_open() {
    let server = start_with(|_| {}).await;
    let mut cli = Cli::spawn(&server, "quitter");
    cli.connected().await;
    cli.type_line("/quit").await;
    assert_eq!(cli.event().await["reason"], "quit");
    let (code, _) = exit_with_stdin_open(&mut cli).await;
    assert_eq!(code, 0);
}

#[tokio::test]
async fn server_shutdown_exits_with_a_sentence_while_stdin_stays_open() {
    let server = start_with(|_| {}).await;
    let mut cli = Cli::spawn(&server, "stayer");
    cli.connected().await;
    server.handle.stop().await;
    assert_eq!(cli.event().await["reason"], "server_shutdown");
    let (code, stderr) = exit_with_stdin_open(&mut cli).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("the connection to") && stderr.contains("server_shutdown"),
        "{stderr}"
    );
}
