//! A live receiver among real packets and garbage.

use crate::Input;
use crate::net::{CONN_ID, Outcome, Pair};
use crate::packet::packet_from;
use crate::sealed::{Injected, SECRET, Spoil, sender_keys};
use crate::sender::changed_copy;
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

/// A receiver fed its sender's real packets, dropped, duplicated, reordered, replayed and
/// delayed, with garbage, packets built from the input (sealed with the sender's keys, then
/// left intact, cut, extended, changed by a bit, sent in clear or sealed with another
/// transfer's keys) and mutated copies of real packets in between, and paused and resumed by
/// its application, all as the input says.
///
/// Checks: every datagram the sender sends opens with the receiver's keys, its packet number
/// never used before, and tells the truth; no datagram opens at the receiver unless it is
/// exactly what the sender's keys sealed, and the receiver counts every one that does not.
/// Unless a forged packet got in, the receiver's sink holds the true stream up to
/// [`transport::Receiver::contiguous`] and nothing but zeros or true bytes beyond, and a
/// finished transfer has the whole stream and its true last byte. Unless a packet that opened
/// was injected or an end gave up, the transfer then finishes on a clean network: loss,
/// duplication, reordering, replays, pauses, garbage and spoiled packets never leave it stuck.
pub fn transport_receiver(data: &[u8]) {
    run(data);
}

/// Runs one input: how it ended, and how many datagrams the end under test rejected.
fn run(data: &[u8]) -> (Outcome, u64) {
    let mut input = Input::new(data);
    let (mut pair, len) = Pair::from_input(&mut input);
    if input.u8() < 64 {
        pair.receiver.set_pause_at(Some(input.below(len + 1)));
    }
    let mut forged = false;
    let mut spoofed = false;
    // What the sender's keys seal: what an attacker who knows the secret could send.
    let forger = sender_keys(&SECRET, pair.suite());
    let mut recent: Vec<Vec<u8>> = Vec::new();
    for _ in 0..500 {
        if input.is_empty() {
            break;
        }
        match input.u8() % 13 {
            0 | 1 => {
                for sent in pair.pump_sender() {
                    assert_ne!(
                        classify(Some(&sent.plain), &pair.source),
                        Effect::Forged,
                        "the sender sent a lie"
                    );
                    if recent.len() == 16 {
                        recent.remove(0);
                    }
                    recent.push(sent.wire);
                }
                pair.pump_receiver();
            }
            2 => {
                if let Some(d) = pair.to_receiver.pop_front() {
                    pair.deliver_to_receiver(&d);
                }
            }
            3 => {
                if let Some(d) = pair.to_sender.pop_front() {
                    pair.deliver_to_sender(&d);
                }
            }
            4 => {
                pair.to_receiver.pop_front();
            }
            5 => {
                pair.to_sender.pop_front();
            }
            6 => {
                if let Some(d) = pair.to_receiver.front().cloned() {
                    pair.to_receiver.push_back(d);
                }
            }
            7 => {
                if let Some(d) = pair.to_receiver.pop_front() {
                    let at = input.below(pair.to_receiver.len() as u64 + 1) as usize;
                    pair.to_receiver.insert(at, d);
                }
            }
            8 => pair.advance(Duration::from_millis(input.below(3000))),
            9 | 10 => {
                // Whether the datagram must not open, and whether it is a real one.
                let (datagram, spoiled, real) = if input.bool() || recent.is_empty() {
                    (input.chunk(1500).to_vec(), false, false)
                } else if input.u8() < 64 {
                    // Well-formed, often of our connection, with fields at their edges.
                    let conn_id = if input.bool() { CONN_ID } else { input.u64() };
                    let packet = packet_from(&mut input, conn_id);
                    let injected = Injected::from_input(&mut input, &forger, Role::Sender, &packet);
                    (injected.wire, injected.spoil != Spoil::Intact, false)
                } else {
                    let original = &recent[input.below(recent.len() as u64) as usize];
                    let d = changed_copy(&mut input, original);
                    let same = d == *original;
                    (d, !same, same)
                };
                let plain = pair.deliver_to_receiver(&datagram);
                assert!(
                    !spoiled || plain.is_none(),
                    "a spoiled datagram opened at the receiver: {datagram:02x?}"
                );
                match classify(plain.as_deref(), &pair.source) {
                    _ if real => {}
                    Effect::Harmless => {}
                    Effect::Spoofed => spoofed = true,
                    Effect::Forged => forged = true,
                }
            }
            11 => {
                let now = pair.now;
                match input.u8() % 3 {
                    0 => pair.receiver.set_paused(now, true),
                    1 => pair.receiver.set_paused(now, false),
                    _ => pair.receiver.set_pause_at(Some(input.below(len + 1))),
                }
            }
            _ => {
                // A good stretch of network: everything queued arrives, both ways.
                while let Some(d) = pair.to_receiver.pop_front() {
                    pair.deliver_to_receiver(&d);
                }
                while let Some(d) = pair.to_sender.pop_front() {
                    pair.deliver_to_sender(&d);
                }
            }
        }
        // Whatever the input did, the statistics stay readable.
        let _ = (pair.receiver.stats(), pair.receiver.received_bytes());
    }
    if forged {
        return (Outcome::Hostile, rejected(&pair));
    }
    check_sink(&pair);
    if spoofed {
        return (Outcome::Hostile, rejected(&pair));
    }
    if pair.aborted() {
        return (Outcome::Aborted, rejected(&pair));
    }
    if pair.finished() {
        return (Outcome::Finished, rejected(&pair));
    }
    let now = pair.now;
    pair.receiver.set_pause_at(None);
    pair.receiver.set_paused(now, false);
    pair.run_clean(Duration::from_secs(120), &mut ());
    check_sink(&pair);
    assert!(
        pair.finished(),
        "the transfer did not finish on a clean network: {:?} / {:?}, {} of {len} bytes",
        pair.receiver_events,
        pair.sender_events,
        pair.receiver.contiguous()
    );
    (Outcome::FinishedClean, rejected(&pair))
}

/// Datagrams the end under test rejected.
fn rejected(pair: &Pair) -> u64 {
    pair.receiver.stats().packets_rejected
}

/// The receiver's sink holds nothing but the true stream.
fn check_sink(pair: &Pair) {
    let source = &pair.source;
    let sink = &pair.sink;
    assert!(
        sink.len() <= source.len(),
        "{} bytes written of a {}-byte stream",
        sink.len(),
        source.len()
    );
    let contiguous = usize::try_from(pair.receiver.contiguous())
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
    for event in &pair.receiver_events {
        match event {
            Event::Finished { total, last_byte } => {
                assert_eq!(*total, source.len() as u64);
                // A receiver that resumed at the end and lost every CLOSE cannot know it.
                let unknowable = pair.resumed_at_end() && last_byte.is_none();
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

    #[test]
    fn the_seeds_reach_the_end_they_were_written_for() {
        let outcomes: Vec<(&str, Outcome, u64)> = crate::seeds::transport_receiver()
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
                ("garbage", Outcome::Finished, 4),
                ("replays", Outcome::Finished, 3),
                ("forged-data", Outcome::Hostile, 0),
                ("pause-at", Outcome::Finished, 0),
            ]
        );
    }
}
