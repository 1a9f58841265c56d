//! The `messenger-server` binary as an operator runs it, with real clients: a signal ends it
//! cleanly, `--max-frame` applies, and a server killed mid-download restarts where it was.

use crate::common::{
    RawClient, ServerProcess, content, is_bad_request, next, spawn_server, wait_for,
};
use client::{Client, DownloadOptions, ErrorCode, Event, TransferEvent, TransferState, Trust};
use std::process::Command;
use std::time::Duration;
use wire::{ClientMsg, ServerMsg};

#[tokio::test]
async fn sigterm_tells_every_client_and_exits_cleanly() {
    let files = tempfile::tempdir().unwrap();
    let server = spawn_server(files.path(), &[]);
    let (mut child, addr) = (server.child, server.addr);
    let trust = Trust::pinned(server.key);
    let mut clients = Vec::new();
    for i in 0..5 {
        clients.push(
            Client::connect(&addr, &format!("c{i}"), &trust)
                .await
                .unwrap(),
        );
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

#[tokio::test]
async fn max_frame_sets_the_largest_frame_a_client_may_send() {
    let files = tempfile::tempdir().unwrap();
    let ServerProcess {
        mut child,
        addr,
        data: _data,
        ..
    } = spawn_server(files.path(), &["--max-frame", "65536"]);
    let mut raw = RawClient::connect(&addr).await;
    raw.hello("big").await;
    assert!(matches!(raw.recv().await, Some(ServerMsg::Welcome { .. })));
    // A frame of exactly the cap is read (and refused as the nonsense it is); the connection
    // lives on.
    raw.send_payload(&vec![b'x'; 65_536]).await;
    let msg = raw.recv().await;
    assert!(msg.as_ref().is_some_and(is_bad_request), "{msg:?}");
    raw.send(&ClientMsg::ListUsers { req: Some(1) }).await;
    assert!(matches!(raw.recv().await, Some(ServerMsg::Users { .. })));
    // One byte more (which the default cap of 1 MiB allows) ends it.
    raw.send_bytes(&65_537u32.to_be_bytes()).await;
    let msgs = raw.until_closed(crate::common::WAIT).await;
    assert!(
        matches!(msgs.as_slice(), [
            ServerMsg::Error { code: ErrorCode::BadRequest, message, .. },
            ServerMsg::Bye { reason, .. },
        ] if message.contains("65537") && message.contains("65536") && reason == "protocol_error"),
        "{msgs:?}"
    );
    child.kill().unwrap();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_download_restarts_on_its_ports_and_the_download_resumes() {
    let files = tempfile::tempdir().unwrap();
    let size = 24 * 1024 * 1024;
    let (data, hash) = content(size);
    std::fs::write(files.path().join("k.bin"), &data).unwrap();
    let udp = crate::common::free_udp_port();
    let ports = format!("{udp}-{udp}");
    // The same data folder on both starts: the server comes back with the same key.
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let first = spawn_server(
        files.path(),
        &["--udp-ports", &ports, "--data-dir", data_dir],
    );
    let (mut server, addr, trust) = (first.child, first.addr, Trust::pinned(first.key));
    let dest = tempfile::tempdir().unwrap();
    let (client, mut events) = Client::connect(&addr, "loyal", &trust).await.unwrap();
    let paused = DownloadOptions {
        dir: dest.path().to_path_buf(),
        pause_at: Some(40.0),
        ..DownloadOptions::default()
    };
    let id = client.download("k.bin", paused).await.unwrap();
    let state = |e: &Event| match e {
        Event::Transfer(TransferEvent { id: got, state, .. }) if *got == id => Some(state.clone()),
        _ => None,
    };
    wait_for(&mut events, |e| {
        matches!(state(e), Some(TransferState::Paused { .. }))
    })
    .await;

    server.kill().unwrap(); // SIGKILL: no goodbye to anyone, no transfer closed
    server.wait().unwrap();
    // The client hears of it at once (not when the transfer times out): the transfer stops
    // with its data kept, then the connection is reported gone.
    let failed = wait_for(&mut events, |e| {
        matches!(state(e), Some(TransferState::Failed { .. }))
    })
    .await;
    assert!(format!("{failed:?}").contains("asking for the file again resumes it"));
    let gone = next(&mut events).await;
    assert!(
        matches!(&gone, Event::Disconnected { reason, .. } if reason == "connection_lost"),
        "{gone:?}"
    );
    assert!(dest.path().join("k.bin.part").exists());

    // Its TCP and UDP ports serve again at once, and the download resumes and verifies.
    let second = spawn_server(
        files.path(),
        &[
            "--bind",
            &addr,
            "--udp-ports",
            &ports,
            "--data-dir",
            data_dir,
        ],
    );
    let (mut server, again) = (second.child, second.addr);
    assert_eq!(again, addr);
    let (client, mut events) = Client::connect(&addr, "loyal", &trust).await.unwrap();
    let id = client
        .download(
            "k.bin",
            DownloadOptions {
                dir: dest.path().to_path_buf(),
                ..DownloadOptions::default()
            },
        )
        .await
        .unwrap();
    let started = wait_for(
        &mut events,
        |e| matches!(e, Event::Transfer(TransferEvent { id: got, .. }) if *got == id),
    )
    .await;
    let Event::Transfer(TransferEvent {
        state: TransferState::Started { offset, .. },
        ..
    }) = started
    else {
        panic!("{started:?}");
    };
    assert!(offset >= size as u64 * 2 / 5, "resumed at {offset}");
    let done = wait_for(&mut events, |e| {
        matches!(e, Event::Transfer(TransferEvent { id: got, state: TransferState::Done { .. } | TransferState::Failed { .. }, .. }) if *got == id)
    })
    .await;
    let Event::Transfer(TransferEvent {
        state: TransferState::Done { path, .. },
        ..
    }) = done
    else {
        panic!("{done:?}");
    };
    let on_disk = std::fs::read(path).unwrap();
    assert_eq!(blake3::hash(&on_disk).to_hex().as_str(), hash);
    server.kill().unwrap();
    let _ = server.wait();
}
