//! The sync thread (with `fsync` on): data syncs run here, beside the writer thread, so
//! that the writer writes the next batch while the previous one syncs. Owns the list of
//! appends that are written but not yet durable; a completion thread completes them, in
//! order, once a data sync that began after their write has finished.
//!
//! Pipelined group commit: whatever the writer wrote while a sync ran is covered by the
//! next sync, which starts as soon as the previous one ends. The disk never waits for the
//! writer to gather or encode a batch, nor for callers to be woken, and every append
//! written during a sync shares the next one.
//!
//! Invariant: all handed-over appends live in one segment file. The writer calls
//! [`Syncer::drain`] before anything that changes which file is active or cuts a file
//! (roll, truncation, purge, reset, close), so no sync ever races a file change.

use super::segment::io_err;
use super::{Done, Error, Result, Shared};
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the sync thread spins for more work before it sleeps.
const SPIN: Duration = Duration::from_micros(40);

#[derive(Default)]
struct Queue {
    /// Completions of appends written but not yet covered by a finished sync, oldest first.
    written: Vec<Done>,
    /// The segment they were written to.
    file: Option<(Arc<File>, PathBuf)>,
    /// A sync is running.
    busy: bool,
    /// The sync thread sleeps, waiting for work.
    idle: bool,
    /// The writer waits in `drain`.
    draining: bool,
    /// The sync that failed: every later hand-over fails with it.
    failed: Option<Error>,
    stop: bool,
}

/// The hand-over point between the writer thread and the sync thread.
#[derive(Default)]
pub(super) struct Syncer {
    q: Mutex<Queue>,
    /// Wakes the sync thread.
    work: Condvar,
    /// Wakes the writer waiting in `drain`.
    drained: Condvar,
}

impl Syncer {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.q
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues the completions of appends just written to `file`; they run once a sync
    /// that starts after this call has finished (at once with the error if a sync failed).
    pub(super) fn hand_over(&self, file: &Arc<File>, path: &std::path::Path, dones: Vec<Done>) {
        if dones.is_empty() {
            return;
        }
        let failed = {
            let mut q = self.lock();
            match &q.failed {
                Some(e) => Some(e.clone()),
                None => {
                    if q.file.as_ref().is_none_or(|f| !Arc::ptr_eq(&f.0, file)) {
                        debug_assert!(q.written.is_empty(), "hand-over across files");
                        q.file = Some((file.clone(), path.to_path_buf()));
                    }
                    q.written.extend(dones);
                    if q.idle {
                        q.idle = false;
                        self.work.notify_one();
                    }
                    return;
                }
            }
        };
        if let Some(e) = failed {
            dones.into_iter().for_each(|d| d(Err(e.clone())));
        }
    }

    /// Waits until every handed-over append is durable and no sync runs.
    ///
    /// # Errors
    /// The error of a failed sync.
    pub(super) fn drain(&self) -> Result<()> {
        let mut q = self.lock();
        while q.busy || !q.written.is_empty() {
            if q.failed.is_some() && !q.busy {
                break;
            }
            q.draining = true;
            q = self
                .drained
                .wait(q)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        q.draining = false;
        match &q.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Asks the sync thread to finish what it holds and stop.
    pub(super) fn stop(&self) {
        let mut q = self.lock();
        q.stop = true;
        self.work.notify_one();
    }
}

/// Starts the sync thread for `shared` (it starts the completion thread).
pub(super) fn spawn(shared: Arc<Shared>) -> Result<std::thread::JoinHandle<()>> {
    let dir = shared.dir.clone();
    let (tx, rx) = std::sync::mpsc::channel::<Completed>();
    let completer = std::thread::Builder::new()
        .name("wal-complete".into())
        .spawn(move || {
            // In order: a batch's callers learn the outcome only after every earlier one.
            for (dones, r) in rx {
                dones.into_iter().for_each(|d| d(r.clone()));
            }
        })
        .map_err(|e| io_err("spawn completion thread", &dir, e))?;
    std::thread::Builder::new()
        .name("wal-sync".into())
        .spawn(move || {
            run(&shared, &tx);
            // Every completion runs before the writer (which joins this thread) closes.
            drop(tx);
            let _ = completer.join();
        })
        .map_err(|e| io_err("spawn sync thread", &dir, e))
}

/// Callers of one sync and its outcome, for the completion thread.
type Completed = (Vec<Done>, Result<()>);

fn run(sh: &Shared, completer: &std::sync::mpsc::Sender<Completed>) {
    let s = &sh.syncer;
    loop {
        // Spin (yielding) briefly before sleeping: appends that arrive within a few tens
        // of microseconds then start the next sync without a thread wake-up, which on a
        // virtual machine costs about as much as a fast sync.
        let spin_until = Instant::now() + SPIN;
        let (dones, file) = {
            let mut q = s.lock();
            while q.written.is_empty() && !q.stop && Instant::now() < spin_until {
                drop(q);
                std::thread::yield_now();
                q = s.lock();
            }
            while q.written.is_empty() {
                if q.stop {
                    return;
                }
                q.idle = true;
                q = s
                    .work
                    .wait(q)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            q.idle = false;
            q.busy = true;
            (std::mem::take(&mut q.written), q.file.clone())
        };
        let r = match &file {
            Some((f, path)) => super::writer::data_sync(sh, f, path),
            None => Ok(()),
        };
        let mut late = Vec::new();
        if let Err(e) = &r {
            // Nothing written to this file can be trusted now: refuse every change until
            // the WAL is reopened, and fail what was handed over during the sync.
            super::writer::poison_shared(sh, e);
            let mut q = s.lock();
            q.failed = Some(e.clone());
            late = std::mem::take(&mut q.written);
        }
        // Completing callers (waking their tasks) runs on its own thread, beside the next
        // sync. A send fails only if that thread is gone (it panicked): complete here.
        for batch in [dones, late] {
            if batch.is_empty() {
                continue;
            }
            if let Err(std::sync::mpsc::SendError((dones, r))) = completer.send((batch, r.clone()))
            {
                dones.into_iter().for_each(|d| d(r.clone()));
            }
        }
        let mut q = s.lock();
        q.busy = false;
        if q.draining && (q.written.is_empty() || q.failed.is_some()) {
            s.drained.notify_all();
        }
    }
}
