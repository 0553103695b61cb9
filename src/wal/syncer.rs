//! The sync stage of group commit: a second thread that fdatasyncs what the writer thread
//! has written and then runs the completions, so that the writer can write batch N+1
//! while batch N is being synced. Owns no file and no index: the writer hands it jobs.
//!
//! Each job is a written batch (its segment file and its completions). The thread takes
//! every queued job at once and issues one fdatasync for them all: the writer only queues
//! a job after its bytes are written, and syncs a segment itself before rolling to the
//! next, so syncing the newest job's file covers every job taken. Completions run in
//! queue order, which is append order. After a failed sync nothing is synced again (a
//! retried fsync can report success for pages the kernel already dropped): every job
//! then fails with that error and the WAL is poisoned. The writer never syncs while a
//! job is queued or in flight here (it drains this queue first), so that a write-back
//! error cannot be reported to one thread's fsync and missed by the other's.

use super::segment::io_err;
use super::{Done, Error, Shared};
use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One written batch waiting for its sync.
pub(super) struct Job {
    /// The segment holding the batch's last bytes; `None` when nothing was written.
    pub(super) file: Option<(Arc<File>, PathBuf)>,
    pub(super) dones: Vec<Done>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Jobs taken by the thread and not yet completed.
    busy: bool,
    /// The thread waits for a job (and needs a notify to wake).
    idle: bool,
    /// While the thread gathers: the queued appends at which to wake it (else 0).
    want: usize,
    /// Appends (completions) in `jobs`.
    appends: usize,
    stop: bool,
}

/// State shared by the writer thread and the sync thread.
#[derive(Default)]
pub(super) struct SyncQueue {
    q: Mutex<Queue>,
    /// Signals the sync thread: a job was queued or it must stop.
    work: Condvar,
    /// Signals the writer: the queue drained.
    idle: Condvar,
    /// Set once a sync failed; the writer checks it before writing.
    pub(super) failed: AtomicBool,
    /// How long the last sync took, in nanoseconds (the writer's gathering bound).
    pub(super) last_sync_nanos: AtomicU64,
}

impl SyncQueue {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.q
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a written batch for syncing and completion.
    pub(super) fn push(&self, job: Job) {
        let mut q = self.lock();
        q.appends += job.dones.len();
        q.jobs.push_back(job);
        if q.idle || (q.want > 0 && q.appends >= q.want) {
            self.work.notify_one();
        }
    }

    /// No job is queued or being synced (only the writer queues jobs, so this stays
    /// true until it does).
    pub(super) fn idle(&self) -> bool {
        let q = self.lock();
        !q.busy && q.jobs.is_empty()
    }

    /// Blocks until every queued job has been synced and completed.
    pub(super) fn drain(&self) {
        let mut q = self.lock();
        while q.busy || !q.jobs.is_empty() {
            q = self
                .idle
                .wait(q)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Drains the queue, then stops the sync thread.
    pub(super) fn stop(&self) {
        self.drain();
        self.lock().stop = true;
        self.work.notify_one();
    }

    pub(super) fn last_sync_took(&self) -> Duration {
        Duration::from_nanos(self.last_sync_nanos.load(Ordering::Relaxed))
    }
}

/// Starts the sync thread for `shared`.
pub(super) fn spawn(shared: Arc<Shared>) -> super::Result<std::thread::JoinHandle<()>> {
    let dir = shared.dir.clone();
    std::thread::Builder::new()
        .name("wal-sync".into())
        .spawn(move || run(&shared))
        .map_err(|e| io_err("spawn sync thread", &dir, e))
}

/// Longest pause between two arriving batches while a sync gathers.
const GATHER_GAP: Duration = Duration::from_micros(50);
/// Longest a sync gathers in total.
const GATHER_MAX: Duration = Duration::from_millis(2);

fn run(sh: &Shared) {
    let sq = &sh.syncq;
    let mut failed: Option<Error> = None;
    // Appends completed by the last two syncs: how many callers are cycling.
    let mut recent = [0usize; 2];
    loop {
        let mut q = sq.lock();
        q.busy = false;
        let split = !q.jobs.is_empty();
        while q.jobs.is_empty() {
            if q.stop {
                return;
            }
            sq.idle.notify_all();
            q.idle = true;
            q = sq
                .work
                .wait(q)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            q.idle = false;
        }
        q.busy = true;
        q.appends = 0;
        let mut jobs = std::mem::take(&mut q.jobs);
        // The callers the last sync completed are coming back with their next append.
        // If batches were already waiting when that sync ended, the callers have split
        // into two groups that alternate, each sync carrying half of them (on a slow
        // disk that halves the throughput): then wait for both groups. Otherwise wait
        // for as many appends as the last sync carried. Either way only while they keep
        // coming (gaps under GATHER_GAP), for at most half the last sync's duration (on
        // a fast disk a second sync soon is cheaper than the wait) and GATHER_MAX.
        let target = if split {
            recent[0] + recent[1]
        } else {
            recent[1]
        };
        let mut have: usize = jobs.iter().map(|j| j.dones.len()).sum();
        if failed.is_none() && have < target {
            let limit = GATHER_MAX.min(sq.last_sync_took() / 2);
            let deadline = Instant::now() + limit;
            loop {
                let now = Instant::now();
                if have >= target || now >= deadline {
                    break;
                }
                q.want = target - have;
                q = sq
                    .work
                    .wait_timeout(q, GATHER_GAP.min(deadline - now))
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
                q.want = 0;
                if q.jobs.is_empty() {
                    break;
                }
                have += std::mem::take(&mut q.appends);
                jobs.extend(q.jobs.drain(..));
            }
        }
        drop(q);
        recent = [recent[1], have];
        if failed.is_none() {
            let last = jobs.iter().rev().find_map(|j| j.file.as_ref());
            if let Some((file, path)) = last {
                if let Err(e) = sync_file(sh, file, path) {
                    sq.failed.store(true, Ordering::SeqCst);
                    super::writer::poison_state(sh, &e);
                    failed = Some(e);
                }
            }
        }
        let result = match &failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        };
        for job in jobs {
            for done in job.dones {
                done(result.clone());
            }
        }
    }
}

/// fdatasyncs one segment, counting it and timing it. Both threads sync through here.
pub(super) fn sync_file(sh: &Shared, file: &File, path: &std::path::Path) -> super::Result<()> {
    #[cfg(test)]
    {
        let f = &sh.faults;
        f.sync_attempts.fetch_add(1, Ordering::SeqCst);
        let delay = f.sync_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        if f.fail_sync.load(Ordering::SeqCst) {
            return Err(io_err(
                "fdatasync segment",
                path,
                std::io::Error::from_raw_os_error(libc::EIO),
            ));
        }
    }
    let started = Instant::now();
    file.sync_data()
        .map_err(|e| io_err("fdatasync segment", path, e))?;
    sh.metrics.sync();
    let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    sh.syncq.last_sync_nanos.store(took, Ordering::Relaxed);
    Ok(())
}
