//! The packet numbers the receiver has seen, as the ack ranges it sends (newest first,
//! at most [`MAX_ACK_RANGES`] of them), and the round-trip samples its probes give.

use super::{ACK_DELAY, ACK_EVERY, Receiver};
use crate::packet::MAX_ACK_RANGES;
use std::time::{Duration, Instant};

impl Receiver {
    /// Closes the outstanding RTT probe, if any, with a sample.
    pub(super) fn rtt_sample(&mut self, now: Instant) {
        if let Some(sent) = self.probe_sent.take() {
            self.rtt
                .update(now.saturating_duration_since(sent), Duration::ZERO);
        }
    }

    /// Records an ack-eliciting packet number.
    pub(super) fn on_packet(&mut self, now: Instant, pn: u64) {
        let largest = self.received.first().map(|r| r.1);
        let seen = self
            .received
            .iter()
            .any(|&(start, end)| start <= pn && pn <= end);
        // A peer may send any packet number, u64::MAX included: no arithmetic may overflow.
        match largest {
            Some(l) if pn > l.saturating_add(1) => {
                self.missing = self.missing.saturating_add(pn - l - 1);
            }
            Some(l) if pn < l && !seen => self.missing = self.missing.saturating_sub(1),
            _ => {}
        }
        let in_order = largest.is_none_or(|l| l.checked_add(1) == Some(pn));
        insert_pn(&mut self.received, pn);
        if largest.is_none_or(|l| pn > l) {
            self.largest_time = Some(now);
        }
        self.unacked += 1;
        if !in_order || self.unacked >= ACK_EVERY {
            self.ack_deadline = Some(now); // out of order: tell the sender at once
        } else if self.ack_deadline.is_none() {
            self.ack_deadline = Some(now + ACK_DELAY);
        }
    }
}

/// Adds packet number `pn` to `ranges` (highest first), keeping at most the newest
/// [`MAX_ACK_RANGES`].
pub(super) fn insert_pn(ranges: &mut Vec<(u64, u64)>, pn: u64) {
    // The first range starting at or below `pn` (ranges are sorted highest first).
    let i = ranges
        .iter()
        .position(|&(start, _)| start <= pn)
        .unwrap_or(ranges.len());
    if ranges.get(i).is_some_and(|&(_, end)| pn <= end) {
        return; // a duplicate
    }
    let joins_below = ranges.get(i).is_some_and(|&(_, end)| end + 1 == pn);
    let joins_above = i > 0 && ranges[i - 1].0 == pn + 1;
    match (joins_below, joins_above) {
        (true, true) => {
            ranges[i - 1].0 = ranges[i].0;
            ranges.remove(i);
        }
        (true, false) => ranges[i].1 = pn,
        (false, true) => ranges[i - 1].0 = pn,
        (false, false) => ranges.insert(i, (pn, pn)),
    }
    ranges.truncate(MAX_ACK_RANGES);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges_of(pns: &[u64]) -> Vec<(u64, u64)> {
        let mut ranges = Vec::new();
        for &pn in pns {
            insert_pn(&mut ranges, pn);
        }
        ranges
    }

    #[test]
    fn packet_numbers_become_ranges_highest_first() {
        assert_eq!(ranges_of(&[0, 1, 2]), vec![(0, 2)]);
        assert_eq!(ranges_of(&[0, 1, 5, 6, 3]), vec![(5, 6), (3, 3), (0, 1)]);
        assert_eq!(ranges_of(&[0, 2, 1]), vec![(0, 2)]);
        assert_eq!(ranges_of(&[5, 3, 4, 4]), vec![(3, 5)]);
        assert_eq!(
            ranges_of(&[10, 2, 6, 4]),
            vec![(10, 10), (6, 6), (4, 4), (2, 2)]
        );
        assert_eq!(ranges_of(&[4, 6, 5]), vec![(4, 6)]);
    }

    #[test]
    fn ranges_are_capped_to_the_newest() {
        let pns: Vec<u64> = (0..200).map(|i| i * 2).collect();
        let ranges = ranges_of(&pns);
        assert_eq!(ranges.len(), MAX_ACK_RANGES);
        assert_eq!(ranges[0], (398, 398));
    }
}
