//! Sending: what goes out next (control frames, probes, lost data, new data), copied from the
//! send buffer and sealed in place, and the bookkeeping of what is in flight.

use super::{Sender, Sent, State};
use crate::AbortReason;
use crate::crypto::TAG_LEN;
use crate::packet::{self, DATA_HEADER_LEN, Frame, HEADER_LEN};
use std::time::Instant;

impl Sender {
    pub(super) fn header(&mut self, frame: Frame<'_>, buf: &mut [u8]) -> Option<usize> {
        let n = self
            .keys
            .seal_packet(self.conn_id, self.next_pn, frame, buf)?;
        self.next_pn += 1;
        self.stats.packets_sent += 1;
        Some(n)
    }

    /// Writes the next datagram to send into `buf` (at least the connection's datagram size)
    /// and returns its length, or `None` when nothing may be sent now.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let sent = self.transmit(now, buf);
        self.note_paused(now);
        sent
    }

    pub(super) fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if let Some(reason) = self.abort.take() {
            return self.header(
                Frame::Abort {
                    reason: reason.code(),
                },
                buf,
            );
        }
        if self.state == State::Closed {
            return None;
        }
        if self.send_hello_ack {
            self.send_hello_ack = false;
            if self.unvalidated_since.is_some() {
                self.unvalidated_since = Some(now);
            }
            self.hello_ack_pn = self.next_pn;
            let frame = Frame::HelloAck {
                total: self.total,
                offset: self.next_offset.min(self.total),
            };
            return self.header(frame, buf);
        }
        if self.send_close {
            self.send_close = false;
            let frame = Frame::Close {
                total: self.total,
                last_byte: self.last_byte(),
            };
            return self.header(frame, buf);
        }
        if self.send_ping {
            self.send_ping = false;
            return self.header(Frame::Ping, buf);
        }
        if self.state != State::Open || self.unvalidated_since.is_some() {
            return None;
        }
        let probing = self.probes > 0;
        if !probing {
            let room = self.in_flight == 0 || self.in_flight + self.mss as u64 <= self.cc.window();
            if !room || !self.has_data() {
                return None;
            }
            let rate = self.cc.pacing_rate(&self.rtt);
            let at = self
                .pacer
                .next_send(now, self.mss as f64, rate, self.mss as f64);
            if at > now {
                self.next_pace = Some(at);
                return None;
            }
        } else {
            self.probes -= 1;
            // A probe must carry something the receiver acks: lost data it has acknowledged
            // since (through another copy) does not count.
            let acked = self.buffer.acked();
            self.retransmit
                .retain(|&(offset, len)| offset + len > acked);
            if !self.has_data() {
                // Probe with the oldest data still unacknowledged, or a ping.
                let unacked = self
                    .sent
                    .values()
                    .filter_map(|s| s.data)
                    .find(|&(offset, len)| offset + len > acked);
                match unacked {
                    Some(range) => self.retransmit.push_front(range),
                    None => {
                        let n = self.header(Frame::Ping, buf)?;
                        self.on_sent(now, n as u64, None);
                        return Some(n);
                    }
                }
            }
        }
        self.send_data(now, buf)
    }

    /// True if there is data we may send: lost data, or new data within flow control.
    pub(super) fn has_data(&self) -> bool {
        !self.retransmit.is_empty() || self.new_data_limit() > self.next_offset
    }

    /// New data may be sent up to here: what the stream has, the receiver allows, the
    /// application has supplied, and the send buffer holds (a receiver that leaves an old
    /// hole unacknowledged cannot make us hold more than [`crate::Config::send_buffer`]).
    fn new_data_limit(&self) -> u64 {
        let held = self.buffer.acked().saturating_add(self.config.send_buffer);
        self.total
            .min(self.max_offset)
            .min(self.buffer.supplied())
            .min(held)
    }

    pub(super) fn send_data(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let room = self
            .mss
            .min(buf.len())
            .checked_sub(HEADER_LEN + DATA_HEADER_LEN + TAG_LEN)? as u64;
        // Lost data first; what the receiver has acknowledged since (through another copy) is
        // not sent again.
        let acked = self.buffer.acked();
        let lost = loop {
            match self.retransmit.pop_front() {
                Some((offset, len)) if offset + len <= acked => continue,
                Some((offset, len)) if offset < acked => break Some((acked, offset + len - acked)),
                other => break other,
            }
        };
        let (offset, len, resend) = match lost {
            Some((offset, len)) => {
                let take = len.min(room);
                if take < len {
                    self.retransmit.push_front((offset + take, len - take));
                }
                (offset, take, true)
            }
            None => {
                let limit = self.new_data_limit();
                let take = limit
                    .checked_sub(self.next_offset)
                    .filter(|n| *n > 0)?
                    .min(room);
                let offset = self.next_offset;
                self.next_offset += take;
                (offset, take, false)
            }
        };
        let pn = self.next_pn;
        let header = packet::encode_data_header(self.conn_id, pn, offset, buf)?;
        let plain = header + len as usize;
        if !self.buffer.copy(offset, buf.get_mut(header..plain)?) {
            // Everything sent is held until acknowledged: this cannot happen.
            self.abort(AbortReason::SourceFailed);
            return self.poll_transmit(now, buf);
        }
        let end = self.keys.seal(buf, plain)?;
        self.next_pn += 1;
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += len;
        if resend {
            self.stats.packets_retransmitted += 1;
        }
        self.on_sent(now, end as u64, Some((offset, len)));
        Some(end)
    }

    pub(super) fn on_sent(&mut self, now: Instant, size: u64, data: Option<(u64, u64)>) {
        if self.in_flight == 0 {
            // Nothing in flight: the delivery rate restarts from here.
            self.delivered_time = now;
            self.first_sent_time = now;
        }
        let app_limited = !self.has_data();
        self.sent.insert(
            self.next_pn - 1,
            Sent {
                time: now,
                size,
                data,
                delivered: self.delivered,
                delivered_time: self.delivered_time,
                first_sent_time: self.first_sent_time,
                app_limited,
            },
        );
        self.in_flight += size;
        self.last_eliciting_sent = Some(now);
        self.pacer.on_sent(size as f64);
    }
}
