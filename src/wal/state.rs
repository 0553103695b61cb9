//! The shared in-memory state behind a `Wal` handle: accepted-but-unwritten records, the
//! segment index, term runs and the writer's queue. Owns no I/O.

use super::{Error, Record, Result};
use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

pub(super) type Done = Box<dyn FnOnce(Result<()>) + Send + 'static>;

pub(super) enum Op {
    Append {
        seq: u64,
        records: Vec<Record>,
        /// The records already encoded by the caller (off the writer thread).
        encoded: Vec<u8>,
        /// End offset of each record in `encoded`.
        ends: Vec<usize>,
        done: Done,
    },
    Truncate {
        lsn: u64,
        done: Done,
    },
    Purge {
        keep_from: u64,
        done: Done,
    },
    Reset {
        lsn: u64,
        done: Done,
    },
    Close {
        done: Done,
    },
}

/// In-memory index of one segment.
pub(super) struct SegIndex {
    pub(super) first_lsn: u64,
    pub(super) path: PathBuf,
    pub(super) file: Arc<File>,
    pub(super) offsets: Vec<u32>,
    pub(super) end: u64,
}

pub(super) struct State {
    pub(super) segments: Vec<SegIndex>,
    pub(super) terms: Vec<(u64, u64)>,
    /// Accepted but not yet written records, contiguous, ending at `next_lsn - 1`.
    pub(super) pending: VecDeque<(u64, Record)>,
    pub(super) next_lsn: u64,
    pub(super) base: u64,
    pub(super) poisoned: Option<String>,
    pub(super) closed: bool,
    pub(super) seq: u64,
    pub(super) queue: VecDeque<Op>,
    /// The writer thread waits for work and nobody has woken it yet: the first append
    /// queued after it began waiting wakes it, later ones skip the futex wake-up.
    pub(super) writer_waits: bool,
}

impl State {
    pub(super) fn check_open(&self) -> Result<()> {
        if let Some(reason) = &self.poisoned {
            return Err(Error::Poisoned {
                reason: reason.clone(),
            });
        }
        if self.closed {
            return Err(Error::Closed);
        }
        Ok(())
    }
    pub(super) fn term_of(&self, lsn: u64) -> Option<u64> {
        if lsn < self.base || lsn >= self.next_lsn {
            return None;
        }
        let i = self.terms.partition_point(|t| t.0 <= lsn);
        i.checked_sub(1).map(|i| self.terms[i].1)
    }
    pub(super) fn trim_terms_after(&mut self, lsn: u64) {
        while self.terms.last().is_some_and(|t| t.0 > lsn) {
            self.terms.pop();
        }
    }
    pub(super) fn trim_terms_before(&mut self, base: u64) {
        let keep = self
            .terms
            .partition_point(|t| t.0 <= base)
            .saturating_sub(1);
        self.terms.drain(..keep);
    }
}
