//! The seam between consensus and whatever applies committed entries. openraft's
//! `RaftStateMachine` is implemented once here, over an [`Applier`]: the MariaDB applier
//! in production, simple appliers in tests. The applier owns durability of the applied
//! position (it must store the last applied log id and membership together with the
//! effects, so a crash can neither skip nor repeat an entry).
//!
//! Snapshots (state transfer) are delegated to [`crate::snapshot::Snapshots`] when the
//! applier offers a database to copy ([`Applier::snapshot_db`]); without one, installing
//! is refused with [`NoSnapshots`] (and the log is never purged by policy, so openraft
//! never needs to send one).
//!
//! - **build** runs on openraft's builder task, beside applying: a consistent copy from
//!   one read view. A build that fails is logged and answered with the previous snapshot
//!   (openraft ignores a snapshot that is not newer), never with an error that would stop
//!   the node.
//! - **install** runs in openraft's state-machine worker (nothing is applied meanwhile):
//!   verify the received file, load it into MariaDB under an "installing" marker, then
//!   re-read the applied position.
//! - **start**: before the first applied position is reported, an interrupted install is
//!   redone ([`crate::snapshot::Snapshots::resume`]), so a node never serves half-loaded.
//!
//! An applier without a database still gets a *position* snapshot: the applier's last
//! applied log id and membership without any data. openraft asks for a build at start-up
//! when the applier is ahead of the log (a node whose MariaDB was restored from a dump of
//! another member: SPEC's "restore a backup first, then join"); it then purges the node's
//! empty log up to the dump's position and needs a snapshot to describe that purge point.
//! With snapshots available the same start-up build is a real copy, which the node can
//! later send on; if that build fails, the position snapshot stands in for it.

// openraft's StorageError is large by design; these signatures are openraft's.
#![allow(clippy::result_large_err)]

use super::{Entry, LogId, NodeId, Responses, StorageError, StoredMembership, TypeConfig};
use crate::observe::stages::{self, Mark};
use crate::snapshot::{SnapshotFile, Snapshots};
use anyerror::AnyError;
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use std::future::Future;

/// A fatal apply failure: the node must stop rather than skip the entry. (Transient
/// failures are retried inside the applier and never surface here.)
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ApplyError(pub String);

/// Applies committed entries, in order, exactly once.
pub trait Applier: Send + Sync + 'static {
    /// The last applied log id and the membership in force, as stored with the effects.
    fn applied_state(
        &mut self,
    ) -> impl Future<Output = Result<(Option<LogId>, StoredMembership), ApplyError>> + Send;

    /// Applies `entries` (consecutive, all committed) and stores the new applied position
    /// durably with their effects; one [`Responses`] per entry, in order, holding one
    /// response per request of a client entry (an entry's requests apply together, never
    /// split by the position). Blank and membership entries only move the position (and
    /// record the membership).
    fn apply(
        &mut self,
        entries: Vec<Entry>,
    ) -> impl Future<Output = Result<Vec<Responses>, ApplyError>> + Send;

    /// The database snapshots copy and load, when this applier has one; `None` (the
    /// default) means this applier cannot take part in state transfer.
    fn snapshot_db(&self) -> Option<crate::snapshot::Database> {
        None
    }
}

/// openraft's state machine over an [`Applier`].
pub struct StateMachine<A: Applier> {
    applier: A,
    snapshots: Option<Snapshots>,
    /// Whether an interrupted install was looked for (once, at start).
    resumed: bool,
}

impl<A: Applier> StateMachine<A> {
    /// Wraps an applier, without snapshots.
    pub fn new(applier: A) -> Self {
        Self::with_snapshots(applier, None)
    }

    /// Wraps an applier whose state is copied and loaded through `snapshots`.
    pub fn with_snapshots(applier: A, snapshots: Option<Snapshots>) -> Self {
        StateMachine {
            applier,
            snapshots,
            resumed: false,
        }
    }
}

fn sm_err(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    StorageError::IO {
        source: StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::new(&e)),
    }
}

