//! Inputs on which a target once failed, kept as tests so the bug stays fixed. Each names what
//! was wrong and where it was fixed, and is written as the typed input that recreates the
//! scenario (the byte strings these were found as meant other inputs under the byte-opcode
//! format the targets had then).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fuzzing::End::{Receiver as R, Sender as S};
use fuzzing::{
    Change, Conn, Datagram, End, FirstPn, FrameChoice, Injection, Net, Number, Outcome,
    PacketChoice, PacketInput, Ranges, ReceiverOp, ReceiverScenario, Replays, Resume, SealChoice,
    Setup, Spoil, SuiteChoice, Top,
};
use transport::Event;

fn send(end: End) -> ReceiverOp {
    ReceiverOp::Net(Net::Pump(end))
}

fn deliver(end: End) -> ReceiverOp {
    ReceiverOp::Net(Net::Deliver(end))
}

fn lose(end: End) -> ReceiverOp {
    ReceiverOp::Net(Net::Lose(end))
}

fn duplicate(end: End) -> ReceiverOp {
    ReceiverOp::Net(Net::Duplicate(end))
}

fn reorder(end: End, behind: u16) -> ReceiverOp {
    ReceiverOp::Net(Net::Reorder(end, behind))
}

fn wait(ms: u16) -> ReceiverOp {
    ReceiverOp::Net(Net::Wait(ms))
}

/// The sender's latest datagram `which`, sent again by someone on the path.
fn replay(which: u8) -> ReceiverOp {
    ReceiverOp::Inject(Injection::Copy {
        which,
        change: Change::None,
    })
}

/// A packet of our connection sealed with the sender's keys by someone who knows the secret.
fn forged(pn: u64, frame: FrameChoice) -> ReceiverOp {
    ReceiverOp::Inject(Injection::Forged {
        conn: Conn::Ours,
        packet: PacketChoice {
            pn: Number(pn),
            frame,
        },
        spoil: Spoil::Intact,
    })
}

/// A transfer of `len` bytes from `resume` with a 64 kB window, full-sized datagrams, first
/// packet number 0, AES-256-GCM.
fn setup(len: u16, resume: Resume) -> Setup {
    Setup {
        len,
        pattern: 3,
        resume,
        datagram: 252,
        window: 62_800,
        first_pn: FirstPn::Zero,
        suite: SuiteChoice::Aes256Gcm,
    }
}

fn scenario(setup: Setup, ops: Vec<ReceiverOp>) -> ReceiverScenario {
    ReceiverScenario {
        setup,
        pause_at: None,
        ops,
    }
}

/// An ACK whose newest range ends at packet number u64::MAX was encoded but refused by the
/// decoder (transport-proto/src/packet.rs compared against a bound that started at u64::MAX).
#[test]
fn udp_packet_ack_ending_at_the_last_packet_number() {
    let ack = PacketChoice {
        pn: Number(9),
        frame: FrameChoice::Ack {
            ack_delay_us: 250,
            max_offset: Number(1 << 20),
            ranges: Ranges {
                top: Top::NearMax(0),
                spans: vec![(3, 0), (1, 0)],
            },
        },
    };
    fuzzing::udp_packet(&PacketInput {
        datagram: Datagram::Sealed {
            conn_id: 7,
            packet: ack.clone(),
            by: End::Receiver,
            suite: SuiteChoice::Aes256Gcm,
            spoil: Spoil::Intact,
        },
        conn_id: 7,
        packet: ack,
        room: 1499,
        cuts: [0, 20, 40],
        seal: SealChoice {
            suite: SuiteChoice::ChaCha20Poly1305,
            by: End::Receiver,
            flip: (3, 1),
            cut: 9,
            trailing: 0,
        },
        replays: Replays {
            suite: SuiteChoice::Aes256Gcm,
            by: End::Sender,
            first: Number(u64::MAX - 1),
            steps: Vec::new(),
        },
    });
}

/// A DATA packet far beyond the window, before the HELLO_ACK, was written: the Vec sink
/// panicked with a capacity overflow (transport-proto/src/receiver/ now drops data beyond the
/// window it could have granted).
#[test]
fn transport_receiver_data_beyond_the_window() {
    let data = FrameChoice::Data {
        offset: Number(u64::MAX),
        payload: b"lie".to_vec(),
    };
    let ending = fuzzing::transport_receiver_ending(&scenario(
        setup(3000, Resume::Start),
        vec![send(R), forged(200, data)],
    ));
    // It opened (a forged lie about the stream), and nothing was written for it.
    assert_eq!(ending.outcome, Outcome::Hostile);
    assert_eq!(ending.stats.packets_rejected, 0);
}

