//! The tokio driver over real UDP sockets on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use transport::driver::{self, Control};
use transport::{Config, Event, Keys, Secret, Suite};

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7919) as u8).collect()
}

/// Serves `len` bytes of [`data`] to whoever knows `secret`, on a fresh port of 127.0.0.1.
async fn serve_data(
    len: usize,
    secret: Secret,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<driver::Outcome>,
) {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let served = tokio::spawn(async move {
        driver::serve(
            &server,
            &secret,
            data(len),
            Config::default(),
            std::future::pending(),
        )
        .await
    });
    (addr, served)
}

async fn transfer(len: usize, offset: u64, config: Config) -> (Vec<u8>, Event) {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    driver::tune_socket(&server);
    let addr = server.local_addr().unwrap();
    let source = data(len);
    let secret = Secret([7u8; 32]);
    let cfg = config.clone();
    let served_secret = secret.clone();
    let served = tokio::spawn(async move {
        driver::serve(&server, &served_secret, source, cfg, std::future::pending()).await
    });
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    driver::tune_socket(&client);
    let (_tx, control) = watch::channel(Control::Run);
    let sink = vec![0u8; offset as usize];
    let (outcome, sink) = tokio::time::timeout(
        Duration::from_secs(30),
        driver::fetch(
            &client,
            driver::FetchOptions {
                server: addr,
                secret,
                offset,
                pause_at: None,
                config,
            },
            sink,
            control,
            None,
        ),
    )
    .await
    .expect("transfer timed out");
    let served = served.await.unwrap();
    assert!(matches!(served.event, Event::Finished { .. }), "{served:?}");
    (sink, outcome.event)
}

#[tokio::test]
async fn a_few_megabytes_arrive_exactly_over_loopback() {
    let len = 5_000_003;
    let (got, event) = transfer(len, 0, Config::default()).await;
    let expected = data(len);
    assert_eq!(
        event,
        Event::Finished {
            total: len as u64,
            last_byte: expected.last().copied()
        }
    );
    assert!(got == expected, "bytes differ");
}

#[tokio::test]
async fn small_datagrams_and_resume_from_an_offset() {
    let len = 300_000;
    let config = Config {
        max_datagram: 1200,
        ..Config::default()
    };
    let (got, event) = transfer(len, 100_000, config).await;
    assert!(matches!(event, Event::Finished { total: 300_000, .. }));
    assert_eq!(&got[100_000..], &data(len)[100_000..]);
}

#[tokio::test]
async fn a_receiver_that_asks_for_chacha20_gets_every_packet_in_it() {
    // A CPU without AES instructions: the receiver names ChaCha20-Poly1305 in its HELLO, and
    // the sender protects every later packet with it.
    let len = 2_000_000;
    let config = Config {
        suite: Suite::ChaCha20Poly1305,
        ..Config::default()
    };
    let (got, event) = transfer(len, 0, config).await;
    assert!(matches!(
        event,
        Event::Finished {
            total: 2_000_000,
            ..
        }
    ));
    assert!(got == data(len), "bytes differ");
}

#[tokio::test]
async fn an_empty_stream_finishes() {
    let (got, event) = transfer(0, 0, Config::default()).await;
    assert_eq!(
        event,
        Event::Finished {
            total: 0,
            last_byte: None
        }
    );
    assert!(got.is_empty());
}

