//! The seam between consensus and whatever applies committed entries. openraft's
//! `RaftStateMachine` is implemented once here, over an [`Applier`]: the MariaDB applier
//! in production, simple appliers in tests. The applier owns durability of the applied
//! position (it must store the last applied log id and membership together with the
//! effects, so a crash can neither skip nor repeat an entry).
//!
//! Snapshots (state transfer) are not built yet: the snapshot policy is `Never` and logs
//! are not purged while that holds, so openraft has no reason to send or install one, and
//! both are refused with an error saying so rather than sending an empty state.
//!
//! One snapshot is built all the same: a *position* snapshot, the applier's last applied
//! log id and membership without any data ([`PositionSnapshot`]). openraft asks for it at
//! start-up when the applier is ahead of the log: a node whose MariaDB was restored from a
//! dump of another member (SPEC's "restore a backup first, then join"). openraft then
//! purges the node's empty log up to the dump's position and needs a snapshot to describe
//! that purge point; the data it stands for is already in MariaDB. Replication to that
//! node starts after the position, so nothing at or below it is applied again.

// openraft's StorageError is large by design; these signatures are openraft's.
#![allow(clippy::result_large_err)]

use super::{Entry, LogId, NodeId, Responses, StorageError, StoredMembership, TypeConfig};
use anyerror::AnyError;
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use std::future::Future;
use std::io::Cursor;

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
}

/// openraft's state machine over an [`Applier`].
pub struct StateMachine<A: Applier> {
    applier: A,
}

impl<A: Applier> StateMachine<A> {
    /// Wraps an applier.
    pub fn new(applier: A) -> Self {
        StateMachine { applier }
    }
}

fn sm_err(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    StorageError::IO {
        source: StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::new(&e)),
    }
}

/// Why a snapshot cannot be produced or installed yet.
#[derive(Debug, thiserror::Error)]
#[error("state transfer (snapshots) is not available in this build; the full log is kept instead")]
pub struct NoSnapshots;

/// Builds the only snapshot this build can make: the applier's position as read when the
/// builder was made, with no data. Refuses with [`NoSnapshots`] when nothing is applied.
pub struct PositionSnapshot {
    position: Result<(Option<LogId>, StoredMembership), ApplyError>,
}

impl RaftSnapshotBuilder<TypeConfig> for PositionSnapshot {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (last, membership) = match &self.position {
            Ok((Some(last), membership)) => (*last, membership.clone()),
            Ok((None, _)) => return Err(sm_err(ErrorVerb::Read, NoSnapshots)),
            Err(e) => return Err(sm_err(ErrorVerb::Read, ApplyError(e.0.clone()))),
        };
        Ok(Snapshot {
            meta: SnapshotMeta {
                last_log_id: Some(last),
                last_membership: membership,
                snapshot_id: format!(
                    "position-{}-{}-{}",
                    last.leader_id.term, last.leader_id.node_id, last.index
                ),
            },
            snapshot: Box::new(Cursor::new(Vec::new())),
        })
    }
}

impl<A: Applier> RaftStateMachine<TypeConfig> for StateMachine<A> {
    type SnapshotBuilder = PositionSnapshot;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
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
        PositionSnapshot {
            position: self.applier.applied_state().await,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Err(sm_err(ErrorVerb::Write, NoSnapshots))
    }

    async fn install_snapshot(
        &mut self,
        _meta: &SnapshotMeta<NodeId, super::NodeInfo>,
        _snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        Err(sm_err(ErrorVerb::Write, NoSnapshots))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(None)
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
        assert!(snap.snapshot.get_ref().is_empty());
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
