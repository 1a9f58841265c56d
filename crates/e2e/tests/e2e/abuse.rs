//! Hostile peers: garbage, broken framing, floods, slowloris crowds and sprayed datagrams. Each
//! test proves that the offender gets an error or is disconnected while everybody else keeps
//! chatting and downloading, with the bytes of every download intact.

use crate::common::process::{open_fds, rss};
use crate::common::{
    RawClient, ServerProcess, TestServer, WAIT, content, is_bad_request, join, join_many, next,
    spawn_server, start_with, wait_for, wait_until,
};
use client::{
    Client, DownloadOptions, ErrorCode, Event, Events, TransferEvent, TransferState, Trust,
};
use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use transport::packet::{self, Frame, Packet};
use wire::{ClientMsg, FrameCodec, ServerMsg};

/// Size of the file bystanders download while an attack runs.
const BYSTANDER_FILE: usize = 32 * 1024 * 1024;

/// Every transfer event of `id` until it ends, skipping everything else; returns how it ended.
/// A download that takes a minute has stalled, whatever else happens meanwhile.
async fn transfer_outcome(events: &mut Events, id: u64) -> TransferState {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = None;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("the download stalled; last heard: {last:?}"))
            .expect("event stream ended");
        match event {
            Event::Transfer(TransferEvent { id: got, state, .. }) if got == id => match state {
                TransferState::Done { .. }
                | TransferState::Failed { .. }
                | TransferState::Cancelled => return state,
                other => last = Some(other),
            },
            Event::Disconnected { message, .. } => panic!("disconnected: {message}"),
            _ => {}
        }
    }
}

/// Asserts that a download ended complete, with exactly `expected` on disk.
fn assert_intact(state: &TransferState, expected: &str) {
    let TransferState::Done { path, hash, .. } = state else {
        panic!("the download ended as {state:?}");
    };
    assert_eq!(hash, expected);
    let on_disk = std::fs::read(path).unwrap();
    assert_eq!(blake3::hash(&on_disk).to_hex().as_str(), expected);
}

fn opts(dir: &Path, pause_at: Option<f64>) -> DownloadOptions {
    DownloadOptions {
        dir: dir.to_path_buf(),
        pause_at,
        ..DownloadOptions::default()
    }
}

/// Two users chatting and a third downloading, for an attack to try to disturb.
struct Bystanders {
    server: TestServer,
    talkers: Vec<(Client, Events)>,
    downloader: Client,
    downloads: Events,
    id: u64,
    hash: String,
    _dest: tempfile::TempDir,
}

impl Bystanders {
    /// A server, two talkers, and a download of a 32 MiB file waiting paused at 5 %.
    async fn start() -> Self {
        let server = start_with(|c| c.hello_timeout = Duration::from_secs(2)).await;
        let (data, hash) = content(BYSTANDER_FILE);
        std::fs::write(server.files.path().join("big.bin"), data).unwrap();
        let talkers = join_many(&server, "talker", 2).await;
        let (downloader, mut downloads) = join(&server, "downloader").await;
        let dest = tempfile::tempdir().unwrap();
        let id = downloader
            .download("big.bin", opts(dest.path(), Some(5.0)))
            .await
            .unwrap();
        wait_for(&mut downloads, |e| {
            matches!(e, Event::Transfer(TransferEvent { id: got, state: TransferState::Paused { .. }, .. }) if *got == id)
        })
        .await;
        Self {
            server,
            talkers,
            downloader,
            downloads,
            id,
            hash,
            _dest: dest,
        }
    }