#[tokio::test]
async fn a_fetch_pauses_at_its_pause_point_and_resumes_on_request() {
    let len = 2_000_000;
    let secret = Secret([3u8; 32]);
    let (addr, served) = serve_data(len, secret.clone()).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (control_tx, control) = watch::channel(Control::Run);
    let (progress_tx, mut progress) = tokio::sync::mpsc::channel(16);
    let opts = driver::FetchOptions {
        server: addr,
        secret,
        offset: 0,
        pause_at: Some(1_000_000),
        config: Config::default(),
    };
    let fetch = tokio::spawn(async move {
        let (outcome, sink) =
            driver::fetch(&client, opts, Vec::new(), control, Some(progress_tx)).await;
        (outcome, sink)
    });
    // Wait for the report that says the pause point was reached; nothing beyond it arrives.
    loop {
        let report = tokio::time::timeout(Duration::from_secs(10), progress.recv())
            .await
            .unwrap()
            .unwrap();
        if report.reached_pause_point {
            assert_eq!(report.contiguous, 1_000_000);
            assert!(report.paused, "{report:?}");
            break;
        }
    }
    // It stays paused while the application says Run: for 300 ms every report that comes (a
    // resume is always reported, never dropped) says paused, at the pause point.
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(300);
    loop {
        match tokio::time::timeout_at(quiet_until, progress.recv()).await {
            Err(_quiet) => break,
            Ok(Some(report)) => assert!(
                report.paused && report.contiguous == 1_000_000,
                "moved while paused: {report:?}"
            ),
            Ok(None) => panic!("the fetch ended while it should hold at its pause point"),
        }
    }
    // A Pause then Run resumes it, and the resume is reported: the quiet above was the fetch
    // holding still, not reports going missing.
    control_tx.send(Control::Pause).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    control_tx.send(Control::Run).unwrap();
    loop {
        let report = tokio::time::timeout(Duration::from_secs(10), progress.recv())
            .await
            .unwrap();
        match report {
            Some(report) if !report.paused => break,
            Some(_) => {}
            None => panic!("the fetch ended without reporting its resume"),
        }
    }
    let (outcome, sink) = tokio::time::timeout(Duration::from_secs(30), fetch)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            outcome.event,
            Event::Finished {
                total: 2_000_000,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert!(sink == data(len), "bytes differ");
    assert!(matches!(
        served.await.unwrap().event,
        Event::Finished { .. }
    ));
}

#[tokio::test]
async fn every_pause_and_resume_is_reported_before_the_fetch_ends() {
    let len = 20_000_000;
    let secret = Secret([5u8; 32]);
    let (addr, _served) = serve_data(len, secret.clone()).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (control_tx, control) = watch::channel(Control::Pause);
    // A one-slot channel read slowly: ordinary reports are dropped, state changes never.
    let (progress_tx, mut progress) = tokio::sync::mpsc::channel(1);
    let opts = driver::FetchOptions {
        server: addr,
        secret,
        offset: 0,
        pause_at: None,
        config: Config::default(),
    };
    let fetch = tokio::spawn(async move {
        driver::fetch(&client, opts, Vec::new(), control, Some(progress_tx))
            .await
            .0
    });
    let first = tokio::time::timeout(Duration::from_secs(10), progress.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(first.paused, "a fetch started paused says so");
    assert_eq!(first.bytes, 0);
    // A slow reader: reports that come while it sleeps find the slot full.
    let reader = tokio::spawn(async move {
        let mut states = vec![first.paused];
        while let Some(report) = progress.recv().await {
            if states.last() != Some(&report.paused) {
                states.push(report.paused);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        states
    });
    control_tx.send(Control::Run).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    control_tx.send(Control::Pause).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    control_tx.send(Control::Run).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(30), fetch)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(outcome.event, Event::Finished { .. }),
        "{outcome:?}"
    );
    let states = reader.await.unwrap();
    assert_eq!(
        states,
        [true, false, true, false],
        "every change is reported, in order, by the time the fetch returns"
    );
}

#[tokio::test]
async fn cancelling_a_fetch_aborts_both_ends() {
    let secret = Secret([4u8; 32]);
    let (addr, served) = serve_data(50_000_000, secret.clone()).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (control_tx, control) = watch::channel(Control::Run);
    let opts = driver::FetchOptions {
        server: addr,
        secret,
        offset: 0,
        pause_at: Some(10_000_000),
        config: Config::default(),
    };
    let fetch =
        tokio::spawn(async move { driver::fetch(&client, opts, Vec::new(), control, None).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    control_tx.send(Control::Cancel).unwrap();
    let (outcome, _) = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        outcome.event,
        Event::Aborted {
            reason: transport::AbortReason::Cancelled,
            by_peer: false
        }
    );
    let served = tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        served.event,
        Event::Aborted {
            reason: transport::AbortReason::Cancelled,
            by_peer: true
        }
    );
}

#[tokio::test]
async fn a_hello_with_another_secret_gets_no_answer() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let config = Config {
        idle_timeout: Duration::from_secs(1),
        ..Config::default()
    };
    let cfg = config.clone();
    let served = tokio::spawn(async move {
        driver::serve(
            &server,
            &Secret([1u8; 32]),
            data(10),
            cfg,
            std::future::pending(),
        )
        .await
    });
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (_tx, control) = watch::channel(Control::Run);
    let opts = driver::FetchOptions {
        server: addr,
        secret: Secret([2u8; 32]),
        offset: 0,
        pause_at: None,
        config,
    };
    let (outcome, _) = driver::fetch(&client, opts, Vec::new(), control, None).await;
    assert_eq!(
        outcome.event,
        Event::Aborted {
            reason: transport::AbortReason::IdleTimeout,
            by_peer: false
        }
    );
    assert_eq!(
        outcome.stats.packets_received, 0,
        "the server answered a HELLO sealed with another secret"
    );
    assert!(matches!(served.await.unwrap().event, Event::Aborted { .. }));
}

/// What arrives at `socket` within `wait`, datagram by datagram.
async fn heard_within(socket: &UdpSocket, wait: Duration) -> Vec<Vec<u8>> {
    let mut heard = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok(Ok(n)) = tokio::time::timeout(wait, socket.recv(&mut buf)).await {
        heard.push(buf[..n].to_vec());
    }
    heard
}

#[tokio::test]
async fn a_forged_address_with_the_secret_gets_one_hello_ack_and_nothing_else() {
    use transport::packet::{self, Frame, Packet};
    let secret = Secret([6u8; 32]);
    let (addr, served) = serve_data(100_000, secret.clone()).await;
    // The "victim": whoever's address the attacker writes on its packets.
    let victim = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    victim.connect(addr).await.unwrap();
    let send = |pn: u64, frame: Frame<'static>| {
        let mut buf = vec![0u8; 256];
        let n = packet::encode(
            &Packet {
                conn_id: 11,
                pn,
                frame,
            },
            &mut buf,
        )
        .unwrap();
        let n = Keys::for_receiver(&secret, Suite::Aes256Gcm)
            .seal(&mut buf, n)
            .unwrap();
        buf.truncate(n);
        buf
    };
    let hello = |max_datagram| Frame::Hello {
        suite: Suite::Aes256Gcm.code(),
        offset: 0,
        max_offset: 1 << 30,
        max_datagram,
    };
    // A HELLO that asks for datagrams smaller than any we send: no answer at all.
    for (pn, size) in [(0, 0), (1, 1199)] {
        victim.send(&send(pn, hello(size))).await.unwrap();
    }
    let heard = heard_within(&victim, Duration::from_millis(150)).await;
    assert!(
        heard.is_empty(),
        "a HELLO with a tiny max_datagram was answered: {heard:?}"
    );
    // A well-formed HELLO: its answer is one HELLO_ACK, smaller than it.
    let first = send(2, hello(1200));
    victim.send(&first).await.unwrap();
    let mut sent_bytes = first.len();
    for pn in 3..23 {
        let probe = send(
            pn,
            if pn % 2 == 0 {
                Frame::Ping
            } else {
                Frame::Done
            },
        );
        sent_bytes += probe.len();
        victim.send(&probe).await.unwrap();
    }
    let heard = heard_within(&victim, Duration::from_millis(150)).await;
    let opened: Vec<Vec<u8>> = heard
        .iter()
        .map(|d| {
            let mut d = d.clone();
            let n = Keys::for_receiver(&secret, Suite::Aes256Gcm)
                .open(&mut d)
                .unwrap();
            d.truncate(n);
            d
        })
        .collect();
    let kinds: Vec<Frame<'_>> = opened
        .iter()
        .map(|d| packet::decode(d).unwrap().frame)
        .collect();
    assert_eq!(kinds.len(), 1, "more than the HELLO_ACK: {kinds:?}");
    assert!(matches!(kinds[0], Frame::HelloAck { total: 100_000, .. }));
    let got_bytes: usize = heard.iter().map(Vec::len).sum();
    assert!(
        got_bytes < first.len(),
        "{got_bytes} bytes for {sent_bytes}"
    );
    served.abort();
}

