//! The seed corpus, spelled out: real frames, real packets and short scenarios for each
//! target. `cargo run -p fuzzing --example write_corpus` writes them to `fuzz/corpus/`, and a
//! test checks that the files there still match.

use crate::Recipe;
use crate::net::CONN_ID;
use crate::sealed::{SECRET, receiver_keys, seal, sender_keys};
use transport::Suite;
use transport::packet::{self, Frame, Packet};
use wire::{ClientMsg, ErrorCode, FileEntry, PROTOCOL_VERSION, ServerMsg, encode_frame};

type Seeds = Vec<(&'static str, Vec<u8>)>;

fn hello(name: &str) -> ClientMsg {
    ClientMsg::Hello {
        version: PROTOCOL_VERSION,
        name: name.into(),
    }
}

fn client_msgs() -> Vec<(&'static str, ClientMsg)> {
    vec![
        ("hello", hello("alice")),
        (
            "send_all",
            ClientMsg::SendAll {
                text: "hi \"all\" \u{e9}\u{1f600}".into(),
                req: None,
            },
        ),
        (
            "send_private",
            ClientMsg::SendPrivate {
                to: "bob".into(),
                text: "psst".into(),
                req: Some(7),
            },
        ),
        ("list_users", ClientMsg::ListUsers { req: Some(1) }),
        (
            "list_files",
            ClientMsg::ListFiles {
                req: None,
                after: None,
                limit: None,
            },
        ),
        (
            "download",
            ClientMsg::Download {
                file: "hello.txt".into(),
                req: Some(u64::MAX),
            },
        ),
        (
            "cancel",
            ClientMsg::Cancel {
                id: 3,
                req: Some(0),
            },
        ),
        ("ping", ClientMsg::Ping),
        ("quit", ClientMsg::Quit),
    ]
}

fn server_msgs() -> Vec<(&'static str, ServerMsg)> {
    vec![
        (
            "welcome",
            ServerMsg::Welcome {
                version: PROTOCOL_VERSION,
                name: "alice".into(),
                users: vec!["alice".into(), "bob".into()],
                server: "messenger-server 0.1.0".into(),
            },
        ),
        (
            "joined",
            ServerMsg::Joined {
                name: "bob".into(),
                time: 1_700_000_000_000,
            },
        ),
        (
            "left",
            ServerMsg::Left {
                name: "bob".into(),
                time: 1_700_000_000_000,
                reason: wire::CloseReason::SlowConsumer,
            },
        ),
        (
            "message",
            ServerMsg::Message {
                from: "bob".into(),
                text: "line\nbreak \u{2028}".into(),
                private: true,
                time: 1,
            },
        ),
        (
            "users",
            ServerMsg::Users {
                req: Some(2),
                names: vec!["alice".into()],
            },
        ),
        (
            "files",
            ServerMsg::Files {
                req: None,
                next: None,
                files: vec![FileEntry {
                    name: "big.iso".into(),
                    size: 1 << 30,
                }],
            },
        ),
        (
            "error",
            ServerMsg::error(Some(9), ErrorCode::NoSuchUser, "\"carol\" is not online"),
        ),
        (
            "download_ready",
            ServerMsg::DownloadReady {
                req: Some(4),
                id: 1,
                file: "big.iso".into(),
                size: 1 << 30,
                hash: wire::FileHash([0xab; 32]),
                secret: wire::TransferSecret([0x0f; 32]),
                port: 55000,
            },
        ),
        (
            "download_queued",
            ServerMsg::DownloadQueued {
                req: None,
                id: 2,
                file: "big.iso".into(),
                position: 0,
                preparing: false,
            },
        ),
        ("cancelled", ServerMsg::Cancelled { req: None, id: 2 }),
        ("pong", ServerMsg::Pong),
        (
            "bye",
            ServerMsg::Bye {
                reason: wire::CloseReason::ServerShutdown,
                message: "the server is shutting down".into(),
            },
        ),
    ]
}

fn frames(msgs: &[ClientMsg]) -> Vec<u8> {
    msgs.iter().flat_map(|m| m.to_frame().to_vec()).collect()
}

fn chat_stream() -> Vec<u8> {
    frames(&[
        hello("alice"),
        ClientMsg::SendAll {
            text: "hi".into(),
            req: None,
        },
        ClientMsg::Ping,
    ])
}

/// Seeds of [`crate::control_frame`]: a cap choice, a read size, then the stream.
pub(crate) fn control_frame() -> Seeds {
    let stream = chat_stream();
    let with = |cap: u8, read: u8, stream: &[u8]| {
        let mut input = vec![cap, read];
        input.extend_from_slice(stream);
        input
    };
    let mut cut = stream.clone();
    cut.truncate(stream.len() - 3);
    vec![
        ("frames-whole", with(255, 0, &stream)),
        ("frames-bytewise", with(255, 1, &stream)),
        ("frames-small-cap", with(40, 7, &stream)),
        (
            "oversize-header",
            with(255, 0, &[0xff, 0xff, 0xff, 0xff, b'a']),
        ),
        ("empty-frame", with(255, 0, &[0, 0, 0, 0, 0, 0, 0, 1, b'x'])),
        ("cut-at-the-end", with(255, 5, &cut)),
        ("one-byte-frames", with(0, 2, &encode_frame(b"{").repeat(4))),
    ]
}

/// Seeds of [`crate::client_msg`]: every message's payload, and a few broken ones.
pub(crate) fn client_msg() -> Seeds {
    let mut seeds: Seeds = client_msgs()
        .into_iter()
        .map(|(name, msg)| (name, msg.to_frame()[4..].to_vec()))
        .collect();
    seeds.push((
        "unknown-field",
        br#"{"type":"ping","extra":[1,{"a":null}]}"#.to_vec(),
    ));
    seeds.push(("unknown-type", br#"{"type":"launch"}"#.to_vec()));
    seeds.push((
        "invalid-utf8",
        b"{\"type\":\"send_all\",\"text\":\"\xff\xfe\"}".to_vec(),
    ));
    seeds.push((
        "surrogate",
        br#"{"type":"send_all","text":"\ud800"}"#.to_vec(),
    ));
    seeds.push((
        "huge-number",
        br#"{"type":"cancel","id":18446744073709551616}"#.to_vec(),
    ));
    seeds.push((
        "duplicate-field",
        br#"{"type":"hello","version":1,"version":2,"name":"a"}"#.to_vec(),
    ));
    seeds
}

/// Seeds of [`crate::server_msg`]: every message's payload, and a few odd ones.
pub(crate) fn server_msg() -> Seeds {
    let mut seeds: Seeds = server_msgs()
        .into_iter()
        .map(|(name, msg)| (name, msg.to_frame()[4..].to_vec()))
        .collect();
    seeds.push((
        "future-error-code",
        br#"{"type":"error","code":"from_the_future","message":"?"}"#.to_vec(),
    ));
    seeds.push((
        "nested",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]".to_vec(),
    ));
    seeds
}

fn packet(frame: Frame<'_>) -> Packet<'_> {
    Packet {
        conn_id: CONN_ID,
        pn: 5,
        frame,
    }
}

/// `frame`'s packet in its plaintext form.
fn encode(frame: Frame<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let n = packet::encode(&packet(frame), &mut buf).unwrap_or(0);
    buf.truncate(n);
    buf
}

/// `frame`'s packet as the receiver seals it (the sender, for a packet only it sends), in
/// ChaCha20-Poly1305: the suite [`crate::udp_packet`] opens it with, since the last byte of
/// [`CONN_ID`] is odd.
fn sealed(frame: Frame<'_>) -> Vec<u8> {
    let by_sender = matches!(
        frame,
        Frame::HelloAck { .. } | Frame::Data { .. } | Frame::Close { .. }
    );
    let packet = packet(frame);
    let wire = if by_sender {
        seal(&sender_keys(&SECRET, Suite::ChaCha20Poly1305), &packet)
    } else {
        seal(&receiver_keys(&SECRET, Suite::ChaCha20Poly1305), &packet)
    };
    wire.unwrap_or_default()
}

fn hello_frame() -> Frame<'static> {
    Frame::Hello {
        suite: Suite::Aes256Gcm.code(),
        offset: 0,
        max_offset: 1 << 20,
        max_datagram: 1452,
    }
}

/// Seeds of [`crate::udp_packet`]: a packet of every kind, in plaintext form and sealed, and
/// some broken ones.
pub(crate) fn udp_packet() -> Seeds {
    let mut cut_ack = encode(Frame::Ack {
        ack_delay_us: 250,
        max_offset: 1 << 20,
        ranges: vec![(9, 12), (3, 5)],
    });
    cut_ack.truncate(cut_ack.len() - 1);
    let mut other_version = encode(hello_frame());
    other_version[0] = 1;
    let data = Frame::Data {
        offset: 1200,
        payload: b"some stream bytes",
    };
    let ack = Frame::Ack {
        ack_delay_us: 250,
        max_offset: 1 << 20,
        ranges: vec![(9, 12), (3, 5), (0, 1)],
    };
    let mut flipped = sealed(data.clone());
    flipped[30] ^= 4;
    vec![
        ("hello", encode(hello_frame())),
        (
            "hello_ack",
            encode(Frame::HelloAck {
                total: 5000,
                offset: 0,
            }),
        ),
        ("data", encode(data.clone())),
        ("ack", encode(ack.clone())),
        ("done", encode(Frame::Done)),
        (
            "close",
            encode(Frame::Close {
                total: 5000,
                last_byte: Some(0x42),
            }),
        ),
        ("abort", encode(Frame::Abort { reason: 1 })),
        ("ping", encode(Frame::Ping)),
        ("ack-cut", cut_ack),
        ("other-version", other_version),
        ("sealed-hello", sealed(hello_frame())),
        ("sealed-data", sealed(data)),
        ("sealed-ack", sealed(ack)),
        ("sealed-abort", sealed(Frame::Abort { reason: 1 })),
        ("sealed-data-flipped", flipped),
    ]
}

/// The choices [`crate::handshake`] reads before its datagram: a 5000-byte stream, a safe
/// datagram size, and the kind of datagram.
fn handshake_head(kind: u8) -> Recipe {
    Recipe::new().below(5000, 20_000).u8(7).u8(1).u8(kind)
}

/// A HELLO from choices for [`crate::handshake`]: connection id, packet number 3, the suite
/// choice, offset 100, window 1 MiB, `max_datagram`; then how it is spoiled.
fn built_hello(suite: &[u8], max_datagram: u16, spoil: u8) -> Recipe {
    handshake_head(1)
        .u64(CONN_ID)
        .u8(0)
        .u8(3)
        .bytes(suite)
        .u8(0)
        .u8(100)
        .u8(2)
        .u8(20)
        .u16(max_datagram)
        .u8(spoil)
}

/// Seeds of [`crate::handshake`].
pub(crate) fn handshake() -> Seeds {
    let aes = [0];
    let hello_len = sealed(hello_frame()).len() as u64;
    vec![
        ("hello", built_hello(&aes, 1452, 0).finish()),
        ("hello-chacha", built_hello(&[2], 1452, 1).finish()),
        (
            "hello-unknown-suite",
            built_hello(&[3, 9], 1452, 0).finish(),
        ),
        ("hello-tiny-datagrams", built_hello(&aes, 100, 0).finish()),
        (
            "hello-bit-flipped",
            built_hello(&aes, 1452, 3)
                .below(30, hello_len)
                .u8(5)
                .finish(),
        ),
        ("hello-in-clear", built_hello(&aes, 1452, 4).finish()),
        ("hello-other-secret", built_hello(&aes, 1452, 5).finish()),
        (
            "hello-cut",
            built_hello(&aes, 1452, 6)
                .below(hello_len - 1, hello_len)
                .finish(),
        ),
        (
            "hello-trailing",
            built_hello(&aes, 1452, 7).below(0, 16).u8(0).finish(),
        ),
        (
            "sealed-data",
            handshake_head(2)
                .u64(CONN_ID)
                .u8(0)
                .u8(9)
                .u8(2)
                .chunk(b"x", 1400)
                .u8(0)
                .u8(0)
                .u8(0)
                .finish(),
        ),
        (
            "raw-sealed-hello",
            handshake_head(0).bytes(&sealed(hello_frame())).finish(),
        ),
        (
            "raw-data",
            handshake_head(0)
                .bytes(&encode(Frame::Data {
                    offset: 0,
                    payload: b"x",
                }))
                .finish(),
        ),
        (
            "garbage-behind-a-header",
            handshake_head(3).bytes(&[0x01; 60]).finish(),
        ),
    ]
}

/// The choices both endpoint targets read first: stream length (odd for ChaCha20-Poly1305,
/// even for AES-256-GCM), pattern, resume offset, datagram size, window.
fn endpoints_head(len: u64, offset: Option<u64>, window: u64) -> Recipe {
    let head = Recipe::new().below(len, 20_000).u8(3);
    let head = match offset {
        Some(offset) => head.u8(0).below(offset, len + 2),
        None => head.u8(1),
    };
    head.below(252, 400).below(window - 1200, 64_000)
}

/// A DATA packet from choices (for [`crate::packet::packet_from`]) of our connection: packet
/// number 200, `payload` at offset 0.
fn data_from_choices(payload: &[u8]) -> Recipe {
    Recipe::new()
        .bool(true)
        .u8(0)
        .u8(200)
        .u8(2)
        .chunk(payload, 1400)
        .u8(0)
        .u8(0)
}

/// Seeds of [`crate::transport_receiver`]: clean, lossy, hostile and paused transfers.
pub(crate) fn transport_receiver() -> Seeds {
    // Operations: 0 pump both, 2 deliver to the receiver, 3 deliver to the sender, 4 and 5
    // drop, 6 duplicate, 7 reorder, 8 wait, 9 inject, 11 pause, 12 deliver everything.
    let clean: Vec<u8> = [0, 3, 0, 2, 0, 3, 0, 2, 2, 2, 0, 3, 3, 0, 2, 2, 2, 2]
        .repeat(3)
        .to_vec();
    let lossy: Vec<u8> = [0, 3, 0, 4, 2, 0, 5, 8, 10, 0, 3, 0, 6, 7, 0, 2, 2, 2, 0, 3]
        .repeat(3)
        .to_vec();
    // Injections: raw bytes; a packet from choices, then how it is spoiled; a copy of one of
    // the sender's recent datagrams, then what is changed.
    let raw = |bytes: &[u8]| Recipe::new().u8(9).bool(true).chunk(bytes, 1500).finish();
    let built = |packet: Recipe| {
        Recipe::new()
            .u8(9)
            .bool(false)
            .u8(0)
            .bytes(&packet.finish())
    };
    let copy = |mode: u8| {
        Recipe::new()
            .u8(10)
            .bool(false)
            .u8(255)
            .below(0, 1)
            .u8(7)
            .u8(mode)
            .u8(0x10)
            .finish()
    };
    let garbage = [
        &[0, 3, 0, 2, 0][..],
        &raw(&encode(Frame::Abort { reason: 9 })),
        &copy(2),
        &copy(1),
        &built(data_from_choices(b"lie").u8(6).below(20, 45)).finish(),
        &clean,
    ]
    .concat();
    let replays = [
        &[0, 3, 0, 2, 0, 2, 0][..],
        &copy(0),
        &copy(0),
        &[0, 3, 0, 2][..],
        &copy(0),
        &clean,
    ]
    .concat();
    let forged = [
        &[0, 3, 0, 2, 0][..],
        &built(data_from_choices(b"lie").u8(0)).finish(),
        &clean,
    ]
    .concat();
    vec![
        (
            "clean",
            endpoints_head(5000, None, 64_000)
                .u8(255)
                .bytes(&clean)
                .finish(),
        ),
        (
            "lossy",
            endpoints_head(9001, None, 4000)
                .u8(255)
                .bytes(&lossy)
                .finish(),
        ),
        (
            "garbage",
            endpoints_head(3000, None, 64_000)
                .u8(255)
                .bytes(&garbage)
                .finish(),
        ),
        (
            "replays",
            endpoints_head(3001, None, 64_000)
                .u8(255)
                .bytes(&replays)
                .finish(),
        ),
        (
            "forged-data",
            endpoints_head(3000, None, 64_000)
                .u8(255)
                .bytes(&forged)
                .finish(),
        ),
        (
            "pause-at",
            endpoints_head(6000, Some(1000), 64_000)
                .u8(0)
                .below(3000, 6001)
                .bytes(&clean)
                .u8(11)
                .u8(1)
                .bytes(&clean)
                .finish(),
        ),
    ]
}

/// Seeds of [`crate::transport_sender`]: clean and hostile transfers.
pub(crate) fn transport_sender() -> Seeds {
    // Operations: 0 pump the sender, 2 pump the receiver, 3 deliver to the receiver, 4 deliver
    // to the sender, 5 and 6 drop, 7 duplicate, 8 reorder, 9 wait, 10 garbage, 11 a packet from
    // choices, sealed and maybe spoiled, 12 a copy of a recent ack, maybe changed.
    let clean: Vec<u8> = [0, 3, 2, 4, 0, 3, 3, 2, 4, 4, 0, 3, 3, 3, 2, 4]
        .repeat(3)
        .to_vec();
    // An ACK of our connection from choices: packet number 99, a window of 1 TiB, one range
    // at the top of the packet numbers; then how it is spoiled.
    let ack = |spoil: &[u8]| {
        Recipe::new()
            .u8(11)
            .bool(true)
            .u8(0)
            .u8(99)
            .u8(3)
            .u32(0)
            .u8(3)
            .u64(1 << 40)
            .below(0, 64)
            .u8(0)
            .u8(2)
            .u8(3)
            .u8(0)
            .bytes(spoil)
            .finish()
    };
    let copy = |mode: u8| {
        Recipe::new()
            .u8(12)
            .below(0, 1)
            .u8(3)
            .u8(mode)
            .u8(4)
            .finish()
    };
    vec![
        (
            "clean",
            endpoints_head(5000, None, 64_000).bytes(&clean).finish(),
        ),
        (
            "lossy",
            endpoints_head(8001, Some(100), 3000)
                .bytes(&[0, 3, 2, 6, 9, 0, 0, 5, 3, 2, 7, 8, 4, 4, 0, 3, 2, 4])
                .bytes(&clean)
                .finish(),
        ),
        (
            "forged-ack",
            endpoints_head(5000, None, 64_000)
                .bytes(&clean[..8])
                .bytes(&ack(&[0]))
                .bytes(&clean)
                .finish(),
        ),
        (
            "spoiled-acks",
            endpoints_head(5001, None, 64_000)
                .bytes(&clean[..8])
                .bytes(&ack(&[3, 20, 1]))
                .bytes(&ack(&[4]))
                .bytes(&ack(&[5]))
                .bytes(&ack(&[6, 10]))
                .bytes(&ack(&[7, 0, 9]))
                .bytes(&clean)
                .finish(),
        ),
        (
            "garbage",
            endpoints_head(2000, None, 64_000)
                .bytes(&clean[..8])
                .u8(10)
                .chunk(&[2, 4, 0, 0, 0, 0, 0, 0, 0, 0], 1500)
                .bytes(&copy(2))
                .bytes(&copy(0))
                .bytes(&copy(1))
                .bytes(&clean)
                .finish(),
        ),
    ]
}

/// Seeds of [`crate::server_session`]: byte streams a client writes.
pub(crate) fn server_session() -> Seeds {
    let polite = frames(&[
        hello("alice"),
        ClientMsg::SendAll {
            text: "hi all".into(),
            req: Some(1),
        },
        ClientMsg::SendPrivate {
            to: "watcher".into(),
            text: "psst".into(),
            req: None,
        },
        ClientMsg::SendPrivate {
            to: "ALICE".into(),
            text: "note to self".into(),
            req: None,
        },
        ClientMsg::ListUsers { req: Some(2) },
        ClientMsg::ListFiles {
            req: Some(3),
            after: None,
            limit: None,
        },
        ClientMsg::Ping,
        ClientMsg::Quit,
    ]);
    let mut garbage_first = encode_frame(b"\xff\x00not json").to_vec();
    garbage_first.extend(frames(&[
        ClientMsg::Ping,
        hello("bad name"),
        hello("WATCHER"),
        hello("bob"),
        ClientMsg::Ping,
    ]));
    let mut oversize = frames(&[hello("carol"), ClientMsg::Ping]);
    oversize.extend_from_slice(&0x0010_0001u32.to_be_bytes());
    let mut invalid_utf8 = frames(&[hello("dave")]);
    invalid_utf8.extend_from_slice(&encode_frame(
        b"{\"type\":\"send_all\",\"text\":\"\xc3\x28\"}",
    ));
    invalid_utf8.extend(frames(&[ClientMsg::Ping]));
    let downloads = frames(&[
        hello("erin"),
        ClientMsg::Download {
            file: "hello.txt".into(),
            req: Some(1),
        },
        ClientMsg::Download {
            file: "../hello.txt".into(),
            req: Some(2),
        },
        ClientMsg::Cancel {
            id: 1,
            req: Some(3),
        },
        ClientMsg::Cancel {
            id: 999,
            req: Some(4),
        },
    ]);
    let mut cut = frames(&[hello("frank"), ClientMsg::ListUsers { req: None }]);
    cut.truncate(cut.len() - 2);
    let old = frames(&[ClientMsg::Hello {
        version: 0,
        name: "grace".into(),
    }]);
    vec![
        ("polite", polite),
        ("garbage-first", garbage_first),
        ("oversize-header", oversize),
        ("invalid-utf8", invalid_utf8),
        ("downloads", downloads),
        ("cut-at-the-end", cut),
        ("version-0", old),
    ]
}
