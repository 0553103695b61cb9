//! The write-ahead log: a segmented, checksummed, optionally compressed log of opaque
//! records keyed by a contiguous LSN, each carrying the term it was written in. Owns
//! durability (group commit, fsync), reads, suffix truncation, prefix purge and
//! recovery. Knows nothing of consensus or SQL: callers decide what is safe to purge.
//!
//! Invariant: an append's completion (future or callback) reports success only after its
//! records are written and, with `fsync` on, fdatasync'd. Records are visible to
//! [`Wal::read`] as soon as the append call returns, before they are durable.

mod error;
pub mod format;
pub mod inspect;
pub mod metrics;
mod read;
pub mod recovery;
pub mod retention;
pub mod segment;
mod state;
mod syncer;
mod types;
mod writer;

pub use error::Error;
pub use metrics::MetricsSnapshot;
pub use read::WalIter;
pub use segment::Preallocate;
pub use types::{Record, WalOptions};

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

use state::{Done, Op, SegIndex, State};

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::ops::{Bound, RangeBounds};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

struct Shared {
    dir: PathBuf,
    opts: WalOptions,
    state: Mutex<State>,
    wake: Condvar,
    /// Held shared by readers during pread, exclusively while files shrink or vanish.
    io: RwLock<()>,
    metrics: metrics::Metrics,
    /// Hand-over of written appends to the sync thread (fsync on).
    syncer: syncer::Syncer,
    /// The directory lock; released by `close` (or when the last handle goes).
    lock: Mutex<Option<DirLock>>,
    #[cfg(test)]
    faults: writer::Faults,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct Handle {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // No fallible I/O here: ask the writer to finish its queue and stop, then wait.
        {
            let mut st = self.shared.state();
            if !st.closed {
                st.closed = true;
                st.queue.push_back(Op::Close {
                    done: Box::new(|_| {}),
                });
                self.shared.wake.notify_one();
            }
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

/// A handle to an open WAL; clones share one writer thread. Send + Sync.
#[derive(Clone)]
pub struct Wal {
    h: Arc<Handle>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.shared().dir)
            .field("next_lsn", &self.next_lsn())
            .finish()
    }
}

/// An exclusive `flock` on `<dir>/LOCK`, released explicitly on drop.
///
/// The lock belongs to the open file description, which a child process forked by any
/// thread of this process shares until it execs; closing our descriptor alone would leave
/// the directory locked for that moment. `LOCK_UN` releases it for every copy at once.
struct DirLock(File);

impl Drop for DirLock {
    fn drop(&mut self) {
        // SAFETY: flock only reads the fd and flags; the fd is open while `self.0` lives.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn lock_dir(dir: &Path) -> Result<DirLock> {
    let path = dir.join("LOCK");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| segment::io_err("open lock file", &path, e))?;
    // SAFETY: flock only reads the fd and flags; the fd stays open while `f` lives.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::Locked {
            dir: dir.to_path_buf(),
        });
    }
    Ok(DirLock(f))
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir`, validating every segment and cutting
    /// a torn tail of the last one. Blocking: call it from a blocking context.
    ///
    /// # Errors
    /// `Corruption` for damage recovery may not cut, `Locked`, `InvalidOptions`, I/O.
    pub fn open(dir: impl AsRef<Path>, opts: WalOptions) -> Result<Wal> {
        opts.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| segment::io_err("create directory", &dir, e))?;
        let lock = lock_dir(&dir)?;
        let started = std::time::Instant::now();
        let rec = recovery::recover(&dir, opts.segment_size, opts.preallocate)?;
        tracing::info!(
            dir = %dir.display(),
            segments = rec.segments.len(),
            first_lsn = rec.base,
            next_lsn = rec.next_lsn,
            cut = rec.cut.is_some(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "opened wal"
        );
        let segments = rec
            .segments
            .into_iter()
            .map(|s| SegIndex {
                first_lsn: s.first_lsn,
                path: s.path,
                file: s.file,
                offsets: s.offsets,
                end: s.end,
            })
            .collect();
        let state = State {
            segments,
            terms: rec.terms,
            pending: VecDeque::new(),
            next_lsn: rec.next_lsn,
            base: rec.base,
            poisoned: None,
            closed: false,
            seq: 0,
            queue: VecDeque::new(),
            writer_waits: false,
        };
        let shared = Arc::new(Shared {
            dir,
            opts,
            state: Mutex::new(state),
            wake: Condvar::new(),
            io: RwLock::new(()),
            metrics: metrics::Metrics::default(),
            syncer: syncer::Syncer::default(),
            lock: Mutex::new(Some(lock)),
            #[cfg(test)]
            faults: writer::Faults::default(),
        });
        let thread = writer::spawn(shared.clone())?;
        Ok(Wal {
            h: Arc::new(Handle {
                shared,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.h.shared
    }

    /// Queues `records` for the writer and returns at once; `done` runs on the writer
    /// thread once they are written (and fdatasync'd when `fsync` is on). The records are
    /// readable as soon as this returns.
    ///
    /// # Errors
    /// `Gap`, `NotContiguous`, `TooLarge`, `Poisoned` or `Closed`, checked before anything
    /// is queued; `done` is then never called.
    pub fn append_with(
        &self,
        records: Vec<Record>,
        done: impl FnOnce(Result<()>) + Send + 'static,
    ) -> Result<()> {
        for r in &records {
            if r.payload.len() > format::MAX_PAYLOAD {
                return Err(Error::TooLarge {
                    len: r.payload.len(),
                    max: format::MAX_PAYLOAD,
                });
            }
        }
        let sh = self.shared();
        // Encoding (CRC, LZ4) happens here, on the caller's thread, so that it overlaps
        // with the writer's sync instead of adding to it.
        let mut encoded = Vec::with_capacity(
            records
                .iter()
                .map(|r| r.payload.len() + format::RECORD_HEADER_LEN)
                .sum(),
        );
        let mut ends = Vec::with_capacity(records.len());
        for r in &records {
            format::encode_record(r.lsn, r.term, &r.payload, sh.opts.compression, &mut encoded);
            ends.push(encoded.len());
        }
        let mut st = sh.state();
        st.check_open()?;
        if let Some(first) = records.first() {
            if first.lsn != st.next_lsn {
                return Err(Error::Gap {
                    expected: st.next_lsn,
                    got: first.lsn,
                });
            }
            for w in records.windows(2) {
                if w[1].lsn != w[0].lsn + 1 {
                    return Err(Error::NotContiguous {
                        prev: w[0].lsn,
                        got: w[1].lsn,
                    });
                }
            }
        }
        st.seq += 1;
        let seq = st.seq;
        for r in &records {
            if st.terms.last().map(|t| t.1) != Some(r.term) {
                st.terms.push((r.lsn, r.term));
            }
            st.pending.push_back((seq, r.clone()));
        }
        st.next_lsn += records.len() as u64;
        st.queue.push_back(Op::Append {
            seq,
            records,
            encoded,
            ends,
            done: Box::new(done),
        });
        // A wake-up costs a syscall: only the first append queued while the writer waits.
        if st.writer_waits {
            st.writer_waits = false;
            sh.wake.notify_one();
        }
        Ok(())
    }

    /// Appends `records`; the future resolves once they are durable. Validation happens
    /// in this call, so the records are readable before the future is first polled.
    pub fn append(
        &self,
        records: Vec<Record>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued = self.append_with(records, move |r| {
            let _ = tx.send(r);
        });
        completion(queued, rx)
    }

    /// [`Wal::append`] for threads that may block.
    ///
    /// # Errors
    /// As [`Wal::append_with`], or the write/sync error.
    pub fn append_blocking(&self, records: Vec<Record>) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.append_with(records, move |r| {
            let _ = tx.send(r);
        })?;
        rx.recv().unwrap_or(Err(Error::Closed))
    }

    fn submit(&self, make: impl FnOnce(&mut State, Done) -> Result<Op>, done: Done) -> Result<()> {
        let sh = self.shared();
        let mut st = sh.state();
        st.check_open()?;
        let op = make(&mut st, done)?;
        st.queue.push_back(op);
        sh.wake.notify_one();
        Ok(())
    }

    /// Removes every record after `lsn` (a new leader overwriting an uncommitted
    /// suffix); `done` runs once the cut is durable (file cut and synced, later segments
    /// deleted, directory synced). Visible to readers at once.
    ///
    /// # Errors
    /// `BeforeStart` when `lsn + 1` is below the first record, `Poisoned`, `Closed`.
    pub fn truncate_after_with(
        &self,
        lsn: u64,
        done: impl FnOnce(Result<()>) + Send + 'static,
    ) -> Result<()> {
        self.submit(
            |st, done| {
                if lsn.saturating_add(1) < st.base {
                    return Err(Error::BeforeStart {
                        lsn,
                        first: st.base,
                    });
                }
                if lsn < st.next_lsn {
                    st.next_lsn = lsn + 1;
                    while st.pending.back().is_some_and(|p| p.1.lsn > lsn) {
                        st.pending.pop_back();
                    }
                    st.trim_terms_after(lsn);
                }
                Ok(Op::Truncate { lsn, done })
            },
            Box::new(done),
        )
    }

    /// Async form of [`Wal::truncate_after_with`].
    pub fn truncate_after(&self, lsn: u64) -> impl Future<Output = Result<()>> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued = self.truncate_after_with(lsn, move |r| {
            let _ = tx.send(r);
        });
        completion(queued, rx)
    }

    /// Deletes whole segments whose records all precede `lsn`; the segment holding `lsn`
    /// stays. When `lsn` is past the last record the log becomes empty and the next append
    /// must carry `lsn` (a snapshot replaced the log). `done` runs once durable.
    ///
    /// # Errors
    /// `Poisoned`, `Closed`.
    pub fn purge_before_with(
        &self,
        lsn: u64,
        done: impl FnOnce(Result<()>) + Send + 'static,
    ) -> Result<()> {
        self.submit(
            |st, done| {
                if lsn >= st.next_lsn {
                    st.base = lsn;
                    st.next_lsn = lsn;
                    st.pending.clear();
                    st.terms.clear();
                    return Ok(Op::Reset { lsn, done });
                }
                let keep = st
                    .segments
                    .windows(2)
                    .take_while(|w| w[1].first_lsn <= lsn)
                    .last()
                    .map(|w| w[1].first_lsn);
                let keep_from = keep.unwrap_or(st.base).max(st.base);
                st.base = keep_from;
                st.trim_terms_before(keep_from);
                Ok(Op::Purge { keep_from, done })
            },
            Box::new(done),
        )
    }

    /// Async form of [`Wal::purge_before_with`].
    pub fn purge_before(&self, lsn: u64) -> impl Future<Output = Result<()>> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued = self.purge_before_with(lsn, move |r| {
            let _ = tx.send(r);
        });
        completion(queued, rx)
    }

    /// Blocking form of [`Wal::truncate_after_with`].
    ///
    /// # Errors
    /// As the callback form, or the I/O error of the cut.
    pub fn truncate_after_blocking(&self, lsn: u64) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.truncate_after_with(lsn, move |r| {
            let _ = tx.send(r);
        })?;
        rx.recv().unwrap_or(Err(Error::Closed))
    }

    /// Drops every record and makes `lsn` the next LSN to append: the log is replaced
    /// wholesale (truncated to nothing, or restarted at another position, as consensus
    /// does when its first entry is index 0). Blocking; durable when it returns.
    ///
    /// # Errors
    /// `Poisoned`, `Closed`, or the I/O error of deleting the segments.
    pub fn reset_blocking(&self, lsn: u64) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.submit(
            |st, done| {
                st.base = lsn;
                st.next_lsn = lsn;
                st.pending.clear();
                st.terms.clear();
                Ok(Op::Reset { lsn, done })
            },
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        rx.recv().unwrap_or(Err(Error::Closed))
    }

    /// Blocking form of [`Wal::purge_before_with`].
    ///
    /// # Errors
    /// As the callback form, or the I/O error of the deletion.
    pub fn purge_before_blocking(&self, lsn: u64) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.purge_before_with(lsn, move |r| {
            let _ = tx.send(r);
        })?;
        rx.recv().unwrap_or(Err(Error::Closed))
    }

    /// First record held, as (lsn, term).
    pub fn first(&self) -> Option<(u64, u64)> {
        let st = self.shared().state();
        st.term_of(st.base).map(|t| (st.base, t))
    }

    /// Last record held (including not yet durable ones), as (lsn, term).
    pub fn last(&self) -> Option<(u64, u64)> {
        let st = self.shared().state();
        let lsn = st.next_lsn.checked_sub(1)?;
        st.term_of(lsn).map(|t| (lsn, t))
    }

    /// The term of the record at `lsn`, if held.
    pub fn term_of(&self, lsn: u64) -> Option<u64> {
        self.shared().state().term_of(lsn)
    }

    /// The LSN the next append must start with.
    pub fn next_lsn(&self) -> u64 {
        self.shared().state().next_lsn
    }

    /// Reads the held records within `range` (clamped to what is held), CRC-checking
    /// each. Blocking (pread): async callers use `spawn_blocking`.
    ///
    /// # Errors
    /// `Corruption` if a record fails its check; I/O errors.
    pub fn read(&self, range: impl RangeBounds<u64>) -> Result<Vec<Record>> {
        let (start, end) = half_open(&range);
        read::read_range(self.shared(), start, end)
    }

    /// Iterates over the records in `range`, reading them in chunks.
    pub fn iter(&self, range: impl RangeBounds<u64>) -> WalIter {
        let (next, end) = half_open(&range);
        WalIter {
            wal: self.clone(),
            next,
            end,
            buf: VecDeque::new(),
        }
    }

    /// Segments currently held, oldest first (for retention and inspection).
    pub fn segments(&self) -> Vec<retention::SegmentInfo> {
        let st = self.shared().state();
        st.segments
            .iter()
            .map(|s| retention::SegmentInfo {
                first_lsn: s.first_lsn,
                records: s.offsets.len() as u64,
                path: s.path.clone(),
                bytes: s.file.metadata().map_or(0, |m| m.len()),
                modified: s.file.metadata().and_then(|m| m.modified()).ok(),
            })
            .collect()
    }

    /// The directory this WAL lives in.
    pub fn dir(&self) -> &Path {
        &self.shared().dir
    }

    /// The options it was opened with.
    pub fn options(&self) -> &WalOptions {
        &self.shared().opts
    }

    /// A copy of the WAL's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared().metrics.snapshot()
    }

    /// Writes and syncs everything queued, then stops the writer thread. Other clones
    /// get `Closed` afterwards.
    ///
    /// # Errors
    /// The final sync fails, or the WAL was poisoned.
    pub fn close(&self) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let sh = self.shared();
            let mut st = sh.state();
            if st.closed {
                return Ok(());
            }
            st.closed = true;
            st.queue.push_back(Op::Close {
                done: Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            });
            sh.wake.notify_one();
        }
        let r = rx.recv().unwrap_or(Err(Error::Closed));
        if let Some(t) = self.h.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
        if let Ok(mut l) = self.shared().lock.lock() {
            l.take();
        }
        r
    }
}

/// `range` as `[start, end)`, saturating at the ends of `u64`.
pub fn half_open(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

async fn completion(
    queued: Result<()>,
    rx: tokio::sync::oneshot::Receiver<Result<()>>,
) -> Result<()> {
    queued?;
    rx.await.unwrap_or(Err(Error::Closed))
}

#[cfg(test)]
mod tests;
