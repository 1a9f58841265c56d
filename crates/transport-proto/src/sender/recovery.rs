//! Loss recovery: acks, flow control from them, loss detection and the probe timeout
//! (RFC 9002), and the delivery-rate samples the congestion controller learns from.

use super::{LOST_MEMORY, MAX_ACK_DELAY, MAX_PTO, STALE_ACK_DELAY, Sender, Sent};
use crate::cc::AckSample;
use std::time::{Duration, Instant};

impl Sender {
    /// Flow control comes in acks, which may be reordered: only the newest counts. It may
    /// shrink: that is how the receiver pauses.
    pub(super) fn update_flow(&mut self, pn: u64, max_offset: u64) {
        if pn >= self.flow_pn {
            self.flow_pn = pn;
            self.max_offset = max_offset;
        }
    }

    pub(super) fn on_ack(&mut self, now: Instant, ack_delay: Duration, ranges: &[(u64, u64)]) {
        let Some(&(_, largest)) = ranges.first() else {
            return;
        };
        let mut newly: Vec<(u64, Sent)> = Vec::new();
        // Ranges come newest first: stop at the first one older than anything we still track.
        let oldest = match (self.sent.keys().next(), self.lost.first()) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) | (None, Some(&a)) => a,
            (None, None) => u64::MAX,
        };
        // Most ranges repeat the previous ack's: those were handled then.
        let prev = std::mem::replace(&mut self.prev_ranges, ranges.to_vec());
        let mut j = 0;
        for &(start, end) in ranges {
            if end < oldest {
                break;
            }
            while prev.get(j).is_some_and(|&(s, _)| s > start) {
                j += 1;
            }
            if prev.get(j).is_some_and(|&(_, e)| e >= end) {
                continue;
            }
            let pns: Vec<u64> = self.sent.range(start..=end).map(|(pn, _)| *pn).collect();
            for pn in pns {
                if let Some(sent) = self.sent.remove(&pn) {
                    newly.push((pn, sent));
                }
            }
            let spurious: Vec<u64> = self.lost.range(start..=end).copied().collect();
            for pn in spurious {
                self.lost.remove(&pn);
                self.stats.spurious_retransmits += 1;
            }
        }
        if newly.is_empty() {
            return;
        }
        self.largest_acked = Some(self.largest_acked.map_or(largest, |l| l.max(largest)));
        newly.sort_by_key(|(pn, _)| *pn);
        if let Some((pn, sent)) = newly.last()
            && *pn == largest
        {
            // An ack the receiver repeated on a timer (handshake, pause, finish) can be seconds old
            // and says nothing about the path: no sample from it.
            if ack_delay <= STALE_ACK_DELAY {
                self.rtt
                    .update(now.saturating_duration_since(sent.time), ack_delay);
            }
        }
        for (_, sent) in &newly {
            self.in_flight = self.in_flight.saturating_sub(sent.size);
            if let Some((offset, len)) = sent.data {
                self.stats.bytes_delivered += len;
                self.buffer.on_acked(offset, offset + len);
            }
        }
        self.pto_count = 0;
        // What this ack shows lost goes to the controller before what it shows delivered: the
        // losses belong to the round trip this ack may be the last of.
        self.detect_lost(now);
        for (_, sent) in &newly {
            self.delivered += sent.size;
            self.delivered_time = now;
            self.first_sent_time = sent.time;
            let sample = AckSample {
                sent: sent.time,
                bytes: sent.size,
                delivered: self.delivered,
                delivered_at_send: sent.delivered,
                delivered_time_at_send: sent.delivered_time,
                first_sent_at_send: sent.first_sent_time,
                app_limited: sent.app_limited,
            };
            self.cc.on_ack(now, &sample, &self.rtt, self.in_flight);
        }
        self.cc.on_acks_done();
    }

    /// Declares lost what the acks have passed by three packets or by 9/8 RTT (RFC 9002).
    pub(super) fn detect_lost(&mut self, now: Instant) {
        self.loss_time = None;
        let Some(largest) = self.largest_acked else {
            return;
        };
        let delay = self.rtt.loss_delay();
        let mut lost = Vec::new();
        for (&pn, sent) in self.sent.range(..largest) {
            if largest - pn >= 3 || now.saturating_duration_since(sent.time) >= delay {
                lost.push(pn);
            } else {
                self.loss_time = Some(sent.time + delay);
                break;
            }
        }
        let mut newest_lost = None;
        let mut lost_bytes = 0;
        for pn in lost {
            let Some(sent) = self.sent.remove(&pn) else {
                continue;
            };
            self.in_flight = self.in_flight.saturating_sub(sent.size);
            self.stats.packets_lost += 1;
            lost_bytes += sent.size;
            if let Some(range) = sent.data {
                self.retransmit.push_back(range);
            }
            self.lost.insert(pn);
            if self.lost.len() > LOST_MEMORY {
                self.lost.pop_first();
            }
            newest_lost = Some(sent.time);
        }
        // The controller says which losses are congestion; the others (a lossy radio, say)
        // are resent and otherwise ignored.
        if let Some(sent_time) = newest_lost
            && self.cc.loss_is_congestion(&self.rtt)
        {
            self.cc.on_loss(now, sent_time, lost_bytes, self.in_flight);
        }
    }

    pub(super) fn pto_deadline(&self) -> Option<Instant> {
        if self.in_flight == 0 {
            return None;
        }
        // Exponential backoff (RFC 9002 6.2.1), capped so that a run of lost probes never
        // leaves the peer silent for as long as its idle timeout.
        let base = self.rtt.pto(MAX_ACK_DELAY);
        let cap = base.max(MAX_PTO).min(self.config.idle_timeout / 4);
        let pto = (base * 2u32.saturating_pow(self.pto_count.min(10))).min(cap);
        self.last_eliciting_sent.map(|t| t + pto)
    }
}
