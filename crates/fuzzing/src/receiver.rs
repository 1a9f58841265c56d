//! A live receiver among real packets and garbage.

use crate::Input;
use crate::net::{CONN_ID, Outcome, Pair};
use crate::packet::packet_from;
use std::time::Duration;
use transport::Event;
use transport::packet::{self, Frame};

/// What an injected datagram may do to the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Injected {
    /// Nothing: undecodable, another connection's, or a kind the receiver ignores.
    Harmless,
    /// A packet of our connection that is true to the stream (a cut copy of a real DATA packet,
    /// a real packet under another packet number, an ABORT). It may stall the transfer for
    /// good: the receiver acks its packet number, and if that number is one the sender used
    /// for a packet that was lost, the sender takes the lost bytes as delivered (DATA carries
    /// no length and packets no authentication, so nothing can tell such a packet from the
    /// real one). It must never corrupt the stream.
    Spoofed,
    /// A well-formed lie about the stream for our connection (wrong bytes, wrong length): the
    /// protocol cannot tell it from the truth, the download's hash catches it.
    Forged,
}

fn classify(datagram: &[u8], source: &[u8]) -> Injected {
    let Ok(packet) = packet::decode(datagram) else {
        return Injected::Harmless;
    };
    if packet.conn_id != CONN_ID {
        return Injected::Harmless;
    }
    let len = source.len() as u64;
    let true_to_stream = match packet.frame {
        Frame::Data { offset, payload } => {
            let end = offset.saturating_add(payload.len() as u64);
            end <= len && source[offset as usize..end as usize] == *payload
        }
        Frame::HelloAck { total, .. } => total == len,
        Frame::Close { total, last_byte } => total == len && last_byte == source.last().copied(),
        Frame::Abort { .. } | Frame::Ping => true,
        Frame::Hello { .. } | Frame::Ack { .. } | Frame::Done => return Injected::Harmless,
    };
    if true_to_stream {
        Injected::Spoofed
    } else {
        Injected::Forged
    }
}

/// A receiver fed its sender's real packets, dropped, duplicated, reordered and delayed, with
/// garbage and mutated copies of real packets in between, and paused and resumed by its
/// application, all as the input says.
///
/// Checks: unless a forged packet got in, the receiver's sink holds the true stream up to
/// [`transport::Receiver::contiguous`] and nothing but zeros or true bytes beyond, and a
/// finished transfer has the whole stream and its true last byte. Unless a packet of the
/// connection was spoofed or an end gave up, the transfer then finishes on a clean network:
/// loss, duplication, reordering, pauses and garbage never leave it stuck.
pub fn transport_receiver(data: &[u8]) {
    run(data);
}

fn run(data: &[u8]) -> Outcome {
    let mut input = Input::new(data);
    let (mut pair, len) = Pair::from_input(&mut input);
    if input.u8() < 64 {
        pair.receiver.set_pause_at(Some(input.below(len + 1)));
    }
    let mut forged = false;
    let mut spoofed = false;
    let mut recent: Vec<Vec<u8>> = Vec::new();
    for _ in 0..500 {
        if input.is_empty() {
            break;
        }
        match input.u8() % 13 {
            0 | 1 => {
                for datagram in pair.pump_sender() {
                    assert_ne!(
                        classify(&datagram, &pair.source),
                        Injected::Forged,
                        "the sender sent a lie"
                    );
                    if recent.len() == 16 {
                        recent.remove(0);
                    }
                    recent.push(datagram);
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
                let datagram = if input.bool() || recent.is_empty() {
                    input.chunk(1500).to_vec()
                } else if input.u8() < 64 {
                    // Well-formed, often of our connection, with fields at their edges.
                    let conn_id = if input.bool() { CONN_ID } else { input.u64() };
                    let packet = packet_from(&mut input, conn_id);
                    let mut buf = vec![0u8; 2048];
                    let n = packet::encode(&packet, &mut buf).unwrap_or(0);
                    buf.truncate(n);
                    buf
                } else {
                    let mut d = recent[input.below(recent.len() as u64) as usize].clone();
                    let at = input.below(d.len() as u64) as usize;
                    match input.u8() % 3 {
                        0 => d.truncate(at),
                        1 => d[at] ^= input.u8().max(1),
                        _ => d[at] = input.u8(),
                    }
                    d
                };
                match classify(&datagram, &pair.source) {
                    Injected::Harmless => {}
                    Injected::Spoofed => spoofed = true,
                    Injected::Forged => forged = true,
                }
                pair.deliver_to_receiver(&datagram);
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
        return Outcome::Hostile;
    }
    check_sink(&pair);
    if spoofed {
        return Outcome::Hostile;
    }
    if pair.aborted() {
        return Outcome::Aborted;
    }
    if pair.finished() {
        return Outcome::Finished;
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
    Outcome::FinishedClean
}

/// The receiver's sink holds nothing but the true stream.
fn check_sink(pair: &Pair) {
    let source = &pair.source;
    let sink = pair.receiver.sink();
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
        let outcomes: Vec<(&str, Outcome)> = crate::seeds::transport_receiver()
            .iter()
            .map(|(name, input)| (*name, run(input)))
            .collect();
        assert_eq!(
            outcomes,
            vec![
                ("clean", Outcome::Finished),
                ("lossy", Outcome::FinishedClean),
                ("garbage", Outcome::Finished),
                ("pause-at", Outcome::Finished),
            ]
        );
    }
}
