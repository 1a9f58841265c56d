//! Which bytes of a stream are here: a contiguous prefix plus the islands beyond it.
//!
//! Data can arrive in any order, so a receiver (and the file it writes) holds a prefix that
//! grows and, past it, disjoint islands that wait for the holes between them to fill. A hostile
//! sender can make as many islands as it sends packets (one byte at every other offset), so
//! adding a range costs O(log n) whatever the number of islands, and the number of islands is
//! bounded: a range that would start one island too many is refused, and the caller drops it.

use std::collections::BTreeMap;

/// A contiguous prefix `[.., contiguous)` plus disjoint islands beyond it, none touching
/// another or the prefix.
#[derive(Debug, Clone)]
pub struct RangeSet {
    contiguous: u64,
    /// start -> end of each island.
    islands: BTreeMap<u64, u64>,
    /// Bytes in the islands, kept as they change so that totals cost nothing.
    island_bytes: u64,
    max_islands: usize,
}

/// [`RangeSet::insert`] refused a range: it would have started an island past the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many holes: at most {max} islands of data wait beyond the prefix")]
pub struct TooFragmented {
    /// The bound.
    pub max: usize,
}

impl RangeSet {
    /// Islands a receiver keeps by default. An honest sender leaves at most one hole per lost
    /// packet in flight: 64 MiB of window in 1200-byte datagrams with every other one lost
    /// is about 28,000. Each island costs a few dozen bytes.
    pub const DEFAULT_MAX_ISLANDS: usize = 1 << 16;

    /// A set holding `[0, contiguous)` (the bytes before `contiguous` are already here) that
    /// keeps at most `max_islands` islands.
    pub fn starting_at(contiguous: u64, max_islands: usize) -> Self {
        Self {
            contiguous,
            islands: BTreeMap::new(),
            island_bytes: 0,
            max_islands,
        }
    }

    /// End of the prefix: every byte below it is here.
    pub fn contiguous(&self) -> u64 {
        self.contiguous
    }

    /// Bytes here in all, prefix and islands.
    pub fn total(&self) -> u64 {
        self.contiguous + self.island_bytes
    }

    /// The end of the furthest byte here.
    pub fn highest(&self) -> u64 {
        self.islands
            .last_key_value()
            .map_or(self.contiguous, |(_, &end)| end.max(self.contiguous))
    }

    /// Islands beyond the prefix.
    pub fn islands(&self) -> usize {
        self.islands.len()
    }

    /// Lowers the prefix to `end` (when it turns out the stream is shorter), dropping what lies
    /// beyond.
    pub fn truncate(&mut self, end: u64) {
        if end < self.contiguous {
            self.contiguous = end;
        }
        let beyond = self.islands.split_off(&end);
        self.island_bytes -= beyond.iter().map(|(s, e)| e - s).sum::<u64>();
        if let Some((&start, last)) = self.islands.iter_mut().next_back()
            && *last > end
        {
            self.island_bytes -= *last - end;
            *last = end;
            if start >= end {
                self.islands.remove(&start);
            }
        }
    }

