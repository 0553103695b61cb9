//! The entries appended last, kept in memory for the reads that follow at once: the
//! leader's replication to each follower and every node's apply read an entry right
//! after its append. Served from the WAL, each such read is a blocking read handed to a
//! thread pool, and openraft's core waits for the apply's read before it does anything
//! else, so on a lone writer's path the hand-offs cost more than the reads.
//!
//! Invariant: the entries held are consecutive and were all appended after any
//! truncation or purge that covers them (the log store cuts this cache before the WAL);
//! a read is served only when the cache holds the whole range asked for.

use super::Entry;
use std::collections::VecDeque;

/// Most entries held.
const MAX_ENTRIES: usize = 1024;
/// Most encoded bytes held (a single larger entry is still held, alone).
const MAX_BYTES: usize = 16 << 20;

/// The cache; the log store keeps it behind a mutex.
#[derive(Default)]
pub(super) struct Recent {
    /// Entries with their encoded size, oldest first, consecutive indexes.
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl Recent {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.log_id.index)
    }

    /// Adds entries just appended (with their encoded sizes); what they do not continue
    /// is dropped first.
    pub(super) fn append(&mut self, entries: impl IntoIterator<Item = (Entry, usize)>) {
        for (e, size) in entries {
            if self
                .last_index()
                .is_some_and(|l| l.checked_add(1) != Some(e.log_id.index))
            {
                self.clear();
            }
            self.bytes += size;
            self.entries.push_back((e, size));
        }
        while self.entries.len() > MAX_ENTRIES || (self.bytes > MAX_BYTES && self.entries.len() > 1)
        {
            if let Some((_, size)) = self.entries.pop_front() {
                self.bytes -= size;
            }
        }
    }

    /// Forgets entries at and after `index` (a truncation).
    pub(super) fn cut_from(&mut self, index: u64) {
        while self.last_index().is_some_and(|l| l >= index) {
            if let Some((_, size)) = self.entries.pop_back() {
                self.bytes -= size;
            }
        }
    }

    /// Forgets entries at and before `index` (a purge).
    pub(super) fn drop_upto(&mut self, index: u64) {
        while self.first_index().is_some_and(|f| f <= index) {
            if let Some((_, size)) = self.entries.pop_front() {
                self.bytes -= size;
            }
        }
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Copies of the entries in `[start, end)` when all of them are held; `None` when
    /// the range is empty or reaches outside the cache (the caller reads the WAL).
    pub(super) fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let (first, last) = (self.first_index()?, self.last_index()?);
        if start >= end || start < first || end - 1 > last {
            return None;
        }
        let from = usize::try_from(start - first).ok()?;
        let n = usize::try_from(end - start).ok()?;
        Some(
            self.entries
                .range(from..from + n)
                .map(|(e, _)| e.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    fn entry(index: u64) -> (Entry, usize) {
        (
            Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
                payload: EntryPayload::Blank,
            },
            10,
        )
    }

    fn indexes(v: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        v.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn serves_only_ranges_it_holds_whole() {
        let mut r = Recent::default();
        r.append((5..10).map(entry));
        assert_eq!(indexes(r.get(5, 10)), Some(vec![5, 6, 7, 8, 9]));
        assert_eq!(indexes(r.get(7, 8)), Some(vec![7]));
        assert_eq!(indexes(r.get(4, 8)), None, "starts before the cache");
        assert_eq!(indexes(r.get(8, 11)), None, "ends past the cache");
        assert_eq!(indexes(r.get(8, 8)), None, "empty range");
    }

    #[test]
    fn truncation_purge_and_gaps_drop_entries() {
        let mut r = Recent::default();
        r.append((1..=6).map(entry));
        r.cut_from(5);
        assert_eq!(indexes(r.get(1, 5)), Some(vec![1, 2, 3, 4]));
        assert_eq!(indexes(r.get(5, 6)), None);
        r.drop_upto(2);
        assert_eq!(indexes(r.get(2, 4)), None);
        assert_eq!(indexes(r.get(3, 5)), Some(vec![3, 4]));
        // An append that does not continue the cache replaces it.
        r.append([entry(9)]);
        assert_eq!(indexes(r.get(3, 5)), None);
        assert_eq!(indexes(r.get(9, 10)), Some(vec![9]));
        assert_eq!(r.bytes, 10);
    }

    #[test]
    fn the_oldest_entries_go_first_when_full() {
        let mut r = Recent::default();
        r.append((0..MAX_ENTRIES as u64 + 3).map(entry));
        assert_eq!(r.entries.len(), MAX_ENTRIES);
        assert_eq!(r.first_index(), Some(3));
        assert_eq!(r.bytes, MAX_ENTRIES * 10);
    }
}
