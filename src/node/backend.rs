//! The HTTP API's [`Backend`] for a running node: writes are prepared (timestamp,
//! Snowflake IDs) and replicated on the leader — a follower forwards the client's request
//! to it over the cluster transport — and answered with the leader's apply result; reads
//! run on this node's MariaDB after waiting for `min_lsn`; status comes from consensus
//! metrics and the applier.

use super::{Node, Services, ADMIN_TIMEOUT};
use crate::api::{
    forward, Backend, BackendError, ClusterStatus, Consistency, NodeState, NodeStatus, Query,
    QueryResult, RemoveResult, Role as ApiRole, RoleResult, SnapshotCreated, SnapshotInfo,
    SnapshotList, StatementResult, TransferResult, WriteResult,
};
use crate::apply::check::{CheckSnapshots, Pace};
use crate::apply::{ApplyStatus, Outcome, QueryError, Reader, StatementOutcome};
use crate::command::{self, Input, Wait, WriteRequest};
use crate::consensus::network::{AdminDone, AdminError, ClusterError, PeerRequest, PeerResponse};
use crate::consensus::Request;
use crate::id::Generator;
use openraft::ServerState;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A node is LAGGING when its applied LSN trails the leader's log by more than this.
const LAG_THRESHOLD: u64 = 1000;
/// How long `wait: all` waits for every voter to apply a write.
const WAIT_ALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the leader waits for a write to commit and apply before answering 504. It
/// stays below the forwarding timeout, so a follower that forwarded the write relays this
/// answer instead of timing out itself.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(8);
/// How long a peer may take to report its status.
const STATUS_TIMEOUT: Duration = Duration::from_millis(800);

/// The node as the HTTP API sees it; clones share it.
#[derive(Clone)]
pub struct NodeBackend {
    node: Node,
    apply: ApplyStatus,
    reader: Reader,
    ids: Arc<Generator>,
    commit: Arc<AtomicU64>,
    events: crate::observe::events::Events,
    checker: Arc<super::check::Checker>,
    /// The last timestamp given to an entry prepared here.
    last_timestamp_us: Arc<AtomicU64>,
}

/// `clock`, raised above both the largest applied entry timestamp and the last one issued.
fn monotonic_timestamp(clock: u64, applied_max: u64, last_issued: u64) -> u64 {
    clock
        .max(applied_max.saturating_add(1))
        .max(last_issued.saturating_add(1))
}

impl NodeBackend {
    /// Builds the backend and registers it with the node for peers' forwarded writes.
    pub fn install(
        node: Node,
        apply: ApplyStatus,
        reader: Reader,
        ids: Generator,
        checks: CheckSnapshots,
    ) -> Arc<NodeBackend> {
        let cluster = &node.config().cluster;
        checks.set_pace(Pace {
            chunk_rows: cluster.check_chunk_rows,
            rows_per_sec: cluster.check_rows_per_sec,
        });
        let backend = Arc::new(NodeBackend {
            node: node.clone(),
            apply,
            reader,
            ids: Arc::new(ids),
            commit: Arc::new(AtomicU64::new(0)),
            events: Default::default(),
            checker: Arc::new(super::check::Checker::new(node.clone(), checks)),
            last_timestamp_us: Arc::new(AtomicU64::new(0)),
        });
        node.set_services(backend.clone());
        node.spawn(track_commit(node.clone(), backend.commit.clone()));
        node.spawn(super::check::periodic(
            node.clone(),
            backend.checker.clone(),
            backend.ids.clone(),
        ));
        node.spawn(super::outcomes::report_outcomes(backend.clone()));
        // The watcher holds a weak reference: the backend must not outlive its node.
        let weak = Arc::downgrade(&backend);
        node.spawn(super::watch::watch(
            node.clone(),
            backend.events.clone(),
            move || {
                weak.upgrade()
                    .map_or(NodeState::Offline, |b| b.status().status)
            },
        ));
        backend
    }

