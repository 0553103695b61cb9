//! Handing leadership to a chosen voter. openraft 0.9 has no transfer call, so the leader
//! runs the classic procedure on top of its public API, and openraft's election rules
//! still decide who leads (one leader per term is never bypassed):
//!
//! 1. wait until the target is close behind (writes still flowing), then hold new
//!    proposals back and let those in flight finish, so the log stands still;
//! 2. wait until the target has every entry (its matched index is the leader's last);
//! 3. stop this node's heartbeats and elections: the voters' leader lease (during which
//!    they refuse any vote request) then runs out instead of being renewed, and this node
//!    cannot compete;
//! 4. ask the target to campaign now (`Raft::trigger().elect()` there). Its log is as
//!    long as anyone's, so every voter whose lease has run out grants it; this node's own
//!    lease dates from its election, so it usually grants at once and steps down;
//! 5. wait until the target leads in a newer term, asking it again if it has not won one
//!    lease after step 3; restore heartbeats, elections and proposals in every case.

use super::admin::find_member;
use super::{Node, ADMIN_TIMEOUT};
use crate::consensus::network::{AdminDone, AdminError, ClusterError, PeerRequest, PeerResponse};
use crate::consensus::{NodeId, NodeInfo};
use openraft::ServerState;
use std::time::Duration;
use tokio::time::Instant;

/// How long proposals already in flight get to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the target gets to come close, while writes still flow.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);
/// How close: entries behind the leader's last.
const CLOSE_BEHIND: u64 = super::membership::PROMOTE_LAG;
/// How long the target gets to receive the last entries while writes are held back.
const FINAL_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(3);
/// How often progress is checked.
const POLL: Duration = Duration::from_millis(20);

