//! The write path: on the leader, prepare (timestamp, Snowflake IDs), propose (batched
//! with concurrent writes, DDL alone) and answer with the leader's apply result; on a
//! follower, forward the request to the leader once and relay its answer. A divergence
//! check's barrier takes the same path. A failure after
//! the request may have reached the log is an ambiguous [`ServiceError::Timeout`], never
//! a retry: a retry could apply the write twice.

use super::{forward, DbError, Service, ServiceError, StatementDone, WriteOutcome};
use crate::apply::{Outcome, StatementOutcome};
use crate::command::{self, Wait, WriteRequest};
use crate::consensus::network::{ClusterError, PeerRequest, PeerResponse};
use crate::consensus::{Request, Response};
use crate::service::Role;
use openraft::ServerState;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long `wait: all` waits for every voter to apply a write.
const WAIT_ALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the leader waits for a write to commit and apply before answering a timeout.
/// It stays below the forwarding timeout, so a follower that forwarded the write relays
/// this answer instead of timing out itself.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(8);
/// How long a follower waits for the leader's answer to a forwarded write.
const FORWARD_TIMEOUT: Duration = crate::node::ADMIN_TIMEOUT;

/// `clock`, raised above both the largest applied entry timestamp and the last one issued.
fn monotonic_timestamp(clock: u64, applied_max: u64, last_issued: u64) -> u64 {
    clock
        .max(applied_max.saturating_add(1))
        .max(last_issued.saturating_add(1))
}

impl Service {
    /// Replicates a write and answers with the leader's apply result; with `wait: all`,
    /// once every voter applied it. `request` should have passed [`super::check_write`]
    /// (then a refusal here means the leader's state differs, e.g. the entry is too large
    /// once IDs are added; the leader runs `prepare` again with its clock and IDs).
    ///
    /// Dropping the future does not withdraw a write already handed to consensus: it still
    /// commits and applies.
    ///
    /// # Errors
    /// A refusal before anything was appended ([`ErrorKind::Invalid`],
    /// [`ErrorKind::Unavailable`], [`ErrorKind::NoQuorum`], …), MariaDB's deterministic
    /// error as the entry's result ([`ServiceError::Database`]), or an ambiguous
    /// [`ServiceError::Timeout`].
    ///
    /// [`ErrorKind::Invalid`]: super::ErrorKind::Invalid
    /// [`ErrorKind::Unavailable`]: super::ErrorKind::Unavailable
    /// [`ErrorKind::NoQuorum`]: super::ErrorKind::NoQuorum
    pub async fn write(&self, request: WriteRequest) -> Result<WriteOutcome, ServiceError> {
        if self.inner.node.is_removed() {
            return Err(self.removed_error());
        }
        if let Some(refusal) = self.quorum_refusal() {
            return Err(refusal);
        }
        let is_leader = self.inner.node.raft().metrics().borrow().state == ServerState::Leader;
        if !is_leader {
            // The leader prepares, replicates, applies and (for `wait: all`) waits.
            return self.write_forward(forward::encode_write(&request)).await;
        }
        let wait = request.wait();
        let result = match self.write_local(request.clone()).await {
            // Refused before anything was appended: leadership moved between the check and
            // the proposal. Ask the new leader.
            Err(ServiceError::NoLeader { .. }) => {
                return self.write_forward(forward::encode_write(&request)).await
            }
            other => other?,
        };
        if wait == Wait::All {
            self.wait_all(result.lsn).await?;
        }
        Ok(result)
    }

    /// A write a follower forwarded: run here as the leader, `wait: all` included.
    pub(super) async fn write_forwarded(
        &self,
        request: WriteRequest,
    ) -> Result<WriteOutcome, ServiceError> {
        let wait = request.wait();
        let result = self.write_local(request).await?;
        if wait == Wait::All {
            self.wait_all(result.lsn).await?;
        }
        Ok(result)
    }

    /// Appends the barrier of divergence check `id` through the leader (here when this
    /// node leads, else forwarded once, as a client write is); its LSN.
    ///
    /// # Errors
    /// As [`Service::write`]: a refusal before anything was appended (retry the check),
    /// or an ambiguous [`ServiceError::Timeout`] (run the check again).
    pub(crate) async fn check_barrier(&self, id: u64) -> Result<u64, ServiceError> {
        if self.inner.node.is_removed() {
            return Err(self.removed_error());
        }
        if let Some(refusal) = self.quorum_refusal() {
            return Err(refusal);
        }
        let is_leader = self.inner.node.raft().metrics().borrow().state == ServerState::Leader;
        let via_leader = || async {
            self.write_forward(forward::encode_barrier(id))
                .await
                .map(|outcome| outcome.lsn)
        };
        let result = if is_leader {
            match self.barrier_local(id).await {
                // Refused before anything was appended: ask the new leader.
                Err(ServiceError::NoLeader { .. }) => via_leader().await,
                other => other,
            }
        } else {
            via_leader().await
        };
        result.map_err(|e| match e {
            ServiceError::Timeout {
                message,
                lsn,
                lagging,
            } => ServiceError::Timeout {
                message: format!(
                    "the check barrier was not confirmed: {message}; run the check again"
                ),
                lsn,
                lagging,
            },
            other => other,
        })
    }

