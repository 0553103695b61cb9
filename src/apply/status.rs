//! The applier's shared, cheap-to-clone status: the applied LSN (watchable, so a read
//! with `min_lsn` can wait for it), whether the applier is DEGRADED (retrying a transient
//! error) with the last error, and counters. Written only by the applier, except for the
//! apply gate: a resync ([`ApplyStatus::pause`]) holds it while it replaces the database,
//! so the applier applies nothing meanwhile and re-reads its position after.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// A handle on the applier's progress and health; clones share one state.
#[derive(Debug, Clone)]
pub struct ApplyStatus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    applied: watch::Sender<Option<u64>>,
    health: Mutex<Health>,
    entries: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
    /// Outcome digests and the divergence found, if any.
    agreement: Mutex<super::agreement::Agreement>,
    /// The largest leader timestamp among the entries decoded for applying.
    max_timestamp_us: AtomicU64,
    /// Held by the applier while it applies, and by a resync while it loads a snapshot.
    gate: Arc<tokio::sync::Mutex<()>>,
    /// Set by a resync: the database under the applier was replaced, so its cached
    /// position and connection are stale.
    reload: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct Health {
    degraded: bool,
    last_error: Option<String>,
}

/// A copy of the status at one moment, for `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSnapshot {
    /// Last log index applied (and committed) in MariaDB; `None` before the first.
    pub applied_lsn: Option<u64>,
    /// True while a transient error is being retried.
    pub degraded: bool,
    /// The last transient error seen (kept after recovery, for operators).
    pub last_error: Option<String>,
    /// Entries applied since start (blank and membership entries included).
    pub entries_applied: u64,
    /// MariaDB transactions committed by the applier since start.
    pub batches: u64,
    /// Attempts that failed transiently and were retried.
    pub retries: u64,
}

/// [`ApplyStatus::wait_applied`] gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this node has applied up to {applied:?}, not yet {wanted}, after waiting {waited:?}")]
pub struct WaitTimeout {
    /// The LSN asked for.
    pub wanted: u64,
    /// What was applied when the wait ended.
    pub applied: Option<u64>,
    /// How long it waited.
    pub waited: Duration,
}

impl Default for ApplyStatus {
    fn default() -> Self {
        Self::new()
    }
}

