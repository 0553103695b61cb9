//! Where a write's time goes on the leader (issue 16): each log entry's path is marked
//! at a few points (appended to the log, durable in the leader's WAL, sent to and
//! acknowledged by a follower, applied) and, once its writers are answered, the gaps
//! between the marks are recorded as `wolfscale_write_stage_seconds{stage}`.
//!
//! The marks live in a fixed ring of slots keyed by LSN, so marking costs a clock read
//! and a few atomic operations and nothing grows. It is sampling, not accounting: a slot
//! reused by a much later entry before the earlier one was answered, or two marks
//! racing a slot's reuse, lose that entry's sample, never anyone's write. Followers mark
//! too (their log store and applier run the same code) but never finish an entry, so
//! they record nothing.

use super::metrics;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A point on an entry's path, in path order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// openraft handed the entry to the log store.
    Appended = 0,
    /// The leader's WAL made it durable.
    Flushed,
    /// The first append message carrying it went to a follower.
    Sent,
    /// The first follower acknowledged it (durable there): with three voters, the quorum.
    Acked,
    /// The state machine began applying it.
    ApplyStart,
    /// The state machine applied it.
    Applied,
}

const MARKS: usize = 6;
/// Slots in the ring: far more than entries in flight on a leader.
const SLOTS: usize = 4096;

struct Slot {
    /// LSN + 1 of the entry the slot holds (0: none).
    tag: AtomicU64,
    /// Nanoseconds since [`epoch`] + 1 per mark (0: not marked).
    at: [AtomicU64; MARKS],
}

static RING: [Slot; SLOTS] = [const {
    Slot {
        tag: AtomicU64::new(0),
        at: [const { AtomicU64::new(0) }; MARKS],
    }
}; SLOTS];

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn stamp(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_nanos())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

fn slot_for(lsn: u64) -> &'static Slot {
    // The modulo is below SLOTS, so the index fits.
    &RING[(lsn % SLOTS as u64) as usize]
}

/// Marks `m` for every entry in `first..=last` now, unless already marked (the first
/// time counts: a resent append or a second follower's ack changes nothing).
pub fn mark_range(first: u64, last: u64, m: Mark) {
    if last < first {
        return;
    }
    let now = stamp(Instant::now());
    // A huge range (catch-up of a lagging follower) would only rewrite old slots.
    let first = first.max(last.saturating_sub(SLOTS as u64 - 1));
    for lsn in first..=last {
        mark_at(lsn, m, now);
    }
}

/// Marks `m` for entry `lsn` now (first time only).
pub fn mark(lsn: u64, m: Mark) {
    mark_at(lsn, m, stamp(Instant::now()));
}

fn mark_at(lsn: u64, m: Mark, now: u64) {
    let slot = slot_for(lsn);
    let tag = lsn.wrapping_add(1);
    let held = slot.tag.load(Ordering::Acquire);
    if held != tag {
        // Only the path's first mark may claim a slot; a later mark for an entry whose
        // slot was taken over (or never claimed) is dropped.
        if m != Mark::Appended
            || slot
                .tag
                .compare_exchange(held, tag, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        for a in &slot.at {
            a.store(0, Ordering::Release);
        }
    }
    let _ = slot.at[m as usize].compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed);
}

/// The stages recorded, as the `stage` label spells them, in path order.
pub const STAGES: [&str; 10] = [
    "parse",
    "prepare",
    "batch_wait",
    "propose",
    "wal_sync",
    "send",
    "replicate",
    "commit",
    "apply",
    "answer",
];

/// Records the stages of entry `lsn`, whose writers were just answered; it was handed to
/// openraft at `proposed`. Stages whose marks are missing are left out.
///
/// - `propose`: handed to openraft → appended to the log store;
/// - `wal_sync`: appended → durable in the leader's WAL;
/// - `send`: appended → first append message to a follower;
/// - `replicate`: that message sent → first follower's ack (round trip with its fsync);
/// - `commit`: durable here and acked → apply began (commit and hand-over to the applier);
/// - `apply`: the applier's work (MariaDB transaction);
/// - `answer`: applied → the writers' wake-up (now).
pub fn finish(lsn: u64, proposed: Instant) {
    let now = stamp(Instant::now());
    let slot = slot_for(lsn);
    if slot.tag.load(Ordering::Acquire) != lsn.wrapping_add(1) {
        return;
    }
    let at = |m: Mark| Some(slot.at[m as usize].load(Ordering::Acquire)).filter(|&t| t != 0);
    let gap = |stage: &'static str, from: Option<u64>, to: Option<u64>| {
        if let (Some(a), Some(b)) = (from, to) {
            if b >= a {
                metrics::write_stage(stage, Duration::from_nanos(b - a));
            }
        }
    };
    let appended = at(Mark::Appended);
    let flushed = at(Mark::Flushed);
    let sent = at(Mark::Sent);
    let acked = at(Mark::Acked);
    let start = at(Mark::ApplyStart);
    let applied = at(Mark::Applied);
    gap("propose", Some(stamp(proposed)), appended);
    gap("wal_sync", appended, flushed);
    gap("send", appended, sent);
    gap("replicate", sent, acked);
    // A single-voter cluster commits on its own flush.
    let committed = match (flushed, acked) {
        (Some(f), Some(a)) => Some(f.max(a)),
        (f, a) => f.or(a),
    };
    gap("commit", committed, start);
    gap("apply", start, applied);
    gap("answer", applied, Some(now));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(lsn: u64, m: Mark) -> bool {
        let slot = slot_for(lsn);
        slot.tag.load(Ordering::Acquire) == lsn + 1
            && slot.at[m as usize].load(Ordering::Acquire) != 0
    }

    #[test]
    fn the_first_mark_counts_and_only_an_append_claims_a_slot() {
        let lsn = 1_000_003;
        mark(lsn, Mark::Flushed);
        assert!(!marked(lsn, Mark::Flushed), "no append seen: dropped");
        mark(lsn, Mark::Appended);
        mark(lsn, Mark::Flushed);
        let first = slot_for(lsn).at[Mark::Flushed as usize].load(Ordering::Acquire);
        std::thread::sleep(Duration::from_millis(1));
        mark(lsn, Mark::Flushed);
        assert_eq!(
            slot_for(lsn).at[Mark::Flushed as usize].load(Ordering::Acquire),
            first
        );
        // A later entry in the same slot starts afresh.
        let later = lsn + SLOTS as u64;
        mark(later, Mark::Appended);
        assert!(marked(later, Mark::Appended));
        assert!(!marked(later, Mark::Flushed));
        assert!(!marked(lsn, Mark::Appended), "the old entry lost its slot");
    }

    #[test]
    fn a_range_marks_each_entry() {
        mark_range(2_000_010, 2_000_012, Mark::Appended);
        mark_range(2_000_010, 2_000_012, Mark::Acked);
        for lsn in 2_000_010..=2_000_012 {
            assert!(marked(lsn, Mark::Acked), "{lsn}");
        }
        mark_range(5, 4, Mark::Acked);
    }
}