    /// Adds `[start, end)`, merging it with the prefix and any islands it overlaps or touches.
    /// Costs O(log n) plus one step per island it swallows. Refuses (and changes nothing) a range
    /// that would start a new island when there are already `max_islands`.
    pub fn insert(&mut self, start: u64, end: u64) -> Result<(), TooFragmented> {
        let mut start = start.max(self.contiguous);
        let mut end = end;
        if end <= start {
            return Ok(());
        }
        // Islands are disjoint and sorted, so their ends grow with their starts: the ones that
        // overlap or touch [start, end) are the last few that start at or before `end`.
        let mut swallowed = Vec::new();
        for (&s, &e) in self.islands.range(..=end).rev() {
            if e < start {
                break;
            }
            swallowed.push(s);
        }
        if swallowed.is_empty() && start > self.contiguous && self.islands.len() >= self.max_islands
        {
            return Err(TooFragmented {
                max: self.max_islands,
            });
        }
        for s in swallowed {
            if let Some(e) = self.islands.remove(&s) {
                self.island_bytes -= e - s;
                start = start.min(s);
                end = end.max(e);
            }
        }
        if start <= self.contiguous {
            self.contiguous = end;
        } else {
            self.island_bytes += end - start;
            self.islands.insert(start, end);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The set as `(contiguous, [islands])`.
    fn state(set: &RangeSet) -> (u64, Vec<(u64, u64)>) {
        (
            set.contiguous,
            set.islands.iter().map(|(&s, &e)| (s, e)).collect(),
        )
    }

    /// Builds a set from a state, adds one range, and returns the state after.
    fn add(before: (u64, &[(u64, u64)]), range: (u64, u64)) -> (u64, Vec<(u64, u64)>) {
        let mut set = RangeSet::starting_at(before.0, usize::MAX);
        for &(s, e) in before.1 {
            set.insert(s, e).unwrap();
        }
        assert_eq!(state(&set), (before.0, before.1.to_vec()), "bad table row");
        set.insert(range.0, range.1).unwrap();
        let after = state(&set);
        let bytes: u64 = after.0 + after.1.iter().map(|(s, e)| e - s).sum::<u64>();
        assert_eq!(set.total(), bytes, "the running total drifted");
        after
    }

    #[test]
    fn one_insert_at_a_time() {
        // (before), range => (after)
        assert_eq!(add((0, &[]), (0, 10)), (10, vec![]));
        assert_eq!(add((0, &[]), (5, 10)), (0, vec![(5, 10)]));
        assert_eq!(add((10, &[]), (3, 8)), (10, vec![]), "below the prefix");
        assert_eq!(
            add((10, &[]), (3, 12)),
            (12, vec![]),
            "overlapping the prefix"
        );
        assert_eq!(
            add((10, &[]), (10, 12)),
            (12, vec![]),
            "touching the prefix"
        );
        assert_eq!(add((0, &[(5, 10)]), (0, 5)), (10, vec![]), "fills the hole");
        assert_eq!(
            add((0, &[(5, 10)]), (10, 12)),
            (0, vec![(5, 12)]),
            "touches after"
        );
        assert_eq!(
            add((0, &[(5, 10)]), (3, 5)),
            (0, vec![(3, 10)]),
            "touches before"
        );
        assert_eq!(
            add((0, &[(5, 10)]), (6, 8)),
            (0, vec![(5, 10)]),
            "a duplicate"
        );
        assert_eq!(
            add((0, &[(5, 10), (20, 30), (40, 50)]), (8, 45)),
            (0, vec![(5, 50)]),
            "swallows several"
        );
        assert_eq!(
            add((0, &[(5, 10), (20, 30), (40, 50)]), (0, 20)),
            (30, vec![(40, 50)]),
            "the prefix swallows some"
        );
        assert_eq!(
            add((0, &[(5, 10), (40, 50)]), (20, 30)),
            (0, vec![(5, 10), (20, 30), (40, 50)]),
            "between two"
        );
        assert_eq!(add((0, &[]), (7, 7)), (0, vec![]), "empty");
    }

    #[test]
    fn a_range_past_the_island_bound_is_refused_and_changes_nothing() {
        let mut set = RangeSet::starting_at(0, 2);
        set.insert(10, 11).unwrap();
        set.insert(20, 21).unwrap();
        assert_eq!(set.insert(30, 31), Err(TooFragmented { max: 2 }));
        assert_eq!(state(&set), (0, vec![(10, 11), (20, 21)]));
        // What joins an island, or the prefix, still goes in.
        set.insert(11, 15).unwrap();
        set.insert(0, 5).unwrap();
        assert_eq!(state(&set), (5, vec![(10, 15), (20, 21)]));
        assert_eq!((set.total(), set.highest(), set.islands()), (11, 21, 2));
    }

    #[test]
    fn truncating_drops_what_lies_beyond() {
        let mut set = RangeSet::starting_at(0, usize::MAX);
        for (s, e) in [(0, 5), (10, 20), (30, 40)] {
            set.insert(s, e).unwrap();
        }
        set.truncate(15);
        assert_eq!(state(&set), (5, vec![(10, 15)]));
        assert_eq!(set.total(), 10);
        set.truncate(3);
        assert_eq!(state(&set), (3, vec![]));
        assert_eq!(set.total(), 3);
    }

    #[test]
    fn two_hundred_thousand_islands_fill_into_one_prefix() {
        // Every other byte first, then the holes: the shape of the islands attack.
        let mut set = RangeSet::starting_at(0, usize::MAX);
        for i in 0..200_000u64 {
            set.insert(2 * i + 1, 2 * i + 2).unwrap();
        }
        assert_eq!((set.islands(), set.total()), (200_000, 200_000));
        for i in 0..200_000u64 {
            set.insert(2 * i, 2 * i + 1).unwrap();
        }
        assert_eq!(state(&set), (400_000, vec![]));
    }
}
