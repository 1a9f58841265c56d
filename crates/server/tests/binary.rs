//! The `messenger-server` binary as an operator runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use client::{Client, Event};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Starts the binary on a free port and returns it with the address it logged.
fn spawn_server(files: &std::path::Path) -> (std::process::Child, String) {
    // A UDP port the OS just handed out (and took back) is free for the pool.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_messenger-server"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--udp-ports",
            &format!("{udp}-{udp}"),
            "--files",
        ])
        .arg(files)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "server exited early"
        );
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining the logs so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in stderr.lines() {});
    (child, addr)
}

#[tokio::test]
async fn sigterm_tells_every_client_and_exits_cleanly() {
    let files = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_server(files.path());
    let mut clients = Vec::new();
    for i in 0..5 {
        clients.push(Client::connect(&addr, &format!("c{i}")).await.unwrap());
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for (_, events) in &mut clients {
        let event = loop {
            let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
                .await
                .unwrap()
                .unwrap();
            if matches!(ev, Event::Disconnected { .. }) {
                break ev;
            }
        };
        assert!(
            matches!(&event, Event::Disconnected { reason, .. } if reason == "server_shutdown"),
            "{event:?}"
        );
    }
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn a_bad_port_range_is_refused_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_messenger-server"))
        .args(["--udp-ports", "9000-8000"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("LO <= HI"), "{stderr}");
}
