//! A live sender among real acks and hostile datagrams.

use crate::bench::{
    Bench, CONN_ID, Ending, Ends, Injection, MAX_OPS, Net, Outcome, Sent, Setup, Watch,
};
use crate::sealed::{SECRET, receiver_keys};
use arbitrary::Arbitrary;
use netsim::Side;
use std::time::Duration;
use transport::Event;
use transport::crypto::Role;
use transport::packet::{self, Frame};

/// What the sender has been told, by its receiver or by anyone else: the bounds its output is
/// held to.
#[derive(Debug, Default)]
struct Told {
    /// Bytes of every datagram handed to the sender.
    bytes_in: u64,
    /// Bytes it sent before any ack proved the peer's address (HELLO_ACKs only).
    bytes_out_unproven: u64,
    /// An ack of our connection arrived (the address is proven).
    proven: bool,
    /// The highest flow-control limit anyone announced.
    granted: u64,
    /// A DONE of our connection arrived.
    done: bool,
    /// Something other than the receiver sent a packet that opened with the transfer's keys
    /// (so it knows the secret): the transfer may stall or end, as the protocol allows such a
    /// peer to make it (a packet number far ahead, say, makes the receiver's real ones look
    /// too old).
    hostile: bool,
}

impl Told {
    /// The sender was handed `wire`, which opened as `plain` if it opened.
    fn hear(&mut self, wire: &[u8], plain: Option<&[u8]>, from_receiver: bool) {
        self.bytes_in += wire.len() as u64;
        // What does not open, the sender must ignore.
        let Some(plain) = plain else {
            return;
        };
        self.hostile |= !from_receiver;
        let Ok(p) = packet::decode(plain) else {
            return;
        };
        if p.conn_id != CONN_ID {
            return;
        }
        match p.frame {
            Frame::Ack { max_offset, .. } => {
                self.proven = true;
                self.granted = self.granted.max(max_offset);
            }
            Frame::Hello { max_offset, .. } => self.granted = self.granted.max(max_offset),
            Frame::Done => self.done = true,
            Frame::Abort { .. }
            | Frame::HelloAck { .. }
            | Frame::Data { .. }
            | Frame::Close { .. }
            | Frame::Ping => {}
        }
    }

    /// Checks one datagram the sender sent.
    fn check(&mut self, ends: &Ends, sent: &Sent) {
        let source = &ends.source;
        let len = source.len() as u64;
        if let Some(sender) = &ends.sender {
            assert!(sent.wire.len() <= sender.max_datagram());
        }
        let packet = match packet::decode(&sent.plain) {
            Ok(p) => p,
            Err(err) => panic!("the sender sent an undecodable datagram: {err}"),
        };
        assert_eq!(packet.conn_id, CONN_ID);
        if !self.proven {
            // Nothing but HELLO_ACKs, each smaller than the HELLO it answers: whoever forges
            // an address gets less back than it sends (no PING for a PING, no CLOSE for a
            // DONE).
            assert!(
                matches!(packet.frame, Frame::HelloAck { .. }),
                "{:?} sent to an unproven address",
                packet.frame
            );
            self.bytes_out_unproven += sent.wire.len() as u64;
            assert!(
                self.bytes_out_unproven <= self.bytes_in,
                "{} bytes sent to an unproven address that sent {}",
                self.bytes_out_unproven,
                self.bytes_in
            );
        }
        match packet.frame {
            Frame::Data { offset, payload } => {
                assert!(self.proven, "data before the peer proved its address");
                let end = offset + payload.len() as u64;
                assert!(end <= len, "data up to {end} of a {len}-byte stream");
                assert!(
                    end <= self.granted,
                    "data up to {end} beyond the window {}",
                    self.granted
                );
                assert!(
                    source[offset as usize..end as usize] == *payload,
                    "wrong bytes at {offset}"
                );
            }
            Frame::Close { total, last_byte } => {
                assert_eq!((total, last_byte), (len, source.last().copied()));
            }
            Frame::HelloAck { total, offset } => {
                assert_eq!(total, len);
                assert!(offset <= len);
            }
            Frame::Abort { .. } | Frame::Ping => {}
            Frame::Hello { .. } | Frame::Ack { .. } | Frame::Done => {
                panic!("the sender sent {:?}", packet.frame);
            }
        }
    }
}

/// The input of [`transport_sender`].
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct SenderScenario {
    /// The transfer.
    pub setup: Setup,
    /// What happens after the receiver's HELLO opened the sender, in order (up to
    /// `MAX_OPS`).
    pub ops: Vec<SenderOp>,
}

/// One thing that happens to the sender.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum SenderOp {
    /// The network does something.
    Net(Net),
    /// Someone on the path sends the sender a datagram.
    Inject(Injection),
}

