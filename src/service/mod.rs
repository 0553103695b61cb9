//! The protocol-neutral service layer: what a client may ask of a node, whichever front
//! end (the HTTP API, the MySQL protocol) it comes through. [`Service`] writes through the
//! replicated log (prepared on the leader, forwarded there from a follower), reads on this
//! node with a consistency level, and reports status; its errors ([`ServiceError`]) say
//! what kind of failure happened and carry MariaDB's error number, never a wire format.
//!
//! | file | owns |
//! |---|---|
//! | `write.rs` | prepare, batch, forward to the leader, wait for apply |
//! | `read.rs` | reads with `none` / `weak` / `linearizable` and `min_lsn` |
//! | `status.rs` | this node's and the cluster's status, readiness |
//! | `forward.rs` | the bytes of a forwarded write and of the leader's answer |
//! | `error.rs`, `types.rs`, `check_report.rs` | the requests, results and errors |
//!
//! Cluster management (join, remove, transfer, promote, demote) is not here: it changes
//! the cluster, not the data, and only the HTTP API offers it.

mod check_report;
mod error;
pub mod forward;
mod read;
mod status;
mod types;
mod write;

pub use crate::apply::tentative::LocalTxn;
pub use crate::apply::{values_digest, FailureClass, Protocol, QueryError, RawRows};
pub use check_report::{
    check_text, CheckReport, CheckSummary, NodeProblem, RangeDiff, RowDiff, RowDiffKind, TableCheck,
};
pub use error::{DbError, ErrorKind, ServiceError};
pub use status::{ClusterStatus, NodeState, NodeStatus, Role};
pub use types::{
    check_write, Consistency, ReadRequest, ReadResult, ResyncDone, SnapshotCreated, SnapshotInfo,
    SnapshotList, StatementDone, WriteOutcome,
};
pub use write::WRITE_TIMEOUT;

use crate::apply::check::{CheckSnapshots, Pace};
use crate::apply::{ApplyStatus, Reader};
use crate::id::Generator;
use crate::node::check::Checker;
use crate::node::{Node, Services};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The service of one running node; clones share it.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    node: Node,
    apply: ApplyStatus,
    reader: Reader,
    ids: Arc<Generator>,
    /// The commit index openraft holds, polled (its metrics do not carry it).
    commit: AtomicU64,
    events: crate::observe::events::Events,
    checker: Arc<Checker>,
    /// The last timestamp given to an entry prepared here.
    last_timestamp_us: AtomicU64,
    /// Replacing this node's database with the leader's (`wolfscale resync`, auto resync).
    resyncer: Arc<crate::node::resync::Resyncer>,
    /// Whether Galera's rules apply to schema changes prepared here (`database.galera`).
    galera: bool,
}

impl Service {
    /// Builds the service over a started node and its applier's handles, registers it
    /// with the node for peers' forwarded writes and status questions, and starts the
    /// tasks it owns (commit tracking, periodic checks, outcome reports, the status
    /// watcher), which stop with the node. With `galera`, schema changes this node
    /// prepares as the leader are also held to Galera's rules ([`crate::sql::check_galera_ddl`]).
    pub fn install(
        node: Node,
        apply: ApplyStatus,
        reader: Reader,
        ids: Generator,
        checks: CheckSnapshots,
        galera: bool,
    ) -> Service {
        let cluster = &node.config().cluster;
        checks.set_pace(Pace {
            chunk_rows: cluster.check_chunk_rows,
            rows_per_sec: cluster.check_rows_per_sec,
        });
        let service = Service {
            inner: Arc::new(Inner {
                node: node.clone(),
                apply: apply.clone(),
                reader,
                ids: Arc::new(ids),
                commit: AtomicU64::new(0),
                events: Default::default(),
                resyncer: Arc::new(crate::node::resync::Resyncer::new(
                    node.clone(),
                    apply.clone(),
                    checks.clone(),
                )),
                checker: Arc::new(Checker::new(node.clone(), checks)),
                last_timestamp_us: AtomicU64::new(0),
                galera,
            }),
        };
        node.set_services(Arc::new(service.clone()));
        node.spawn(track_commit(Arc::downgrade(&service.inner)));
        node.spawn(crate::node::check::periodic(service.clone()));
        node.spawn(crate::node::report_outcomes(service.clone()));
        node.spawn(crate::node::resync::auto(service.inner.resyncer.clone()));
        // The watcher holds a weak reference: the service must not outlive its node.
        let weak = Arc::downgrade(&service.inner);
        node.spawn(crate::node::watch(
            node.clone(),
            service.inner.events.clone(),
            move || {
                weak.upgrade().map_or(NodeState::Offline, |inner| {
                    Service { inner }.status().status
                })
            },
        ));
        service
    }

