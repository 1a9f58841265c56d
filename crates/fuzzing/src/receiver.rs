//! A live receiver among real packets and garbage.

use crate::bench::{
    Bench, CONN_ID, Ending, Ends, Injection, MAX_OPS, Net, Outcome, Sent, Setup, Watch,
};
use crate::sealed::{SECRET, sender_keys};
use arbitrary::Arbitrary;
use netsim::Side;
use std::time::Duration;
use transport::Event;
use transport::crypto::Role;
use transport::packet::{self, Frame};

/// What an injected datagram may do to the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Nothing: it did not open (garbage, a replay, a spoiled or unsealed packet, another
    /// transfer's), or it is an exact copy of a real packet that the network could have made.
    Harmless,
    /// It opened with the transfer's keys, so it comes from someone who knows the secret, and
    /// is true to the stream (or of another connection, or of a kind the receiver ignores). It
    /// may stall the transfer for good (its packet number may be one the sender used for a
    /// packet that was lost, which the sender then takes as delivered, or be so far ahead that
    /// the sender's real numbers look too old), but never corrupt the stream.
    Spoofed,
    /// A well-formed lie about the stream for our connection, sealed with the transfer's keys:
    /// the protocol cannot tell it from the truth, the download's hash catches it.
    Forged,
}

/// What a datagram that opened as `plain` (if it opened) may do.
fn classify(plain: Option<&[u8]>, source: &[u8]) -> Effect {
    let Some(plain) = plain else {
        return Effect::Harmless;
    };
    let Ok(packet) = packet::decode(plain) else {
        return Effect::Spoofed;
    };
    if packet.conn_id != CONN_ID {
        return Effect::Spoofed;
    }
    let len = source.len() as u64;
    let true_to_stream = match packet.frame {
        Frame::Data { offset, payload } => {
            let end = offset.saturating_add(payload.len() as u64);
            end <= len && source[offset as usize..end as usize] == *payload
        }
        Frame::HelloAck { total, .. } => total == len,
        Frame::Close { total, last_byte } => total == len && last_byte == source.last().copied(),
        Frame::Abort { .. }
        | Frame::Ping
        | Frame::Hello { .. }
        | Frame::Ack { .. }
        | Frame::Done => true,
    };
    if true_to_stream {
        Effect::Spoofed
    } else {
        Effect::Forged
    }
}

/// The input of [`transport_receiver`].
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct ReceiverScenario {
    /// The transfer.
    pub setup: Setup,
    /// Where the receiver's application pauses it at first (modulo the length plus one).
    pub pause_at: Option<u16>,
    /// What happens, in order (up to `MAX_OPS`).
    pub ops: Vec<ReceiverOp>,
}

/// One thing that happens to the receiver.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum ReceiverOp {
    /// The network does something.
    Net(Net),
    /// Someone on the path sends the receiver a datagram.
    Inject(Injection),
    /// The application pauses the transfer.
    Pause,
    /// It resumes it.
    Resume,
    /// It asks to be paused at this offset (modulo the length plus one).
    PauseAt(u16),
}

/// A receiver fed its sender's real packets, dropped, duplicated, reordered, replayed and
/// delayed, with garbage, packets built from the input (sealed with the sender's keys, then
/// left intact, cut, extended, changed by a bit, sent in clear or sealed with another
/// transfer's keys) and changed copies of real packets in between, and paused and resumed by
/// its application, all as the input's operations say.
///
/// Checks: every datagram the sender sends opens with the receiver's keys, its packet number
/// never used before, and tells the truth; no datagram opens at the receiver unless it is
/// exactly what the sender's keys sealed, and the receiver counts every one that does not.
/// Unless a forged packet got in, the receiver's sink holds the true stream up to
/// [`transport::Receiver::contiguous`] and nothing but zeros or true bytes beyond, and a
/// finished transfer has the whole stream and its true last byte. Unless a packet that opened
/// was injected or an end gave up, the transfer then finishes on a clean network: loss,
/// duplication, reordering, replays, pauses, garbage and spoiled packets never leave it stuck.
pub fn transport_receiver(scenario: &ReceiverScenario) {
    transport_receiver_ending(scenario);
}

/// The sender never lies.
struct Truthful;

impl Watch for Truthful {
    fn sent(&mut self, ends: &Ends, side: Side, datagram: &Sent) {
        if side == Side::Sender {
            assert_ne!(
                classify(Some(&datagram.plain), &ends.source),
                Effect::Forged,
                "the sender sent a lie"
            );
        }
    }
}