/// A sender fed its receiver's real acks, lost, duplicated, reordered and replayed, plus
/// garbage, well-formed hostile packets (acks of packets never sent, windows of any size,
/// DONEs, ABORTs) sealed with the transfer's keys and then, as the input says, left intact,
/// cut, extended, changed by a bit, sent in clear or sealed with another transfer's keys, and
/// changed copies of real acks, all as the input's operations say.
///
/// Checks, on every datagram the sender sends: it opens with the receiver's keys (its packet
/// number never used before), decodes, belongs to the connection and fits the datagram size;
/// DATA carries the source's true bytes, inside the stream and inside the largest window anyone
/// announced, and only once an ack proved the peer's address; before that, the sender sends
/// nothing but HELLO_ACKs, fewer bytes than it received. It finishes only after a DONE. No
/// datagram opens unless it is exactly what the receiver's keys sealed, and the sender counts
/// every one that does not. Unless a packet that opened came from someone other than the
/// receiver, the transfer then finishes on a clean network: garbage, replays and spoiled
/// packets change nothing.
pub fn transport_sender(scenario: &SenderScenario) {
    transport_sender_ending(scenario);
}

/// Runs [`transport_sender`] on one input, and tells how it ended.
pub fn transport_sender_ending(scenario: &SenderScenario) -> Ending {
    let mut bench = Bench::new(&scenario.setup);
    let len = scenario.setup.stream_len();
    let mut told = Told::default();
    // What the receiver's keys seal: what an attacker who knows the secret could send.
    let forger = receiver_keys(&SECRET, bench.suite());
    // The receiver's HELLO opens the sender.
    bench.net(&Net::Pump(crate::choice::End::Receiver), &mut ());
    bench.net(&Net::Deliver(crate::choice::End::Sender), &mut told);
    assert!(
        bench.ends().sender.is_some(),
        "the receiver's HELLO did not open the sender"
    );
    for op in scenario.ops.iter().take(MAX_OPS) {
        match op {
            SenderOp::Net(net) => bench.net(net, &mut told),
            SenderOp::Inject(Injection::Garbage(bytes)) => {
                let datagram = &bytes[..bytes.len().min(1500)];
                let plain = bench.hand(Side::Sender, datagram);
                told.hear(datagram, plain.as_deref(), false);
            }
            SenderOp::Inject(Injection::Forged {
                conn,
                packet,
                spoil,
            }) => {
                let forged = packet.packet(conn.id());
                let injected = spoil.apply(&forger, Role::Receiver, &forged);
                let plain = bench.hand(Side::Sender, &injected.wire);
                assert!(
                    injected.intact || plain.is_none(),
                    "a packet {spoil:?} opened at the sender: {forged:?}"
                );
                told.hear(&injected.wire, plain.as_deref(), false);
            }
            SenderOp::Inject(Injection::Copy { which, change }) => {
                let Some(original) = bench.recent(Side::Receiver, *which) else {
                    continue;
                };
                let d = change.apply(original);
                // An exact copy is the network's duplicate; any other change is refused.
                let same = d == original;
                let plain = bench.hand(Side::Sender, &d);
                assert!(
                    same || plain.is_none(),
                    "a changed ack opened at the sender"
                );
                told.hear(&d, plain.as_deref(), same);
            }
        }
        if let Some(sender) = &bench.ends().sender {
            let _ = sender.stats();
            assert!(
                told.proven || !sender.is_address_proven(),
                "the address counts as proven before any ack opened"
            );
        }
    }
    check_events(&bench, &told);
    if told.hostile {
        return ending(&bench, Outcome::Hostile);
    }
    if bench.pair.aborted() {
        return ending(&bench, Outcome::Aborted);
    }
    if bench.pair.finished() {
        return ending(&bench, Outcome::Finished);
    }
    // From here on every datagram is the receiver's own: the transfer must complete.
    bench.run_clean(Duration::from_secs(120), &mut told);
    check_events(&bench, &told);
    assert!(
        bench.pair.finished() && bench.sink() == bench.source(),
        "the transfer did not finish on a clean network: {:?} / {:?}, {} of {len} bytes",
        bench.receiver_events(),
        bench.sender_events(),
        bench.ends().receiver.contiguous()
    );
    ending(&bench, Outcome::FinishedClean)
}

/// How the scenario ended, at the sender.
fn ending(bench: &Bench, outcome: Outcome) -> Ending {
    Ending {
        outcome,
        events: bench.sender_events().to_vec(),
        stats: bench
            .ends()
            .sender
            .as_ref()
            .map(|s| s.stats())
            .unwrap_or_default(),
    }
}

impl Watch for Told {
    fn sent(&mut self, ends: &Ends, side: Side, datagram: &Sent) {
        if side == Side::Sender {
            self.check(ends, datagram);
        }
    }

    fn handed(&mut self, side: Side, wire: &[u8], plain: Option<&[u8]>) {
        if side == Side::Sender {
            self.hear(wire, plain, true);
        }
    }
}