    /// The node this service runs on.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// The applier's status handle.
    pub(crate) fn apply_status(&self) -> &ApplyStatus {
        &self.inner.apply
    }

    /// `count` fresh Snowflake IDs from this node.
    ///
    /// # Errors
    /// [`ServiceError::NotReady`] when the ID generator cannot issue them now.
    pub async fn ids(&self, count: usize) -> Result<Vec<u64>, ServiceError> {
        let ids = self
            .inner
            .ids
            .next_batch(count)
            .await
            .map_err(|e| ServiceError::NotReady {
                reason: e.to_string(),
                retry_after: 1,
            })?;
        Ok(ids.into_iter().map(|i| i.as_u64()).collect())
    }

    /// Compares every member's replicated tables at one LSN; answers when the comparison
    /// is done (may take minutes).
    ///
    /// # Errors
    /// No leader to append the check's barrier, or the barrier's fate is unknown.
    pub async fn check(&self) -> Result<CheckReport, ServiceError> {
        let id = self.fresh_id().await?;
        self.run_check(id).await
    }

    /// Runs check `id` (a fresh ID) from this node, its barrier appended through the leader.
    pub(crate) async fn run_check(&self, id: u64) -> Result<CheckReport, ServiceError> {
        self.inner.checker.run(id, self.check_barrier(id)).await
    }

    /// One new Snowflake ID from this node's generator (it waits while the clock is
    /// behind the last ID it gave).
    pub(crate) async fn fresh_id(&self) -> Result<u64, ServiceError> {
        let id = self
            .inner
            .ids
            .next()
            .await
            .map_err(|e| ServiceError::NotReady {
                reason: e.to_string(),
                retry_after: 1,
            })?;
        Ok(id.as_u64())
    }

    /// Replaces this node's copy of the replicated database with a fresh snapshot of the
    /// leader's and lets it apply the log on from there (a DIVERGED node, or one `wolfscale
    /// check` found different); answers when it is done.
    ///
    /// # Errors
    /// This node leads or has no snapshots ([`ServiceError::Conflict`],
    /// [`ServiceError::Invalid`]), another resync runs, no leader, or the transfer failed
    /// ([`ServiceError::NotReady`] with the reason).
    pub async fn resync(&self) -> Result<ResyncDone, ServiceError> {
        use crate::node::resync::ResyncError as E;
        self.inner
            .resyncer
            .start("asked by an operator")
            .await
            .map_err(|e| match e {
                E::Unsupported => ServiceError::snapshots_unsupported(),
                E::Leading => ServiceError::Conflict {
                    code: "leader".into(),
                    message: e.to_string(),
                },
                E::Busy => ServiceError::Conflict {
                    code: "busy".into(),
                    message: e.to_string(),
                },
                E::NoLeader => ServiceError::NoLeader { retry_after: 1 },
                E::Fetch { .. } | E::Install(_) | E::Stopping => ServiceError::NotReady {
                    reason: format!("resync failed: {e}"),
                    retry_after: 5,
                },
            })
    }

    /// Takes a snapshot of the replicated database on this node now; with `purge`, then
    /// purges the WAL segments it covers that no live member needs.
    ///
    /// # Errors
    /// This node has no snapshots, or the snapshot failed.
    pub async fn snapshot_create(&self, purge: bool) -> Result<SnapshotCreated, ServiceError> {
        let done = self
            .inner
            .node
            .snapshot_now(purge)
            .await
            .map_err(|e| ServiceError::Internal(format!("snapshot failed: {e}")))?;
        let path = self.snapshot_path(&done.manifest.id);
        Ok(SnapshotCreated {
            snapshot: snapshot_info(&done.manifest, path),
            purged_up_to: done.retention.and_then(|r| r.purge_upto),
            wal_first_lsn: done.first_lsn,
        })
    }

