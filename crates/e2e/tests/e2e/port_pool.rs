//! Attacks on the pool of UDP ports: holding every port, filling the queue, and pausing for
//! ever. An honest download gets a port all the same.

use crate::common::{TestServer, TlsStream, WAIT, start_with, tls_connect};
use bytes::BytesMut;
use client::{DownloadOptions, Event, TransferEvent, TransferState};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;
use wire::{ClientMsg, FrameCodec, ServerMsg};

/// A hand-made client connected from `source` (another loopback address than the honest
/// client's 127.0.0.1).
struct Attacker {
    stream: TlsStream,
    buf: BytesMut,
}

impl Attacker {
    async fn join(server: &TestServer, source: &str, name: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let tcp = socket.connect(server.addr.parse().unwrap()).await.unwrap();
        let stream = tls_connect(tcp).await.unwrap();
        let mut me = Self {
            stream,
            buf: BytesMut::new(),
        };
        me.send(&ClientMsg::hello(1, name)).await;
        assert!(matches!(me.recv().await, ServerMsg::Welcome { .. }));
        me
    }

    async fn send(&mut self, msg: &ClientMsg) {
        self.stream.write_all(&msg.to_frame()).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    async fn recv(&mut self) -> ServerMsg {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(frame) = FrameCodec::default().decode(&mut self.buf).unwrap() {
                    return ServerMsg::decode(&frame).unwrap();
                }
                assert!(self.stream.read_buf(&mut self.buf).await.unwrap() > 0);
            }
        })
        .await
        .expect("the server said nothing")
    }

    /// Asks for `file` `n` times and returns the answers (never opening a flow: a port stays
    /// held until the transport's 30 s idle timeout).
    async fn hoard(&mut self, file: &str, n: u64) -> Vec<ServerMsg> {
        let mut answers = Vec::new();
        for req in 0..n {
            self.send(&ClientMsg::Download {
                file: file.into(),
                req: Some(req),
            })
            .await;
            loop {
                match self.recv().await {
                    ServerMsg::Joined { .. } | ServerMsg::Left { .. } => {}
                    msg => break answers.push(msg),
                }
            }
        }
        answers
    }
}

fn count(answers: &[ServerMsg], pred: impl Fn(&ServerMsg) -> bool) -> usize {
    answers.iter().filter(|m| pred(m)).count()
}

/// The first state of transfer `id` other than preparing, and then how it ended.
async fn first_and_last(events: &mut client::Events, id: u64) -> (TransferState, TransferState) {
    let mut first = None;
    loop {
        let event = tokio::time::timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("the download stalled")
            .expect("the connection ended");
        let Event::Transfer(TransferEvent { id: got, state, .. }) = event else {
            continue;
        };
        if got != id || state == TransferState::Preparing {
            continue;
        }
        let first = first.get_or_insert_with(|| state.clone()).clone();
        if matches!(
            state,
            TransferState::Done { .. } | TransferState::Failed { .. } | TransferState::Cancelled
        ) {
            return (first, state);
        }
    }
}

#[tokio::test]
async fn one_address_hoarding_ports_and_queue_leaves_an_honest_download_a_port() {
    let server = start_with(|c| {
        c.udp_ports = server::UdpPorts::Ephemeral(4);
        c.max_ports_per_address = 2;
        c.max_queued = 8;
        c.max_queued_per_address = 4;
    })
    .await;
    let (data, hash) = crate::common::content(1 << 20);
    std::fs::write(server.files.path().join("f.bin"), &data).unwrap();
    // Two connections from one address ask for far more than their share.
    let mut answers = Vec::new();
    for name in ["hoard1", "hoard2"] {
        let mut attacker = Attacker::join(&server, "127.0.0.2", name).await;
        answers.extend(attacker.hoard("f.bin", 5).await);
        std::mem::forget(attacker); // stays connected for the rest of the test
    }
    let ready = count(&answers, |m| matches!(m, ServerMsg::DownloadReady { .. }));
    let queued = count(&answers, |m| matches!(m, ServerMsg::DownloadQueued { .. }));
    let busy = count(&answers, |m| matches!(m, ServerMsg::Error { .. }));
    assert_eq!((ready, queued, busy), (2, 4, 4), "{answers:?}");
    assert_eq!(server.handle.transfers().free_ports(), 2);

    let (honest, mut events) = crate::common::join(&server, "honest").await;
    let dest = tempfile::tempdir().unwrap();
    let opts = DownloadOptions {
        dir: dest.path().to_path_buf(),
        ..DownloadOptions::default()
    };
    let id = honest.download("f.bin", opts).await.unwrap();
    let (first, last) = first_and_last(&mut events, id).await;
    assert!(
        matches!(first, TransferState::Started { .. }),
        "the honest download waited: {first:?}"
    );
    let TransferState::Done { hash: got, .. } = last else {
        panic!("the honest download ended as {last:?}");
    };
    assert_eq!(got.to_hex(), hash);
}

#[tokio::test]
async fn a_transfer_paused_too_long_gives_its_port_back_and_resumes_where_it_was() {
    let server = start_with(|c| {
        c.udp_ports = server::UdpPorts::Ephemeral(1);
        c.max_pause = Duration::from_millis(500);
    })
    .await;
    let (data, hash) = crate::common::content(8 << 20);
    std::fs::write(server.files.path().join("f.bin"), &data).unwrap();
    let (client, mut events) = crate::common::join(&server, "pauser").await;
    let dest = tempfile::tempdir().unwrap();
    let opts = DownloadOptions {
        dir: dest.path().to_path_buf(),
        pause_at: Some(25.0),
        ..DownloadOptions::default()
    };
    let id = client.download("f.bin", opts).await.unwrap();
    // Paused at 25 % and left so: the server takes the port back...
    loop {
        let state = next_state(&mut events, id).await;
        if matches!(state, TransferState::Paused { .. }) {
            break;
        }
        assert!(
            matches!(
                state,
                TransferState::Started { .. } | TransferState::Progress { .. }
            ),
            "{state:?}"
        );
    }
    crate::common::wait_until("the port is back", || {
        server.handle.transfers().free_ports() == 1
    })
    .await;
    // ...while the user still sees it paused, under the same id.
    let listed = client.transfers();
    assert_eq!((listed[0].id, listed[0].state.as_str()), (id, "paused"));
    // Continuing asks again and goes on from what is on disk.
    client.resume(id).unwrap();
    let (first, last) = first_and_last(&mut events, id).await;
    let TransferState::Started { offset, .. } = first else {
        panic!("the continued transfer began as {first:?}");
    };
    assert!(
        offset >= (data.len() / 4) as u64 - (1 << 20),
        "resumed at {offset}"
    );
    let TransferState::Done { hash: got, .. } = last else {
        panic!("the resumed download ended as {last:?}");
    };
    assert_eq!(got.to_hex(), hash);
    assert_eq!(client.transfers()[0].state, "done");
}

/// The next state of transfer `id`.
async fn next_state(events: &mut client::Events, id: u64) -> TransferState {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("the download stalled")
            .expect("the connection ended");
        if let Event::Transfer(TransferEvent { id: got, state, .. }) = event
            && got == id
        {
            return state;
        }
    }
}