/// The sender finishes only when told, and the receiver holds only true bytes.
fn check_events(bench: &Bench, told: &Told) {
    for event in bench.sender_events() {
        if let Event::Finished { total, last_byte } = event {
            assert!(told.done, "the sender finished without a DONE");
            assert_eq!(
                (*total, *last_byte),
                (bench.source().len() as u64, bench.source().last().copied())
            );
        }
    }
    let sink = bench.sink();
    let contiguous = usize::try_from(bench.ends().receiver.contiguous())
        .unwrap_or(usize::MAX)
        .min(sink.len());
    assert!(
        sink[..contiguous] == bench.source()[..contiguous],
        "the receiver holds wrong bytes"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Change, Conn, FirstPn, Resume};
    use crate::choice::End::{Receiver as R, Sender as S};
    use crate::choice::{Number, SuiteChoice};
    use crate::packet::{FrameChoice, PacketChoice, Ranges, Top};
    use crate::sealed::Spoil;

    fn net(op: Net) -> SenderOp {
        SenderOp::Net(op)
    }

    fn setup(len: u16, window: u16) -> Setup {
        Setup {
            len,
            pattern: 3,
            resume: Resume::Start,
            datagram: 252,
            window: window - 1200,
            first_pn: FirstPn::Zero,
            suite: SuiteChoice::Aes256Gcm,
        }
    }

    fn clean(rounds: usize) -> Vec<SenderOp> {
        let round = [
            net(Net::Pump(S)),
            net(Net::Deliver(R)),
            net(Net::Pump(R)),
            net(Net::Deliver(S)),
        ];
        round.iter().cycle().take(4 * rounds).cloned().collect()
    }

    /// An ACK of our connection with a window of 1 TiB acking the top packet numbers, sealed
    /// with the receiver's keys, then spoiled.
    fn ack(spoil: Spoil) -> SenderOp {
        SenderOp::Inject(Injection::Forged {
            conn: Conn::Ours,
            packet: PacketChoice {
                pn: Number(99),
                frame: FrameChoice::Ack {
                    ack_delay_us: 0,
                    max_offset: Number(1 << 40),
                    ranges: Ranges {
                        top: Top::NearMax(0),
                        spans: vec![(2, 3)],
                    },
                },
            },
            spoil,
        })
    }

    fn outcome(setup: Setup, ops: Vec<SenderOp>) -> (Outcome, u64) {
        let ending = transport_sender_ending(&SenderScenario { setup, ops });
        (ending.outcome, ending.stats.packets_rejected)
    }

    #[test]
    fn a_clean_transfer_finishes_while_the_input_runs() {
        assert_eq!(
            outcome(setup(5000, 64_000), clean(12)),
            (Outcome::Finished, 0)
        );
    }

    #[test]
    fn a_lossy_transfer_finishes_on_the_clean_network_after() {
        let mut ops = vec![
            net(Net::Pump(S)),
            net(Net::Deliver(R)),
            net(Net::Pump(R)),
            net(Net::Lose(S)),
            net(Net::Wait(900)),
            net(Net::Pump(S)),
            net(Net::Lose(R)),
            net(Net::Deliver(R)),
            net(Net::Pump(R)),
            net(Net::Duplicate(S)),
            net(Net::Reorder(S, 1)),
            net(Net::Deliver(S)),
        ];
        ops.extend(clean(2));
        let mut setup = setup(8001, 3000);
        setup.resume = Resume::At(100);
        // The duplicated ack is refused as a replay.
        assert_eq!(outcome(setup, ops), (Outcome::FinishedClean, 1));
    }

    #[test]
    fn a_forged_ack_is_hostile() {
        let mut ops = clean(2);
        ops.push(ack(Spoil::Intact));
        ops.extend(clean(12));
        assert_eq!(outcome(setup(5000, 64_000), ops).0, Outcome::Hostile);
    }

    #[test]
    fn spoiled_acks_are_counted_and_change_nothing() {
        let mut ops = clean(2);
        ops.extend([
            ack(Spoil::BitFlipped { at: 20, bit: 1 }),
            ack(Spoil::InClear),
            ack(Spoil::OtherSecret),
            ack(Spoil::Cut { at: 10 }),
            ack(Spoil::Trailing(vec![9])),
        ]);
        ops.extend(clean(12));
        assert_eq!(outcome(setup(5001, 64_000), ops), (Outcome::Finished, 5));
    }

    #[test]
    fn garbage_and_changed_copies_of_acks_are_counted_and_change_nothing() {
        let mut ops = clean(2);
        let copy = |change| SenderOp::Inject(Injection::Copy { which: 0, change });
        ops.extend([
            SenderOp::Inject(Injection::Garbage(vec![2, 4, 0, 0, 0, 0, 0, 0, 0, 0])),
            copy(Change::Xor(4, 4)),
            copy(Change::Cut(4)),
        ]);
        ops.extend(clean(12));
        assert_eq!(outcome(setup(2000, 64_000), ops), (Outcome::Finished, 3));
    }
}
