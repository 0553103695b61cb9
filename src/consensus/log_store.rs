//! openraft's log storage over our WAL (entries) and the state db (vote, committed and
//! purged log ids).
//!
//! Rules this file keeps:
//! - an append is readable when `append` returns and reported flushed to openraft only
//!   after the WAL has fdatasync'd it (the WAL's completion callback);
//! - appends must continue the log exactly: a gap or overlap is refused, even though
//!   openraft should never send one (an upstream bug once did);
//! - the vote is durable (SQLite, `synchronous=FULL`) before `save_vote` returns;
//! - the WAL only deletes whole segments, so entries at or below the purged log id may
//!   still be on disk: they are never handed out.

// openraft's StorageError is large by design; these signatures are openraft's.
#![allow(clippy::result_large_err)]

use super::codec;
use super::committed::{self, CommittedHint};
use super::recent::Recent;
use super::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote};
use crate::observe::stages::{self, Mark};
use crate::state::StateDb;
use crate::wal::{Record, Wal};
use anyerror::AnyError;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError};
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

const KEY_VOTE: &str = "raft.vote";
const KEY_PURGED: &str = "raft.last_purged";

/// The log store; clones share the same WAL and pointers (the clone is the log reader).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    wal: Wal,
    state: StateDb,
    ptrs: Mutex<Pointers>,
    /// The entries appended last (see `recent`).
    recent: Mutex<Recent>,
    /// Writes the committed hint off openraft's core loop (see `committed`).
    committed: CommittedHint,
}

#[derive(Debug, Clone, Copy, Default)]
struct Pointers {
    /// Greatest purged log id; entries at or below it are never returned.
    purged: Option<LogId>,
    /// Log id of the last entry held (written or pending), if any.
    last: Option<LogId>,
}

impl Pointers {
    /// The last entry that reads can return: held and above the purge point.
    fn visible_last(&self) -> Option<LogId> {
        self.last
            .filter(|l| self.purged.is_none_or(|p| l.index > p.index))
    }
}

fn io_err(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError {
    StorageError::IO {
        source: StorageIOError::new(subject, verb, AnyError::new(&e)),
    }
}

fn logs_err(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::Logs, verb, e)
}

/// A message as an error, for invariants openraft's error types want wrapped.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Violation(String);

/// Runs blocking storage work off the async executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        logs_err(
            ErrorVerb::Read,
            Violation(format!("storage task failed: {e}")),
        )
    })?
}

impl LogStore {
    /// Opens the log store over an open WAL and state db, reading back the last entry's
    /// log id and the purge point. Blocking.
    ///
    /// # Errors
    /// When the state db or the last WAL record cannot be read or decoded.
    pub fn open(wal: Wal, state: StateDb) -> Result<LogStore, StorageError> {
        let purged: Option<LogId> = state
            .get(KEY_PURGED)
            .map_err(|e| logs_err(ErrorVerb::Read, e))?;
        let mut last = None;
        if let Some((lsn, _)) = wal.last() {
            let recs = wal
                .read(lsn..=lsn)
                .map_err(|e| logs_err(ErrorVerb::Read, e))?;
            let rec = recs.first().ok_or_else(|| {
                logs_err(
                    ErrorVerb::Read,
                    Violation(format!("wal lost its last record {lsn}")),
                )
            })?;
            let e =
                codec::decode(rec.lsn, &rec.payload).map_err(|e| logs_err(ErrorVerb::Read, e))?;
            last = Some(e.log_id);
        }
        // A purge past the last entry (a snapshot replaced the log) leaves no entry behind.
        if let (Some(p), Some(l)) = (purged, last) {
            if p.index >= l.index {
                last = None;
            }
        }
        let committed = CommittedHint::start(state.clone()).map_err(|e| {
            logs_err(
                ErrorVerb::Write,
                Violation(format!("cannot start the committed-hint thread: {e}")),
            )
        })?;
        Ok(LogStore {
            inner: Arc::new(Inner {
                wal,
                state,
                ptrs: Mutex::new(Pointers { purged, last }),
                recent: Mutex::new(Recent::default()),
                committed,
            }),
        })
    }

