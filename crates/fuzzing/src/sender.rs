//! A live sender among real acks and hostile datagrams.

use crate::Input;
use crate::net::{CONN_ID, Outcome, Pair, Watch};
use crate::packet::packet_from;
use std::time::Duration;
use transport::Event;
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
    /// Something other than the receiver sent a HELLO, ACK, DONE or ABORT of our connection:
    /// the transfer may stall or end, as the protocol allows such a peer to make it.
    hostile: bool,
}

impl Told {
    fn hear(&mut self, datagram: &[u8], from_receiver: bool) {
        self.bytes_in += datagram.len() as u64;
        let Ok(p) = packet::decode(datagram) else {
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
            Frame::Abort { .. } => {}
            Frame::HelloAck { .. } | Frame::Data { .. } | Frame::Close { .. } | Frame::Ping => {
                return;
            }
        }
        self.hostile |= !from_receiver;
    }

    /// Checks one datagram the sender sent.
    fn check(&mut self, pair: &Pair, datagram: &[u8]) {
        let source = &pair.source;
        let len = source.len() as u64;
        if let Some(sender) = &pair.sender {
            assert!(datagram.len() <= sender.max_datagram());
        }
        let packet = match packet::decode(datagram) {
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
            self.bytes_out_unproven += datagram.len() as u64;
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

/// A sender fed its receiver's real acks, lost, duplicated and reordered, plus garbage,
/// well-formed hostile packets (acks of packets never sent, windows of any size, DONEs,
/// ABORTs) and mutated copies of real acks, as the input says.
///
/// Checks, on every datagram the sender sends: it decodes, belongs to the connection and fits
/// the datagram size; DATA carries the source's true bytes, inside the stream and inside the
/// largest window anyone announced, and only once an ack proved the peer's address; before
/// that, the sender sends nothing but HELLO_ACKs, fewer bytes than it received. It finishes only after a DONE.
/// Unless a hostile packet of the connection got in, the transfer then finishes on a clean
/// network: garbage that is not of the connection changes nothing.
pub fn transport_sender(data: &[u8]) {
    run(data);
}

fn run(data: &[u8]) -> Outcome {
    let mut input = Input::new(data);
    let (mut pair, len) = Pair::from_input(&mut input);
    let mut told = Told::default();
    // The receiver's HELLO opens the sender.
    for hello in pair.pump_receiver() {
        told.hear(&hello, true);
    }
    if let Some(hello) = pair.to_sender.pop_front() {
        pair.deliver_to_sender(&hello);
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
                for datagram in pair.pump_sender() {
                    told.check(&pair, &datagram);
                }
            }
            2 => {
                for datagram in pair.pump_receiver() {
                    if recent.len() == 16 {
                        recent.remove(0);
                    }
                    recent.push(datagram);
                }
            }
            3 => {
                if let Some(d) = pair.to_receiver.pop_front() {
                    pair.deliver_to_receiver(&d);
                }
            }
            4 => {
                if let Some(d) = pair.to_sender.pop_front() {
                    told.hear(&d, true);
                    pair.deliver_to_sender(&d);
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
                told.hear(&datagram, false);
                pair.deliver_to_sender(&datagram);
            }
            11 => {
                let conn_id = if input.bool() { CONN_ID } else { input.u64() };
                let forged = packet_from(&mut input, conn_id);
                let mut buf = vec![0u8; 2048];
                if let Some(n) = packet::encode(&forged, &mut buf) {
                    told.hear(&buf[..n], false);
                    pair.deliver_to_sender(&buf[..n]);
                }
            }
            _ => {
                if !recent.is_empty() {
                    let mut d = recent[input.below(recent.len() as u64) as usize].clone();
                    let at = input.below(d.len() as u64) as usize;
                    match input.u8() % 3 {
                        0 => d.truncate(at),
                        1 => d[at] ^= input.u8().max(1),
                        _ => d[at] = input.u8(),
                    }
                    told.hear(&d, false);
                    pair.deliver_to_sender(&d);
                }
            }
        }
        if let Some(sender) = &pair.sender {
            let _ = sender.stats();
        }
    }
    check_events(&pair, &told);
    if told.hostile {
        return Outcome::Hostile;
    }
    if pair.aborted() {
        return Outcome::Aborted;
    }
    if pair.finished() {
        return Outcome::Finished;
    }
    // From here on every datagram is the receiver's own: the transfer must complete.
    pair.run_clean(Duration::from_secs(120), &mut told);
    check_events(&pair, &told);
    assert!(
        pair.finished() && *pair.receiver.sink() == pair.source,
        "the transfer did not finish on a clean network: {:?} / {:?}, {} of {len} bytes",
        pair.receiver_events,
        pair.sender_events,
        pair.receiver.contiguous()
    );
    Outcome::FinishedClean
}

impl Watch for Told {
    fn sent(&mut self, pair: &Pair, datagram: &[u8]) {
        self.check(pair, datagram);
    }

    fn heard(&mut self, datagram: &[u8]) {
        self.hear(datagram, true);
    }
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
    let sink = pair.receiver.sink();
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
        let outcomes: Vec<(&str, Outcome)> = crate::seeds::transport_sender()
            .iter()
            .map(|(name, input)| (*name, run(input)))
            .collect();
        assert_eq!(
            outcomes,
            vec![
                ("clean", Outcome::Finished),
                ("lossy", Outcome::FinishedClean),
                ("forged-ack", Outcome::Hostile),
                ("garbage", Outcome::Finished),
            ]
        );
    }
}
