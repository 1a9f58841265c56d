//! Downloads end to end: a real server and real clients over 127.0.0.1, files on disk, the
//! reliable UDP transport in between.

use crate::common::{
    TestServer, assert_done, make_file, next_of, opts, outcome, start_with, wait_until,
};
use client::{Client, DownloadOptions, ErrorCode, Event, TransferState};
use server::{Config, Server, UdpPorts};

async fn start(udp_ports: usize) -> TestServer {
    start_with(|c| c.udp_ports = UdpPorts::Ephemeral(udp_ports)).await
}

async fn serve(files: tempfile::TempDir, udp_ports: usize) -> TestServer {
    crate::common::serve(files, |c| c.udp_ports = UdpPorts::Ephemeral(udp_ports)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_bytes_for_edge_sizes() {
    let server = start(4).await;
    // Empty, one byte, and sizes around one datagram's payload at the small and large sizes.
    let sizes = [
        0u64, 1, 1151, 1152, 1153, 1199, 1200, 1201, 65_399, 65_400, 65_401, 3_000_000,
    ];
    let hashes: Vec<String> = sizes
        .iter()
        .map(|&n| make_file(server.files.path(), &format!("f{n}.bin"), n))
        .collect();
    let dest = tempfile::tempdir().unwrap();
    let (client, mut events) = Client::connect(&server.addr, "edge", &server.trust())
        .await
        .unwrap();
    for (size, hash) in sizes.iter().zip(&hashes) {
        let id = client
            .download(&format!("f{size}.bin"), opts(dest.path()))
            .await
            .unwrap();
        let path = assert_done(&mut events, id, hash, *size).await;
        if *size == 0 {
            assert!(std::fs::read(path).unwrap().is_empty());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_file_arrives_intact() {
    let server = start(2).await;
    let size = 200 * 1024 * 1024 + 7;
    let hash = make_file(server.files.path(), "big.bin", size);
    let dest = tempfile::tempdir().unwrap();
    let (client, mut events) = Client::connect(&server.addr, "big", &server.trust())
        .await
        .unwrap();
    let id = client.download("big.bin", opts(dest.path())).await.unwrap();
    assert_done(&mut events, id, &hash, size).await;
    wait_until("2 free port(s)", || {
        server.handle.transfers().free_ports() == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_download_one_file_while_a_fourth_waits_paused_at_half() {
    let server = start(4).await;
    let size = 20 * 1024 * 1024;
    let hash = make_file(server.files.path(), "shared.bin", size);
    let dest = tempfile::tempdir().unwrap();

    let (patient, mut patient_events) = Client::connect(&server.addr, "patient", &server.trust())
        .await
        .unwrap();
    let paused_opts = DownloadOptions {
        pause_at: Some(50.0),
        ..opts(&dest.path().join("patient"))
    };
    let patient_id = patient.download("shared.bin", paused_opts).await.unwrap();
    let paused_at = loop {
        match next_of(&mut patient_events, patient_id).await {
            TransferState::Paused {
                bytes,
                at_pause_point: true,
            } => break bytes,
            TransferState::Started { .. } | TransferState::Progress { .. } => {}
            other => panic!("{other:?}"),
        }
    };
    assert!(
        paused_at >= size / 2 && paused_at < size,
        "paused at {paused_at}"
    );

    let mut others = Vec::new();
    for name in ["one", "two", "three"] {
        let (client, events) = Client::connect(&server.addr, name, &server.trust())
            .await
            .unwrap();
        let id = client
            .download("shared.bin", opts(&dest.path().join(name)))
            .await
            .unwrap();
        others.push((client, events, id));
    }
    for (_, events, id) in &mut others {
        assert_done(events, *id, &hash, size).await;
    }
    // While the others ran, the paused one stayed where it was.
    let status = patient.transfers();
    assert_eq!(status[0].state, "paused");
    assert!(status[0].bytes < size);

    patient.resume(patient_id).unwrap();
    let resumed = next_of(&mut patient_events, patient_id).await;
    assert!(
        matches!(resumed, TransferState::Resumed { .. }),
        "{resumed:?}"
    );
    assert_done(&mut patient_events, patient_id, &hash, size).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_two_ports_queues_the_third_request() {
    let server = start(2).await;
    let size = 8 * 1024 * 1024;
    let hash = make_file(server.files.path(), "q.bin", size);
    let dest = tempfile::tempdir().unwrap();
    let mut clients = Vec::new();
    // The first two pause at once, holding both ports, so the third must queue.
    for name in ["a", "b"] {
        let (client, mut events) = Client::connect(&server.addr, name, &server.trust())
            .await
            .unwrap();
        let o = DownloadOptions {
            pause_at: Some(1.0),
            ..opts(&dest.path().join(name))
        };
        let id = client.download("q.bin", o).await.unwrap();
        loop {
            if let TransferState::Paused { .. } = next_of(&mut events, id).await {
                break;
            }
        }
        clients.push((client, events, id));
    }
    assert_eq!(server.handle.transfers().free_ports(), 0);
    let (third, mut third_events) = Client::connect(&server.addr, "c", &server.trust())
        .await
        .unwrap();
    let third_id = third
        .download("q.bin", opts(&dest.path().join("c")))
        .await
        .unwrap();
    assert_eq!(
        next_of(&mut third_events, third_id).await,
        TransferState::Queued { position: 0 }
    );
    // Finishing one frees a port for the third.
    let (first, first_events, first_id) = &mut clients[0];
    first.resume(*first_id).unwrap();
    assert_done(first_events, *first_id, &hash, size).await;
    assert_done(&mut third_events, third_id, &hash, size).await;
    let (second, second_events, second_id) = &mut clients[1];
    second.resume(*second_id).unwrap();
    assert_done(second_events, *second_id, &hash, size).await;
    wait_until("2 free port(s)", || {
        server.handle.transfers().free_ports() == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_client_returns_its_port_and_resumes_later() {
    let server = start(1).await;
    let size = 16 * 1024 * 1024;
    let hash = make_file(server.files.path(), "r.bin", size);
    let dest = tempfile::tempdir().unwrap();
    {
        let (client, mut events) = Client::connect(&server.addr, "leaver", &server.trust())
            .await
            .unwrap();
        let o = DownloadOptions {
            pause_at: Some(40.0),
            ..opts(dest.path())
        };
        let id = client.download("r.bin", o).await.unwrap();
        loop {
            if let TransferState::Paused { .. } = next_of(&mut events, id).await {
                break;
            }
        }
        assert_eq!(server.handle.transfers().free_ports(), 0);
        client.quit().await.unwrap();
    }
    wait_until("1 free port(s)", || {
        server.handle.transfers().free_ports() == 1
    })
    .await;
    assert!(
        dest.path().join("r.bin.part").exists(),
        "the partial data is kept"
    );

    let (client, mut events) = Client::connect(&server.addr, "leaver", &server.trust())
        .await
        .unwrap();
    let id = client.download("r.bin", opts(dest.path())).await.unwrap();
    match next_of(&mut events, id).await {
        TransferState::Started { offset, .. } => {
            assert!(offset >= size * 2 / 5, "resumed at {offset}")
        }
        other => panic!("{other:?}"),
    }
    assert_done(&mut events, id, &hash, size).await;
    assert!(!dest.path().join("r.bin.part").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_resumes_after_the_server_restarts() {
    let server = start(1).await;
    let size = 16 * 1024 * 1024;
    let hash = make_file(server.files.path(), "s.bin", size);
    let dest = tempfile::tempdir().unwrap();
    let (client, mut events) = Client::connect(&server.addr, "loyal", &server.trust())
        .await
        .unwrap();
    let o = DownloadOptions {
        pause_at: Some(30.0),
        ..opts(dest.path())
    };
    let id = client.download("s.bin", o).await.unwrap();
    loop {
        if let TransferState::Paused { .. } = next_of(&mut events, id).await {
            break;
        }
    }
    let TestServer { handle, files, .. } = server;
    handle.stop().await;
    let server = serve(files, 1).await;
    let (client, mut events) = Client::connect(&server.addr, "loyal", &server.trust())
        .await
        .unwrap();
    let id = client.download("s.bin", opts(dest.path())).await.unwrap();
    match next_of(&mut events, id).await {
        TransferState::Started { offset, .. } => {
            assert!(offset >= size * 3 / 10, "resumed at {offset}")
        }
        other => panic!("{other:?}"),
    }
    assert_done(&mut events, id, &hash, size).await;
}

#[tokio::test]
async fn names_outside_the_shared_folder_are_no_such_file() {
    let server = start(1).await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"x").unwrap();
    std::fs::write(server.files.path().join(".hidden"), b"x").unwrap();
    std::fs::create_dir(server.files.path().join("sub")).unwrap();
    std::fs::write(server.files.path().join("sub").join("inner"), b"x").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret"),
        server.files.path().join("link"),
    )
    .unwrap();
    let (client, _events) = Client::connect(&server.addr, "sneaky", &server.trust())
        .await
        .unwrap();
    let secret = outside.path().join("secret");
    for name in [
        "../secret",
        secret.to_str().unwrap(),
        "/etc/passwd",
        ".hidden",
        "sub",
        "sub/inner",
        "link",
        "",
        "nothing",
        "..",
        ".",
    ] {
        let err = client
            .download(name, opts(outside.path()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NoSuchFile), "{name:?}: {err}");
    }
    assert_eq!(server.handle.transfers().free_ports(), 1);
}

#[tokio::test]
async fn cancel_frees_the_port_and_removes_the_part_file() {
    let server = start(1).await;
    make_file(server.files.path(), "c.bin", 8 * 1024 * 1024);
    let dest = tempfile::tempdir().unwrap();
    let (client, mut events) = Client::connect(&server.addr, "quitter", &server.trust())
        .await
        .unwrap();
    let o = DownloadOptions {
        pause_at: Some(10.0),
        ..opts(dest.path())
    };
    let id = client.download("c.bin", o).await.unwrap();
    loop {
        if let TransferState::Paused { .. } = next_of(&mut events, id).await {
            break;
        }
    }
    client.cancel(id).await.unwrap();
    assert_eq!(outcome(&mut events, id).await, TransferState::Cancelled);
    wait_until("1 free port(s)", || {
        server.handle.transfers().free_ports() == 1
    })
    .await;
    assert!(!dest.path().join("c.bin.part").exists());
    let err = client.cancel(999).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NoSuchTransfer));
}

#[tokio::test]
async fn over_the_queue_limit_requests_are_busy() {
    let files = tempfile::tempdir().unwrap();
    make_file(files.path(), "b.bin", 4 * 1024 * 1024);
    let mut config = Config::local(files.path(), 1);
    config.max_queued = 1;
    let handle = Server::bind(config).await.unwrap().spawn().unwrap();
    let addr = handle.addr().to_string();
    let dest = tempfile::tempdir().unwrap();
    let trust = client::Trust::pinned(handle.fingerprint());
    let (client, mut events) = Client::connect(&addr, "greedy", &trust).await.unwrap();
    let hold = DownloadOptions {
        pause_at: Some(5.0),
        ..opts(dest.path())
    };
    let first = client.download("b.bin", hold).await.unwrap();
    loop {
        if let TransferState::Paused { .. } = next_of(&mut events, first).await {
            break;
        }
    }
    let (other, _e) = Client::connect(&addr, "other", &trust).await.unwrap();
    other
        .download("b.bin", opts(&dest.path().join("o")))
        .await
        .unwrap(); // queued
    let err = other
        .download("b.bin", opts(&dest.path().join("p")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Busy));
}

#[tokio::test]
async fn a_second_download_into_the_same_file_is_refused_while_the_first_runs() {
    let server = start(2).await;
    make_file(server.files.path(), "d.bin", 4 * 1024 * 1024);
    let dest = tempfile::tempdir().unwrap();
    let (client, mut events) = Client::connect(&server.addr, "twice", &server.trust())
        .await
        .unwrap();
    let hold = DownloadOptions {
        pause_at: Some(10.0),
        ..opts(dest.path())
    };
    let id = client.download("d.bin", hold).await.unwrap();
    loop {
        if let TransferState::Paused { .. } = next_of(&mut events, id).await {
            break;
        }
    }
    let err = client
        .download("d.bin", opts(dest.path()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, client::ClientError::AlreadyDownloading(_)),
        "{err}"
    );
    // Into another folder it is fine.
    let other = tempfile::tempdir().unwrap();
    client.download("d.bin", opts(other.path())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_transfer_fails_before_disconnected_when_the_server_goes() {
    let server = start(1).await;
    make_file(server.files.path(), "q.bin", 4 * 1024 * 1024);
    let dest = tempfile::tempdir().unwrap();
    // One paused download holds the only port, so the next request queues.
    let (holder, mut holder_events) = Client::connect(&server.addr, "holder", &server.trust())
        .await
        .unwrap();
    let o = DownloadOptions {
        pause_at: Some(1.0),
        ..opts(&dest.path().join("holder"))
    };
    let held = holder.download("q.bin", o).await.unwrap();
    while !matches!(
        next_of(&mut holder_events, held).await,
        TransferState::Paused { .. }
    ) {}
    let (waiter, mut events) = Client::connect(&server.addr, "waiter", &server.trust())
        .await
        .unwrap();
    let id = waiter
        .download("q.bin", opts(&dest.path().join("waiter")))
        .await
        .unwrap();
    assert_eq!(
        next_of(&mut events, id).await,
        TransferState::Queued { position: 0 }
    );
    server.handle.stop().await;
    // Its end comes before the connection's, and the list agrees.
    let mut failed = false;
    loop {
        let event = tokio::time::timeout(std::time::Duration::from_secs(20), events.recv())
            .await
            .expect("no event")
            .expect("events ended without Disconnected");
        match event {
            Event::Transfer(t) if t.id == id => {
                assert!(
                    matches!(t.state, TransferState::Failed { .. }),
                    "{:?}",
                    t.state
                );
                failed = true;
            }
            Event::Disconnected { .. } => break,
            _ => {}
        }
    }
    assert!(failed, "the queued transfer never ended");
    assert_eq!(waiter.transfers()[0].state, "failed");
}