    /// Runs `attack` (given the server's address and a round number) over and over, from
    /// before the download resumes until after it is done, while the talkers chat. Then
    /// proves that the download is intact, that the chat never stopped, that every port came
    /// back and that a newcomer still gets in. Returns how many messages from others than the
    /// talkers the talkers received, and how many attacks ran.
    async fn survive<F, Fut>(self, attack: F) -> (usize, u64)
    where
        F: Fn(String, u64) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let Self {
            server,
            mut talkers,
            downloader,
            mut downloads,
            id,
            hash,
            _dest,
        } = self;
        let stop = CancellationToken::new();
        let (first_round, first_done) = tokio::sync::oneshot::channel();
        let attacker = tokio::spawn({
            let (addr, stop) = (server.addr.clone(), stop.clone());
            async move {
                let mut first_round = Some(first_round);
                let mut round = 0;
                while !stop.is_cancelled() {
                    attack(addr.clone(), round).await;
                    round += 1;
                    if let Some(tx) = first_round.take() {
                        let _ = tx.send(());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                round
            }
        });
        tokio::time::timeout(WAIT, first_done)
            .await
            .expect("the first attack did not end")
            .expect("the attack panicked");

        downloader.resume(id).unwrap();
        let done = AtomicBool::new(false);
        let download = async {
            let state = transfer_outcome(&mut downloads, id).await;
            done.store(true, Ordering::Release);
            state
        };
        let chat = async {
            let mut foreign = 0;
            let mut round = 0;
            while round < 5 || !done.load(Ordering::Acquire) {
                for (from, to) in [(0, 1), (1, 0)] {
                    let text = format!("ping {round} from {from}");
                    talkers[from].0.send_all(text.clone()).await.unwrap();
                    // Within a few seconds, however many other events come meanwhile.
                    let heard = tokio::time::timeout(WAIT, async {
                        loop {
                            match talkers[to].1.recv().await.expect("events ended") {
                                Event::Message { text: got, .. } if got == text => break,
                                Event::Message { from, .. } if !from.starts_with("talker") => {
                                    foreign += 1;
                                }
                                Event::Disconnected { message, .. } => {
                                    panic!("a talker was disconnected: {message}")
                                }
                                _ => {}
                            }
                        }
                    })
                    .await;
                    assert!(heard.is_ok(), "{text:?} never arrived");
                }
                round += 1;
                // Well within the rate limit (50 a second), which is not what is tested here.
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            foreign
        };
        let (state, foreign) = tokio::join!(download, chat);
        stop.cancel();
        let rounds = attacker.await.expect("the attack panicked");
        assert!(rounds >= 2, "the attack ran {rounds} times only");
        assert_intact(&state, &hash);

        wait_until("every port is back", || {
            server.handle.transfers().free_ports() == 2
        })
        .await;
        let (_newcomer, _events) = join(&server, "newcomer").await;
        (foreign, rounds)
    }
}

/// Every message until the server closes the connection, which it must do within `WAIT`.
async fn closed_with(raw: &mut RawClient) -> Vec<ServerMsg> {
    raw.until_closed(WAIT).await
}

/// The next message that is not a notice or a chat message (those come to any joined user).
async fn reply(raw: &mut RawClient) -> Option<ServerMsg> {
    loop {
        match raw.recv().await {
            Some(ServerMsg::Joined { .. } | ServerMsg::Left { .. } | ServerMsg::Message { .. }) => {
            }
            other => return other,
        }
    }
}

/// A raw client that has joined as `name`.
async fn joined(addr: &str, name: &str) -> RawClient {
    let mut raw = RawClient::connect(addr).await;
    raw.hello(name).await;
    let welcome = reply(&mut raw).await;
    assert!(
        matches!(welcome, Some(ServerMsg::Welcome { .. })),
        "{welcome:?}"
    );
    raw
}

/// A connection that has not sent its hello in even rounds, and one joined as NAME+round in
/// odd ones: each attack is tried on both.
async fn before_or_after_hello(addr: &str, name: &str, round: u64) -> RawClient {
    if round.is_multiple_of(2) {
        RawClient::connect(addr).await
    } else {
        joined(addr, &format!("{name}{round}")).await
    }
}

/// Random bytes, before or after the hello, then the end of the stream: the server answers
/// `bad_request` for what it can frame and closes the connection.
async fn random_bytes(addr: String, round: u64) {
    let mut rng = StdRng::seed_from_u64(round);
    let mut raw = before_or_after_hello(&addr, "noise", round).await;
    let mut junk = vec![0u8; rng.random_range(1..16_384)];
    rng.fill(&mut junk[..]);
    // The server may close (and reset) before it has read everything: that is its right.
    let _ = raw.stream.write_all(&junk).await;
    let _ = raw.stream.shutdown().await;
    for msg in closed_with(&mut raw).await {
        assert!(
            is_bad_request(&msg)
                || matches!(
                    msg,
                    ServerMsg::Bye { .. }
                        | ServerMsg::Joined { .. }
                        | ServerMsg::Left { .. }
                        | ServerMsg::Message { .. }
                ),
            "round {round}: {msg:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_close_only_their_connection_while_others_chat_and_download() {
    let (foreign, _) = Bystanders::start().await.survive(random_bytes).await;
    assert_eq!(foreign, 0, "noise became chat");
}

/// A frame cut short, then the end of the stream: the connection closes, and nothing of the
/// half frame reaches anyone.
async fn truncated_frame(addr: String, round: u64) {
    let msg = ClientMsg::SendAll {
        text: format!("half a message {round}"),
        req: None,
    }
    .to_frame();
    let mut raw = before_or_after_hello(&addr, "cut", round).await;
    raw.send_bytes(&msg[..msg.len() / 2]).await;
    raw.stream.shutdown().await.unwrap();
    for msg in closed_with(&mut raw).await {
        assert!(
            is_bad_request(&msg)
                || matches!(
                    msg,
                    ServerMsg::Joined { .. } | ServerMsg::Left { .. } | ServerMsg::Message { .. }
                ),
            "round {round}: {msg:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frames_close_only_their_connection_while_others_chat_and_download() {
    let (foreign, _) = Bystanders::start().await.survive(truncated_frame).await;
    assert_eq!(foreign, 0, "half a frame became chat");
}

/// A header announcing 4 GiB, before or after the hello: `bad_request` naming the length,
/// then the connection closes (with the next four bytes never read as a frame).
async fn four_gib_header(addr: String, round: u64) {
    let mut raw = before_or_after_hello(&addr, "huge", round).await;
    let mut bytes = vec![0xff; 4];
    bytes.extend_from_slice(&ClientMsg::Ping.to_frame());
    raw.send_bytes(&bytes).await;
    let msgs = closed_with(&mut raw).await;
    assert!(
        msgs.iter().any(|m| matches!(m, ServerMsg::Error { code: ErrorCode::BadRequest, message, .. } if message.contains("4294967295"))),
        "round {round}: {msgs:?}"
    );
    assert!(
        !msgs.iter().any(|m| matches!(m, ServerMsg::Pong)),
        "a frame was read after a broken length: {msgs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_gib_frame_headers_close_only_their_connection_while_others_chat_and_download() {
    let (foreign, _) = Bystanders::start().await.survive(four_gib_header).await;
    assert_eq!(foreign, 0);
}

/// Invalid UTF-8 in every place a string goes, raw and escaped: each is `bad_request`, the
/// connection stays usable, and nothing is relayed.
async fn invalid_utf8(addr: String, round: u64) {
    let mut raw = RawClient::connect(&addr).await;
    raw.send_payload(b"{\"type\":\"hello\",\"version\":1,\"name\":\"b\xff\xfed\"}")
        .await;
    let refused = reply(&mut raw).await.unwrap();
    assert!(is_bad_request(&refused), "{refused:?}");
    raw.hello(&format!("utf8x{round}")).await;
    let welcome = reply(&mut raw).await;
    assert!(
        matches!(welcome, Some(ServerMsg::Welcome { .. })),
        "a refused hello may be retried: {welcome:?}"
    );
    let payloads: [&[u8]; 5] = [
        b"{\"type\":\"send_all\",\"text\":\"caf\xc3\"}",
        b"{\"type\":\"send_all\",\"text\":\"\\ud800 lone surrogate\"}",
        b"{\"type\":\"send_private\",\"to\":\"talker0\",\"text\":\"\xed\xa0\x80\"}",
        b"{\"type\":\"send_private\",\"to\":\"talker\xc0\xb0\",\"text\":\"overlong\"}",
        b"\xc0\xaf\xe0\x80\xaf",
    ];
    for payload in payloads {
        raw.send_payload(payload).await;
        let answer = reply(&mut raw).await.unwrap();
        assert!(is_bad_request(&answer), "{payload:?}: {answer:?}");
    }
    raw.send(&ClientMsg::ListUsers { req: Some(7) }).await;
    let users = reply(&mut raw).await;
    assert!(
        matches!(users, Some(ServerMsg::Users { req: Some(7), .. })),
        "{users:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_a_bad_request_and_others_chat_and_download_undisturbed() {
    let (foreign, _) = Bystanders::start().await.survive(invalid_utf8).await;
    assert_eq!(foreign, 0, "invalid text was relayed");
}

/// A thousand requests in one write (chat to all, private chat, lists, downloads), then a
/// quit: past its burst the sender hears `rate_limited` (or, if it falls behind, is dropped
/// as a slow consumer), and it never gets more than its share of transfers.
async fn thousand_commands(addr: String, round: u64) {
    let mut raw = joined(&addr, &format!("spam{round}")).await;
    let mut packet = Vec::new();
    for i in 0..1000u64 {
        let req = Some(i);
        let msg = match i % 10 {
            0 => ClientMsg::ListUsers { req },
            1 => ClientMsg::Download {
                file: "big.bin".into(),
                req,
            },
            2 => ClientMsg::SendPrivate {
                to: "talker1".into(),
                text: format!("spam {i}"),
                req,
            },
            3 => ClientMsg::ListFiles {
                req,
                after: None,
                limit: None,
            },
            _ => ClientMsg::SendAll {
                text: format!("spam {i}"),
                req,
            },
        };
        packet.extend_from_slice(&msg.to_frame());
    }
    packet.extend_from_slice(&ClientMsg::Quit.to_frame());
    raw.send_bytes(&packet).await;
    let (mut limited, mut admitted, mut bye) = (0, std::collections::HashSet::new(), None);
    for msg in raw.until_closed(Duration::from_secs(30)).await {
        match msg {
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                ..
            } => limited += 1,
            // A queued transfer is offered again when a port frees: one id, one transfer.
            ServerMsg::DownloadReady { id, .. } | ServerMsg::DownloadQueued { id, .. } => {
                admitted.insert(id);
            }
            ServerMsg::Bye { reason, .. } => bye = Some(reason),
            _ => {}
        }
    }
    let bye = bye.map(|r| r.to_string()).unwrap_or_default();
    assert!(
        limited >= 500 || bye == "slow_consumer",
        "round {round}: {limited} rate_limited, bye {bye:?}"
    );
    assert!(
        admitted.len() <= 8,
        "{} transfers for one client",
        admitted.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_commands_in_one_packet_are_rate_limited_and_others_chat_and_download() {
    let (foreign, rounds) = Bystanders::start().await.survive(thousand_commands).await;
    // Each round's burst (200 requests, a few more as tokens come back) may reach the two
    // talkers; the other 800 may not.
    let allowed = rounds as usize * 2 * 250;
    assert!(
        foreign <= allowed,
        "{foreign} spam messages reached the talkers in {rounds} rounds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sustained_flood_is_held_to_the_rate_and_does_not_delay_others() {
    let (rate, burst) = (20.0, 10);
    let server = start_with(|c| {
        c.rate_limit = rate;
        c.rate_burst = burst;
    })
    .await;
    let mut pair = join_many(&server, "calm", 2).await;
    let flooder = joined(&server.addr, "flooder").await;
    // The flooder writes as fast as it can, reading its errors so that it is not dropped as
    // a slow consumer: the flood lasts as long as the test.
    let stop = CancellationToken::new();
    let flood = tokio::spawn({
        let stop = stop.clone();
        async move {
            let frames: Vec<u8> = (0..50)
                .flat_map(|i| {
                    ClientMsg::SendAll {
                        text: format!("flood {i}"),
                        req: None,
                    }
                    .to_frame()
                })
                .collect();
            let (mut rd, mut wr) = tokio::io::split(flooder.stream);
            let reader = tokio::spawn(async move {
                let mut sink = vec![0u8; 1 << 16];
                while rd.read(&mut sink).await.unwrap_or(0) > 0 {}
            });
            let mut sent = 0u64;
            while !stop.is_cancelled() {
                wr.write_all(&frames).await.unwrap();
                sent += 50;
                // Some 50 000 messages a second: a flood still, but one whose refusals its
                // reader (which shares the TLS connection, and these two cores, with the
                // writer) keeps up with, so it is not dropped as a slow consumer.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert!(!reader.is_finished(), "the flooder was dropped");
            sent
        }
    });
    let started = tokio::time::Instant::now();
    let mut floods = 0;
    let mut worst = Duration::ZERO;
    for i in 0..30 {
        let sent_at = tokio::time::Instant::now();
        pair[0].0.send_all(format!("calm {i}")).await.unwrap();
        loop {
            match next(&mut pair[1].1).await {
                Event::Message { from, text, .. } if from == "calm0" => {
                    assert_eq!(text, format!("calm {i}"));
                    break;
                }
                Event::Message { .. } => floods += 1,
                Event::Joined { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        worst = worst.max(sent_at.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let sent = flood.await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(sent >= 1000, "the flood was only {sent} messages");
    // Its burst and then its rate, and not one more, reached the others.
    let allowed = f64::from(burst) + rate * (elapsed + 1.0);
    eprintln!(
        "flood: {sent} sent, {floods} relayed in {elapsed:.1} s; slowest calm message {worst:?}"
    );
    assert!(
        f64::from(floods) <= allowed,
        "{floods} of {sent} flood messages got through in {elapsed:.1} s (at most {allowed:.0})"
    );
    assert!(
        worst < Duration::from_secs(2),
        "a calm message took {worst:?} during the flood"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_crowd_is_timed_out_in_bounded_memory_while_users_still_join_and_chat() {
    let files = tempfile::tempdir().unwrap();
    let ServerProcess {
        mut child,
        addr,
        key,
        data: _data,
    } = spawn_server(
        files.path(),
        &[
            "--hello-timeout",
            "2",
            "--idle-timeout",
            "4",
            "--max-pending",
            "1000",
        ],
    );
    let pid = child.id();
    let (rss_before, fds_before) = (rss(pid), open_fds(pid));

    // A hundred that never speak, a hundred that dribble a hello a byte at a time (never
    // finishing it in time), a hundred that join and then neither read nor write.
    let hello = ClientMsg::hello(1, "dribbler").to_frame();
    let mut silent = Vec::new();
    let mut dribblers = Vec::new();
    let mut mutes = Vec::new();
    for i in 0..100 {
        silent.push(RawClient::connect(&addr).await);
        let mut dribbler = RawClient::connect(&addr).await;
        let hello = hello.clone();
        dribblers.push(tokio::spawn(async move {
            for byte in hello.iter() {
                if dribbler.stream.write_all(&[*byte]).await.is_err() {
                    break; // dropped: what the test waits for
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            dribbler
        }));
        let mut mute = RawClient::connect(&addr).await;
        mute.hello(&format!("mute{i}")).await;
        mutes.push(mute);
    }
    let rss_crowd = rss(pid);

    // Real users get in and chat all the while (often enough for the idle timeout).
    let trust = Trust::pinned(key);
    let (alice, mut alice_events) = Client::connect(&addr, "alice", &trust).await.unwrap();
    let (bob, mut bob_events) = Client::connect(&addr, "bob", &trust).await.unwrap();
    let mut mutes_left = 0;
    let mut i = 0;
    while mutes_left < 100 {
        alice.send_all(format!("hi {i}")).await.unwrap();
        let wanted = format!("hi {i}");
        wait_for(
            &mut bob_events,
            |e| matches!(e, Event::Message { text, .. } if *text == wanted),
        )
        .await;
        bob.send_private("alice", "still here").await.unwrap();
        loop {
            match next(&mut alice_events).await {
                Event::Message { text, .. } if text == "still here" => break,
                Event::Left { name, reason, .. } if name.starts_with("mute") => {
                    assert_eq!(reason, "timeout", "{name}");
                    mutes_left += 1;
                }
                Event::Left { name, .. } if name == "bob" => panic!("bob was dropped"),
                _ => {}
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every crowd connection was closed by the server.
    for mut raw in silent {
        let msgs = raw.until_closed(WAIT).await;
        assert!(
            matches!(msgs.as_slice(), [ServerMsg::Bye { reason, .. }] if reason == "timeout"),
            "{msgs:?}"
        );
    }
    for dribbler in dribblers {
        let mut raw = tokio::time::timeout(WAIT, dribbler)
            .await
            .expect("a dribbler was never dropped")
            .unwrap();
        raw.until_closed(WAIT).await;
    }
    for mut raw in mutes {
        let msgs = raw.until_closed(WAIT).await;
        assert!(
            matches!(msgs.last(), Some(ServerMsg::Bye { reason, .. }) if reason == "timeout"),
            "{:?}",
            msgs.last()
        );
    }
    eprintln!(
        "slowloris: server RSS {} KiB before, {} KiB with 300 connections; {fds_before} fds",
        rss_before >> 10,
        rss_crowd >> 10
    );
    wait_until("the server closed every crowd socket", || {
        open_fds(pid) <= fds_before + 2
    })
    .await;
    // A few kilobytes a connection, not megabytes: 300 of them stay well under 64 MiB.
    assert!(
        rss_crowd < rss_before + 64 * 1024 * 1024,
        "{} MiB before the crowd, {} MiB with it",
        rss_before >> 20,
        rss_crowd >> 20
    );
    child.kill().unwrap();
    let _ = child.wait();
}

/// What went through a [`relay`], kept for replaying: the client's UDP address and some
/// datagrams of each direction (the first ones, with the handshake, and some later).
struct Captured {
    client: Option<SocketAddr>,
    to_server: Vec<Vec<u8>>,
    to_client: Vec<Vec<u8>>,
    seen: u64,
    rng: StdRng,
}

impl Default for Captured {
    fn default() -> Self {
        Self {
            client: None,
            to_server: Vec::new(),
            to_client: Vec::new(),
            seen: 0,
            rng: StdRng::seed_from_u64(7),
        }
    }
}

impl Captured {
    /// Records a datagram going one way (`to_server` or not); every eighth time, returns an
    /// older one of the same way to replay.
    fn record(&mut self, to_server: bool, datagram: &[u8]) -> Option<Vec<u8>> {
        self.seen += 1;
        let seen = self.seen;
        let list = if to_server {
            &mut self.to_server
        } else {
            &mut self.to_client
        };
        if list.len() < 16 || (seen.is_multiple_of(64) && list.len() < 256) {
            list.push(datagram.to_vec());
        }
        let pick = self.rng.random_range(0..list.len());
        seen.is_multiple_of(8).then(|| list[pick].clone())
    }
}

/// A UDP relay between a client and the server's port `server`, returning the port the client
/// should use. It keeps datagrams of both directions in `captured` and, every eighth one,
/// also replays an older one from its own (legitimate) address.
async fn relay(server: SocketAddr, captured: Arc<Mutex<Captured>>) -> u16 {
    let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    transport::driver::tune_socket(&front);
    transport::driver::tune_socket(&back);
    let port = front.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut up, mut down) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
        loop {
            tokio::select! {
                Ok((n, from)) = front.recv_from(&mut up) => {
                    let replay = {
                        let mut cap = captured.lock().unwrap();
                        cap.client = Some(from);
                        cap.record(true, &up[..n])
                    };
                    for datagram in std::iter::once(&up[..n]).chain(replay.as_deref()) {
                        let _ = back.send_to(datagram, server).await;
                    }
                }
                Ok((n, from)) = back.recv_from(&mut down) => {
                    let (client, replay) = {
                        let mut cap = captured.lock().unwrap();
                        (cap.client, cap.record(false, &down[..n]))
                    };
                    let Some(client) = client.filter(|_| from == server) else {
                        continue;
                    };
                    for datagram in std::iter::once(&down[..n]).chain(replay.as_deref()) {
                        let _ = front.send_to(datagram, client).await;
                    }
                }
            }
        }
    });
    port
}

/// A proxy in front of the server for one client, which sends that client's downloads through
/// a [`relay`] (by rewriting the port of each offer). It ends TLS on each side, with an identity
/// of its own that the client is told to trust. Returns its address and that key.
async fn proxy(server: String, captured: Arc<Mutex<Captured>>) -> (String, wire::Fingerprint) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (acceptor, key) = crate::common::tls_acceptor();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let client = acceptor.accept(client).await.unwrap();
        let upstream = crate::common::tls_connect(TcpStream::connect(&server).await.unwrap())
            .await
            .unwrap();
        let (mut client_rd, mut client_wr) = tokio::io::split(client);
        let (upstream_rd, mut upstream_wr) = tokio::io::split(upstream);
        tokio::spawn(async move { tokio::io::copy(&mut client_rd, &mut upstream_wr).await });
        let mut frames = FramedRead::new(upstream_rd, FrameCodec::default());
        while let Some(Ok(payload)) = frames.next().await {
            let frame = match ServerMsg::decode(&payload) {
                Ok(ServerMsg::DownloadReady {
                    req,
                    id,
                    file,
                    size,
                    hash,
                    secret,
                    port,
                }) => {
                    let to = SocketAddr::from(([127, 0, 0, 1], port));
                    let port = relay(to, Arc::clone(&captured)).await;
                    ServerMsg::DownloadReady {
                        req,
                        id,
                        file,
                        size,
                        hash,
                        secret,
                        port,
                    }
                    .to_frame()
                }
                _ => wire::encode_frame(&payload),
            };
            if client_wr.write_all(&frame).await.is_err() || client_wr.flush().await.is_err() {
                break;
            }
        }
    });
    (addr, key)
}

/// Forged packets for the connections seen in `real`: aborts, dones, closes, acks of
/// everything, hellos and data, in clear with a random tag (an attacker on the path does not
/// have the transfer's secret).
fn forgeries(real: &[Vec<u8>], rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for datagram in real.iter().take(4) {
        // The header is in clear: connection id and packet number.
        let (Some(conn_id), Some(pn)) = (datagram.get(2..10), datagram.get(10..18)) else {
            continue;
        };
        let conn_id = u64::from_be_bytes(conn_id.try_into().unwrap());
        let pn = u64::from_be_bytes(pn.try_into().unwrap());
        let frames = [
            Frame::Abort { reason: 1 },
            Frame::Done,
            Frame::Close {
                total: 1,
                last_byte: Some(0),
            },
            Frame::Ack {
                ack_delay_us: 0,
                max_offset: u64::MAX,
                ranges: vec![(0, pn + 1_000_000)],
            },
            Frame::Hello {
                suite: 1,
                offset: 0,
                max_offset: u64::MAX,
                max_datagram: 65_507,
            },
            Frame::Data {
                offset: 0,
                payload: b"forged bytes",
            },
        ];
        for frame in frames {
            let mut buf = vec![0u8; 2048];
            let packet = Packet {
                conn_id,
                pn: pn + rng.random_range(0..1000),
                frame,
            };
            let n = packet::encode(&packet, &mut buf).unwrap();
            buf.truncate(n);
            buf.extend((0..transport::TAG_LEN).map(|_| rng.random::<u8>()));
            out.push(buf);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sprayed_and_replayed_datagrams_neither_corrupt_nor_stall_downloads_nor_get_answers() {
    let server = start_with(|_| {}).await;
    let (a_data, a_hash) = content(40 * 1024 * 1024);
    let (b_data, b_hash) = content(24 * 1024 * 1024 + 5);
    std::fs::write(server.files.path().join("a.bin"), a_data).unwrap();
    std::fs::write(server.files.path().join("b.bin"), b_data).unwrap();
    let dest = tempfile::tempdir().unwrap();

    // One client through a relay that records its datagrams (and replays some itself), one
    // straight to the server. Both pause early, holding the whole pool of two ports.
    let captured = Arc::new(Mutex::new(Captured::default()));
    let (proxied, proxy_key) = proxy(server.addr.clone(), Arc::clone(&captured)).await;
    let (relayed, mut relayed_events) = Client::connect(&proxied, "relayed", &proxy_key.into())
        .await
        .unwrap();
    let (direct, mut direct_events) = join(&server, "direct").await;
    let a = relayed
        .download("a.bin", opts(&dest.path().join("a"), Some(10.0)))
        .await
        .unwrap();
    let b = direct
        .download("b.bin", opts(&dest.path().join("b"), Some(10.0)))
        .await
        .unwrap();
    for (events, id) in [(&mut relayed_events, a), (&mut direct_events, b)] {
        wait_for(events, |e| {
            matches!(e, Event::Transfer(TransferEvent { id: got, state: TransferState::Paused { .. }, .. }) if *got == id)
        })
        .await;
    }
    let ports: Vec<u16> = server
        .handle
        .transfers()
        .list()
        .iter()
        .filter_map(|t| t.port)
        .collect();
    assert_eq!(ports.len(), server.handle.transfers().pool_size());

    let sprayer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let stop = CancellationToken::new();
    let sprayed = Arc::new(AtomicU64::new(0));
    let spray = tokio::spawn({
        let (stop, captured, sprayed) = (stop.clone(), Arc::clone(&captured), Arc::clone(&sprayed));
        async move {
            let mut rng = StdRng::seed_from_u64(42);
            let mut replies = Vec::new();
            let mut buf = vec![0u8; 1 << 16];
            while !stop.is_cancelled() {
                let (client, to_server, to_client) = {
                    let cap = captured.lock().unwrap();
                    (cap.client, cap.to_server.clone(), cap.to_client.clone())
                };
                let mut for_server: Vec<Vec<u8>> = to_server.clone();
                let mut for_client: Vec<Vec<u8>> = to_client.clone();
                for_server.extend(forgeries(&to_server, &mut rng));
                for_client.extend(forgeries(&to_client, &mut rng));
                for _ in 0..8 {
                    let len = if rng.random_range(0..8) == 0 {
                        65_507
                    } else {
                        rng.random_range(0..1500)
                    };
                    let mut junk = vec![0u8; len];
                    rng.fill(&mut junk[..]);
                    for_server.push(junk.clone());
                    for_client.push(junk);
                }
                for port in &ports {
                    for d in &for_server {
                        let _ = sprayer
                            .send_to(d, SocketAddr::from(([127, 0, 0, 1], *port)))
                            .await;
                    }
                }
                if let Some(client) = client {
                    for d in &for_client {
                        let _ = sprayer.send_to(d, client).await;
                    }
                }
                let sent = (for_server.len() * ports.len() + for_client.len()) as u64;
                sprayed.fetch_add(sent, Ordering::Relaxed);
                while let Ok((n, from)) = sprayer.try_recv_from(&mut buf) {
                    replies.push((n, from));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            replies
        }
    });

    // While the transfers wait paused (the flows kept alive) and then while they run.
    wait_until("a spray of 5000 datagrams", || {
        sprayed.load(Ordering::Relaxed) >= 5000
    })
    .await;
    relayed.resume(a).unwrap();
    direct.resume(b).unwrap();
    let (a_state, b_state) = tokio::join!(
        transfer_outcome(&mut relayed_events, a),
        transfer_outcome(&mut direct_events, b)
    );
    stop.cancel();
    let replies = spray.await.unwrap();
    let sent = sprayed.load(Ordering::Relaxed);
    eprintln!(
        "spray: {sent} datagrams at {} ports and a client, {} replies",
        server.handle.transfers().pool_size(),
        replies.len()
    );
    assert_intact(&a_state, &a_hash);
    assert_intact(&b_state, &b_hash);
    assert!(
        captured.lock().unwrap().to_server.len() >= 4,
        "too few real datagrams to replay"
    );
    assert!(
        replies.len() <= 4 && replies.iter().all(|(n, _)| *n <= 64),
        "the spoofed address got answers: {replies:?}"
    );
    wait_until("both ports are back", || {
        server.handle.transfers().free_ports() == 2
    })
    .await;
}
