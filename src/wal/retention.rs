//! Which whole segments retention allows to delete. Owns only the decision; the caller
//! (who knows what is safe: snapshotted and replicated) passes a safe upper bound and
//! then calls `Wal::purge_before` with the answer. The WAL itself never purges on its own.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// One segment as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// First LSN of the segment.
    pub first_lsn: u64,
    /// Records it holds.
    pub records: u64,
    /// The file.
    pub path: PathBuf,
    /// Size of the file on disk.
    pub bytes: u64,
    /// Last modification (≈ when its last record was written); `None` if unknown.
    pub modified: Option<SystemTime>,
}

impl SegmentInfo {
    /// LSN of its last record, if it holds any.
    pub fn last_lsn(&self) -> Option<u64> {
        (self.records > 0).then(|| self.first_lsn + self.records - 1)
    }
}

/// The LSN to pass to `Wal::purge_before` so that exactly the oldest segments that are
/// both older than `retention` and entirely below `safe_upper` (records with an LSN
/// below it may go) are deleted; `None` when no segment may go. The newest segment
/// always stays, and so does any segment with an unknown age.
pub fn purge_point(
    segments: &[SegmentInfo],
    retention: Duration,
    safe_upper: u64,
    now: SystemTime,
) -> Option<u64> {
    let mut keep_from = None;
    for w in segments.windows(2) {
        let (seg, next) = (&w[0], &w[1]);
        let old_enough = seg
            .modified
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age >= retention);
        if !old_enough || next.first_lsn > safe_upper {
            break;
        }
        keep_from = Some(next.first_lsn);
    }
    keep_from
}

/// Whether `seg` has outlived `retention` at `now` (unknown ages never have).
pub fn expired(seg: &SegmentInfo, retention: Duration, now: SystemTime) -> bool {
    seg.modified
        .and_then(|m| now.duration_since(m).ok())
        .is_some_and(|age| age >= retention)
}

/// The LSN to pass to `Wal::purge_before` so that the oldest segments entirely below
/// `safe_upper` go until the rest fits in `cap` bytes (as far as `safe_upper` allows);
/// `None` when the WAL fits or nothing may go. The newest segment always stays.
pub fn cap_point(segments: &[SegmentInfo], cap: u64, safe_upper: u64) -> Option<u64> {
    let mut left: u64 = segments.iter().map(|s| s.bytes).sum();
    let mut keep_from = None;
    for w in segments.windows(2) {
        if left <= cap || w[1].first_lsn > safe_upper {
            break;
        }
        left -= w[0].bytes;
        keep_from = Some(w[1].first_lsn);
    }
    keep_from
}

/// Whether retention needs a newer snapshot: some segment has outlived `retention` (or
/// the WAL is over `cap`) but reaches past `covered` (records below `covered` are in the
/// current snapshot), so purging it must wait for a snapshot that covers it.
pub fn wants_snapshot(
    segments: &[SegmentInfo],
    retention: Duration,
    cap: Option<u64>,
    covered: u64,
    now: SystemTime,
) -> bool {
    let aged = segments
        .windows(2)
        .any(|w| expired(&w[0], retention, now) && w[1].first_lsn > covered);
    let total: u64 = segments.iter().map(|s| s.bytes).sum();
    let over = cap.is_some_and(|cap| {
        let keep_from = cap_point(segments, cap, covered).unwrap_or(0);
        let left: u64 = segments
            .iter()
            .filter(|s| s.first_lsn >= keep_from)
            .map(|s| s.bytes)
            .sum();
        total > cap && left > cap && segments.len() > 1
    });
    aged || over
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(first: u64, records: u64, age_h: u64, now: SystemTime) -> SegmentInfo {
        SegmentInfo {
            first_lsn: first,
            records,
            path: PathBuf::from(format!("{first}")),
            bytes: records * 100,
            modified: Some(now - Duration::from_secs(age_h * 3600)),
        }
    }

    #[test]
    fn purges_old_segments_below_the_safe_bound_only() {
        let now = SystemTime::now();
        let segs = vec![
            seg(1, 10, 200, now),
            seg(11, 10, 190, now),
            seg(21, 10, 100, now),
            seg(31, 10, 1, now),
        ];
        let week = Duration::from_secs(168 * 3600);
        assert_eq!(purge_point(&segs, week, 1000, now), Some(21));
        assert_eq!(purge_point(&segs, week, 15, now), Some(11));
        assert_eq!(purge_point(&segs, week, 10, now), None);
        assert_eq!(purge_point(&segs, Duration::ZERO, 1000, now), Some(31));
        assert_eq!(purge_point(&segs[3..], Duration::ZERO, 1000, now), None);
    }

    #[test]
    fn the_size_cap_purges_oldest_covered_segments_until_it_fits() {
        let now = SystemTime::now();
        // 1000 bytes each.
        let segs: Vec<SegmentInfo> = (0..5).map(|i| seg(1 + i * 10, 10, 0, now)).collect();
        assert_eq!(cap_point(&segs, 5000, 1000), None, "fits");
        assert_eq!(cap_point(&segs, 3000, 1000), Some(21));
        assert_eq!(cap_point(&segs, 0, 1000), Some(41), "the newest stays");
        assert_eq!(cap_point(&segs, 3000, 10), None, "not covered");
        assert_eq!(cap_point(&segs, 3000, 11), Some(11));
    }

    #[test]
    fn a_snapshot_is_wanted_only_for_aged_or_oversized_uncovered_segments() {
        let now = SystemTime::now();
        let week = Duration::from_secs(168 * 3600);
        let young: Vec<SegmentInfo> = (0..3).map(|i| seg(1 + i * 10, 10, 1, now)).collect();
        assert!(!wants_snapshot(&young, week, None, 0, now));
        assert!(
            wants_snapshot(&young, week, Some(1000), 0, now),
            "over the cap"
        );
        assert!(
            !wants_snapshot(&young, week, Some(1000), 21, now),
            "covered"
        );
        let old = vec![seg(1, 10, 200, now), seg(11, 10, 1, now)];
        assert!(wants_snapshot(&old, week, None, 0, now));
        assert!(
            !wants_snapshot(&old, week, None, 11, now),
            "the snapshot covers it"
        );
        assert!(
            !wants_snapshot(&old[1..], Duration::ZERO, None, 0, now),
            "newest only"
        );
    }

    #[test]
    fn unknown_age_stays() {
        let now = SystemTime::now();
        let mut segs = vec![seg(1, 10, 200, now), seg(11, 10, 1, now)];
        segs[0].modified = None;
        assert_eq!(purge_point(&segs, Duration::ZERO, 100, now), None);
        assert_eq!(segs[0].last_lsn(), Some(10));
    }
}
