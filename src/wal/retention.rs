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

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(first: u64, records: u64, age_h: u64, now: SystemTime) -> SegmentInfo {
        SegmentInfo {
            first_lsn: first,
            records,
            path: PathBuf::from(format!("{first}")),
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
    fn unknown_age_stays() {
        let now = SystemTime::now();
        let mut segs = vec![seg(1, 10, 200, now), seg(11, 10, 1, now)];
        segs[0].modified = None;
        assert_eq!(purge_point(&segs, Duration::ZERO, 100, now), None);
        assert_eq!(segs[0].last_lsn(), Some(10));
    }
}
