//! The values callers hand to the WAL: records and options.

use super::{Error, Preallocate, Result};
use crate::config::WalConfig;
use bytes::Bytes;
use std::time::Duration;

/// One log record: the LSN it occupies, the term it was written in, opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position in the log, contiguous from the first retained record.
    pub lsn: u64,
    /// Consensus term the record was written in (opaque to the WAL).
    pub term: u64,
    /// The record's bytes.
    pub payload: Bytes,
}

impl Record {
    /// Builds a record.
    pub fn new(lsn: u64, term: u64, payload: impl Into<Bytes>) -> Self {
        Self {
            lsn,
            term,
            payload: payload.into(),
        }
    }
}

/// WAL settings at byte granularity (tests need tiny segments); built from [`WalConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// Most records in one write (with `fsync` on, a sync covers every write made while
    /// the previous sync ran).
    pub batch_size: usize,
    /// With `fsync` off, the longest written data stays unsynced (a background fdatasync
    /// runs then). With `fsync` on no append waits: each sync starts when the last ends.
    pub flush_interval: Duration,
    /// LZ4-compress payloads where that makes them smaller.
    pub compression: bool,
    /// Segment roll-over size in bytes (a record larger than this gets its own segment).
    pub segment_size: u64,
    /// Age after which whole segments may be purged (used by `retention`).
    pub retention: Duration,
    /// fdatasync each batch before acknowledging it.
    pub fsync: bool,
    /// How segment space is reserved.
    pub preallocate: Preallocate,
}

impl From<&WalConfig> for WalOptions {
    fn from(c: &WalConfig) -> Self {
        Self {
            batch_size: c.batch_size.max(1) as usize,
            flush_interval: c.flush_interval(),
            compression: c.compression,
            segment_size: c.segment_size_bytes(),
            retention: c.retention(),
            fsync: c.fsync,
            preallocate: Preallocate::Fallocate,
        }
    }
}

impl Default for WalOptions {
    fn default() -> Self {
        Self::from(&WalConfig::default())
    }
}

impl WalOptions {
    pub(super) fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::InvalidOptions(
                "batch_size must be at least 1".into(),
            ));
        }
        if self.segment_size < 4096 || self.segment_size > (2 << 30) {
            return Err(Error::InvalidOptions(format!(
                "segment size must be between 4 KiB and 2 GiB, got {} bytes",
                self.segment_size
            )));
        }
        Ok(())
    }
}