    fn ptrs(&self) -> Pointers {
        *self.inner.ptrs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_ptrs(&self, f: impl FnOnce(&mut Pointers)) {
        f(&mut self.inner.ptrs.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.inner.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The WAL under this store (for status and inspection).
    pub fn wal(&self) -> &Wal {
        &self.inner.wal
    }

    /// Last log id held and the purge point, without going through openraft.
    pub fn pointers(&self) -> (Option<LogId>, Option<LogId>) {
        let p = self.ptrs();
        (p.last, p.purged)
    }

    /// Reads entries in `[start, end)`, skipping anything at or below the purge point.
    fn read_range(&self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        let p = self.ptrs();
        let start = match p.purged {
            Some(purged) => start.max(purged.index + 1),
            None => start,
        };
        let end = match p.last {
            Some(last) => end.min(last.index + 1),
            None => return Ok(Vec::new()),
        };
        // An empty, never-purged log may have started above 0.
        let start = match self.inner.wal.first() {
            Some((first, _)) => start.max(first),
            None => return Ok(Vec::new()),
        };
        if start >= end {
            return Ok(Vec::new());
        }
        let records = self
            .inner
            .wal
            .read(start..end)
            .map_err(|e| logs_err(ErrorVerb::Read, e))?;
        let mut out = Vec::with_capacity(records.len());
        for (i, rec) in records.iter().enumerate() {
            let want = start + i as u64;
            if rec.lsn != want {
                return Err(io_err(
                    ErrorSubject::LogIndex(want),
                    ErrorVerb::Read,
                    Violation(format!(
                        "wal returned lsn {} where {want} was expected",
                        rec.lsn
                    )),
                ));
            }
            out.push(
                codec::decode(rec.lsn, &rec.payload)
                    .map_err(|e| io_err(ErrorSubject::LogIndex(rec.lsn), ErrorVerb::Read, e))?,
            );
        }
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = crate::wal::half_open(&range);
        // Just appended (the usual case: replication and apply follow the append): no
        // blocking read, no thread hand-off.
        if let Some(entries) = self.recent().get(start, end) {
            return Ok(entries);
        }
        let me = self.clone();
        blocking(move || me.read_range(start, end)).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let p = self.ptrs();
        let last = match (p.last, p.purged) {
            (Some(l), Some(pu)) if pu.index >= l.index => Some(pu),
            (l, pu) => l.or(pu),
        };
        Ok(LogState {
            last_purged_log_id: p.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let state = self.inner.state.clone();
        let vote = *vote;
        blocking(move || {
            state
                .put(KEY_VOTE, &vote)
                .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let state = self.inner.state.clone();
        blocking(move || {
            state
                .get(KEY_VOTE)
                .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Read, e))
        })
        .await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // A hint for restart (re-apply up to it without waiting for a leader); it may lag,
        // never lead, the real commit point, so it is written behind openraft's back (a
        // relaxed write on the hint's own thread).
        self.inner.committed.save(committed).map_err(|reason| {
            io_err(
                ErrorSubject::Store,
                ErrorVerb::Write,
                Violation(format!("saving the committed log id failed: {reason}")),
            )
        })
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        if let Some(latest) = self.inner.committed.latest() {
            return Ok(latest);
        }
        let state = self.inner.state.clone();
        blocking(move || {
            committed::read(&state).map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))
        })
        .await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let (first_id, last_id) = (first.log_id, last.log_id);
        stages::mark_range(first_id.index, last_id.index, Mark::Appended);
        // Appends must continue the entries held exactly. An empty log may start anywhere:
        // openraft starts at 0, and after a purge past the end it restarts where told.
        let visible_last = self.ptrs().visible_last();
        if let Some(l) = visible_last {
            if first_id.index != l.index + 1 {
                return Err(io_err(
                    ErrorSubject::Log(first_id),
                    ErrorVerb::Write,
                    Violation(format!(
                        "refusing an append that leaves a gap or overlap: log continues at {}, append starts at {}",
                        l.index + 1,
                        first_id.index
                    )),
                ));
            }
        }
        let mut records = Vec::with_capacity(entries.len());
        let mut sizes = Vec::with_capacity(entries.len());
        for e in &entries {
            let bytes = codec::encode(e)
                .map_err(|err| io_err(ErrorSubject::Log(e.log_id), ErrorVerb::Write, err))?;
            sizes.push(bytes.len());
            records.push(Record::new(e.log_id.index, e.log_id.leader_id.term, bytes));
        }
        let wal = &self.inner.wal;
        // Nothing visible is held (records at or below the purge point may remain): the
        // log restarts at the append's index. Deleting segments blocks: off the runtime.
        if visible_last.is_none() && wal.next_lsn() != first_id.index {
            self.recent().clear();
            let w = wal.clone();
            let at = first_id.index;
            blocking(move || {
                w.reset_blocking(at)
                    .map_err(|e| io_err(ErrorSubject::Log(first_id), ErrorVerb::Write, e))
            })
            .await?;
        }
        wal.append_with(records, move |r| {
            if r.is_ok() {
                stages::mark_range(first_id.index, last_id.index, Mark::Flushed);
            }
            callback.log_io_completed(r.map_err(|e| std::io::Error::other(e.to_string())));
        })
        .map_err(|e| io_err(ErrorSubject::Log(first_id), ErrorVerb::Write, e))?;
        // Readable from the WAL now, so from the cache too.
        self.recent().append(entries.into_iter().zip(sizes));
        self.set_ptrs(|p| p.last = Some(last_id));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let index = log_id.index;
        let p = self.ptrs();
        if p.last.is_none_or(|l| l.index < index) {
            return Ok(());
        }
        // The entry before the cut becomes the last one; read it before cutting.
        let new_last = if index == 0 {
            None
        } else {
            let me = self.clone();
            blocking(move || me.read_range(index - 1, index))
                .await?
                .pop()
                .map(|e| e.log_id)
        };
        // The cache forgets the cut entries before the WAL does: no read sees them after.
        self.recent().cut_from(index);
        let wal = self.inner.wal.clone();
        let first_held = wal.first().map(|(lsn, _)| lsn);
        blocking(move || {
            match first_held {
                Some(first) if index <= first => wal.reset_blocking(index),
                _ => wal.truncate_after_blocking(index - 1),
            }
            .map_err(|e| io_err(ErrorSubject::Log(log_id), ErrorVerb::Delete, e))
        })
        .await?;
        self.set_ptrs(|p| p.last = new_last);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        if self.ptrs().purged.is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        self.recent().drop_upto(log_id.index);
        // Record the purge point first: if we crash before the segments go, the entries
        // are merely hidden, never resurrected.
        let state = self.inner.state.clone();
        blocking(move || {
            state
                .put(KEY_PURGED, &log_id)
                .map_err(|e| logs_err(ErrorVerb::Delete, e))
        })
        .await?;
        self.set_ptrs(|p| {
            p.purged = Some(log_id);
            if p.last.is_some_and(|l| l.index <= log_id.index) {
                p.last = None;
            }
        });
        let wal = self.inner.wal.clone();
        blocking(move || {
            wal.purge_before_blocking(log_id.index + 1)
                .map_err(|e| logs_err(ErrorVerb::Delete, e))
        })
        .await?;
        tracing::info!(log_index = log_id.index, "log purged up to this entry");
        Ok(())
    }
}
