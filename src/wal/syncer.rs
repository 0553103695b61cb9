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
//! A lone append with nothing else queued and the sync thread idle is synced by the
//! writer itself (there is nothing to overlap, and a thread wake-up costs about as much as
//! a fast sync on a virtual machine); small batches are completed by the syncing thread
//! itself when the completion thread has nothing left.
//!
//! Invariant: all handed-over appends live in one segment file. The writer calls
//! [`Syncer::drain`] before anything that changes which file is active or cuts a file
//! (roll, truncation, purge, reset, close), so no sync ever races a file change.

use super::segment::io_err;
use super::{Done, Error, Result, Shared};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// The completion thread (fsync on).
    completer: Mutex<Option<Completer>>,
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

    /// Whether no sync runs and nothing waits for one.
    pub(super) fn idle(&self) -> bool {
        let q = self.lock();
        !q.busy && q.written.is_empty() && q.failed.is_none()
    }

    /// Completes callers in sync order: a small batch on the calling (syncing) thread
    /// when the completion thread has nothing left, saving a thread hop on a lone
    /// writer's path; otherwise on the completion thread, beside the next sync.
    ///
    /// Only one thread syncs at a time (the writer syncs itself only while the sync
    /// thread is idle with nothing handed over), so completions never race each other.
    pub(super) fn complete(&self, dones: Vec<Done>, r: &Result<()>) {
        if dones.is_empty() {
            return;
        }
        let dones = {
            let c = self
                .completer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match c.as_ref() {
                Some(c) if dones.len() > INLINE_MAX || c.pending.load(Ordering::Acquire) > 0 => {
                    c.pending.fetch_add(1, Ordering::AcqRel);
                    match c.tx.send((dones, r.clone())) {
                        Ok(()) => return,
                        // The completion thread is gone (it panicked): complete here.
                        Err(std::sync::mpsc::SendError((dones, _))) => {
                            c.pending.fetch_sub(1, Ordering::AcqRel);
                            dones
                        }
                    }
                }
                _ => dones,
            }
        };
        dones.into_iter().for_each(|d| d(r.clone()));
    }

    /// Stops the completion thread once it completed everything sent to it.
    pub(super) fn stop_completer(&self) {
        let c = self
            .completer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(c) = c {
            drop(c.tx);
            let _ = c.thread.join();
        }
    }

    /// Asks the sync thread to finish what it holds and stop.
    pub(super) fn stop(&self) {
        let mut q = self.lock();
        q.stop = true;
        self.work.notify_one();
    }
}

/// Starts the completion thread and the sync thread for `shared`.
pub(super) fn spawn(shared: Arc<Shared>) -> Result<std::thread::JoinHandle<()>> {
    let dir = shared.dir.clone();
    let (tx, rx) = std::sync::mpsc::channel::<Completed>();
    let pending = Arc::new(AtomicUsize::new(0));
    let thread = {
        let pending = pending.clone();
        std::thread::Builder::new()
            .name("wal-complete".into())
            .spawn(move || {
                // In order: a batch's callers learn the outcome only after every earlier one.
                for (dones, r) in rx {
                    dones.into_iter().for_each(|d| d(r.clone()));
                    pending.fetch_sub(1, Ordering::AcqRel);
                }
            })
            .map_err(|e| io_err("spawn completion thread", &dir, e))?
    };
    *shared
        .syncer
        .completer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Completer {
        tx,
        pending,
        thread,
    });
    std::thread::Builder::new()
        .name("wal-sync".into())
        .spawn(move || run(&shared))
        .map_err(|e| io_err("spawn sync thread", &dir, e))
}

/// Callers of one sync and its outcome, for the completion thread.
type Completed = (Vec<Done>, Result<()>);

/// The completion thread's end of the hand-over.
pub(super) struct Completer {
    tx: std::sync::mpsc::Sender<Completed>,
    /// Batches sent to the completion thread and not yet completed.
    pending: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

/// Largest batch of callers completed on the syncing thread itself.
const INLINE_MAX: usize = 4;

/// Whether spinning before sleeping pays: it does while appends keep arriving within
/// the spin (many concurrent appenders); when they stop doing so (a lone or slow writer)
/// the thread sleeps at once, trying a spin again now and then.
#[derive(Default)]
struct Spin {
    misses: u32,
    idle_periods: u32,
}

impl Spin {
    fn worth_it(&mut self) -> bool {
        self.idle_periods = self.idle_periods.wrapping_add(1);
        self.misses < 2 || self.idle_periods % 16 == 0
    }
    fn outcome(&mut self, found_work: bool) {
        self.misses = if found_work {
            0
        } else {
            self.misses.saturating_add(1)
        };
    }
}

fn run(sh: &Shared) {
    let s = &sh.syncer;
    let mut spin = Spin::default();
    loop {
        let (dones, file) = {
            let mut q = s.lock();
            if q.written.is_empty() && !q.stop && spin.worth_it() {
                // Spin (yielding) briefly before sleeping: appends arriving within a few
                // tens of microseconds then start the next sync without a thread
                // wake-up, which on a virtual machine costs about as much as a fast sync.
                let until = Instant::now() + SPIN;
                while q.written.is_empty() && !q.stop && Instant::now() < until {
                    drop(q);
                    std::thread::yield_now();
                    q = s.lock();
                }
                spin.outcome(!q.written.is_empty());
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
        s.complete(dones, &r);
        s.complete(late, &r);
        let mut q = s.lock();
        q.busy = false;
        if q.draining && (q.written.is_empty() || q.failed.is_some()) {
            s.drained.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Spin;

    #[test]
    fn spinning_stops_after_two_misses_and_is_retried_now_and_then() {
        let mut s = Spin::default();
        assert!(s.worth_it());
        s.outcome(true);
        assert!(s.worth_it(), "a spin that found work is repeated");
        s.outcome(false);
        assert!(s.worth_it(), "one miss is tolerated");
        s.outcome(false);
        let tries = (0..32).filter(|_| s.worth_it()).count();
        assert_eq!(
            tries, 2,
            "after two misses only every 16th idle period spins"
        );
        s.outcome(true);
        assert!(s.worth_it(), "a hit resumes spinning");
    }
}