/// A forged packet of type `kind` on the connection and at the packet number of `real` (a
/// datagram seen on the path), sealed with keys of another secret, as an attacker without the
/// secret must.
fn forged(real: &[u8], kind: u8, body: &[u8], towards_receiver: bool) -> Vec<u8> {
    let other = Secret([0xee; 32]);
    let mut buf = real[..18].to_vec();
    buf[1] = kind;
    buf.extend_from_slice(body);
    let n = buf.len();
    buf.resize(n + transport::TAG_LEN, 0);
    if towards_receiver {
        let mut keys = Keys::for_sender(&other);
        keys.set_suite(Config::default().suite);
        keys.seal(&mut buf, n).unwrap();
    } else {
        Keys::for_receiver(&other, Config::default().suite)
            .seal(&mut buf, n)
            .unwrap();
    }
    buf
}

/// Fetches the `len` bytes of [`data`] that `served` serves, through `via`, and checks that
/// both ends finished and the stream is exact; returns both ends' outcomes.
async fn fetch_exactly(
    via: std::net::SocketAddr,
    secret: Secret,
    len: usize,
    config: Config,
    served: tokio::task::JoinHandle<driver::Outcome>,
) -> (driver::Outcome, driver::Outcome) {
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (_tx, control) = watch::channel(Control::Run);
    let opts = driver::FetchOptions {
        server: via,
        secret,
        offset: 0,
        pause_at: None,
        config,
    };
    let (outcome, sink) = tokio::time::timeout(
        Duration::from_secs(60),
        driver::fetch(&client, opts, Vec::new(), control, None),
    )
    .await
    .expect("the transfer stalled");
    assert!(
        matches!(outcome.event, Event::Finished { total, .. } if total == len as u64),
        "{outcome:?}"
    );
    assert!(sink == data(len), "bytes differ");
    let served = served.await.unwrap();
    assert!(matches!(served.event, Event::Finished { .. }), "{served:?}");
    (outcome, served)
}

