//! A sniffer on the path: relays in the middle record every byte of the control channel (TCP)
//! and of a download (UDP), both ways, and none of the chat texts, the file's bytes, the
//! transfer's secret or any protocol message is in them.

use client::{DownloadOptions, Event, TransferState};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Every byte that crossed a relay, both ways.
type Tape = Arc<Mutex<Vec<u8>>>;

/// The sniffer's side of the path: 127.0.0.2. A client that connects there sends its UDP to
/// 127.0.0.2 too (a transfer's port is on the server's TCP address), so both go through it.
const SNIFFER_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 2);

/// Copies `from` to `to`, recording what passes.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    tape: Tape,
) {
    let mut buf = vec![0u8; 65_536];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tape.lock().unwrap().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A TCP relay on 127.0.0.2 to `upstream`, for any number of connections.
async fn tcp_relay(upstream: SocketAddr, tape: Tape) -> SocketAddr {
    let listener = TcpListener::bind((SNIFFER_IP, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(upstream).await.unwrap();
            let (client_rd, client_wr) = client.into_split();
            let (server_rd, server_wr) = server.into_split();
            tokio::spawn(pipe(client_rd, server_wr, Arc::clone(&tape)));
            tokio::spawn(pipe(server_rd, client_wr, Arc::clone(&tape)));
        }
    });
    addr
}

/// A UDP relay from 127.0.0.2:`port` to 127.0.0.1:`port`, for one client.
async fn udp_relay(port: u16, tape: Tape) {
    let front = UdpSocket::bind((SNIFFER_IP, port)).await.unwrap();
    let back = UdpSocket::bind((SNIFFER_IP, 0)).await.unwrap();
    back.connect(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        let mut client = None;
        let (mut up, mut down) = (vec![0u8; 65_536], vec![0u8; 65_536]);
        loop {
            tokio::select! {
                Ok((n, from)) = front.recv_from(&mut up) => {
                    client = Some(from);
                    tape.lock().unwrap().extend_from_slice(&up[..n]);
                    let _ = back.send(&up[..n]).await;
                }
                Ok(n) = back.recv(&mut down) => {
                    tape.lock().unwrap().extend_from_slice(&down[..n]);
                    if let Some(client) = client {
                        let _ = front.send_to(&down[..n], client).await;
                    }
                }
            }
        }
    });
}

/// True if `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sniffer_on_the_path_finds_no_plaintext_in_any_byte() {
    // A free UDP port for the server's one-port pool, and the same port on the sniffer's side.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server =
        crate::common::start_with(|c| c.udp_ports = server::UdpPorts::Range(port..=port)).await;
    // A file whose every 40 bytes say what it is.
    let line = |i: usize| format!("the shared file, line {i:09} of many...\n");
    let content: String = (0..50_000).map(line).collect();
    std::fs::write(server.files.path().join("report.txt"), &content).unwrap();

    let (tcp_tape, udp_tape): (Tape, Tape) = (Tape::default(), Tape::default());
    let front = tcp_relay(server.addr.parse().unwrap(), Arc::clone(&tcp_tape)).await;
    udp_relay(port, Arc::clone(&udp_tape)).await;
    let front = front.to_string();
    let trust = server.trust();
    let (alice, _alice_events) = client::Client::connect(&front, "alice", &trust)
        .await
        .unwrap();
    let (bob, mut bob_events) = client::Client::connect(&front, "bob", &trust)
        .await
        .unwrap();

    let private = "the vault code is 4711-xyzzy";
    let public = "lunch at the plugh cafe at noon";
    alice.send_private("bob", private).await.unwrap();
    alice.send_all(public).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let id = bob
        .download(
            "report.txt",
            DownloadOptions {
                dir: dir.path().to_owned(),
                ..DownloadOptions::default()
            },
        )
        .await
        .unwrap();
    let mut heard = Vec::new();
    let path = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match bob_events.recv().await.expect("bob's connection ended") {
                Event::Message { text, .. } => heard.push(text),
                Event::Transfer(t) if t.id == id => match t.state {
                    TransferState::Done { path, .. } => break path,
                    TransferState::Failed { error } => panic!("download failed: {error}"),
                    _ => {}
                },
                _ => {}
            }
        }
    })
    .await
    .expect("the download took too long");
    // Bob got everything, through the sniffer's relays.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
    while heard.len() < 2 {
        match tokio::time::timeout(crate::common::WAIT, bob_events.recv()).await {
            Ok(Some(Event::Message { text, .. })) => heard.push(text),
            Ok(Some(_)) => {}
            other => panic!("bob missed a message: {other:?} ({heard:?})"),
        }
    }
    assert!(heard.iter().any(|t| t == private) && heard.iter().any(|t| t == public));
    alice.quit().await.unwrap();
    bob.quit().await.unwrap();

    let tcp = tcp_tape.lock().unwrap().clone();
    let udp = udp_tape.lock().unwrap().clone();
    assert!(
        udp.len() as u64 > content.len() as u64,
        "the download went around the sniffer ({} UDP bytes)",
        udp.len()
    );
    for (what, tape) in [("TCP", &tcp), ("UDP", &udp)] {
        for secret in [private, public, "4711-xyzzy", "plugh"] {
            assert!(
                !contains(tape, secret.as_bytes()),
                "{what} shows {secret:?}"
            );
        }
        // Any 24 bytes of the file would give it away: look for several lines' cores.
        for i in [0, 1, 777, 25_000, 49_999] {
            let core = &line(i)[4..28];
            assert!(
                !contains(tape, core.as_bytes()),
                "{what} shows the file ({core:?})"
            );
        }
        assert!(!contains(tape, b"the shared file"), "{what} shows the file");
        // No protocol message in clear: names, message types, the transfer's secret field.
        for word in [
            "alice",
            "\"type\"",
            "download_ready",
            "\"secret\"",
            "report.txt",
        ] {
            assert!(!contains(tape, word.as_bytes()), "{what} shows {word:?}");
        }
    }
}
