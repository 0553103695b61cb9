//! The writer's log-shrinking operations: suffix truncation, prefix purge and reset to
//! empty. They run on the writer thread after every in-flight sync has completed, and
//! hold the I/O lock exclusively while files shrink or vanish.

use super::{active_of, Writer};
use crate::wal::segment::{self, io_err};
use crate::wal::Result;

impl Writer {
    pub(super) fn truncate(&mut self, lsn: u64) -> Result<()> {
        let sh = self.sh.clone();
        let _io = sh
            .io
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut st = sh.state();
        let Some(keep) = st
            .segments
            .iter()
            .rposition(|s| s.first_lsn <= lsn)
            .or_else(|| (!st.segments.is_empty()).then_some(0))
        else {
            return Ok(());
        };
        // Later segments go first, newest first, so a crash leaves a contiguous log.
        let removed = st.segments.len() - keep - 1;
        while st.segments.len() > keep + 1 {
            let s = st.segments.pop().expect("length checked by the loop");
            std::fs::remove_file(&s.path).map_err(|e| io_err("remove segment", &s.path, e))?;
        }
        if removed > 0 {
            segment::fsync_dir(&sh.dir)?;
            sh.metrics.segments_deleted(removed as u64);
        }
        let seg = st.segments.last_mut().expect("keep index is in range");
        let n = lsn.saturating_add(1).saturating_sub(seg.first_lsn) as usize;
        if n < seg.offsets.len() {
            let new_end = u64::from(seg.offsets[n]);
            segment::cut(
                &seg.file,
                &seg.path,
                new_end,
                sh.opts.segment_size.max(new_end),
                sh.opts.preallocate,
            )?;
            seg.offsets.truncate(n);
            seg.end = new_end;
        }
        self.active = st.segments.last().map(active_of);
        Ok(())
    }

    pub(super) fn purge(&mut self, keep_from: u64) -> Result<()> {
        let sh = self.sh.clone();
        let _io = sh
            .io
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut st = sh.state();
        let mut removed = 0;
        // Oldest first, so a crash leaves a contiguous log. The active segment stays.
        while st.segments.len() > 1 && st.segments[0].first_lsn < keep_from {
            let s = st.segments.remove(0);
            std::fs::remove_file(&s.path).map_err(|e| io_err("remove segment", &s.path, e))?;
            removed += 1;
        }
        if removed > 0 {
            segment::fsync_dir(&sh.dir)?;
            sh.metrics.segments_deleted(removed);
            tracing::info!(
                segments = removed,
                first_lsn = keep_from,
                "purged wal segments"
            );
        }
        Ok(())
    }

    pub(super) fn reset(&mut self, lsn: u64) -> Result<()> {
        {
            let sh = self.sh.clone();
            let _io = sh
                .io
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut st = sh.state();
            let removed = st.segments.len() as u64;
            while !st.segments.is_empty() {
                let s = st.segments.remove(0);
                std::fs::remove_file(&s.path).map_err(|e| io_err("remove segment", &s.path, e))?;
            }
            segment::fsync_dir(&sh.dir)?;
            sh.metrics.segments_deleted(removed);
            self.active = None;
        }
        self.dirty = false;
        tracing::info!(next_lsn = lsn, "reset wal to empty");
        self.roll(lsn)
    }
}
