//! A live sender among real acks and hostile datagrams.

use crate::Input;
use crate::net::{CONN_ID, Outcome, Pair, Sent, Watch};
use crate::packet::packet_from;
use crate::sealed::{Injected, SECRET, Spoil, receiver_keys};
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
    fn check(&mut self, pair: &Pair, sent: &Sent) {
        let source = &pair.source;
        let len = source.len() as u64;
        if let Some(sender) = &pair.sender {
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

/// A sender fed its receiver's real acks, lost, duplicated, reordered and replayed, plus
/// garbage, well-formed hostile packets (acks of packets never sent, windows of any size,
/// DONEs, ABORTs) sealed with the transfer's keys and then, as the input says, left intact,
/// cut, extended, changed by a bit, sent in clear or sealed with another transfer's keys, and
/// mutated copies of real acks.
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
pub fn transport_sender(data: &[u8]) {
    run(data);
}

/// Runs one input: how it ended, and how many datagrams the end under test rejected.
fn run(data: &[u8]) -> (Outcome, u64) {
    let mut input = Input::new(data);
    let (mut pair, len) = Pair::from_input(&mut input);
    let mut told = Told::default();
    // What the receiver's keys seal: what an attacker who knows the secret could send.
    let forger = receiver_keys(&SECRET, pair.suite());
    // The receiver's HELLO opens the sender.
    pair.pump_receiver();
    if let Some(hello) = pair.to_sender.pop_front() {
        let plain = pair.deliver_to_sender(&hello);
        told.hear(&hello, plain.as_deref(), true);
    }
    assert!(
        pair.sender.is_some(),
        "the receiver's HELLO did not open the sender"
    );
    let mut recent: Vec<Vec<u8>> = Vec::new();
    for _ in 0..500 {
        if input.is_empty() {
            break;
        }
        match input.u8() % 13 {
            0 | 1 => {
                for sent in pair.pump_sender() {
                    told.check(&pair, &sent);
                }
            }
            2 => {
                for sent in pair.pump_receiver() {
                    if recent.len() == 16 {
                        recent.remove(0);
                    }
                    recent.push(sent.wire);
                }
            }
            3 => {
                if let Some(d) = pair.to_receiver.pop_front() {
                    pair.deliver_to_receiver(&d);
                }
            }
            4 => {
                if let Some(d) = pair.to_sender.pop_front() {
                    let plain = pair.deliver_to_sender(&d);
                    told.hear(&d, plain.as_deref(), true);
                }
            }
            5 => {
                pair.to_receiver.pop_front();
            }
            6 => {
                pair.to_sender.pop_front();
            }
            7 => {
                if let Some(d) = pair.to_sender.front().cloned() {
                    pair.to_sender.push_back(d);
                }
            }
            8 => {
                if let Some(d) = pair.to_sender.pop_front() {
                    let at = input.below(pair.to_sender.len() as u64 + 1) as usize;
                    pair.to_sender.insert(at, d);
                }
            }
            9 => pair.advance(Duration::from_millis(input.below(3000))),
            10 => {
                let datagram = input.chunk(1500).to_vec();
                let plain = pair.deliver_to_sender(&datagram);
                told.hear(&datagram, plain.as_deref(), false);
            }
            11 => {
                let conn_id = if input.bool() { CONN_ID } else { input.u64() };
                let forged = packet_from(&mut input, conn_id);
                let injected = Injected::from_input(&mut input, &forger, Role::Receiver, &forged);
                let plain = pair.deliver_to_sender(&injected.wire);
                assert!(
                    injected.spoil == Spoil::Intact || plain.is_none(),
                    "a packet {:?} opened at the sender: {forged:?}",
                    injected.spoil
                );
                told.hear(&injected.wire, plain.as_deref(), false);
            }
            _ => {
                if !recent.is_empty() {
                    let original = &recent[input.below(recent.len() as u64) as usize];
                    let d = changed_copy(&mut input, original);
                    let plain = pair.deliver_to_sender(&d);
                    // An exact copy is the network's duplicate; any other change is refused.
                    let same = d == *original;
                    assert!(
                        same || plain.is_none(),
                        "a changed ack opened at the sender"
                    );
                    told.hear(&d, plain.as_deref(), same);
                }
            }
        }
        if let Some(sender) = &pair.sender {
            let _ = sender.stats();
            assert!(
                told.proven || !sender.is_address_proven(),
                "the address counts as proven before any ack opened"
            );
        }
    }
    check_events(&pair, &told);
    if told.hostile {
        return (Outcome::Hostile, rejected(&pair));
    }
    if pair.aborted() {
        return (Outcome::Aborted, rejected(&pair));
    }
    if pair.finished() {
        return (Outcome::Finished, rejected(&pair));
    }
    // From here on every datagram is the receiver's own: the transfer must complete.
    pair.run_clean(Duration::from_secs(120), &mut told);
    check_events(&pair, &told);
    assert!(
        pair.finished() && pair.sink == pair.source,
        "the transfer did not finish on a clean network: {:?} / {:?}, {} of {len} bytes",
        pair.receiver_events,
        pair.sender_events,
        pair.receiver.contiguous()
    );
    (Outcome::FinishedClean, rejected(&pair))
}

/// Datagrams the end under test rejected.
fn rejected(pair: &Pair) -> u64 {
    pair.sender
        .as_ref()
        .map_or(0, |s| s.stats().packets_rejected)
}

impl Watch for Told {
    fn sent(&mut self, pair: &Pair, datagram: &Sent) {
        self.check(pair, datagram);
    }

    fn heard(&mut self, wire: &[u8], plain: Option<&[u8]>) {
        self.hear(wire, plain, true);
    }
}

/// A copy of a datagram one end sent, as the input says: the same (a replay, or a duplicate
/// the network made), cut, or with a byte changed.
pub(crate) fn changed_copy(input: &mut Input<'_>, original: &[u8]) -> Vec<u8> {
    let mut d = original.to_vec();
    let at = input.below(d.len() as u64) as usize;
    match (input.u8() % 4, d.get_mut(at)) {
        (1, _) => d.truncate(at),
        (2, Some(byte)) => *byte ^= input.u8().max(1),
        (3, Some(byte)) => *byte = input.u8(),
        _ => {}
    }
    d
}

/// The sender finishes only when told, and the receiver holds only true bytes.
fn check_events(pair: &Pair, told: &Told) {
    for event in &pair.sender_events {
        if let Event::Finished { total, last_byte } = event {
            assert!(told.done, "the sender finished without a DONE");
            assert_eq!(
                (*total, *last_byte),
                (pair.source.len() as u64, pair.source.last().copied())
            );
        }
    }
    let sink = &pair.sink;
    let contiguous = usize::try_from(pair.receiver.contiguous())
        .unwrap_or(usize::MAX)
        .min(sink.len());
    assert!(
        sink[..contiguous] == pair.source[..contiguous],
        "the receiver holds wrong bytes"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_reach_the_end_they_were_written_for() {
        let outcomes: Vec<(&str, Outcome, u64)> = crate::seeds::transport_sender()
            .iter()
            .map(|(name, input)| {
                let (outcome, rejected) = run(input);
                (*name, outcome, rejected)
            })
            .collect();
        assert_eq!(
            outcomes,
            vec![
                ("clean", Outcome::Finished, 0),
                ("lossy", Outcome::FinishedClean, 0),
                ("forged-ack", Outcome::Hostile, 0),
                ("spoiled-acks", Outcome::Finished, 5),
                ("garbage", Outcome::Finished, 4),
            ]
        );
    }
}
