//! Membership on the leader: admitting a joining node as a learner (with a unique name
//! and number) and promoting learners to voters once they have caught up, except the
//! non-voting replicas. Removal is in `remove`, an operator's promotion and demotion in
//! `voting`, leadership transfer in `transfer`, elections in `election`.

use super::{Node, ADMIN_TIMEOUT};
use crate::consensus::network::{
    ClusterError, JoinAccepted, JoinRequest, PeerRequest, PeerResponse,
};
use crate::consensus::{NodeId, NodeInfo};
use openraft::{ChangeMembers, ServerState};
use std::collections::BTreeSet;
use std::time::Duration;

/// A learner this close to the leader's last log index becomes a voter.
pub const PROMOTE_LAG: u64 = 64;
/// Highest node number (Snowflake node field is 10 bits).
const MAX_NUMBER: NodeId = 1023;

/// Admits `req` on the leader, or passes it to the leader once.
pub(super) async fn admit(node: &Node, req: JoinRequest) -> Result<JoinAccepted, ClusterError> {
    let raft = node.raft();
    let metrics = raft.metrics().borrow().clone();
    if metrics.state != ServerState::Leader {
        let leader = metrics.current_leader.and_then(|id| {
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .cloned()
        });
        let (Some(leader), false) = (leader, req.forwarded) else {
            return Err(ClusterError::NoLeader);
        };
        let fwd = JoinRequest {
            forwarded: true,
            ..req
        };
        return match node
            .client()
            .call::<_, PeerResponse>(&leader.cluster_addr, &PeerRequest::Join(fwd), ADMIN_TIMEOUT)
            .await
        {
            Ok(PeerResponse::Join(r)) => r,
            Ok(_) => Err(ClusterError::Failed(
                "leader answered with the wrong message".into(),
            )),
            Err(e) => Err(ClusterError::Failed(format!(
                "cannot reach the leader: {e}"
            ))),
        };
    }

    // One admission at a time, reading the membership only once holding the lock.
    let _guard = node.admission().await;
    let metrics = raft.metrics().borrow().clone();
    if metrics.state != ServerState::Leader {
        return Err(ClusterError::NoLeader);
    }
    let membership = metrics.membership_config.membership().clone();
    let mut taken = BTreeSet::new();
    for (id, info) in membership.nodes() {
        if info.name == req.name {
            if req.number.is_some_and(|n| n != *id) {
                return Err(ClusterError::Conflict(format!(
                    "node name {} is already member number {id}, not {}",
                    req.name,
                    req.number.unwrap_or_default()
                )));
            }
            if info.cluster_addr != req.cluster_addr {
                return Err(ClusterError::Conflict(format!(
                    "node name {} is already taken by the member at {}",
                    req.name, info.cluster_addr
                )));
            }
            // Joining twice is harmless: same name, same address, same number.
            return Ok(JoinAccepted {
                number: *id,
                leader: metrics.id,
            });
        }
        taken.insert(*id);
    }
    let number = match req.number {
        Some(n) if n > MAX_NUMBER => {
            return Err(ClusterError::Conflict(format!(
                "node number {n} is out of range 0-{MAX_NUMBER}"
            )))
        }
        Some(n) if taken.contains(&n) => {
            let holder = membership
                .get_node(&n)
                .map(|i| i.name.clone())
                .unwrap_or_default();
            return Err(ClusterError::Conflict(format!(
                "node number {n} is already taken by {holder}"
            )));
        }
        Some(n) => n,
        None => (1..=MAX_NUMBER)
            .find(|n| !taken.contains(n))
            .ok_or_else(|| ClusterError::Conflict("no free node number left (0-1023)".into()))?,
    };
    let info = NodeInfo {
        name: req.name.clone(),
        cluster_addr: req.cluster_addr.clone(),
        api_addr: req.api_addr.clone(),
        learner: req.learner,
    };
    raft.add_learner(number, info, false)
        .await
        .map_err(|e| ClusterError::Failed(format!("adding learner {number}: {e}")))?;
    tracing::info!(name = %req.name, number, non_voting = req.learner, "added learner");
    Ok(JoinAccepted {
        number,
        leader: metrics.id,
    })
}

/// On the leader, promotes every learner that is within [`PROMOTE_LAG`] entries, except
/// the non-voting replicas (`NodeInfo::learner`), which only an operator promotes.
pub(super) async fn promote_learners(node: Node) {
    let token = node.shutdown_token();
    let period = Duration::from_millis(node.config().cluster.heartbeat_interval_ms.max(100));
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let m = node.raft().metrics().borrow().clone();
        if m.state != ServerState::Leader {
            continue;
        }
        let Some(last) = m.last_log_index else {
            continue;
        };
        let Some(repl) = &m.replication else { continue };
        let membership = m.membership_config.membership();
        let ready: BTreeSet<NodeId> = membership
            .learner_ids()
            .filter(|id| membership.get_node(id).is_some_and(|i| !i.learner))
            .filter(|id| {
                repl.get(id)
                    .and_then(|matched| matched.as_ref())
                    .is_some_and(|l| last.saturating_sub(l.index) <= PROMOTE_LAG)
            })
            .collect();
        if ready.is_empty() {
            continue;
        }
        // A leadership transfer holds the log still; promote after it.
        let Ok(_in_flight) = node.inner.write_gate.try_read() else {
            continue;
        };
        let raft = node.raft();
        let change = raft.change_membership(ChangeMembers::AddVoterIds(ready.clone()), true);
        tokio::select! {
            _ = token.cancelled() => return,
            r = change => match r {
                Ok(_) => tracing::info!(voters = ?ready, "promoted learners to voters"),
                Err(e) => tracing::debug!(error = %e, "promotion deferred"),
            },
        }
    }
}
