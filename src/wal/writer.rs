//! The single writer thread (group commit, segment roll, truncation, purge) and the read
//! path over the in-memory index. Owns every change to segment files after open; the
//! public handle in `mod.rs` only validates and queues.
//!
//! Group commit: the thread takes everything queued (up to `batch_size` records) as soon
//! as it is idle and issues one write for it. With `fsync` on it then hands the batch's
//! completions to the sync thread (`syncer`), which syncs while this thread already
//! writes what arrived meanwhile, so every append written during a sync shares the next
//! one; a lone append with nothing queued behind it is synced right here, never
//! delayed. With `fsync` off the batch completes once written, and a background sync
//! runs every `flush_interval`.

use super::format::SEGMENT_HEADER_LEN;
use super::segment::{self, io_err};
use super::{Done, Error, Op, Result, SegIndex, Shared, State};
use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Test-only fault injection: make the next data sync fail.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub fail_sync: std::sync::atomic::AtomicBool,
}

/// Starts the writer thread for `shared`.
pub(super) fn spawn(shared: Arc<Shared>) -> Result<std::thread::JoinHandle<()>> {
    let dir = shared.dir.clone();
    std::thread::Builder::new()
        .name("wal-writer".into())
        .spawn(move || Writer::new(shared).run())
        .map_err(|e| io_err("spawn writer thread", &dir, e))
}

struct Active {
    first_lsn: u64,
    path: PathBuf,
    file: Arc<File>,
    end: u64,
    records: u64,
}

struct Writer {
    sh: Arc<Shared>,
    active: Option<Active>,
    buf: Vec<u8>,
    offsets: Vec<u32>,
    dirty: bool,
    last_sync: Instant,
}

enum Work {
    Ops(Vec<Op>),
    BackgroundSync,
}

impl Writer {
    fn new(sh: Arc<Shared>) -> Self {
        let active = sh.state().segments.last().map(active_of);
        Self {
            sh,
            active,
            buf: Vec::new(),
            offsets: Vec::new(),
            dirty: false,
            last_sync: Instant::now(),
        }
    }

    fn run(mut self) {
        let syncer = if self.sh.opts.fsync {
            match super::syncer::spawn(self.sh.clone()) {
                Ok(t) => Some(t),
                Err(e) => {
                    poison_shared(&self.sh, &e);
                    None
                }
            }
        } else {
            None
        };
        loop {
            let ops = match self.next_work() {
                Work::Ops(ops) => ops,
                Work::BackgroundSync => {
                    if let Err(e) = self.sync() {
                        self.poison(&e, Vec::new());
                    }
                    continue;
                }
            };
            if let Some(Op::Close { .. }) = ops.first() {
                let Some(Op::Close { done }) = ops.into_iter().next() else {
                    unreachable!("checked just above")
                };
                let drained = self.sh.syncer.drain();
                self.sh.syncer.stop();
                if let Some(t) = syncer {
                    let _ = t.join();
                }
                // Every completion has run before the close completes.
                self.sh.syncer.stop_completer();
                let poisoned = self.sh.state().poisoned.clone();
                let r = match (poisoned, drained) {
                    (Some(reason), _) => Err(Error::Poisoned { reason }),
                    (None, Err(e)) => Err(e),
                    (None, Ok(())) => self.sync(),
                };
                self.fail_queued();
                done(r);
                return;
            }
            if self.sh.state().poisoned.is_some() {
                let reason = self.sh.state().poisoned.clone().unwrap_or_default();
                for op in ops {
                    done_of(op)(Err(Error::Poisoned {
                        reason: reason.clone(),
                    }));
                }
                continue;
            }
            self.process(ops);
        }
    }