    /// Appends check `id`'s barrier here, if this node leads (a follower's forwarded one
    /// too); its LSN.
    pub(super) async fn barrier_local(&self, id: u64) -> Result<u64, ServiceError> {
        if let Some(refusal) = self.quorum_refusal() {
            return Err(refusal);
        }
        let entry = command::Entry {
            timestamp_us: self.next_timestamp_us(),
            ids: Vec::new(),
            command: command::Command::CheckBarrier { id },
        };
        let (lsn, _) = self.propose(entry).await?;
        Ok(lsn)
    }

    /// The timestamp for a new entry: this node's clock, but never at or below the last
    /// one this node issued or any entry it has seen applied (issue 12: a new leader whose
    /// clock is behind the old leader's must not make NOW() go backwards).
    pub(crate) fn next_timestamp_us(&self) -> u64 {
        let clock = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let applied = self.inner.apply.max_timestamp_us();
        let last_issued = &self.inner.last_timestamp_us;
        let mut last = last_issued.load(Ordering::Relaxed);
        loop {
            let next = monotonic_timestamp(clock, applied, last);
            match last_issued.compare_exchange_weak(
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

    /// The at-once refusal of a node cut off from the majority (see `node::quorum`):
    /// nothing has reached consensus yet, so the client may safely retry.
    pub(super) fn quorum_refusal(&self) -> Option<ServiceError> {
        let reason = self.inner.node.contact().refusal()?;
        // About one election: by then the majority has a leader, or contact is back.
        let election_ms = self.inner.node.config().cluster.election_timeout_ms;
        Some(ServiceError::NoQuorum {
            reason,
            retry_after: election_ms.div_ceil(1000).max(1),
        })
    }

    /// Prepares and replicates `request` here, if this node leads.
    async fn write_local(&self, request: WriteRequest) -> Result<WriteOutcome, ServiceError> {
        let started = Instant::now();
        if let Some(refusal) = self.quorum_refusal() {
            return Err(refusal);
        }
        let needs_id = matches!(&request, WriteRequest::Insert(r) if r.snowflake.is_some());
        let mut fresh = Vec::new();
        if needs_id {
            fresh.push(self.fresh_id().await?);
        }
        let now_us = self.next_timestamp_us();
        let mut pool = fresh.into_iter();
        let entry = command::prepare(request, now_us, &mut || pool.next().unwrap_or(0))?;
        if self.inner.galera {
            if let command::Command::Ddl { statement } = &entry.command {
                crate::sql::check_galera_ddl(statement)
                    .map_err(|e| ServiceError::from(command::Error::Ddl(e)))?;
            }
        }
        crate::observe::metrics::write_stage("prepare", started.elapsed());
        let (_, resp) = self.propose(entry).await?;
        let outcome = Outcome::decode(&resp).map_err(|e| ServiceError::Internal(e.to_string()))?;
        to_outcome(outcome)
    }

    /// Hands a prepared entry to consensus on this node, if it leads; its LSN and the
    /// applier's answer.
    async fn propose(&self, entry: command::Entry) -> Result<(u64, Response), ServiceError> {
        let request = Request {
            payload: entry.encode(),
        };
        // DDL and check barriers apply alone; other writes share entries with concurrent ones.
        let node = self.inner.node.clone();
        let write = async move {
            if entry.command.alone_in_entry() {
                node.propose_local_alone(request).await
            } else {
                node.propose_local_batched(request).await
            }
        };
        // A leader cut off from the majority keeps the entry uncommitted until it hears of a
        // new term; the client gets an answer meanwhile. The entry may still commit later
        // (a new leader can adopt it), so the outcome is unknown, never "not applied".
        tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| ServiceError::Timeout {
                message: format!(
                    "not committed within {} s (is a majority of the cluster reachable?); \
                     the write may or may not be applied later",
                    WRITE_TIMEOUT.as_secs()
                ),
                lsn: None,
                lagging: Vec::new(),
            })?
            .map_err(|e| match e {
                ClusterError::NotLeader(..) | ClusterError::NoLeader => no_leader(),
                e @ ClusterError::Unknown => ServiceError::Timeout {
                    message: e.to_string(),
                    lsn: None,
                    lagging: Vec::new(),
                },
                // The node is stopping (e.g. fail-stop on a WAL or state error) with the
                // write possibly appended: not a bug, and not a definite refusal either.
                ClusterError::Failed(reason) => ServiceError::Timeout {
                    message: format!("{reason}; the write may or may not be applied"),
                    lsn: None,
                    lagging: Vec::new(),
                },
                other => ServiceError::Internal(other.to_string()),
            })
    }

    /// Sends a forwarded write ([`forward::encode_write`], [`forward::encode_barrier`])
    /// to the leader, once, and returns its answer.
    async fn write_forward(&self, body: Vec<u8>) -> Result<WriteOutcome, ServiceError> {
        let leader = self.leader().ok_or_else(no_leader)?;
        match self
            .inner
            .node
            .client()
            .call::<_, PeerResponse>(
                &leader.cluster_addr,
                &PeerRequest::ClientWrite(body),
                FORWARD_TIMEOUT,
            )
            .await
        {
            Ok(PeerResponse::ClientWrite(answer)) => forward::decode_answer(&answer)
                .map_err(|e| ServiceError::Internal(e.to_string()))?,
            Ok(_) => Err(ServiceError::Internal(
                "leader answered with the wrong message".into(),
            )),
            Err(crate::transport::Error::Timeout { .. }) => Err(ServiceError::Timeout {
                message:
                    "the leader did not answer in time; the write may or may not have been applied"
                        .into(),
                lsn: None,
                lagging: Vec::new(),
            }),
            // The leader may have appended it: "no leader" would tell the client to retry,
            // and a retry could apply the write twice.
            Err(crate::transport::Error::Lost { .. }) => Err(ServiceError::Timeout {
                message: "the connection to the leader broke before it answered; the write \
                          may or may not have been applied"
                    .into(),
                lsn: None,
                lagging: Vec::new(),
            }),
            // The leader answered something we cannot read: it may have applied the write.
            Err(e @ crate::transport::Error::Decode { .. }) => {
                Err(ServiceError::Internal(e.to_string()))
            }
            // Nothing reached the leader, or it refused the request before handling it.
            Err(_) => Err(no_leader()),
        }
    }

    /// The leader this node knows of, with its addresses.
    pub(super) fn leader(&self) -> Option<crate::consensus::NodeInfo> {
        let m = self.inner.node.raft().metrics().borrow().clone();
        m.current_leader
            .and_then(|id| m.membership_config.membership().get_node(&id).cloned())
    }

    /// Waits until every voter has applied `lsn`.
    async fn wait_all(&self, lsn: u64) -> Result<(), ServiceError> {
        let deadline = Instant::now() + WAIT_ALL_TIMEOUT;
        loop {
            let status = self.cluster_status().await;
            let lagging: Vec<String> = status
                .nodes
                .iter()
                .filter(|n| n.role != Role::Learner && n.applied_lsn < lsn)
                .map(|n| n.node_id.clone())
                .collect();
            if lagging.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ServiceError::Timeout {
                    message: format!("committed at lsn {lsn}, but not yet applied on every voter"),
                    lsn: Some(lsn),
                    lagging,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// "No leader": refused before anything was appended.
pub(super) fn no_leader() -> ServiceError {
    ServiceError::NoLeader { retry_after: 1 }
}

/// The leader's apply result as the client must see it.
fn to_outcome(outcome: Outcome) -> Result<WriteOutcome, ServiceError> {
    match outcome {
        Outcome::Applied {
            lsn,
            affected_rows,
            last_insert_id,
            ids,
        } => Ok(WriteOutcome {
            lsn,
            affected_rows,
            last_insert_id: last_insert_id.unwrap_or(0),
            ids,
            warnings: 0,
            statements: Vec::new(),
        }),
        Outcome::Failed { failure, .. } => Err(ServiceError::Database(DbError::from(failure))),
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
                        Ok(StatementDone {
                            affected_rows,
                            last_insert_id: last_insert_id.unwrap_or(0),
                        })
                    }
                    StatementOutcome::Failed(f) => Err(DbError::from(f)),
                })
                .collect();
            Ok(WriteOutcome {
                lsn,
                affected_rows: affected,
                last_insert_id: last_id,
                ids,
                warnings: 0,
                statements,
            })
        }
        Outcome::Internal { lsn } | Outcome::AlreadyApplied { lsn } => Err(ServiceError::Internal(
            format!("entry {lsn} produced no client result"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{FORWARD_TIMEOUT, WRITE_TIMEOUT};

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
        // A follower forwards with FORWARD_TIMEOUT; the leader's own deadline must be
        // shorter, or the follower would answer a bare timeout without the leader's word.
        assert!(WRITE_TIMEOUT + std::time::Duration::from_secs(1) < FORWARD_TIMEOUT);
    }
}