    /// The timestamp for a new entry: this node's clock, but never at or below the last
    /// one this node issued or any entry it has seen applied (issue 12: a new leader whose
    /// clock is behind the old leader's must not make NOW() go backwards).
    pub(super) fn next_timestamp_us(&self) -> u64 {
        let clock = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let applied = self.apply.max_timestamp_us();
        let mut last = self.last_timestamp_us.load(Ordering::Relaxed);
        loop {
            let next = monotonic_timestamp(clock, applied, last);
            match self.last_timestamp_us.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// The node this backend serves.
    pub(super) fn node(&self) -> &Node {
        &self.node
    }

    /// The applier's status handle.
    pub(super) fn apply_status(&self) -> &ApplyStatus {
        &self.apply
    }

    fn no_leader() -> BackendError {
        BackendError::NoLeader { retry_after: 1 }
    }

    /// The at-once refusal of a node cut off from the majority (see `node::quorum`):
    /// nothing has reached consensus yet, so the client may safely retry.
    fn quorum_refusal(&self) -> Option<BackendError> {
        let reason = self.node.contact().refusal()?;
        // About one election: by then the majority has a leader, or contact is back.
        let election_ms = self.node.config().cluster.election_timeout_ms;
        Some(BackendError::NoQuorum {
            reason,
            retry_after: election_ms.div_ceil(1000).max(1),
        })
    }

    /// Prepares and replicates `request` here, if this node leads.
    async fn write_local(&self, request: WriteRequest) -> Result<WriteResult, BackendError> {
        if let Some(refusal) = self.quorum_refusal() {
            return Err(refusal);
        }
        let needs_id = matches!(&request, WriteRequest::Insert(r) if r.snowflake.is_some());
        let mut fresh = Vec::new();
        if needs_id {
            let id = self.ids.next().await.map_err(|e| BackendError::NotReady {
                reason: e.to_string(),
                retry_after: 1,
            })?;
            fresh.push(id.as_u64());
        }
        let now_us = self.next_timestamp_us();
        let mut pool = fresh.into_iter();
        let entry = command::prepare(request, now_us, &mut || pool.next().unwrap_or(0))?;
        let request = Request {
            payload: entry.encode(),
        };
        // DDL applies alone; other writes share entries with concurrent ones.
        let node = self.node.clone();
        let write = async move {
            if entry.command.is_ddl() {
                node.propose_local_alone(request).await
            } else {
                node.propose_local_batched(request).await
            }
        };
        // A leader cut off from the majority keeps the entry uncommitted until it hears of a
        // new term; the client gets an answer meanwhile. The entry may still commit later
        // (a new leader can adopt it), so the outcome is unknown, never "not applied".
        let (_, resp) = tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| BackendError::Timeout {
                message: format!(
                    "not committed within {} s (is a majority of the cluster reachable?); \
                     the write may or may not be applied later",
                    WRITE_TIMEOUT.as_secs()
                ),
                lsn: None,
                lagging: Vec::new(),
            })?
            .map_err(|e| match e {
                ClusterError::NotLeader(..) | ClusterError::NoLeader => Self::no_leader(),
                e @ ClusterError::Unknown => BackendError::Timeout {
                    message: e.to_string(),
                    lsn: None,
                    lagging: Vec::new(),
                },
                // The node is stopping (e.g. fail-stop on a WAL or state error) with the
                // write possibly appended: not a bug, and not a definite refusal either.
                ClusterError::Failed(reason) => BackendError::Timeout {
                    message: format!("{reason}; the write may or may not be applied"),
                    lsn: None,
                    lagging: Vec::new(),
                },
                other => BackendError::Internal(other.to_string()),
            })?;
        let outcome = Outcome::decode(&resp).map_err(|e| BackendError::Internal(e.to_string()))?;
        to_result(outcome)
    }

    /// Sends `request` to the leader and returns its answer.
    async fn write_forward(&self, request: &WriteRequest) -> Result<WriteResult, BackendError> {
        let m = self.node.raft().metrics().borrow().clone();
        let leader = m
            .current_leader
            .and_then(|id| m.membership_config.membership().get_node(&id).cloned())
            .ok_or_else(Self::no_leader)?;
        let body = forward::encode_write(request);
        match self
            .node
            .client()
            .call::<_, PeerResponse>(
                &leader.cluster_addr,
                &PeerRequest::ClientWrite(body),
                ADMIN_TIMEOUT,
            )
            .await
        {
            Ok(PeerResponse::ClientWrite(answer)) => forward::decode_answer(&answer)
                .map_err(|e| BackendError::Internal(e.to_string()))?,
            Ok(_) => Err(BackendError::Internal(
                "leader answered with the wrong message".into(),
            )),
            Err(crate::transport::Error::Timeout { .. }) => Err(BackendError::Timeout {
                message:
                    "the leader did not answer in time; the write may or may not have been applied"
                        .into(),
                lsn: None,
                lagging: Vec::new(),
            }),
            // The leader may have appended it: 503 would tell the client to retry, and a
            // retry could apply the write twice.
            Err(crate::transport::Error::Lost { .. }) => Err(BackendError::Timeout {
                message: "the connection to the leader broke before it answered; the write \
                          may or may not have been applied"
                    .into(),
                lsn: None,
                lagging: Vec::new(),
            }),
            // The leader answered something we cannot read: it may have applied the write.
            Err(e @ crate::transport::Error::Decode { .. }) => {
                Err(BackendError::Internal(e.to_string()))
            }
            // Nothing reached the leader, or it refused the request before handling it.
            Err(_) => Err(Self::no_leader()),
        }
    }

    /// The leader's read index: asked of consensus here when this node leads, else of the
    /// leader over the cluster transport; within `timeout`.
    async fn read_index(&self, timeout: Duration) -> Result<u64, BackendError> {
        if let Some(refusal) = self.quorum_refusal() {
            return Err(refusal);
        }
        let timed_out = || BackendError::Timeout {
            message: format!(
                "the leader did not confirm its leadership within {} ms",
                timeout.as_millis()
            ),
            lsn: None,
            lagging: Vec::new(),
        };
        let m = self.node.raft().metrics().borrow().clone();
        let answer = if m.state == ServerState::Leader {
            tokio::time::timeout(timeout, self.node.read_index())
                .await
                .map_err(|_| timed_out())?
        } else {
            let leader = m
                .current_leader
                .and_then(|id| m.membership_config.membership().get_node(&id).cloned())
                .ok_or_else(Self::no_leader)?;
            match self
                .node
                .client()
                .call::<_, PeerResponse>(&leader.cluster_addr, &PeerRequest::ReadIndex, timeout)
                .await
            {
                Ok(PeerResponse::ReadIndex(r)) => r,
                Ok(_) => {
                    return Err(BackendError::Internal(
                        "leader answered with the wrong message".into(),
                    ))
                }
                Err(crate::transport::Error::Timeout { .. }) => return Err(timed_out()),
                // Reads change nothing: any other transport failure is worth a retry.
                Err(_) => return Err(Self::no_leader()),
            }
        };
        answer.map_err(|e| match e {
            // Leadership moved while we asked: the client retries and finds the new one.
            ClusterError::NoLeader | ClusterError::NotLeader(..) => Self::no_leader(),
            other => BackendError::Internal(other.to_string()),
        })
    }

    /// Waits until every voter has applied `lsn`.
    async fn wait_all(&self, lsn: u64) -> Result<(), BackendError> {
        let deadline = Instant::now() + WAIT_ALL_TIMEOUT;
        loop {
            let status = self.cluster().await;
            let lagging: Vec<String> = status
                .nodes
                .iter()
                .filter(|n| n.role != ApiRole::Learner && n.applied_lsn < lsn)
                .map(|n| n.node_id.clone())
                .collect();
            if lagging.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BackendError::Timeout {
                    message: format!("committed at lsn {lsn}, but not yet applied on every voter"),
                    lsn: Some(lsn),
                    lagging,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Keeps the commit index openraft holds current for `/status` (metrics do not carry it).
async fn track_commit(node: Node, commit: Arc<AtomicU64>) {
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
                commit.store(c, Ordering::Relaxed);
            }
        }
    }
}

fn to_result(outcome: Outcome) -> Result<WriteResult, BackendError> {
    match outcome {
        Outcome::Applied {
            lsn,
            affected_rows,
            last_insert_id,
            ids,
        } => Ok(WriteResult {
            lsn,
            affected_rows,
            last_insert_id: last_insert_id.unwrap_or(0),
            ids,
            statements: Vec::new(),
        }),
        Outcome::Failed { failure, .. } => Err(BackendError::from_mariadb(
            failure.class.class(),
            failure.code,
            &failure.message,
        )),
        Outcome::Batch {
            lsn,
            ids,
            statements,
        } => {
            let mut affected = 0;
            let mut last_id = 0;
            let statements = statements
                .into_iter()
                .map(|s| match s {
                    StatementOutcome::Done {
                        affected_rows,
                        last_insert_id,
                    } => {
                        affected += affected_rows;
                        last_id = last_insert_id.unwrap_or(last_id);
                        StatementResult {
                            affected_rows,
                            last_insert_id: last_insert_id.unwrap_or(0),
                            error: None,
                        }
                    }
                    StatementOutcome::Failed(f) => StatementResult {
                        affected_rows: 0,
                        last_insert_id: 0,
                        error: Some(
                            BackendError::from_mariadb(f.class.class(), f.code, &f.message).body(),
                        ),
                    },
                })
                .collect();
            Ok(WriteResult {
                lsn,
                affected_rows: affected,
                last_insert_id: last_id,
                ids,
                statements,
            })
        }
        Outcome::Internal { lsn } | Outcome::AlreadyApplied { lsn } => Err(BackendError::Internal(
            format!("entry {lsn} produced no client result"),
        )),
    }
}

fn json_to_input(v: serde_json::Value) -> Input {
    match v {
        serde_json::Value::Null => Input::Null,
        serde_json::Value::Bool(b) => Input::Bool(b),
        serde_json::Value::Number(n) => Input::Number(n.to_string()),
        serde_json::Value::String(s) => Input::Text(s),
        serde_json::Value::Object(ref o)
            if o.len() == 1 && o.get("$base64").is_some_and(|b| b.is_string()) =>
        {
            Input::Base64(
                o.get("$base64")
                    .and_then(|b| b.as_str())
                    .unwrap_or_default()
                    .to_string(),
            )
        }
        other => Input::Json(other),
    }
}

/// The answer for requests a removed node can no longer serve.
fn removed_error(node: &Node) -> BackendError {
    BackendError::NotReady {
        reason: format!(
            "{} was removed from the cluster; send requests to a member",
            node.info().name
        ),
        retry_after: 1,
    }
}

/// A cluster operation's refusal as the HTTP API answers it.
fn admin_error(e: AdminError) -> BackendError {
    match e {
        AdminError::UnknownNode(message) => BackendError::NotFound {
            code: "unknown_node".into(),
            message,
        },
        AdminError::Refused { code, message } => BackendError::Conflict { code, message },
        AdminError::NoLeader => BackendError::NoLeader { retry_after: 1 },
        AdminError::Busy(reason) => BackendError::NotReady {
            reason,
            retry_after: 1,
        },
        AdminError::Timeout(message) => BackendError::Timeout {
            message,
            lsn: None,
            lagging: Vec::new(),
        },
        AdminError::Failed(m) => BackendError::Internal(m),
    }
}

fn role_result(done: AdminDone) -> Result<RoleResult, BackendError> {
    match done {
        AdminDone::RoleChanged {
            name,
            number,
            lsn,
            voter,
            voters,
            learners,
        } => Ok(RoleResult {
            node_id: name,
            node_number: number,
            voter,
            lsn,
            voters,
            learners,
        }),
        other => Err(unexpected(other)),
    }
}

fn unexpected(done: AdminDone) -> BackendError {
    BackendError::Internal(format!("cluster operation answered {done:?}"))
}

impl Backend for NodeBackend {
    async fn write(&self, request: WriteRequest) -> Result<WriteResult, BackendError> {
        if self.node.is_removed() {
            return Err(removed_error(&self.node));
        }
        if let Some(refusal) = self.quorum_refusal() {
            return Err(refusal);
        }
        let is_leader = self.node.raft().metrics().borrow().state == ServerState::Leader;
        if !is_leader {
            // The leader prepares, replicates, applies and (for `wait: all`) waits.
            return self.write_forward(&request).await;
        }
        let wait = request.wait();
        let result = match self.write_local(request.clone()).await {
            // Leadership moved between the check and the proposal: ask the new leader.
            Err(BackendError::NoLeader { .. }) => return self.write_forward(&request).await,
            other => other?,
        };
        if wait == Wait::All {
            self.wait_all(result.lsn).await?;
        }
        Ok(result)
    }

    async fn query(&self, query: Query) -> Result<QueryResult, BackendError> {
        if self.node.is_removed() {
            return Err(removed_error(&self.node));
        }
        if self.loading_snapshot() {
            return Err(BackendError::NotReady {
                reason: "this node is loading a snapshot; read from another node".into(),
                retry_after: 5,
            });
        }
        let started = Instant::now();
        let mut min_lsn = query.min_lsn;
        if query.consistency == Consistency::Linearizable {
            // Everything committed before this read started is applied here before it runs.
            let index = self.read_index(query.timeout).await?;
            min_lsn = Some(min_lsn.map_or(index, |m| m.max(index)));
        } else if query.consistency == Consistency::Weak {
            // What this node already knows is committed, without asking anyone.
            let known = self.commit.load(Ordering::Acquire);
            min_lsn = Some(min_lsn.map_or(known, |m| m.max(known)));
        }
        if let Some(lsn) = min_lsn {
            let left = query.timeout.saturating_sub(started.elapsed());
            self.apply
                .wait_applied(lsn, left)
                .await
                .map_err(|e| BackendError::Timeout {
                    message: e.to_string(),
                    lsn: Some(lsn),
                    lagging: vec![self.node.info().name.clone()],
                })?;
        }
        let rows = self
            .reader
            .query(&query.sql, &query.params, query.timeout)
            .await
            .map_err(|e| match e {
                QueryError::Invalid(e) => BackendError::Invalid {
                    code: e.code().to_string(),
                    message: e.to_string(),
                },
                QueryError::Sql {
                    code,
                    message,
                    class,
                } => BackendError::from_mariadb(class, code, &message),
                QueryError::Unavailable(m) => BackendError::NotReady {
                    reason: m,
                    retry_after: 1,
                },
                QueryError::Timeout(t) => BackendError::Timeout {
                    message: format!("query did not finish within {t:?}"),
                    lsn: None,
                    lagging: Vec::new(),
                },
                e @ QueryError::TooLarge { .. } => BackendError::TooLarge {
                    message: e.to_string(),
                },
            })?;
        Ok(QueryResult {
            columns: rows.columns,
            rows: rows
                .rows
                .into_iter()
                .map(|r| r.into_iter().map(json_to_input).collect())
                .collect(),
        })
    }

    async fn ids(&self, count: usize) -> Result<Vec<u64>, BackendError> {
        let ids = self
            .ids
            .next_batch(count)
            .await
            .map_err(|e| BackendError::NotReady {
                reason: e.to_string(),
                retry_after: 1,
            })?;
        Ok(ids.into_iter().map(|i| i.as_u64()).collect())
    }

    fn status(&self) -> NodeStatus {
        let m = self.node.raft().metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let is_voter = membership.voter_ids().any(|v| v == m.id);
        // A non-voting replica stays a learner: it is not "joining" once caught up.
        let non_voting = !is_voter && membership.get_node(&m.id).is_some_and(|i| i.learner);
        let contact = self.node.contact();
        // A leader cut off from its majority has stopped acting as one (see `quorum`).
        let leading = m.state == ServerState::Leader && !contact.lost;
        let role = if leading {
            ApiRole::Leader
        } else if is_voter {
            ApiRole::Follower
        } else {
            ApiRole::Learner
        };
        let applied = self.apply.applied_lsn().unwrap_or(0);
        let last = m.last_log_index.unwrap_or(0);
        let commit = self.commit.load(Ordering::Relaxed).max(applied);
        let lag = last.saturating_sub(applied);
        let sync = self.node.snapshots().and_then(|s| s.progress().report());
        let state = if self.node.is_removed() {
            NodeState::Removed
        } else if sync.is_some() {
            NodeState::Syncing
        } else if self.apply.divergence().is_some() {
            NodeState::Diverged
        } else if self.apply.is_degraded() {
            NodeState::Degraded
        } else if contact.lost {
            NodeState::NoQuorum
        } else if !is_voter && !non_voting {
            NodeState::Joining
        } else if m.current_leader.is_none() {
            NodeState::Syncing
        } else if lag > LAG_THRESHOLD {
            NodeState::Lagging
        } else {
            NodeState::Active
        };
        let leader_name = m
            .current_leader
            .filter(|id| *id != m.id || leading)
            .and_then(|id| membership.get_node(&id).map(|n| n.name.clone()));
        NodeStatus {
            node_id: self.node.info().name.clone(),
            node_number: m.id,
            role,
            status: state,
            term: m.current_term,
            leader_id: leader_name,
            last_log_lsn: last,
            commit_lsn: commit,
            applied_lsn: applied,
            address: self.node.info().cluster_addr.clone(),
            api_address: self.node.info().api_addr.clone(),
            lag,
            divergence: self.apply.divergence(),
            apply_error: self
                .apply
                .is_degraded()
                .then(|| self.apply.last_error())
                .flatten(),
            sync,
            last_quorum_contact_ms: Some(contact.since_ms()),
            disagrees_on_leader: false,
            last_check: self.checker.last(),
        }
    }

    async fn cluster(&self) -> ClusterStatus {
        let me = self.status();
        let m = self.node.raft().metrics().borrow().clone();
        let members: Vec<(u64, crate::consensus::NodeInfo)> = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.clone()))
            .collect();
        let asks = members.into_iter().map(|(id, info)| {
            let me = me.clone();
            let client = self.node.client().clone();
            async move {
                if id == me.node_number {
                    return me;
                }
                let answer = client
                    .call::<_, PeerResponse>(
                        &info.cluster_addr,
                        &PeerRequest::Status,
                        STATUS_TIMEOUT,
                    )
                    .await;
                match answer {
                    Ok(PeerResponse::Status(json)) => {
                        match serde_json::from_slice::<NodeStatus>(&json) {
                            Ok(s) => s,
                            Err(_) => offline(id, &info),
                        }
                    }
                    _ => offline(id, &info),
                }
            }
        });
        let mut nodes = futures::future::join_all(asks).await;
        let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
        let leader = majority_leader(&mut nodes, &voters);
        let term = leader
            .as_ref()
            .and_then(|l| nodes.iter().find(|n| &n.node_id == l))
            .map_or(me.term, |l| l.term);
        ClusterStatus {
            leader_id: leader,
            term,
            nodes,
        }
    }