    /// Waits for work; appends are merged up to `batch_size` records. Never waits for
    /// more appends to arrive: while a sync runs they queue up by themselves.
    fn next_work(&mut self) -> Work {
        let sh = self.sh.clone();
        let mut st = sh.state();
        while st.queue.is_empty() {
            st.writer_waits = true;
            if self.dirty && !sh.opts.fsync {
                let wait = sh
                    .opts
                    .flush_interval
                    .saturating_sub(self.last_sync.elapsed());
                if wait.is_zero() {
                    st.writer_waits = false;
                    return Work::BackgroundSync;
                }
                st = sh
                    .wake
                    .wait_timeout(st, wait)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            } else {
                st = sh
                    .wake
                    .wait(st)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
        st.writer_waits = false;
        let mut ops = Vec::new();
        let mut records = 0usize;
        while let Some(op) = st.queue.front() {
            let n = match op {
                Op::Append { records, .. } => records.len(),
                _ if ops.is_empty() => {
                    ops.extend(st.queue.pop_front());
                    break;
                }
                _ => break,
            };
            if !ops.is_empty() && records + n > sh.opts.batch_size {
                break;
            }
            records += n;
            ops.extend(st.queue.pop_front());
        }
        Work::Ops(ops)
    }

    fn process(&mut self, ops: Vec<Op>) {
        if !matches!(ops.first(), Some(Op::Append { .. })) {
            // Truncation, purge and reset change or remove files: no sync may run on them.
            if let Err(e) = self.sh.syncer.drain() {
                self.poison(&e, ops);
                return;
            }
        }
        let result = match ops.first() {
            Some(Op::Append { .. }) => self.write_batch(&ops),
            Some(Op::Truncate { lsn, .. }) => self.truncate(*lsn),
            Some(Op::Purge { keep_from, .. }) => self.purge(*keep_from),
            Some(Op::Reset { lsn, .. }) => self.reset(*lsn),
            Some(Op::Close { .. }) | None => Ok(()),
        };
        let appends = matches!(ops.first(), Some(Op::Append { .. }));
        match result {
            Ok(()) => {
                let dones: Vec<Done> = ops.into_iter().map(done_of).collect();
                let syncer = &self.sh.syncer;
                match &self.active {
                    Some(a) if appends && self.sh.opts.fsync => {
                        if dones.len() == 1 && syncer.idle() && self.sh.state().queue.is_empty() {
                            // A lone append with nothing to write meanwhile: sync here and
                            // save the sync thread's wake-up.
                            match data_sync(&self.sh, &a.file, &a.path) {
                                Ok(()) => syncer.complete(dones, &Ok(())),
                                Err(e) => {
                                    poison_shared(&self.sh, &e);
                                    dones.into_iter().for_each(|d| d(Err(e.clone())));
                                }
                            }
                        } else {
                            // Durable once the sync thread's next sync has finished,
                            // while this thread writes what arrives meanwhile.
                            syncer.hand_over(&a.file, &a.path, dones);
                        }
                    }
                    _ => dones.into_iter().for_each(|d| d(Ok(()))),
                }
            }
            Err(e) => self.poison(&e, ops),
        }
    }

    /// A data sync of the active segment on this thread (fsync off, a roll, close).
    fn sync(&mut self) -> Result<()> {
        let Some(a) = &self.active else {
            return Ok(());
        };
        data_sync(&self.sh, &a.file, &a.path)?;
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn write_batch(&mut self, ops: &[Op]) -> Result<()> {
        let sh = self.sh.clone();
        let opts = &sh.opts;
        let (mut n_records, mut payload_bytes, mut bytes) = (0u64, 0u64, 0u64);
        self.buf.clear();
        self.offsets.clear();
        for op in ops {
            let Op::Append {
                seq,
                records,
                encoded,
                ends,
                ..
            } = op
            else {
                continue;
            };
            for (i, r) in records.iter().enumerate() {
                let start = self.buf.len();
                let from = i.checked_sub(1).map_or(0, |p| ends[p]);
                self.buf.extend_from_slice(&encoded[from..ends[i]]);
                let len = (self.buf.len() - start) as u64;
                let full = self.active.as_ref().is_none_or(|a| {
                    (a.records > 0 || start > 0)
                        && a.end + self.buf.len() as u64 > opts.segment_size
                });
                if full {
                    // The record does not fit: write what precedes it, make the old
                    // segment durable (no sync may run on it once it is not active), roll.
                    let rec_bytes = self.buf.split_off(start);
                    bytes += self.flush_chunk(*seq)?;
                    if self.active.is_some() {
                        sh.syncer.drain()?;
                        self.sync()?;
                    }
                    self.roll(r.lsn)?;
                    self.buf = rec_bytes;
                }
                let a = self.active.as_ref().expect("roll leaves an active segment");
                self.offsets
                    .push((a.end + self.buf.len() as u64 - len) as u32);
                n_records += 1;
                payload_bytes += r.payload.len() as u64;
            }
        }
        let last_seq = ops.iter().rev().find_map(|op| match op {
            Op::Append { seq, .. } => Some(*seq),
            _ => None,
        });
        bytes += self.flush_chunk(last_seq.unwrap_or(0))?;
        self.sh
            .metrics
            .batch(ops.len() as u64, n_records, bytes, payload_bytes);
        Ok(())
    }

    /// Writes the buffered records to the active segment and publishes them in the index,
    /// dropping them from the pending buffer (up to append `seq`).
    fn flush_chunk(&mut self, seq: u64) -> Result<u64> {
        if self.buf.is_empty() {
            return Ok(0);
        }
        let a = self
            .active
            .as_mut()
            .expect("records are only buffered with an active segment");
        a.file
            .write_all_at(&self.buf, a.end)
            .map_err(|e| io_err("write segment", &a.path, e))?;
        a.end += self.buf.len() as u64;
        a.records += self.offsets.len() as u64;
        self.dirty = true;
        let mut st = self.sh.state();
        if let Some(reason) = &st.poisoned {
            // A sync failed meanwhile (sync thread): these records are not to be indexed.
            return Err(Error::Poisoned {
                reason: reason.clone(),
            });
        }
        let last_lsn = {
            let seg = st
                .segments
                .last_mut()
                .expect("the active segment is indexed");
            debug_assert_eq!(seg.first_lsn, a.first_lsn);
            seg.offsets.extend_from_slice(&self.offsets);
            seg.end = a.end;
            seg.first_lsn + seg.offsets.len() as u64 - 1
        };
        while st
            .pending
            .front()
            .is_some_and(|p| p.0 <= seq && p.1.lsn <= last_lsn)
        {
            st.pending.pop_front();
        }
        drop(st);
        let n = self.buf.len() as u64;
        self.buf.clear();
        self.offsets.clear();
        Ok(n)
    }

    fn roll(&mut self, first_lsn: u64) -> Result<()> {
        let opts = &self.sh.opts;
        let (path, file) =
            segment::create(&self.sh.dir, first_lsn, opts.segment_size, opts.preallocate)?;
        self.sh.metrics.segment_created();
        tracing::info!(segment = %path.display(), lsn = first_lsn, "started wal segment");
        let file = Arc::new(file);
        self.sh.state().segments.push(SegIndex {
            first_lsn,
            path: path.clone(),
            file: file.clone(),
            offsets: Vec::new(),
            end: SEGMENT_HEADER_LEN as u64,
        });
        self.active = Some(Active {
            first_lsn,
            path,
            file,
            end: SEGMENT_HEADER_LEN as u64,
            records: 0,
        });
        Ok(())
    }

    fn truncate(&mut self, lsn: u64) -> Result<()> {
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

    fn purge(&mut self, keep_from: u64) -> Result<()> {
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

    fn reset(&mut self, lsn: u64) -> Result<()> {
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

    /// After a failed write or sync nothing about the file can be trusted: refuse every
    /// change until the WAL is reopened (never retry a failed fsync).
    fn poison(&mut self, e: &Error, ops: Vec<Op>) {
        poison_shared(&self.sh, e);
        for op in ops {
            done_of(op)(Err(e.clone()));
        }
    }

    /// Fails every queued op but a `Close` (see [`fail_queued`]).
    fn fail_queued(&mut self) {
        fail_queued(&self.sh);
    }
}

/// Marks the WAL poisoned (refusing every change until reopened), forgets what was
/// accepted but not written, and fails every queued op. Called by the writer thread or,
/// for a failed sync, by the sync thread.
pub(super) fn poison_shared(sh: &Shared, e: &Error) {
    {
        let mut st = sh.state();
        if st.poisoned.is_none() {
            tracing::error!(error = %e, "wal write failed; refusing further writes until reopened");
            st.poisoned = Some(e.to_string());
        }
        rewind_to_disk(&mut st);
    }
    fail_queued(sh);
}

/// Fails every queued op but a `Close`, which stays queued so that the writer loop sees
/// it and stops the thread.
fn fail_queued(sh: &Shared) {
    let (queued, reason) = {
        let mut st = sh.state();
        let reason = st.poisoned.clone();
        let all = std::mem::take(&mut st.queue);
        let (close, rest): (VecDeque<Op>, VecDeque<Op>) = all
            .into_iter()
            .partition(|op| matches!(op, Op::Close { .. }));
        st.queue = close;
        (rest, reason)
    };
    for op in queued {
        let err = match &reason {
            Some(r) => Error::Poisoned { reason: r.clone() },
            None => Error::Closed,
        };
        done_of(op)(Err(err));
    }
}

/// One fdatasync of a segment, counted in the metrics (and failed on request in tests).
pub(super) fn data_sync(sh: &Shared, file: &File, path: &std::path::Path) -> Result<()> {
    #[cfg(test)]
    if sh
        .faults
        .fail_sync
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return Err(io_err(
            "fdatasync segment",
            path,
            std::io::Error::from_raw_os_error(libc::EIO),
        ));
    }
    let started = Instant::now();
    file.sync_data()
        .map_err(|e| io_err("fdatasync segment", path, e))?;
    sh.metrics.sync(started.elapsed());
    Ok(())
}

fn rewind_to_disk(st: &mut State) {
    st.pending.clear();
    if let Some(last) = st.segments.last() {
        st.next_lsn = st.next_lsn.min(last.first_lsn + last.offsets.len() as u64);
    }
    let next = st.next_lsn;
    st.trim_terms_after(next.saturating_sub(1));
}

fn active_of(s: &SegIndex) -> Active {
    Active {
        first_lsn: s.first_lsn,
        path: s.path.clone(),
        file: s.file.clone(),
        end: s.end,
        records: s.offsets.len() as u64,
    }
}

fn done_of(op: Op) -> Done {
    match op {
        Op::Append { done, .. }
        | Op::Truncate { done, .. }
        | Op::Purge { done, .. }
        | Op::Reset { done, .. }
        | Op::Close { done } => done,
    }
}