/// Makes the voter `wanted` names the leader. Runs on the leader.
pub(super) async fn transfer(node: &Node, wanted: &str) -> Result<AdminDone, AdminError> {
    // No membership change while leadership moves.
    let _guard = node.admission().await;
    let raft = node.raft();
    let m = raft.metrics().borrow().clone();
    if m.state != ServerState::Leader {
        return Err(AdminError::NoLeader);
    }
    let membership = m.membership_config.membership().clone();
    let (target, info) = find_member(&membership, wanted)?;
    let me = node.info().name.clone();
    if target == node.number() {
        return Ok(AdminDone::Transferred {
            name: me.clone(),
            number: target,
            term: m.current_term,
            previous: me,
            previous_term: m.current_term,
        });
    }
    if !membership.voter_ids().any(|v| v == target) {
        return Err(AdminError::Refused {
            code: "not_voter".into(),
            message: format!(
                "{} is a learner; only a voter can lead (it becomes one once it has caught up)",
                info.name
            ),
        });
    }
    let old_term = m.current_term;
    // A target that does not answer cannot win: refuse before holding writes back.
    let probe = node
        .client()
        .call::<_, PeerResponse>(
            &info.cluster_addr,
            &PeerRequest::Leader,
            super::remove::probe_timeout(node),
        )
        .await;
    if let Err(e) = probe {
        return Err(AdminError::Refused {
            code: "unreachable".into(),
            message: format!("cannot reach {}: {e}", info.name),
        });
    }
    tracing::info!(target = %info.name, term = old_term, "transferring leadership");

    // 1. Close behind first, so that writes are held back only briefly; then the log
    //    stands still.
    caught_up(node, target, &info.name, CLOSE_BEHIND, CATCH_UP_TIMEOUT).await?;
    let _paused = tokio::time::timeout(DRAIN_TIMEOUT, node.inner.write_gate.write())
        .await
        .map_err(|_| {
            AdminError::Busy(format!(
                "writes in flight did not finish within {} s; retry shortly",
                DRAIN_TIMEOUT.as_secs()
            ))
        })?;

    // 2. The target has everything this node has.
    caught_up(node, target, &info.name, 0, FINAL_CATCH_UP_TIMEOUT).await?;

    // 3. Let the voters' lease run out; never compete.
    let _quiet = Quiet::new(node);
    let started = Instant::now();
    let cfg = raft.config().clone();
    let lease = Duration::from_millis(cfg.election_timeout_max);
    let deadline = started + lease * 2 + Duration::from_secs(5);
    let mut next_ask = started;
    let mut asks = 0u32;
    loop {
        let m = raft.metrics().borrow().clone();
        if m.current_term > old_term {
            if let Some(leader) = m.current_leader {
                if leader == target {
                    tracing::info!(
                        target = %info.name,
                        term = m.current_term,
                        asks,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "leadership transferred"
                    );
                    return Ok(AdminDone::Transferred {
                        name: info.name,
                        number: target,
                        term: m.current_term,
                        previous: me,
                        previous_term: old_term,
                    });
                }
                let name = membership
                    .get_node(&leader)
                    .map_or_else(|| leader.to_string(), |n| n.name.clone());
                return Err(AdminError::Refused {
                    code: "transfer_superseded".into(),
                    message: format!(
                        "{name} won the election in term {} instead of {}; retry the transfer",
                        m.current_term, info.name
                    ),
                });
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(AdminError::Timeout(format!(
                "{} did not become leader within {} ms",
                info.name,
                (deadline - started).as_millis()
            )));
        }
        // 4. Ask the target to campaign: at once, again once the lease has surely run
        //    out, then every half election timeout while it has not won.
        if now >= next_ask && m.current_leader != Some(target) {
            asks += 1;
            campaign_at(node, &info, old_term, asks == 1).await?;
            next_ask = if asks == 1 {
                started + lease + Duration::from_millis(cfg.heartbeat_interval)
            } else {
                Instant::now() + Duration::from_millis(cfg.election_timeout_min / 2)
            };
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `target`'s matched log index is at most `slack` behind this node's last.
async fn caught_up(
    node: &Node,
    target: NodeId,
    name: &str,
    slack: u64,
    limit: Duration,
) -> Result<(), AdminError> {
    let deadline = Instant::now() + limit;
    loop {
        let m = node.raft().metrics().borrow().clone();
        if m.state != ServerState::Leader {
            return Err(AdminError::NoLeader);
        }
        let matched = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&target).cloned().flatten())
            .map(|l| l.index);
        if let (Some(matched), Some(last)) = (matched, m.last_log_index) {
            if matched + slack >= last {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(AdminError::Timeout(format!(
                "{name} did not catch up within {} s (it has {} of {} entries); \
                 is it running and reachable?",
                limit.as_secs(),
                matched.map_or(0, |i| i + 1),
                m.last_log_index.map_or(0, |i| i + 1)
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Sends [`PeerRequest::Campaign`] to the target. A target that cannot be reached the
/// first time ends the transfer (this node resumes leading); later, it may be busy
/// campaigning, so the election is watched instead.
async fn campaign_at(
    node: &Node,
    target: &NodeInfo,
    term: u64,
    first: bool,
) -> Result<(), AdminError> {
    let request = PeerRequest::Campaign {
        from: node.number(),
        term,
    };
    match node
        .client()
        .call::<_, PeerResponse>(&target.cluster_addr, &request, ADMIN_TIMEOUT)
        .await
    {
        Ok(PeerResponse::Campaign(Ok(()))) => Ok(()),
        Ok(PeerResponse::Campaign(Err(e))) => Err(AdminError::Refused {
            code: "transfer_refused".into(),
            message: format!("{} refused to campaign: {e}", target.name),
        }),
        Ok(_) => Err(AdminError::Failed(
            "the target answered with the wrong message".into(),
        )),
        Err(e) if first => Err(AdminError::Refused {
            code: "unreachable".into(),
            message: format!("cannot reach {}: {e}", target.name),
        }),
        Err(e) => {
            tracing::info!(error = %e, "campaign request not answered");
            Ok(())
        }
    }
}

/// Handles [`PeerRequest::Campaign`] on the target: start an election now, unless this
/// node already leads, is not a voter, or follows a leader other than the one asking (a
/// late or repeated request must not unseat a newer leader).
pub(super) async fn campaign(node: &Node, from: NodeId, term: u64) -> Result<(), ClusterError> {
    if node.is_removed() {
        return Err(ClusterError::Failed("this node was removed".into()));
    }
    let m = node.raft().metrics().borrow().clone();
    if m.state == ServerState::Leader {
        return Ok(());
    }
    if !m
        .membership_config
        .membership()
        .voter_ids()
        .any(|v| v == m.id)
    {
        return Err(ClusterError::Failed("this node is not a voter".into()));
    }
    if m.current_term < term {
        return Err(ClusterError::Failed(format!(
            "this node is in term {}, behind the leader's {term}",
            m.current_term
        )));
    }
    if m.current_leader.is_some_and(|l| l != from) {
        return Err(ClusterError::Failed(
            "this node follows another leader now".into(),
        ));
    }
    tracing::info!(
        from,
        term = m.current_term,
        "campaigning for a leadership transfer"
    );
    node.raft()
        .trigger()
        .elect()
        .await
        .map_err(|e| ClusterError::Failed(format!("consensus stopped: {e}")))
}

/// Heartbeats and elections off on this node for as long as it lives.
struct Quiet<'a> {
    node: &'a Node,
}

impl<'a> Quiet<'a> {
    fn new(node: &'a Node) -> Self {
        // openraft's own election timer is always off (see `consensus::raft_config`);
        // heartbeats come from openraft and from the election task.
        node.set_quiet(true);
        node.raft().runtime_config().heartbeat(false);
        Quiet { node }
    }
}

impl Drop for Quiet<'_> {
    fn drop(&mut self) {
        self.node.raft().runtime_config().heartbeat(true);
        self.node.set_quiet(false);
    }
}