/// Runs [`transport_receiver`] on one input, and tells how it ended.
pub fn transport_receiver_ending(scenario: &ReceiverScenario) -> Ending {
    let mut bench = Bench::new(&scenario.setup);
    let len = scenario.setup.stream_len();
    let (forged, spoofed) = play(&mut bench, scenario);
    if forged {
        return ending(&bench, Outcome::Hostile);
    }
    check_sink(&bench);
    if spoofed {
        return ending(&bench, Outcome::Hostile);
    }
    if bench.pair.aborted() {
        return ending(&bench, Outcome::Aborted);
    }
    if bench.pair.finished() {
        return ending(&bench, Outcome::Finished);
    }
    let now = bench.pair.now;
    let receiver = &mut bench.pair.transfer.receiver;
    receiver.set_pause_at(None);
    receiver.set_paused(now, false);
    bench.run_clean(Duration::from_secs(120), &mut Truthful);
    check_sink(&bench);
    assert!(
        bench.pair.finished(),
        "the transfer did not finish on a clean network: {:?} / {:?}, {} of {len} bytes",
        bench.receiver_events(),
        bench.sender_events(),
        bench.ends().receiver.contiguous()
    );
    ending(&bench, Outcome::FinishedClean)
}

/// Runs the scenario's operations on `bench`: whether a forged packet got in, and whether a
/// spoofed one did.
pub(crate) fn play(bench: &mut Bench, scenario: &ReceiverScenario) -> (bool, bool) {
    let len = scenario.setup.stream_len();
    let offset_in = |at: u16| u64::from(at) % (len + 1);
    if let Some(at) = scenario.pause_at {
        bench
            .pair
            .transfer
            .receiver
            .set_pause_at(Some(offset_in(at)));
    }
    let mut forged = false;
    let mut spoofed = false;
    // What the sender's keys seal: what an attacker who knows the secret could send.
    let forger = sender_keys(&SECRET, bench.suite());
    for op in scenario.ops.iter().take(MAX_OPS) {
        match op {
            ReceiverOp::Net(net) => bench.net(net, &mut Truthful),
            ReceiverOp::Inject(injection) => {
                // The datagram, whether it must not open, and whether it is a real one.
                let (datagram, spoiled, real) = match injection {
                    Injection::Garbage(bytes) => {
                        (bytes[..bytes.len().min(1500)].to_vec(), false, false)
                    }
                    Injection::Forged {
                        conn,
                        packet,
                        spoil,
                    } => {
                        let injected =
                            spoil.apply(&forger, Role::Sender, &packet.packet(conn.id()));
                        (injected.wire, !injected.intact, false)
                    }
                    Injection::Copy { which, change } => {
                        let Some(original) = bench.recent(Side::Sender, *which) else {
                            continue;
                        };
                        let d = change.apply(original);
                        let same = d == original;
                        (d, !same, same)
                    }
                };
                let plain = bench.hand(Side::Receiver, &datagram);
                assert!(
                    !spoiled || plain.is_none(),
                    "a spoiled datagram opened at the receiver: {datagram:02x?}"
                );
                match classify(plain.as_deref(), bench.source()) {
                    _ if real => {}
                    Effect::Harmless => {}
                    Effect::Spoofed => spoofed = true,
                    Effect::Forged => forged = true,
                }
            }
            ReceiverOp::Pause => {
                let now = bench.pair.now;
                bench.pair.transfer.receiver.set_paused(now, true);
            }
            ReceiverOp::Resume => {
                let now = bench.pair.now;
                bench.pair.transfer.receiver.set_paused(now, false);
            }
            ReceiverOp::PauseAt(at) => {
                bench
                    .pair
                    .transfer
                    .receiver
                    .set_pause_at(Some(offset_in(*at)));
            }
        }
        // Whatever the input did, the statistics stay readable.
        let receiver = &bench.ends().receiver;
        let _ = (receiver.stats(), receiver.received_bytes());
    }
    (forged, spoofed)
}

/// How the scenario ended, at the receiver.
fn ending(bench: &Bench, outcome: Outcome) -> Ending {
    Ending {
        outcome,
        events: bench.receiver_events().to_vec(),
        stats: bench.ends().receiver.stats(),
    }
}

