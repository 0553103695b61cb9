//! Counters the WAL keeps about its own work (records, bytes, syncs, group-commit batch
//! sizes). Owns the atomics and their snapshot; `observe::metrics` exports the snapshot
//! at each scrape, and each sync's duration goes to its histogram as it happens.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Number of batch-size histogram buckets: bucket `i` counts batches of
/// `2^i ..= 2^(i+1) - 1` records, the last bucket everything larger.
pub const BATCH_BUCKETS: usize = 12;

/// Live counters, updated by the writer thread and read by anyone.
#[derive(Debug, Default)]
pub struct Metrics {
    appends: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    payload_bytes: AtomicU64,
    syncs: AtomicU64,
    sync_nanos: AtomicU64,
    batches: AtomicU64,
    batch_max: AtomicU64,
    segments_created: AtomicU64,
    segments_deleted: AtomicU64,
    buckets: [AtomicU64; BATCH_BUCKETS],
}

/// A point-in-time copy of [`Metrics`], cheap to pass around and print.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Append calls written (each may carry several records).
    pub appends: u64,
    /// Records written.
    pub records: u64,
    /// Bytes written to segments (headers and stored payloads).
    pub bytes: u64,
    /// Raw payload bytes appended, before compression.
    pub payload_bytes: u64,
    /// Data syncs (fdatasync) issued.
    pub syncs: u64,
    /// Time spent in those syncs, in nanoseconds.
    pub sync_nanos: u64,
    /// Group-commit batches written.
    pub batches: u64,
    /// Most records in one batch.
    pub batch_max: u64,
    /// Segment files created.
    pub segments_created: u64,
    /// Segment files deleted by purge or truncation.
    pub segments_deleted: u64,
    /// Batch-size histogram (see [`BATCH_BUCKETS`]).
    pub batch_buckets: [u64; BATCH_BUCKETS],
}

impl Metrics {
    /// Records one written group-commit batch.
    pub fn batch(&self, appends: u64, records: u64, bytes: u64, payload_bytes: u64) {
        self.appends.fetch_add(appends, Relaxed);
        self.records.fetch_add(records, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
        self.payload_bytes.fetch_add(payload_bytes, Relaxed);
        self.batches.fetch_add(1, Relaxed);
        self.batch_max.fetch_max(records, Relaxed);
        let bucket = (63 - records.max(1).leading_zeros() as usize).min(BATCH_BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Relaxed);
    }
    /// Records one data sync that took `took`.
    pub fn sync(&self, took: std::time::Duration) {
        self.syncs.fetch_add(1, Relaxed);
        self.sync_nanos
            .fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
        crate::observe::metrics::wal_fsync(took);
    }
    /// Records a created segment.
    pub fn segment_created(&self) {
        self.segments_created.fetch_add(1, Relaxed);
    }
    /// Records deleted segments.
    pub fn segments_deleted(&self, n: u64) {
        self.segments_deleted.fetch_add(n, Relaxed);
    }
    /// Copies the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            appends: self.appends.load(Relaxed),
            records: self.records.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            payload_bytes: self.payload_bytes.load(Relaxed),
            syncs: self.syncs.load(Relaxed),
            sync_nanos: self.sync_nanos.load(Relaxed),
            batches: self.batches.load(Relaxed),
            batch_max: self.batch_max.load(Relaxed),
            segments_created: self.segments_created.load(Relaxed),
            segments_deleted: self.segments_deleted.load(Relaxed),
            batch_buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
        }
    }
}

impl MetricsSnapshot {
    /// Mean records per batch (0 when nothing was written).
    pub fn mean_batch(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.records as f64 / self.batches as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two() {
        let m = Metrics::default();
        m.batch(1, 1, 10, 5);
        m.batch(3, 3, 10, 5);
        m.batch(1, 1024, 10, 5);
        m.batch(1, 1 << 20, 10, 5);
        let s = m.snapshot();
        assert_eq!(s.batch_buckets[0], 1);
        assert_eq!(s.batch_buckets[1], 1);
        assert_eq!(s.batch_buckets[10], 1);
        assert_eq!(s.batch_buckets[BATCH_BUCKETS - 1], 1);
        assert_eq!(s.batch_max, 1 << 20);
        assert_eq!(s.batches, 4);
        assert_eq!(s.appends, 6);
    }
}
