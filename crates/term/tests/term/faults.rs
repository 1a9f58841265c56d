//! Faults on the client's side of a download, with the `messenger` binary: a client whose
//! network vanishes is timed out and gives its port back. (Other faults, a full disk or a file
//! that changes on the server, are tested on the library in the `client` crate.)

use crate::common::{Cli, TRANSFER_WAIT, assert_done, make_file, opts, start_with};
use client::{Client, Event};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio::time::Instant;

/// Sends signal `name` (`STOP`, `CONT`, ...) to process `pid`.
fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Keeps a client busy asking for the user list, so that a server with a short idle timeout
/// sees it alive (its own pings come every 15 s). Stops when dropped.
struct KeepAlive(tokio::task::JoinHandle<()>);

impl KeepAlive {
    fn new(client: &Client) -> Self {
        let client = client.clone();
        Self(tokio::spawn(async move {
            loop {
                let _ = client.users().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }))
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads the terminal client's events until one matches `pred`, typing `/users` every 200 ms
/// meanwhile so that it stays active for a server with a short idle timeout.
async fn active_until(cli: &mut Cli, mut pred: impl FnMut(&Value) -> bool) -> Value {
    let deadline = Instant::now() + TRANSFER_WAIT;
    let mut typed = Instant::now();
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for an event");
        if typed.elapsed() >= Duration::from_millis(200) {
            cli.type_line("/users").await;
            typed = Instant::now();
        }
        // `next_line` can be cancelled without losing a line.
        if let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_millis(200), cli.stdout.next_line()).await
        {
            let event: Value = serde_json::from_str(&line).unwrap();
            if pred(&event) {
                return event;
            }
        }
    }
}

fn free_ports(server: &crate::common::TestServer) -> usize {
    server.handle.transfers().free_ports()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_client_is_timed_out_and_gives_its_port_back_while_others_carry_on() {
    let server = start_with(|c| c.idle_timeout = Duration::from_secs(2)).await;
    let size = 24 * 1024 * 1024;
    let hash = make_file(server.files.path(), "v.bin", size);
    let dest = tempfile::tempdir().unwrap();
    let dir = dest.path().join("victim");
    let dir = dir.to_str().unwrap();
    let (watcher, mut watching) = Client::connect(&server.addr, "watcher", &server.trust())
        .await
        .unwrap();
    let _watcher_alive = KeepAlive::new(&watcher);

    let mut victim = Cli::spawn_with(&server, "victim", &["--download-dir", dir]);
    active_until(&mut victim, |ev| ev["event"] == "connected").await;
    victim.type_line("/get v.bin --pause-at 30").await;
    active_until(&mut victim, |ev| ev["state"] == "paused").await;
    assert_eq!(free_ports(&server), 1, "the victim holds a port");

    // Its network vanishes: the process stops, reading nothing and sending nothing, on TCP
    // and UDP alike.
    let pid = victim.child.id().unwrap();
    signal(pid, "STOP");

    // Others carry on: a download on the other port and the chat...
    let (healthy, mut healthy_events) = Client::connect(&server.addr, "healthy", &server.trust())
        .await
        .unwrap();
    let _healthy_alive = KeepAlive::new(&healthy);
    let id = healthy
        .download("v.bin", opts(&dest.path().join("healthy")))
        .await
        .unwrap();
    assert_done(&mut healthy_events, id, &hash, size).await;
    // ...while the server times the victim out and takes its port back.
    loop {
        match tokio::time::timeout(TRANSFER_WAIT, watching.recv()).await {
            Ok(Some(Event::Left { name, reason, .. })) if name == "victim" => {
                assert_eq!(reason, "timeout");
                break;
            }
            Ok(Some(_)) => {}
            other => panic!("the victim was never timed out: {other:?}"),
        }
    }
    crate::common::wait_until("2 free ports", || free_ports(&server) == 2).await;
    healthy.send_all("still here").await.unwrap();
    loop {
        let event = tokio::time::timeout(TRANSFER_WAIT, watching.recv()).await;
        if let Ok(Some(Event::Message { text, .. })) = &event
            && text == "still here"
        {
            break;
        }
        assert!(matches!(event, Ok(Some(_))), "{event:?}");
    }

    // Back on the network, the victim learns it was dropped and leaves, keeping its data...
    signal(pid, "CONT");
    loop {
        let ev = victim.event().await;
        if ev["event"] == "disconnected" {
            assert_eq!(ev["reason"], "timeout", "{ev}");
            break;
        }
    }
    assert_eq!(victim.exit_code().await, 1);
    assert!(Path::new(dir).join("v.bin.part").exists());
    // ...from which it resumes.
    let mut again = Cli::spawn_with(&server, "victim", &["--download-dir", dir]);
    again.connected().await;
    again.type_line("/get v.bin").await;
    let started = active_until(&mut again, |ev| ev["event"] == "transfer").await;
    assert_eq!(started["state"], "started", "{started}");
    assert!(
        started["offset"].as_u64().unwrap() >= size * 3 / 10,
        "resumed at {}",
        started["offset"]
    );
    let done = active_until(&mut again, |ev| {
        ev["event"] == "transfer" && ev["state"] != "progress"
    })
    .await;
    assert_eq!(done["state"], "done", "{done}");
    let on_disk = std::fs::read(done["path"].as_str().unwrap()).unwrap();
    assert_eq!(blake3::hash(&on_disk).to_hex().as_str(), hash);
}
