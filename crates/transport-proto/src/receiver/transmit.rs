//! What the receiver sends: HELLOs until the sender answers, acks with the window, DONE
//! until the sender has heard it, keepalive pings while paused.

use super::{PAUSED_TRIES, Receiver, State};
use crate::packet::Frame;
use std::time::{Duration, Instant};

impl Receiver {
    /// Writes the next datagram to send into `buf` and returns its length, or `None` when
    /// nothing is due.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if let Some(reason) = self.abort.take() {
            return self.encode(
                Frame::Abort {
                    reason: reason.code(),
                },
                buf,
            );
        }
        if self.state == State::Closed {
            return None;
        }
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = Some(now + self.retry_every);
            // HELLOs and acks back off; DONEs do not: they are tiny and few, and the sender
            // lingers only a few PTOs after the last one it heard.
            if self.state != State::Done {
                self.retry_every = (self.retry_every * 2).min(Duration::from_secs(1));
            }
            self.tries += 1;
            match self.state {
                State::Connecting => {
                    let frame = Frame::Hello {
                        suite: self.keys.suite().code(),
                        offset: self.written.contiguous(),
                        max_offset: self.granted,
                        max_datagram: u16::try_from(self.config.datagram()).unwrap_or(u16::MAX),
                    };
                    // The latest HELLO times the first round trip (a retry restarts it).
                    self.probe_sent = Some(now);
                    return self.encode(frame, buf);
                }
                State::Done => return self.encode(Frame::Done, buf),
                // The sender has not started (or restarted after a pause): repeat the ack and
                // the window it carries.
                State::Open => {
                    self.ack_deadline = Some(now);
                    if self.paused && self.tries >= PAUSED_TRIES {
                        // Paused before data flowed: the keepalive takes over (the sender's
                        // answers to it are acked, with the window).
                        self.retry_at = None;
                    }
                }
                State::Closed => {}
            }
        }
        if self.ack_deadline.is_some_and(|t| now >= t) && !self.received.is_empty() {
            self.ack_deadline = None;
            self.unacked = 0;
            let ack_delay = self
                .largest_time
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
            let frame = Frame::Ack {
                ack_delay_us: u32::try_from(ack_delay.as_micros()).unwrap_or(u32::MAX),
                max_offset: self.granted,
                ranges: self.received.clone(),
            };
            return self.encode(frame, buf);
        }
        if self.ack_deadline.is_some_and(|t| now >= t) {
            // A window change before any packet arrived: say it in a ping-free way, as a HELLO
            // retry would; nothing else to tell.
            self.ack_deadline = None;
        }
        if self.ping_at.is_some_and(|t| now >= t) {
            // Ping every keepalive; once the sender has missed answering one, every second,
            // so that a lossy path does not run into the idle timeout.
            let silent = now.saturating_duration_since(self.last_recv) > self.config.keepalive;
            let next = if silent {
                self.config.keepalive.min(Duration::from_secs(1))
            } else {
                self.config.keepalive
            };
            self.ping_at = Some(now + next);
            self.probe_sent.get_or_insert(now);
            return self.encode(Frame::Ping, buf);
        }
        None
    }

    pub(super) fn encode(&mut self, frame: Frame<'_>, buf: &mut [u8]) -> Option<usize> {
        let n = self
            .keys
            .seal_packet(self.conn_id, self.next_pn, frame, buf)?;
        self.next_pn += 1;
        self.stats.packets_sent += 1;
        Some(n)
    }
}
