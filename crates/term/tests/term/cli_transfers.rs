//! The terminal client's download commands and `--json` transfer events, and the one-shot
//! `get`, proven by running the real binary against a real server on 127.0.0.1.

use crate::common::{Cli, start_with};
use serde_json::Value;
use std::process::Stdio;

/// Skips progress events and returns the next transfer event of another state.
async fn next_transfer_state(cli: &mut Cli) -> Value {
    loop {
        let ev = cli.event().await;
        assert_eq!(ev["event"], "transfer", "{ev}");
        assert!(ev["id"].is_u64(), "{ev}");
        if ev["state"] != "progress" {
            return ev;
        }
        assert!(
            ev["bytes"].is_u64()
                && ev["size"].is_u64()
                && ev["rate_bps"].is_u64()
                && ev["rtt_ms"].is_number()
                && ev["lost"].is_u64(),
            "{ev}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_events_follow_the_contract() {
    let server = start_with(|c| c.max_queued = 0).await;
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i * 7 + i / 1000) as u8)
        .collect();
    std::fs::write(server.files.path().join("a.bin"), &data).unwrap();
    std::fs::write(server.files.path().join("empty.bin"), b"").unwrap();
    let dest = tempfile::tempdir().unwrap();
    let dir = dest.path().to_str().unwrap();
    let mut cli = Cli::spawn_with(&server, "getter", &["--download-dir", dir]);
    cli.connected().await;

    cli.type_line("/get a.bin --pause-at 50").await;
    let started = next_transfer_state(&mut cli).await;
    assert_eq!(
        (started["state"].as_str(), started["file"].as_str()),
        (Some("started"), Some("a.bin"))
    );
    assert_eq!(started["size"], 3_000_000);
    let id = started["id"].as_u64().unwrap();
    let paused = next_transfer_state(&mut cli).await;
    assert_eq!(paused["state"], "paused", "{paused}");
    assert!(paused["bytes"].as_u64().unwrap() >= 1_500_000);

    cli.type_line("/transfers").await;
    let list = cli.event().await;
    assert_eq!(list["event"], "transfers");
    assert_eq!(list["transfers"][0]["state"], "paused");

    // The pool has two ports: the paused transfer holds one, the empty file takes the other.
    cli.type_line("/get empty.bin").await;
    let done = next_transfer_state(&mut cli).await;
    let done = if done["state"] == "started" {
        next_transfer_state(&mut cli).await
    } else {
        done
    };
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["last_byte"], Value::Null);
    assert_eq!(done["size"], 0);

    for (line, code) in [
        ("/get nothing.bin", "no_such_file"),
        ("/cancel 999", "no_such_transfer"),
        ("/pause 999", "no_such_transfer"),
    ] {
        cli.type_line(line).await;
        let err = cli.event().await;
        assert_eq!(
            (err["event"].as_str(), err["code"].as_str()),
            (Some("error"), Some(code)),
            "{err}"
        );
    }

    cli.type_line(&format!("/resume {id}")).await;
    let resumed = next_transfer_state(&mut cli).await;
    assert_eq!(resumed["state"], "resumed", "{resumed}");
    let done = next_transfer_state(&mut cli).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["id"], id);
    assert_eq!(done["file"], "a.bin");
    assert_eq!(
        (done["bytes"].as_u64(), done["size"].as_u64()),
        (Some(3_000_000), Some(3_000_000))
    );
    assert_eq!(done["last_byte"], u64::from(*data.last().unwrap()));
    assert_eq!(done["hash"], blake3::hash(&data).to_hex().as_str());
    let path = std::path::PathBuf::from(done["path"].as_str().unwrap());
    assert!(path.is_absolute());
    assert_eq!(std::fs::read(&path).unwrap(), data);

    cli.type_line("/quit").await;
    assert_eq!(cli.event().await["event"], "disconnected");
    assert_eq!(cli.exit_code().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_end_of_a_script_running_downloads_finish_and_paused_ones_wait() {
    let server = start_with(|_| {}).await;
    let data: Vec<u8> = (0..20_000_000u32).map(|i| (i ^ (i >> 9)) as u8).collect();
    std::fs::write(server.files.path().join("a.bin"), &data).unwrap();
    std::fs::write(server.files.path().join("b.bin"), &data[..4_000_000]).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let dir = dest.path().to_str().unwrap();
    let mut cli = Cli::spawn_with(&server, "script", &["--download-dir", dir]);
    cli.connected().await;
    // The whole script at once, then the end of input.
    cli.type_line("/get b.bin --pause-at 10\n/get a.bin").await;
    cli.close_stdin();
    let mut done = Vec::new();
    let mut paused = Vec::new();
    loop {
        let ev = cli.event().await;
        match (ev["event"].as_str(), ev["state"].as_str()) {
            (Some("transfer"), Some("done")) => done.push(ev["file"].as_str().unwrap().to_owned()),
            (Some("transfer"), Some("paused")) => {
                paused.push(ev["file"].as_str().unwrap().to_owned());
            }
            (Some("disconnected"), _) => break,
            _ => {}
        }
    }
    assert_eq!(
        done,
        ["a.bin"],
        "the running download finished before the client left"
    );
    assert_eq!(paused, ["b.bin"]);
    assert_eq!(std::fs::read(dest.path().join("a.bin")).unwrap(), data);
    assert!(
        dest.path().join("b.bin.part").exists(),
        "the paused one is kept for later"
    );
    assert_eq!(cli.exit_code().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_when_every_port_is_taken_and_no_queue_is_allowed() {
    let server = start_with(|c| {
        c.max_queued = 0;
        c.udp_ports = server::UdpPorts::Ephemeral(1);
    })
    .await;
    std::fs::write(server.files.path().join("a.bin"), vec![1u8; 2_000_000]).unwrap();
    std::fs::write(server.files.path().join("b.bin"), vec![2u8; 1000]).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let dir = dest.path().to_str().unwrap();
    let mut cli = Cli::spawn_with(&server, "hog", &["--download-dir", dir]);
    cli.connected().await;
    cli.type_line("/get a.bin --pause-at 50").await;
    loop {
        if next_transfer_state(&mut cli).await["state"] == "paused" {
            break;
        }
    }
    cli.type_line("/get a.bin").await;
    let err = cli.event().await;
    assert_eq!(
        (err["event"].as_str(), err["code"].as_str()),
        (Some("error"), Some("busy")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_datagrams_on_request_and_a_clear_error_below_the_minimum() {
    let server = start_with(|_| {}).await;
    let data: Vec<u8> = (0..700_001u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(server.files.path().join("s.bin"), &data).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let get = |name: &'static str, size: &'static str| {
        let mut cmd = crate::common::messenger(Some(&server.key()));
        cmd.args(["--server", &server.addr, "--name", name])
            .args(["--max-datagram", size, "--download-dir"])
            .arg(dest.path())
            .args(["get", "s.bin"])
            .stdin(Stdio::null());
        cmd
    };
    let output = get("small", "1200").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(std::fs::read(dest.path().join("s.bin")).unwrap(), data);

    let output = get("tiny", "576").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "a usage error: {stderr}");
    assert!(
        stderr.contains("--max-datagram") && stderr.contains("1200"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_get_prints_the_verified_path_and_exits_zero() {
    let server = start_with(|_| {}).await;
    let data = vec![42u8; 1_234_567];
    std::fs::write(server.files.path().join("one.bin"), &data).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let target = dest.path().join("saved.bin");
    let output = crate::common::messenger(Some(&server.key()))
        .args([
            "--server",
            &server.addr,
            "--name",
            "oneshot",
            "get",
            "one.bin",
            "-o",
        ])
        .arg(&target)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let printed = std::path::PathBuf::from(stdout.trim());
    assert_eq!(printed, target.canonicalize().unwrap());
    assert_eq!(std::fs::read(&target).unwrap(), data);
    assert!(stderr.contains("last byte 42"), "{stderr}");

    let output = crate::common::messenger(Some(&server.key()))
        .args([
            "--server",
            &server.addr,
            "--name",
            "oneshot2",
            "get",
            "missing.bin",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no shared file"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_client_returns_its_port_and_resumes_after_a_restart() {
    let server = start_with(|_| {}).await;
    let data: Vec<u8> = (0..6_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(server.files.path().join("k.bin"), &data).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let dir = dest.path().to_str().unwrap();
    let free = |s: &crate::common::TestServer| s.handle.transfers().free_ports();
    assert_eq!(free(&server), 2);

    let mut cli = Cli::spawn_with(&server, "victim", &["--download-dir", dir]);
    cli.connected().await;
    cli.type_line("/get k.bin --pause-at 40").await;
    loop {
        if next_transfer_state(&mut cli).await["state"] == "paused" {
            break;
        }
    }
    assert_eq!(free(&server), 1, "the transfer holds a port");
    cli.child.kill().await.unwrap(); // SIGKILL: no goodbye, no cancel
    let mut back = false;
    for _ in 0..250 {
        if free(&server) == 2 {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(back, "the killed client's port came back");
    assert!(dest.path().join("k.bin.part").exists());

    // The same client again: it resumes from the .part and verifies.
    let mut cli = Cli::spawn_with(&server, "victim", &["--download-dir", dir]);
    cli.connected().await;
    cli.type_line("/get k.bin").await;
    let started = next_transfer_state(&mut cli).await;
    assert_eq!(started["state"], "started", "{started}");
    assert!(
        started["offset"].as_u64().unwrap() >= 2_400_000,
        "resumed at {}",
        started["offset"]
    );
    let done = next_transfer_state(&mut cli).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(std::fs::read(done["path"].as_str().unwrap()).unwrap(), data);
}