/// A receiver that resumed at the stream's end and lost every CLOSE finished with no last byte
/// for a non-empty stream; the event's contract now says so (transport-proto/src/lib.rs).
#[test]
fn transport_receiver_resumed_at_the_end_without_a_close() {
    // The HELLO and its HELLO_ACK go through; then the receiver's DONEs reach the sender, and
    // every CLOSE that answers them is lost, until the receiver gives up waiting for one.
    let mut ops = vec![send(R), deliver(S), send(S), deliver(R)];
    for _ in 0..40 {
        ops.extend([wait(250), send(R), deliver(S), send(S), lose(R), lose(R)]);
    }
    let ending = fuzzing::transport_receiver_ending(&scenario(setup(3000, Resume::At(3000)), ops));
    assert_eq!(
        ending.events.last(),
        Some(&Event::Finished {
            total: 3000,
            last_byte: None
        }),
        "the scenario is one of a receiver that never learnt the last byte: {ending:?}"
    );
}

/// Found by libFuzzer: a packet numbered u64::MAX, then any other, overflowed `largest + 1` in
/// the receiver's loss count (transport-proto/src/receiver/ now saturates): a panic with
/// overflow checks, a wrong `packets_lost` without.
#[test]
fn transport_receiver_packet_number_u64_max() {
    // The first packet the receiver opens is numbered u64::MAX (so nothing counts as lost
    // before it), the next one just below it.
    let ending = fuzzing::transport_receiver_ending(&scenario(
        setup(3000, Resume::Start),
        vec![
            send(R),
            forged(u64::MAX, FrameChoice::Ping),
            forged(u64::MAX - 3, FrameChoice::Ping),
        ],
    ));
    assert_eq!(ending.outcome, Outcome::Hostile);
    assert_eq!(
        ending.stats.packets_rejected, 0,
        "both forged packets opened"
    );
    assert_eq!(
        ending.stats.packets_received, 2,
        "both were taken in: {ending:?}"
    );
    assert_eq!(ending.stats.packets_lost, 0);
}

/// Found by the stable campaign when the sender began to hold the stream itself: its probe
/// timeout chose data the receiver had acknowledged through another copy, dropped it as
/// acknowledged and sent nothing, so a lost window update was never asked for again and the
/// flow idled out (transport-proto/src/sender/transmit.rs: a probe carries unacknowledged data
/// or a PING). The operations are the ones the byte-opcode input of the time spelled.
#[test]
fn transport_receiver_probe_of_data_acknowledged_through_another_copy() {
    let setup = Setup {
        len: 9001,
        pattern: 3,
        resume: Resume::Start,
        datagram: 252,
        window: 2800,
        first_pn: FirstPn::NearTop,
        suite: SuiteChoice::ChaCha20Poly1305,
    };
    let ops = vec![
        send(S),
        send(R),
        deliver(S),
        send(S),
        send(R),
        deliver(S),
        send(S),
        send(R),
        send(S),
        send(R),
        lose(S),
        replay(0),
        lose(R),
        deliver(R),
        send(S),
        send(R),
        lose(S),
        wait(2560),
        deliver(S),
        send(S),
        send(R),
        duplicate(R),
        reorder(R, 0),
        send(S),
        send(R),
        deliver(R),
        deliver(R),
        deliver(R),
        send(S),
        send(R),
        deliver(S),
        send(S),
        send(R),
        deliver(S),
        send(S),
        send(R),
        lose(S),
        replay(0),
        lose(R),
        deliver(R),
        send(S),
        send(R),
        lose(S),
        wait(2560),
        deliver(S),
        send(S),
        send(R),
        duplicate(R),
        reorder(R, 0),
        deliver(R),
        deliver(R),
        deliver(R),
        send(S),
        send(R),
        deliver(S),
        send(S),
        send(R),
        deliver(S),
        send(S),
        send(R),
        lose(R),
        deliver(R),
        send(S),
        send(R),
        lose(S),
        wait(2560),
        deliver(S),
        send(S),
        send(R),
        duplicate(R),
        reorder(R, 0),
        deliver(R),
        deliver(R),
        deliver(R),
        send(S),
        send(R),
        deliver(S),
        send(S),
        send(R),
        deliver(S),
        send(S),
        send(R),
        lose(R),
        deliver(R),
        send(S),
        send(R),
        lose(S),
        wait(2560),
        lose(R),
        deliver(R),
        send(S),
        send(R),
        lose(S),
        wait(2560),
        deliver(S),
        send(S),
        send(R),
        duplicate(R),
        reorder(R, 0),
        deliver(R),
        deliver(R),
        deliver(R),
        send(S),
        send(R),
        deliver(S),
        send(S),
        send(R),
        deliver(S),
        send(S),
        send(R),
        lose(R),
        deliver(R),
        send(S),
        send(R),
        lose(S),
        wait(2560),
        deliver(S),
        send(S),
        send(R),
        duplicate(R),
        reorder(R, 0),
        send(S),
        send(R),
        deliver(R),
        deliver(R),
        deliver(R),
        send(S),
        send(R),
        deliver(S),
    ];
    let ending = fuzzing::transport_receiver_ending(&scenario(setup, ops));
    assert_eq!(ending.outcome, Outcome::FinishedClean);
}
