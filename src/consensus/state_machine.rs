//! The seam between consensus and whatever applies committed entries. openraft's
//! `RaftStateMachine` is implemented once here, over an [`Applier`]: the MariaDB applier
//! in production, simple appliers in tests. The applier owns durability of the applied
//! position (it must store the last applied log id and membership together with the
//! effects, so a crash can neither skip nor repeat an entry).
//!
//! Snapshots (state transfer) are not built yet: the snapshot policy is `Never` and logs
//! are not purged while that holds, so openraft has no reason to ask for one. If it does,
//! the request fails with an error saying so rather than sending an empty state.

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

/// Builds snapshots; until state transfer exists it refuses with [`NoSnapshots`].
pub struct SnapshotRefuser;

impl RaftSnapshotBuilder<TypeConfig> for SnapshotRefuser {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        Err(sm_err(ErrorVerb::Read, NoSnapshots))
    }
}

impl<A: Applier> RaftStateMachine<TypeConfig> for StateMachine<A> {
    type SnapshotBuilder = SnapshotRefuser;

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
        SnapshotRefuser
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