impl ApplyStatus {
    /// A status with nothing applied and no error.
    pub fn new() -> Self {
        ApplyStatus {
            inner: Arc::new(Inner {
                applied: watch::Sender::new(None),
                health: Mutex::new(Health::default()),
                entries: AtomicU64::new(0),
                batches: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                max_timestamp_us: AtomicU64::new(0),
                agreement: Mutex::new(super::agreement::Agreement::default()),
                gate: Arc::default(),
                reload: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Records this node's outcome digest for entry `lsn`.
    pub(crate) fn record_digest(&self, lsn: u64, digest: u64) {
        self.agreement().record(lsn, digest);
    }

    /// This node's digests not yet covered by an `Outcomes` entry, oldest first: what a
    /// leader proposes.
    pub fn unreported_digests(&self, limit: usize) -> Vec<crate::command::OutcomeDigest> {
        self.agreement().unreported(limit)
    }

    /// Compares the leader's digests with this node's; returns the divergence, if any.
    pub(crate) fn compare_digests(
        &self,
        agreed: &[crate::command::OutcomeDigest],
    ) -> Option<super::Divergence> {
        self.agreement().compare(agreed)
    }

    /// Where this node's outcome differed from the leader's: it has stopped applying.
    pub fn divergence(&self) -> Option<super::Divergence> {
        self.agreement().diverged()
    }

    fn agreement(&self) -> std::sync::MutexGuard<'_, super::agreement::Agreement> {
        // A panic while holding it cannot leave the map half-updated in a harmful way.
        self.inner
            .agreement
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Taken by the applier for each batch it applies.
    pub(crate) async fn applying(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.inner.gate.clone().lock_owned().await
    }

    /// Whether a resync replaced the database since the applier last asked (asking
    /// clears it).
    pub(crate) fn take_reload(&self) -> bool {
        self.inner.reload.swap(false, Ordering::SeqCst)
    }

    /// Stops the applier between two batches (waiting for the current one to commit) and
    /// keeps it stopped until the returned [`Paused`] is dropped: the database may then be
    /// replaced underneath it.
    pub async fn pause(&self) -> Paused {
        Paused {
            _gate: self.inner.gate.clone().lock_owned().await,
            status: self.clone(),
        }
    }

    /// Records the leader timestamp of an entry about to be applied.
    pub fn note_timestamp(&self, timestamp_us: u64) {
        self.inner
            .max_timestamp_us
            .fetch_max(timestamp_us, Ordering::Relaxed);
    }

    /// The largest leader timestamp of any entry this node has decoded for applying: a
    /// new leader stamps its entries above it, so NOW() never goes backwards across a
    /// failover even when the new leader's clock is behind the old one's.
    pub fn max_timestamp_us(&self) -> u64 {
        self.inner.max_timestamp_us.load(Ordering::Relaxed)
    }

    /// Last log index applied in MariaDB.
    pub fn applied_lsn(&self) -> Option<u64> {
        *self.inner.applied.borrow()
    }

    /// Waits until `lsn` is applied on this node (read-your-writes on any node).
    ///
    /// # Errors
    /// [`WaitTimeout`] when it is not applied within `timeout`.
    pub async fn wait_applied(&self, lsn: u64, timeout: Duration) -> Result<u64, WaitTimeout> {
        let mut rx = self.inner.applied.subscribe();
        let waited =
            tokio::time::timeout(timeout, rx.wait_for(|a| a.is_some_and(|a| a >= lsn))).await;
        match waited {
            // The sender lives in `inner`, which this handle keeps alive: wait_for cannot
            // see a closed channel, but answer from the current value either way.
            Ok(Ok(v)) => Ok(v.unwrap_or(lsn)),
            Ok(Err(_)) | Err(_) => Err(WaitTimeout {
                wanted: lsn,
                applied: self.applied_lsn(),
                waited: timeout,
            }),
        }
    }

    /// Whether a transient error is being retried right now.
    pub fn is_degraded(&self) -> bool {
        self.health().degraded
    }

    /// The last transient error, if any was seen.
    pub fn last_error(&self) -> Option<String> {
        self.health().last_error.clone()
    }

    /// Everything at once.
    pub fn snapshot(&self) -> StatusSnapshot {
        let (degraded, last_error) = {
            let h = self.health();
            (h.degraded, h.last_error.clone())
        };
        StatusSnapshot {
            applied_lsn: self.applied_lsn(),
            degraded,
            last_error,
            entries_applied: self.inner.entries.load(Ordering::Relaxed),
            batches: self.inner.batches.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        // A panic while holding this lock cannot leave Health inconsistent (two plain
        // fields), so a poisoned lock is used as is.
        self.inner
            .health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn set_applied(&self, lsn: Option<u64>) {
        self.inner.applied.send_replace(lsn);
    }

    pub(crate) fn committed(&self, entries: u64) {
        self.inner.entries.fetch_add(entries, Ordering::Relaxed);
        self.inner.batches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn degraded(&self, error: String) {
        self.inner.retries.fetch_add(1, Ordering::Relaxed);
        let mut h = self.health();
        h.degraded = true;
        h.last_error = Some(error);
    }

    /// Back to OK; returns whether it was degraded.
    pub(crate) fn recovered(&self) -> bool {
        std::mem::take(&mut self.health().degraded)
    }
}

/// The applier held between two batches (see [`ApplyStatus::pause`]).
#[derive(Debug)]
pub struct Paused {
    _gate: tokio::sync::OwnedMutexGuard<()>,
    status: ApplyStatus,
}

impl Paused {
    /// The applied LSN, which stays put while paused.
    pub fn applied_lsn(&self) -> Option<u64> {
        self.status.applied_lsn()
    }

    /// The database now holds a consistent copy at `lsn` (a resync loaded it): the
    /// applier re-reads its position before the next batch, the outcome digests of the
    /// state it had are forgotten and any divergence is cleared. Applying resumes when
    /// `self` is dropped.
    pub fn resynced(self, lsn: u64) {
        self.status.inner.reload.store(true, Ordering::SeqCst);
        self.status.agreement().reset();
        self.status.set_applied(Some(lsn));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_applied_wakes_on_progress_and_times_out() {
        let s = ApplyStatus::new();
        assert_eq!(s.applied_lsn(), None);
        let t = Duration::from_millis(20);
        assert_eq!(
            s.wait_applied(1, t).await,
            Err(WaitTimeout {
                wanted: 1,
                applied: None,
                waited: t
            })
        );
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move { s.wait_applied(5, Duration::from_secs(10)).await })
        };
        s.set_applied(Some(3));
        tokio::time::sleep(Duration::from_millis(10)).await;
        s.set_applied(Some(7));
        assert_eq!(waiter.await.expect("task"), Ok(7));
        assert_eq!(s.wait_applied(2, t).await, Ok(7));
    }

    #[test]
    fn degraded_until_recovered_and_counts() {
        let s = ApplyStatus::new();
        assert!(!s.is_degraded());
        assert!(!s.recovered());
        s.degraded("server gone".into());
        s.degraded("server still gone".into());
        assert!(s.is_degraded());
        s.committed(64);
        assert!(s.recovered());
        let snap = s.snapshot();
        assert!(!snap.degraded);
        assert_eq!(snap.last_error.as_deref(), Some("server still gone"));
        assert_eq!(
            (snap.entries_applied, snap.batches, snap.retries),
            (64, 1, 2)
        );
    }

    #[tokio::test]
    async fn a_pause_holds_the_applier_and_a_resync_clears_the_divergence() {
        let s = ApplyStatus::new();
        s.set_applied(Some(5));
        s.record_digest(6, 1);
        assert!(s
            .compare_digests(&[crate::command::OutcomeDigest { lsn: 6, digest: 2 }])
            .is_some());
        assert!(s.divergence().is_some());
        let paused = s.pause().await;
        assert_eq!(paused.applied_lsn(), Some(5));
        // The applier cannot start a batch while paused.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), s.applying())
                .await
                .is_err()
        );
        assert!(!s.take_reload());
        paused.resynced(40);
        assert!(s.divergence().is_none());
        assert_eq!(s.applied_lsn(), Some(40));
        assert!(s.unreported_digests(10).is_empty());
        let _applying = s.applying().await;
        assert!(s.take_reload());
        assert!(!s.take_reload());
    }
}
