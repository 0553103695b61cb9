//! The committed log id, written to the state db by a thread of its own. openraft saves
//! it before every apply and waits for the save inside its core loop; the value is only a
//! restart hint (re-apply up to it without waiting for a leader) that may lag the real
//! commit point, so the loop need not wait for SQLite. The thread writes the latest
//! value handed to it, skipping any superseded meanwhile; a failed write is reported to
//! the next save, which fails like a synchronous save would have.

use super::LogId;
use crate::state::StateDb;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

const KEY_COMMITTED: &str = "raft.committed";

#[derive(Default)]
struct Slot {
    /// The latest value handed over (`None`: nothing yet).
    latest: Option<Option<LogId>>,
    /// Whether `latest` still waits to be written.
    dirty: bool,
    /// The thread's first failed write.
    failed: Option<String>,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    slot: Mutex<Slot>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The writer: one per log store; dropping it writes what is pending and stops the thread.
pub(super) struct CommittedHint {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CommittedHint {
    /// Starts the writer thread over `state`.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub(super) fn start(state: StateDb) -> std::io::Result<CommittedHint> {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("committed-hint".into())
            .spawn(move || run(&s, &state))?;
        Ok(CommittedHint {
            shared,
            thread: Some(thread),
        })
    }

    /// Hands `committed` to the thread.
    ///
    /// # Errors
    /// The reason an earlier write failed (the state db is broken).
    pub(super) fn save(&self, committed: Option<LogId>) -> Result<(), String> {
        let mut slot = self.shared.lock();
        if let Some(reason) = &slot.failed {
            return Err(reason.clone());
        }
        slot.latest = Some(committed);
        slot.dirty = true;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// The latest value handed over, written or not.
    pub(super) fn latest(&self) -> Option<Option<LogId>> {
        self.shared.lock().latest
    }

    #[cfg(test)]
    fn pending(&self) -> bool {
        self.shared.lock().dirty
    }
}

impl Drop for CommittedHint {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared, state: &StateDb) {
    loop {
        let value = {
            let mut slot = shared.lock();
            while !slot.dirty && !slot.stop {
                slot = shared.wake.wait(slot).unwrap_or_else(|p| p.into_inner());
            }
            if !slot.dirty {
                return;
            }
            slot.dirty = false;
            slot.latest.flatten()
        };
        if let Err(e) = state.put_relaxed(KEY_COMMITTED, &value) {
            tracing::error!(error = %e, "saving the committed log id failed");
            shared.lock().failed.get_or_insert(e.to_string());
            return;
        }
    }
}

/// The committed log id the state db holds (at open, before any save).
///
/// # Errors
/// The state db's.
pub(super) fn read(state: &StateDb) -> Result<Option<LogId>, crate::state::StateError> {
    let v: Option<Option<LogId>> = state.get(KEY_COMMITTED)?;
    Ok(v.flatten())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    #[test]
    fn the_latest_value_is_written_and_survives_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDb::open(dir.path()).expect("state db");
        let hint = CommittedHint::start(state.clone()).expect("start");
        for i in 1..=50 {
            hint.save(Some(LogId::new(CommittedLeaderId::new(1, 1), i)))
                .expect("save");
        }
        assert_eq!(hint.latest().flatten().map(|l| l.index), Some(50));
        drop(hint);
        let stored = read(&state).expect("read");
        assert_eq!(
            stored.map(|l| l.index),
            Some(50),
            "pending value written at drop"
        );
    }

    #[test]
    fn a_saved_value_is_written_without_waiting_for_the_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDb::open(dir.path()).expect("state db");
        let hint = CommittedHint::start(state.clone()).expect("start");
        hint.save(Some(LogId::new(CommittedLeaderId::new(2, 1), 7)))
            .expect("save");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while hint.pending() || read(&state).expect("read").is_none() {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(read(&state).expect("read").map(|l| l.index), Some(7));
    }
}