#[tokio::test]
async fn replayed_modified_truncated_and_forged_datagrams_are_dropped_and_the_stream_is_exact() {
    // A relay on the path passes every datagram on, then replays it, sends a copy with one bit
    // flipped, one cut short, and a forged ABORT, DONE or CLOSE in its connection: none may
    // end, stall or corrupt the transfer.
    let len = 3_000_000;
    let secret = Secret([9u8; 32]);
    let (server, served) = serve_data(len, secret.clone()).await;
    let relay = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let relayed = tokio::spawn(async move {
        let mut client = None;
        let mut buf = vec![0u8; 65_536];
        let mut seen = 0usize;
        loop {
            let Ok((n, from)) = relay.recv_from(&mut buf).await else {
                return seen;
            };
            let to_receiver = from == server;
            let to = if to_receiver {
                match client {
                    Some(client) => client,
                    None => continue,
                }
            } else {
                client = Some(from);
                server
            };
            seen += 1;
            let real = buf[..n].to_vec();
            let mut flipped = real.clone();
            flipped[(seen * 7919) % n] ^= 1 << (seen % 8);
            let cut = &real[..n - 1 - seen % (n - 1).min(40)];
            let (kind, body): (u8, &[u8]) = match seen % 3 {
                0 => (7, &[0, 1]), // ABORT, cancelled
                1 => (5, &[]),     // DONE
                _ => (6, &[0; 9]), // CLOSE
            };
            let fake = forged(&real, kind, body, to_receiver);
            for d in [&real[..], &real[..], &flipped[..], cut, &fake[..]] {
                let _ = relay.send_to(d, to).await;
            }
        }
    });
    let config = Config {
        max_datagram: transport::SAFE_DATAGRAM,
        ..Config::default()
    };
    let (outcome, served) = fetch_exactly(relay_addr, secret, len, config, served).await;
    relayed.abort();
    // Every copy but the first was refused, on both ends.
    let (ours, theirs) = (outcome.stats, served.stats);
    eprintln!(
        "receiver: {} opened, {} refused; sender: {} opened, {} refused",
        ours.packets_received,
        ours.packets_rejected,
        theirs.packets_received,
        theirs.packets_rejected
    );
    // (Loopback may drop a few copies when the relay outruns a socket buffer.)
    assert!(
        ours.packets_rejected >= 3 * ours.packets_received,
        "the receiver refused {} of {} extra datagrams",
        ours.packets_rejected,
        4 * ours.packets_received
    );
    assert!(
        theirs.packets_rejected >= 3 * theirs.packets_received,
        "{theirs:?}"
    );
}

