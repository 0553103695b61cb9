//! openraft's storage conformance suite against [`LogStore`], plus the log-store rules
//! the suite does not cover (gaps refused, state surviving a reopen, torn tails).

// openraft's StorageError is large by design; these signatures are openraft's.
#![allow(clippy::result_large_err)]

use super::log_store::LogStore;
use super::{
    Entry, LogId, NodeId, NodeInfo, Responses, StorageError, StoredMembership, TypeConfig,
};
use crate::snapshot::SnapshotFile;
use crate::state::StateDb;
use crate::wal::{Wal, WalOptions};
use openraft::storage::{RaftLogStorage, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tempfile::TempDir;

fn wal_opts() -> WalOptions {
    WalOptions {
        segment_size: 4096,
        ..WalOptions::from(&crate::config::WalConfig::default())
    }
}

fn scratch_path() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "wolfscale-memsm-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// An unlinked file holding `data`, as the suite's snapshot data.
async fn file_with(data: &[u8]) -> Box<SnapshotFile> {
    let p = scratch_path();
    tokio::fs::write(&p, data).await.expect("write scratch");
    let f = SnapshotFile::open(&p).await.expect("open scratch");
    tokio::fs::remove_file(&p).await.expect("unlink scratch");
    Box::new(f)
}

fn open_store(dir: &Path) -> LogStore {
    let wal = Wal::open(dir.join("wal"), wal_opts()).expect("open wal");
    let state = StateDb::open(&dir.join("state")).expect("open state");
    LogStore::open(wal, state).expect("open log store")
}

/// An in-memory state machine with snapshots, just enough for the suite: the suite tests
/// the log store, and needs a state machine beside it.
#[derive(Default)]
struct MemSm {
    applied: Option<LogId>,
    membership: StoredMembership,
    snapshot: Option<(SnapshotMeta<NodeId, NodeInfo>, Vec<u8>)>,
    built: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for MemSm {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        self.built += 1;
        let data = serde_json::to_vec(&(self.applied, &self.membership)).expect("json");
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!("mem-{}", self.built),
        };
        self.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: file_with(&data).await,
        })
    }
}

impl RaftStateMachine<TypeConfig> for MemSm {
    type SnapshotBuilder = MemSm;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Responses>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut out = Vec::new();
        for e in entries {
            self.applied = Some(e.log_id);
            if let EntryPayload::Membership(m) = e.payload {
                self.membership = StoredMembership::new(Some(e.log_id), m);
            }
            out.push(Responses::default());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> MemSm {
        MemSm {
            applied: self.applied,
            membership: self.membership.clone(),
            snapshot: None,
            built: self.built,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError> {
        let p = scratch_path();
        let f = SnapshotFile::create(&p, None)
            .await
            .expect("create scratch");
        tokio::fs::remove_file(&p).await.expect("unlink scratch");
        Ok(Box::new(f))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, NodeInfo>,
        mut snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut data = Vec::new();
        snapshot
            .seek(std::io::SeekFrom::Start(0))
            .await
            .expect("seek");
        snapshot.read_to_end(&mut data).await.expect("read");
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.snapshot = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        match self.snapshot.clone() {
            Some((meta, data)) => Ok(Some(Snapshot {
                meta,
                snapshot: file_with(&data).await,
            })),
            None => Ok(None),
        }
    }
}

// The suite builds a state machine per test; a snapshot built on the leader's copy must
// be visible through the same handle, so the builder writes back through a shared cell.
struct Builder;

impl StoreBuilder<TypeConfig, LogStore, SharedSm, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, SharedSm), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(dir.path());
        Ok((dir, store, SharedSm::default()))
    }
}

/// [`MemSm`] behind a lock so its snapshot builder can record the snapshot it built.
#[derive(Default, Clone)]
struct SharedSm(std::sync::Arc<tokio::sync::Mutex<MemSm>>);

struct SharedBuilder(SharedSm);

impl RaftSnapshotBuilder<TypeConfig> for SharedBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        self.0 .0.lock().await.build_snapshot().await
    }
}

impl RaftStateMachine<TypeConfig> for SharedSm {
    type SnapshotBuilder = SharedBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        self.0.lock().await.applied_state().await
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Responses>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.0.lock().await.apply(entries).await
    }

    async fn get_snapshot_builder(&mut self) -> SharedBuilder {
        SharedBuilder(self.clone())
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError> {
        self.0.lock().await.begin_receiving_snapshot().await
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, NodeInfo>,
        snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError> {
        self.0.lock().await.install_snapshot(meta, snapshot).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        self.0.lock().await.get_current_snapshot().await
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).expect("openraft storage suite");
}

fn blank(term: u64, index: u64) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Blank,
    }
}

async fn append(store: &mut LogStore, entries: Vec<Entry>) -> Result<(), StorageError> {
    use openraft::storage::RaftLogStorageExt;
    store.blocking_append(entries).await
}

#[tokio::test]
async fn a_gap_or_overlap_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open_store(dir.path());
    append(&mut store, (0..5).map(|i| blank(1, i)).collect())
        .await
        .expect("append");
    let gap = append(&mut store, vec![blank(1, 7)]).await.unwrap_err();
    assert!(gap.to_string().contains("gap"), "{gap}");
    let overlap = append(&mut store, vec![blank(1, 3)]).await.unwrap_err();
    assert!(overlap.to_string().contains("gap or overlap"), "{overlap}");
    let got = store.try_get_log_entries(0..).await.expect("read");
    assert_eq!(got.len(), 5);
    append(&mut store, vec![blank(2, 5)])
        .await
        .expect("contiguous append still works");
}

#[tokio::test]
async fn vote_log_and_purge_point_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store = open_store(dir.path());
        append(
            &mut store,
            (0..300).map(|i| blank(1 + i / 100, i)).collect(),
        )
        .await
        .expect("append");
        store
            .save_vote(&openraft::Vote::new_committed(3, 1))
            .await
            .expect("vote");
        store
            .purge(LogId::new(CommittedLeaderId::new(1, 1), 49))
            .await
            .expect("purge");
        store
            .truncate(LogId::new(CommittedLeaderId::new(3, 1), 250))
            .await
            .expect("truncate");
        store.wal().close().expect("close");
    }
    let mut store = open_store(dir.path());
    assert_eq!(
        store.read_vote().await.expect("vote"),
        Some(openraft::Vote::new_committed(3, 1))
    );
    let st = store.get_log_state().await.expect("state");
    assert_eq!(st.last_purged_log_id.map(|l| l.index), Some(49));
    assert_eq!(
        st.last_log_id,
        Some(LogId::new(CommittedLeaderId::new(3, 1), 249))
    );
    let got = store.try_get_log_entries(0..).await.expect("read");
    assert_eq!(
        got.first().map(|e| e.log_id.index),
        Some(50),
        "purged entries stay hidden"
    );
    assert_eq!(got.len(), 200);
    append(&mut store, vec![blank(4, 250)])
        .await
        .expect("append after reopen");
}