/// Why a snapshot cannot be produced or installed: this applier has no database to copy.
#[derive(Debug, thiserror::Error)]
#[error(
    "state transfer (snapshots) is not available with this applier; the full log is kept instead"
)]
pub struct NoSnapshots;

/// Builds snapshots on openraft's builder task.
pub struct Builder {
    snapshots: Option<Snapshots>,
    /// The applier's position when the builder was made: what a position snapshot holds.
    position: Result<(Option<LogId>, StoredMembership), ApplyError>,
}

fn snap_err(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    StorageError::IO {
        source: StorageIOError::new(ErrorSubject::Snapshot(None), verb, AnyError::new(&e)),
    }
}

impl Builder {
    /// The applier's position as a snapshot without data. Refuses with [`NoSnapshots`]
    /// when nothing is applied.
    async fn position_snapshot(&self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (last, membership) = match &self.position {
            Ok((Some(last), membership)) => (*last, membership.clone()),
            Ok((None, _)) => return Err(sm_err(ErrorVerb::Read, NoSnapshots)),
            Err(e) => return Err(sm_err(ErrorVerb::Read, ApplyError(e.0.clone()))),
        };
        let file = SnapshotFile::empty()
            .await
            .map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(Snapshot {
            meta: SnapshotMeta {
                last_log_id: Some(last),
                last_membership: membership,
                snapshot_id: format!(
                    "position-{}-{}-{}",
                    last.leader_id.term, last.leader_id.node_id, last.index
                ),
            },
            snapshot: Box::new(file),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let Some(s) = &self.snapshots else {
            return self.position_snapshot().await;
        };
        match s.build().await {
            Ok(m) => {
                let file = SnapshotFile::open(&s.file_path(&m.id))
                    .await
                    .map_err(|e| snap_err(ErrorVerb::Read, e))?;
                Ok(Snapshot {
                    meta: m.meta(),
                    snapshot: Box::new(file),
                })
            }
            Err(e) => {
                tracing::error!(error = %e, "building a snapshot failed; keeping the previous one");
                self.stale(s).await
            }
        }
    }
}

impl Builder {
    /// What a failed build answers: the previous snapshot, else the position snapshot,
    /// else an empty one at no position. openraft keeps its current snapshot when handed
    /// one that is not newer.
    async fn stale(&self, s: &Snapshots) -> Result<Snapshot<TypeConfig>, StorageError> {
        if let Ok(Some((m, file))) = s.open_latest().await {
            return Ok(Snapshot {
                meta: m.meta(),
                snapshot: Box::new(file),
            });
        }
        if let Ok(snapshot) = self.position_snapshot().await {
            return Ok(snapshot);
        }
        let file = s
            .placeholder()
            .await
            .map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(Snapshot {
            meta: SnapshotMeta::default(),
            snapshot: Box::new(file),
        })
    }
}

impl<A: Applier> RaftStateMachine<TypeConfig> for StateMachine<A> {
    type SnapshotBuilder = Builder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let state = self
            .applier
            .applied_state()
            .await
            .map_err(|e| sm_err(ErrorVerb::Read, e))?;
        if self.resumed {
            return Ok(state);
        }
        self.resumed = true;
        let Some(s) = &self.snapshots else {
            return Ok(state);
        };
        let loaded = s
            .resume(state.0)
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        if !loaded {
            return Ok(state);
        }
        self.applier
            .applied_state()
            .await
            .map_err(|e| sm_err(ErrorVerb::Read, e))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Responses>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let Some(last) = entries.last().map(|e| e.log_id) else {
            return Ok(Vec::new());
        };
        let n = entries.len();
        let first = entries.first().map_or(last.index, |e| e.log_id.index);
        stages::mark_range(first, last.index, Mark::ApplyStart);
        let wanted: Vec<Option<usize>> = entries
            .iter()
            .map(|e| match &e.payload {
                openraft::EntryPayload::Normal(rs) => Some(rs.0.len()),
                _ => None,
            })
            .collect();
        let out = self
            .applier
            .apply(entries)
            .await
            .map_err(|e| StorageError::IO {
                source: StorageIOError::new(
                    ErrorSubject::Apply(last),
                    ErrorVerb::Write,
                    AnyError::new(&e),
                ),
            })?;
        stages::mark_range(first, last.index, Mark::Applied);
        if out.len() != n {
            return Err(sm_err(
                ErrorVerb::Write,
                ApplyError(format!(
                    "applier returned {} responses for {n} entries",
                    out.len()
                )),
            ));
        }
        // The leader hands each request's response to its writer by position.
        for (rs, want) in out.iter().zip(&wanted) {
            if let Some(want) = want {
                if rs.0.len() != *want {
                    return Err(sm_err(
                        ErrorVerb::Write,
                        ApplyError(format!(
                            "applier returned {} responses for an entry of {want} requests",
                            rs.0.len()
                        )),
                    ));
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        Builder {
            snapshots: self.snapshots.clone(),
            position: self.applier.applied_state().await,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError> {
        let Some(s) = &self.snapshots else {
            return Err(sm_err(ErrorVerb::Write, NoSnapshots));
        };
        let file = s
            .receive()
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, super::NodeInfo>,
        snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError> {
        let Some(s) = &self.snapshots else {
            return Err(sm_err(ErrorVerb::Write, NoSnapshots));
        };
        let sig = Some(meta.signature());
        let io = |e: crate::snapshot::Error| StorageError::IO {
            source: StorageIOError::new(
                ErrorSubject::Snapshot(sig.clone()),
                ErrorVerb::Write,
                AnyError::new(&e),
            ),
        };
        s.install(*snapshot, meta).await.map_err(io)?;
        let (applied, _) = self
            .applier
            .applied_state()
            .await
            .map_err(|e| sm_err(ErrorVerb::Read, e))?;
        if applied != meta.last_log_id {
            return Err(sm_err(
                ErrorVerb::Write,
                ApplyError(format!(
                    "after installing snapshot {} the applier reports position {applied:?}, not {:?}",
                    meta.snapshot_id, meta.last_log_id
                )),
            ));
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some(s) = &self.snapshots else {
            return Ok(None);
        };
        let latest = s
            .open_latest()
            .await
            .map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(latest.map(|(m, file)| Snapshot {
            meta: m.meta(),
            snapshot: Box::new(file),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, Membership};
    use std::collections::{BTreeMap, BTreeSet};

    /// An applier that only reports a fixed position, as a restored dump would.
    struct At(Option<LogId>, StoredMembership);

    impl Applier for At {
        async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), ApplyError> {
            Ok((self.0, self.1.clone()))
        }

        async fn apply(&mut self, _: Vec<Entry>) -> Result<Vec<Responses>, ApplyError> {
            Err(ApplyError("not used".into()))
        }
    }

    #[tokio::test]
    async fn the_position_snapshot_describes_the_applied_state_without_data() {
        let at = LogId::new(CommittedLeaderId::new(3, 1), 127);
        let nodes = BTreeMap::from([(1u64, super::super::NodeInfo::default())]);
        let m = StoredMembership::new(
            Some(LogId::new(CommittedLeaderId::new(1, 1), 5)),
            Membership::new(vec![BTreeSet::from([1u64])], nodes),
        );
        let mut sm = StateMachine::new(At(Some(at), m.clone()));
        let snap = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("built");
        assert_eq!(snap.meta.last_log_id, Some(at));
        assert_eq!(snap.meta.last_membership, m);
        let mut data = Vec::new();
        let mut file = snap.snapshot;
        tokio::io::AsyncReadExt::read_to_end(&mut file, &mut data)
            .await
            .expect("read");
        assert!(data.is_empty(), "a position snapshot carries no data");
        // Installing one is still refused: the data is not in it.
        assert!(sm.begin_receiving_snapshot().await.is_err());
    }

    #[tokio::test]
    async fn nothing_applied_means_no_snapshot() {
        let mut sm = StateMachine::new(At(None, StoredMembership::default()));
        let built = sm.get_snapshot_builder().await.build_snapshot().await;
        assert!(built.is_err());
    }
}