#[tokio::test]
async fn a_hello_raced_in_from_elsewhere_neither_gets_the_data_nor_keeps_the_port() {
    // Someone on the path copies the receiver's first HELLO and gets it to the server first,
    // from its own address. It opens (it is authentic), so the server answers there with its
    // HELLO_ACK; but the copier cannot ack that without the keys, the receiver's next HELLO
    // wins the path back, and the copier hears nothing else.
    let len = 1_000_000;
    let secret = Secret([8u8; 32]);
    let (server, served) = serve_data(len, secret.clone()).await;
    let relay = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let thief = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let copier = std::sync::Arc::clone(&thief);
    let relayed = tokio::spawn(async move {
        let mut client = None;
        let mut buf = vec![0u8; 65_536];
        loop {
            let Ok((n, from)) = relay.recv_from(&mut buf).await else {
                return;
            };
            if from == server {
                if let Some(client) = client {
                    let _ = relay.send_to(&buf[..n], client).await;
                }
                continue;
            }
            if client.is_none() {
                // The first HELLO: the thief's copy goes first.
                copier.send_to(&buf[..n], server).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            client = Some(from);
            let _ = relay.send_to(&buf[..n], server).await;
        }
    });
    fetch_exactly(relay_addr, secret, len, Config::default(), served).await;
    relayed.abort();
    let heard = heard_within(&thief, Duration::from_millis(50)).await;
    assert!(
        !heard.is_empty() && heard.iter().all(|d| d.len() <= 53),
        "the copier heard {:?} (byte counts)",
        heard.iter().map(Vec::len).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_copy_of_the_receivers_ack_from_another_address_proves_nothing() {
    // Someone on the path copies the receiver's ACK of the HELLO_ACK (the packet that proves
    // its address) and gets it to the server first, from a victim's address. Were it heard,
    // it would prove the victim's address and have the data streamed there.
    let len = 1_000_000;
    let secret = Secret([10u8; 32]);
    let (server, served) = serve_data(len, secret.clone()).await;
    let relay = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let victim = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let copier = std::sync::Arc::clone(&victim);
    let relayed = tokio::spawn(async move {
        let mut client = None;
        let mut copied = false;
        let mut buf = vec![0u8; 65_536];
        loop {
            let Ok((n, from)) = relay.recv_from(&mut buf).await else {
                return;
            };
            if from == server {
                if let Some(client) = client {
                    let _ = relay.send_to(&buf[..n], client).await;
                }
                continue;
            }
            client = Some(from);
            // The type is in the clear header: 4 is an ACK.
            if !copied && buf[1] == 4 {
                copied = true;
                copier.send_to(&buf[..n], server).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = relay.send_to(&buf[..n], server).await;
        }
    });
    fetch_exactly(relay_addr, secret, len, Config::default(), served).await;
    relayed.abort();
    let heard = heard_within(&victim, Duration::from_millis(50)).await;
    assert!(
        heard.is_empty(),
        "the victim was sent {} datagrams ({} bytes)",
        heard.len(),
        heard.iter().map(Vec::len).sum::<usize>()
    );
}

/// A source or sink whose every call waits for a go from the test's own async task, on a
/// runtime with a single thread: if the driver called it on that thread, the task could
/// never run, and the call gives up after a few seconds with an error.
struct Gated<T> {
    inner: T,
    go: std::sync::mpsc::Receiver<()>,
    calls: usize,
}

impl<T> Gated<T> {
    fn wait(&mut self) -> std::io::Result<()> {
        self.calls += 1;
        self.go
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| std::io::Error::other("called on the driver's thread: no go came"))
    }
}

impl transport::Source for Gated<Vec<u8>> {
    fn len(&self) -> u64 {
        self.inner.len() as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.wait()?;
        self.inner.read_at(offset, buf)
    }
}

impl transport::Sink for Gated<Vec<u8>> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.wait()?;
        self.inner.write_at(offset, data)
    }
}

/// Sends a go every millisecond from a task of the test's runtime, until the end.
fn gate() -> (std::sync::mpsc::Receiver<()>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let opener = tokio::spawn(async move {
        while tx.send(()).is_ok() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    (rx, opener)
}

#[tokio::test(flavor = "current_thread")]
async fn the_stream_is_read_and_written_off_the_drivers_thread() {
    let len = 3 * transport::READ_BLOCK + 12_345;
    let (read_go, read_opener) = gate();
    let (write_go, write_opener) = gate();
    let source = Gated {
        inner: data(len),
        go: read_go,
        calls: 0,
    };
    let sink = Gated {
        inner: Vec::new(),
        go: write_go,
        calls: 0,
    };
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let secret = Secret([5u8; 32]);
    let served_secret = secret.clone();
    let served = tokio::spawn(async move {
        let cancel = std::future::pending();
        driver::serve(&server, &served_secret, source, Config::default(), cancel).await
    });
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (_tx, control) = watch::channel(Control::Run);
    let opts = driver::FetchOptions {
        server: addr,
        secret,
        offset: 0,
        pause_at: None,
        config: Config::default(),
    };
    let fetched = driver::fetch(&client, opts, sink, control, None);
    let (outcome, sink) = tokio::time::timeout(Duration::from_secs(60), fetched)
        .await
        .expect("the fetch timed out");
    assert!(
        matches!(outcome.event, Event::Finished { .. }),
        "{:?}",
        outcome.event
    );
    assert!(matches!(
        served.await.unwrap().event,
        Event::Finished { .. }
    ));
    assert!(sink.calls > 0);
    assert!(sink.inner == data(len), "the stream differs");
    read_opener.abort();
    write_opener.abort();
}

/// A sink that fails once it holds `limit` bytes, as a full disk does.
struct FillsUp {
    written: u64,
    limit: u64,
}

impl transport::Sink for FillsUp {
    fn write_at(&mut self, _offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.written += data.len() as u64;
        if self.written > self.limit {
            return Err(std::io::Error::other("no space left"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_sink_that_fails_ends_the_fetch_at_once_and_tells_the_sender() {
    let len = 200 * 1024 * 1024;
    let (addr, served) = serve_data(len, Secret([6u8; 32])).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (_tx, control) = watch::channel(Control::Run);
    let opts = driver::FetchOptions {
        server: addr,
        secret: Secret([6u8; 32]),
        offset: 0,
        pause_at: None,
        config: Config::default(),
    };
    let sink = FillsUp {
        written: 0,
        limit: 4 * 1024 * 1024,
    };
    let fetched = driver::fetch(&client, opts, sink, control, None);
    let (outcome, sink) = tokio::time::timeout(Duration::from_secs(30), fetched)
        .await
        .expect("the fetch went on");
    assert_eq!(
        outcome.event,
        Event::Aborted {
            reason: transport::AbortReason::SinkFailed,
            by_peer: false
        }
    );
    // The flow stopped soon after, not at the end of the stream.
    assert!(sink.written > sink.limit);
    let received = outcome.stats.bytes_received;
    assert!(received < len as u64 / 2, "{received} bytes received");
    let served = served.await.unwrap();
    assert!(
        matches!(
            served.event,
            Event::Aborted {
                reason: transport::AbortReason::SinkFailed,
                by_peer: true
            }
        ),
        "{served:?}"
    );
}