    fn observe(&self) -> crate::observe::metrics::Observation {
        super::watch::observation(&self.node, self.status())
    }

    fn events(&self) -> crate::observe::events::EventList {
        self.events.list()
    }

    fn ready(&self) -> bool {
        let m = self.node.raft().metrics().borrow().clone();
        m.current_leader.is_some()
            && !self.node.contact().lost
            && !self.apply.is_degraded()
            && !self.node.is_removed()
            && !self.loading_snapshot()
    }

    async fn remove_node(&self, node: String) -> Result<RemoveResult, BackendError> {
        match self.node.remove_member(&node).await.map_err(admin_error)? {
            AdminDone::Removed {
                name,
                number,
                lsn,
                voters,
                learners,
            } => Ok(RemoveResult {
                removed: name,
                node_number: number,
                lsn,
                voters,
                learners,
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn transfer_leader(&self, node: String) -> Result<TransferResult, BackendError> {
        match self
            .node
            .transfer_leader(&node)
            .await
            .map_err(admin_error)?
        {
            AdminDone::Transferred {
                name,
                number,
                term,
                previous,
                previous_term,
            } => Ok(TransferResult {
                leader_id: name,
                node_number: number,
                term,
                previous_leader: previous,
                previous_term,
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn promote_node(&self, node: String) -> Result<RoleResult, BackendError> {
        role_result(self.node.promote_member(&node).await.map_err(admin_error)?)
    }

    async fn demote_node(&self, node: String) -> Result<RoleResult, BackendError> {
        role_result(self.node.demote_member(&node).await.map_err(admin_error)?)
    }

    async fn snapshot_create(&self, purge: bool) -> Result<SnapshotCreated, BackendError> {
        let done = self
            .node
            .snapshot_now(purge)
            .await
            .map_err(|e| BackendError::Internal(format!("snapshot failed: {e}")))?;
        let path = self.snapshot_path(&done.manifest.id);
        Ok(SnapshotCreated {
            snapshot: snapshot_info(&done.manifest, path),
            purged_up_to: done.retention.and_then(|r| r.purge_upto),
            wal_first_lsn: done.first_lsn,
        })
    }

    async fn check(&self) -> Result<crate::api::CheckReport, BackendError> {
        let id = self.ids.next().await.map_err(|e| BackendError::NotReady {
            reason: e.to_string(),
            retry_after: 1,
        })?;
        self.checker.run(id.as_u64()).await
    }

    async fn snapshot_list(&self) -> Result<SnapshotList, BackendError> {
        let Some(s) = self.node.snapshots() else {
            return Err(BackendError::snapshots_unsupported());
        };
        let list = s
            .list()
            .await
            .map_err(|e| BackendError::Internal(format!("listing snapshots: {e}")))?;
        Ok(SnapshotList {
            snapshots: list
                .iter()
                .map(|m| snapshot_info(m, self.snapshot_path(&m.id)))
                .collect(),
            sync: s.progress().report(),
            installs: s.progress().installs(),
        })
    }
}

impl NodeBackend {
    /// Whether a snapshot is being loaded here (the database is incomplete meanwhile).
    fn loading_snapshot(&self) -> bool {
        self.node
            .snapshots()
            .is_some_and(|s| s.progress().is_loading())
    }

    fn snapshot_path(&self, id: &str) -> String {
        self.node
            .snapshots()
            .map(|s| s.file_path(id).display().to_string())
            .unwrap_or_default()
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

fn offline(id: u64, info: &crate::consensus::NodeInfo) -> NodeStatus {
    NodeStatus {
        node_id: info.name.clone(),
        node_number: id,
        role: ApiRole::Follower,
        status: NodeState::Offline,
        term: 0,
        leader_id: None,
        last_log_lsn: 0,
        commit_lsn: 0,
        applied_lsn: 0,
        address: info.cluster_addr.clone(),
        api_address: info.api_addr.clone(),
        lag: 0,
        divergence: None,
        apply_error: None,
        sync: None,
        last_quorum_contact_ms: None,
        disagrees_on_leader: false,
        last_check: None,
    }
}

/// The leader a majority of `voters` follow, by the statuses they gave (a leader counts
/// itself), if any; marks every node that answered but names another leader, or none.
fn majority_leader(nodes: &mut [NodeStatus], voters: &[u64]) -> Option<String> {
    let mut votes: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for n in nodes.iter().filter(|n| voters.contains(&n.node_number)) {
        if let Some(l) = &n.leader_id {
            *votes.entry(l.as_str()).or_default() += 1;
        }
    }
    let leader = votes
        .into_iter()
        .find(|(_, count)| count * 2 > voters.len())
        .map(|(name, _)| name.to_string())?;
    for n in nodes.iter_mut() {
        n.disagrees_on_leader =
            n.status != NodeState::Offline && n.leader_id.as_deref() != Some(leader.as_str());
    }
    Some(leader)
}

impl Services for NodeBackend {
    fn client_write(&self, body: Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>> {
        let me = self.clone();
        Box::pin(async move {
            let answer = match forward::decode_write(&body) {
                Ok(req) => {
                    let wait = req.wait();
                    match me.write_local(req).await {
                        Ok(r) if wait == Wait::All => me.wait_all(r.lsn).await.map(|()| r),
                        other => other,
                    }
                }
                Err(e) => Err(BackendError::Invalid {
                    code: "bad_forward".into(),
                    message: e.to_string(),
                }),
            };
            forward::encode_answer(&answer)
        })
    }

    fn status_json(&self) -> Vec<u8> {
        serde_json::to_vec(&Backend::status(self)).unwrap_or_default()
    }

    fn check_answer(&self, body: Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>> {
        let checker = self.checker.clone();
        Box::pin(async move { checker.answer_peer(&body).await })
    }
}

#[cfg(test)]
mod tests {
    use super::{majority_leader, offline, NodeState, NodeStatus, ADMIN_TIMEOUT, WRITE_TIMEOUT};
    use crate::consensus::NodeInfo;

    fn answered(number: u64, leader: Option<&str>) -> NodeStatus {
        let mut n = offline(
            number,
            &NodeInfo {
                name: format!("n{number}"),
                ..NodeInfo::default()
            },
        );
        n.status = NodeState::Active;
        n.leader_id = leader.map(String::from);
        n
    }

    #[test]
    fn the_cluster_leader_is_the_one_a_majority_follows_and_dissenters_are_marked() {
        // n1 was cut off and still names itself; n2 and n3 elected n2.
        let mut nodes = vec![
            answered(1, Some("n1")),
            answered(2, Some("n2")),
            answered(3, Some("n2")),
        ];
        assert_eq!(
            majority_leader(&mut nodes, &[1, 2, 3]).as_deref(),
            Some("n2")
        );
        let marked: Vec<bool> = nodes.iter().map(|n| n.disagrees_on_leader).collect();
        assert_eq!(marked, [true, false, false]);
        // Asked on the cut-off side: the others do not answer, no majority names anyone.
        let info = |n: u64| NodeInfo {
            name: format!("n{n}"),
            ..NodeInfo::default()
        };
        let mut nodes = vec![
            answered(1, None),
            offline(2, &info(2)),
            offline(3, &info(3)),
        ];
        assert_eq!(majority_leader(&mut nodes, &[1, 2, 3]), None);
        assert!(nodes.iter().all(|n| !n.disagrees_on_leader));
        // A learner's view does not count towards the majority, but it is marked.
        let mut nodes = vec![
            answered(1, Some("n1")),
            answered(2, None),
            answered(3, Some("n1")),
            answered(4, Some("n3")),
        ];
        assert_eq!(
            majority_leader(&mut nodes, &[1, 2, 3]).as_deref(),
            Some("n1")
        );
        let marked: Vec<bool> = nodes.iter().map(|n| n.disagrees_on_leader).collect();
        assert_eq!(marked, [false, true, false, true]);
    }

    #[test]
    fn timestamps_never_go_backwards() {
        use super::monotonic_timestamp as m;
        // A clock ahead of everything is used as it is.
        assert_eq!(m(1_000, 10, 20), 1_000);
        // A new leader whose clock is behind the last applied entry stamps just above it.
        assert_eq!(m(500, 900, 0), 901);
        // Two entries in the same microsecond still differ.
        assert_eq!(m(1_000, 0, 1_000), 1_001);
        assert_eq!(m(0, u64::MAX, 0), u64::MAX);
    }

    #[test]
    fn the_leader_answers_a_forwarded_write_before_the_forwarder_gives_up() {
        // A follower forwards with ADMIN_TIMEOUT; the leader's own deadline must be
        // shorter, or the follower would answer a bare timeout without the leader's word.
        assert!(WRITE_TIMEOUT + std::time::Duration::from_secs(1) < ADMIN_TIMEOUT);
    }
}