/// The receiver's sink holds nothing but the true stream.
fn check_sink(bench: &Bench) {
    let source = bench.source();
    let sink = bench.sink();
    assert!(
        sink.len() <= source.len(),
        "{} bytes written of a {}-byte stream",
        sink.len(),
        source.len()
    );
    let contiguous = usize::try_from(bench.ends().receiver.contiguous())
        .unwrap_or(usize::MAX)
        .min(source.len());
    if let Some(at) = (0..sink.len()).find(|&i| {
        let wrong = sink[i] != source[i];
        wrong && (i < contiguous || sink[i] != 0)
    }) {
        panic!("byte {at} of the sink is wrong (contiguous {contiguous})");
    }
    assert!(
        contiguous <= sink.len(),
        "contiguous {contiguous} but only {} bytes written",
        sink.len()
    );
    for event in bench.receiver_events() {
        match event {
            Event::Finished { total, last_byte } => {
                assert_eq!(*total, source.len() as u64);
                // A receiver that resumed at the end and lost every CLOSE cannot know it.
                let unknowable = bench.resumed_at_end() && last_byte.is_none();
                assert!(
                    *last_byte == source.last().copied() || unknowable,
                    "finished with last byte {last_byte:?}"
                );
                assert!(sink == source, "finished without the whole stream");
            }
            Event::Connected { total, .. } => assert_eq!(*total, source.len() as u64),
            Event::PauseReached { .. } | Event::Aborted { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Change, Conn, FirstPn, Resume};
    use crate::choice::End::{Receiver as R, Sender as S};
    use crate::choice::{Number, SuiteChoice};
    use crate::packet::{FrameChoice, PacketChoice};
    use crate::sealed::Spoil;

    fn net(op: Net) -> ReceiverOp {
        ReceiverOp::Net(op)
    }

    fn setup(len: u16, window: u16) -> Setup {
        Setup {
            len,
            pattern: 3,
            resume: Resume::Start,
            datagram: 252,
            window: window - 1200,
            first_pn: FirstPn::NearTop,
            suite: SuiteChoice::ChaCha20Poly1305,
        }
    }

    /// Both ends send and everything arrives, `rounds` times.
    fn clean(rounds: usize) -> Vec<ReceiverOp> {
        let round = [net(Net::Pump(S)), net(Net::Pump(R)), net(Net::DeliverAll)];
        round.iter().cycle().take(3 * rounds).cloned().collect()
    }

    fn copy(change: Change) -> ReceiverOp {
        ReceiverOp::Inject(Injection::Copy { which: 0, change })
    }

    fn lie(spoil: Spoil) -> ReceiverOp {
        ReceiverOp::Inject(Injection::Forged {
            conn: Conn::Ours,
            packet: PacketChoice {
                pn: Number(200),
                frame: FrameChoice::Data {
                    offset: Number(0),
                    payload: b"lie".to_vec(),
                },
            },
            spoil,
        })
    }

    fn outcome(setup: Setup, pause_at: Option<u16>, ops: Vec<ReceiverOp>) -> (Outcome, u64) {
        let ending = transport_receiver_ending(&ReceiverScenario {
            setup,
            pause_at,
            ops,
        });
        (ending.outcome, ending.stats.packets_rejected)
    }

    #[test]
    fn a_clean_transfer_finishes_while_the_input_runs() {
        assert_eq!(
            outcome(setup(5000, 64_000), None, clean(10)),
            (Outcome::Finished, 0)
        );
    }

    #[test]
    fn a_lossy_transfer_finishes_on_the_clean_network_after() {
        let lossy = vec![
            net(Net::Pump(R)),
            net(Net::Deliver(S)),
            net(Net::Pump(S)),
            net(Net::Lose(R)),
            net(Net::Deliver(R)),
            net(Net::Pump(R)),
            net(Net::Lose(S)),
            net(Net::Wait(2500)),
            net(Net::Duplicate(R)),
            net(Net::Reorder(R, 3)),
        ];
        assert_eq!(
            outcome(setup(9001, 4000), None, lossy),
            (Outcome::FinishedClean, 0)
        );
    }

    #[test]
    fn garbage_and_spoiled_copies_are_counted_and_change_nothing() {
        let mut ops = clean(2);
        ops.extend([
            ReceiverOp::Inject(Injection::Garbage(vec![2, 7, 0, 0])),
            copy(Change::Xor(30, 0x10)),
            copy(Change::Cut(30)),
            lie(Spoil::Cut { at: 20 }),
            lie(Spoil::OtherSecret),
        ]);
        ops.extend(clean(10));
        assert_eq!(
            outcome(setup(3000, 64_000), None, ops),
            (Outcome::Finished, 5)
        );
    }

    #[test]
    fn replays_of_real_packets_are_refused_and_change_nothing() {
        let mut ops = clean(3);
        ops.extend([copy(Change::None), copy(Change::None)]);
        ops.extend(clean(10));
        let (outcome, rejected) = outcome(setup(3001, 64_000), None, ops);
        assert_eq!(outcome, Outcome::Finished);
        assert!(rejected > 0, "the replays went through");
    }

    #[test]
    fn a_forged_lie_about_the_stream_is_hostile() {
        let mut ops = clean(1);
        ops.push(lie(Spoil::Intact));
        ops.extend(clean(10));
        assert_eq!(outcome(setup(3000, 64_000), None, ops).0, Outcome::Hostile);
    }

    #[test]
    fn a_paused_and_resumed_transfer_finishes() {
        let mut ops = clean(4);
        ops.extend([ReceiverOp::Pause, net(Net::Wait(1000)), ReceiverOp::Resume]);
        ops.extend(clean(10));
        let mut setup = setup(6000, 64_000);
        setup.resume = Resume::At(1000);
        assert_eq!(outcome(setup, Some(3000), ops), (Outcome::Finished, 0));
    }
}
