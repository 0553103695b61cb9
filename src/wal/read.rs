//! The read path: records in an LSN range from the pending buffer and, with one pread per
//! segment, from disk, every record CRC-checked. Owns no writes.

use super::format::{self, RECORD_HEADER_LEN};
use super::segment::io_err;
use super::{Error, Record, Result, Shared, Wal};
use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

struct Piece {
    path: PathBuf,
    file: Arc<File>,
    first_lsn: u64,
    start: u64,
    end: u64,
    count: u64,
}

/// Reads records `[start, end)` clamped to what is held: pending ones from memory, the
/// rest with one pread per segment, every record CRC-checked.
pub(super) fn read_range(sh: &Shared, start: u64, end: u64) -> Result<Vec<Record>> {
    let _io = sh
        .io
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (pieces, pending) = {
        let st = sh.state();
        let start = start.max(st.base);
        let end = end.min(st.next_lsn);
        if start >= end {
            return Ok(Vec::new());
        }
        let pend_from = st.pending.front().map_or(st.next_lsn, |p| p.1.lsn);
        let mut pieces = Vec::new();
        let mut lsn = start;
        let disk_end = end.min(pend_from);
        while lsn < disk_end {
            let i = st.segments.partition_point(|s| s.first_lsn <= lsn);
            let Some(seg) = i.checked_sub(1).map(|i| &st.segments[i]) else {
                break;
            };
            let seg_next = seg.first_lsn + seg.offsets.len() as u64;
            let to = disk_end.min(seg_next);
            if to <= lsn {
                break;
            }
            let off = |l: u64| {
                seg.offsets
                    .get((l - seg.first_lsn) as usize)
                    .map_or(seg.end, |&o| u64::from(o))
            };
            pieces.push(Piece {
                path: seg.path.clone(),
                file: seg.file.clone(),
                first_lsn: lsn,
                start: off(lsn),
                end: off(to),
                count: to - lsn,
            });
            lsn = to;
        }
        let pending: Vec<Record> = st
            .pending
            .iter()
            .filter(|p| p.1.lsn >= start.max(pend_from) && p.1.lsn < end)
            .map(|p| p.1.clone())
            .collect();
        (pieces, pending)
    };
    let mut out = Vec::new();
    for p in pieces {
        let mut buf = vec![0u8; (p.end - p.start) as usize];
        p.file
            .read_exact_at(&mut buf, p.start)
            .map_err(|e| io_err("read segment", &p.path, e))?;
        let mut pos = 0usize;
        for i in 0..p.count {
            let offset = p.start + pos as u64;
            let corrupt = |reason: String| Error::Corruption {
                file: p.path.clone(),
                offset,
                reason,
            };
            let (h, payload) =
                format::decode_record(&buf[pos..]).map_err(|e| corrupt(e.to_string()))?;
            if h.lsn != p.first_lsn + i {
                return Err(corrupt(format!(
                    "record has lsn {}, expected {}",
                    h.lsn,
                    p.first_lsn + i
                )));
            }
            pos += RECORD_HEADER_LEN + h.stored_len as usize;
            out.push(Record {
                lsn: h.lsn,
                term: h.term,
                payload: payload.into(),
            });
        }
    }
    out.extend(pending);
    Ok(out)
}

/// Iterator over a range of records; see [`Wal::iter`].
pub struct WalIter {
    pub(super) wal: Wal,
    pub(super) next: u64,
    pub(super) end: u64,
    pub(super) buf: VecDeque<Record>,
}

impl Iterator for WalIter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() && self.next < self.end {
            let to = self.end.min(self.next.saturating_add(256));
            match self.wal.read(self.next..to) {
                Ok(v) if v.is_empty() => self.next = self.end,
                Ok(v) => {
                    self.next = v.last().map_or(self.end, |r| r.lsn + 1);
                    self.buf.extend(v);
                }
                Err(e) => {
                    self.next = self.end;
                    return Some(Err(e));
                }
            }
        }
        self.buf.pop_front().map(Ok)
    }
}