    /// The snapshots this node holds and any transfer under way.
    ///
    /// # Errors
    /// This node has no snapshots, or they cannot be listed.
    pub async fn snapshot_list(&self) -> Result<SnapshotList, ServiceError> {
        let Some(s) = self.inner.node.snapshots() else {
            return Err(ServiceError::snapshots_unsupported());
        };
        let list = s
            .list()
            .await
            .map_err(|e| ServiceError::Internal(format!("listing snapshots: {e}")))?;
        Ok(SnapshotList {
            snapshots: list
                .iter()
                .map(|m| snapshot_info(m, self.snapshot_path(&m.id)))
                .collect(),
            sync: s.progress().report(),
            installs: s.progress().installs(),
        })
    }

    /// What `GET /metrics` reports, from memory (no I/O).
    pub fn observe(&self) -> crate::observe::metrics::Observation {
        crate::node::observation(&self.inner.node, self.status())
    }

    /// This node's recent lifecycle events.
    pub fn events(&self) -> crate::observe::events::EventList {
        self.inner.events.list()
    }

    /// The answer for requests a removed node can no longer serve.
    fn removed_error(&self) -> ServiceError {
        ServiceError::NotReady {
            reason: format!(
                "{} was removed from the cluster; send requests to a member",
                self.inner.node.info().name
            ),
            retry_after: 1,
        }
    }

    fn snapshot_path(&self, id: &str) -> String {
        self.inner
            .node
            .snapshots()
            .map(|s| s.file_path(id).display().to_string())
            .unwrap_or_default()
    }
}

/// Keeps the commit index openraft holds current for `/status` and `weak` reads (metrics
/// do not carry it); ends with the node, or once the service is gone.
async fn track_commit(service: Weak<Inner>) {
    let Some(node) = service.upgrade().map(|s| s.node.clone()) else {
        return;
    };
    let token = node.shutdown_token();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        // The engine may stop while we ask: never outlive the shutdown token.
        let ask = node
            .raft()
            .with_raft_state(|s| s.committed.map_or(0, |l| l.index));
        tokio::select! {
            _ = token.cancelled() => return,
            r = ask => if let Ok(c) = r {
                let Some(s) = service.upgrade() else { return };
                s.commit.store(c, Ordering::Relaxed);
            }
        }
    }
}

fn snapshot_info(m: &crate::snapshot::Manifest, path: String) -> SnapshotInfo {
    SnapshotInfo {
        id: m.id.clone(),
        lsn: m.index(),
        term: m.last_log_id.map_or(0, |l| l.leader_id.term),
        created_ms: m.created_ms,
        bytes: m.bytes,
        rows: m.rows,
        tables: m.tables.len() as u64,
        views: m.views,
        routines: m.routines,
        triggers: m.triggers,
        sequences: m.sequences,
        sha256: m.sha256.clone(),
        source: m.source.clone(),
        path,
    }
}

impl Services for Service {
    fn client_write(&self, body: Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>> {
        let me = self.clone();
        Box::pin(async move {
            let answer = match forward::decode_forwarded(&body) {
                Ok(forward::Forwarded::Client(request)) => me.write_forwarded(request).await,
                Ok(forward::Forwarded::CheckBarrier { id }) => {
                    me.barrier_local(id).await.map(|lsn| WriteOutcome {
                        lsn,
                        ..WriteOutcome::default()
                    })
                }
                Err(e) => Err(ServiceError::Invalid {
                    code: "bad_forward".into(),
                    message: e.to_string(),
                }),
            };
            forward::encode_answer(&answer)
        })
    }

    fn status_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.status()).unwrap_or_default()
    }

    fn check_answer(&self, body: Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>> {
        let checker = self.inner.checker.clone();
        Box::pin(async move { checker.answer_peer(&body).await })
    }
}
