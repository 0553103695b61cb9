//! Removing a member, on the leader, and learning on a removed node that it was removed.
//!
//! A removal is refused when it would leave the cluster unable to commit: openraft changes
//! voters through a joint configuration that needs a majority of the old voters *and* of
//! the new ones, so both must be reachable now (a node that is down can be removed as long
//! as the others still form both majorities). Removing the leader itself first hands
//! leadership to the most up-to-date remaining voter (see `transfer`), which then removes
//! the old leader like any follower: writes pause for the handover instead of for a lease
//! and an election. If the handover fails, the leader removes itself: openraft keeps it
//! leading until the configuration without it is committed, then it steps down and the
//! remaining voters elect a leader once its lease has run out.
//!
//! The removed node does not receive the final configuration (replication to it stops),
//! so it would go on believing it is a voter and start elections no one grants. The
//! leader tells it right after the change commits, and a node that hears from no leader
//! asks the leader itself; once the leader's committed membership, newer than the node's
//! own, lacks it, the node marks itself removed and stops starting elections.

use super::admin::{find_member, names};
use super::Node;
use crate::consensus::network::{
    AdminDone, AdminError, AdminOp, MemberAnswer, PeerRequest, PeerResponse,
};
use crate::consensus::{NodeId, NodeInfo};
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use std::collections::BTreeSet;
use std::time::Duration;

/// How long the membership change may take to commit before the operator is told to check.
pub(super) const CHANGE_TIMEOUT: Duration = Duration::from_secs(20);

/// Removes the member `wanted` names. Runs on the leader.
pub(super) async fn remove(node: &Node, wanted: &str) -> Result<AdminDone, AdminError> {
    match remove_here(node, wanted, true).await? {
        Step::Done(done) => Ok(done),
        Step::HandOver { successor, name } => {
            match super::transfer::transfer(node, &successor).await {
                // Now a follower: the new leader removes this node.
                Ok(_) => Box::pin(super::admin::run(node, AdminOp::Remove { node: name })).await,
                Err(e) => {
                    tracing::warn!(error = %e, "handing over before removing the leader failed; it removes itself");
                    match remove_here(node, &name, false).await? {
                        Step::Done(done) => Ok(done),
                        Step::HandOver { .. } => Err(AdminError::Failed(
                            "a removal without handover asked for one".into(),
                        )),
                    }
                }
            }
        }
    }
}

/// What [`remove_here`] did.
enum Step {
    /// The member is removed.
    Done(AdminDone),
    /// The leader is to be removed: hand leadership to `successor` first.
    HandOver {
        /// The voter to lead next.
        successor: String,
        /// This node's name.
        name: String,
    },
}

async fn remove_here(node: &Node, wanted: &str, handover: bool) -> Result<Step, AdminError> {
    // One membership change at a time, reading the membership only once holding the lock.
    let _guard = node.admission().await;
    let raft = node.raft();
    let m = raft.metrics().borrow().clone();
    if m.state != ServerState::Leader {
        return Err(AdminError::NoLeader);
    }
    let membership = m.membership_config.membership().clone();
    let (number, info) = find_member(&membership, wanted)?;
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let change = if voters.contains(&number) {
        // The configuration in force may be joint (a change that stopped halfway when a
        // leader was lost); openraft then moves on from its last half, and the entries
        // that do so still need a majority of every half.
        let configs = membership.get_joint_config();
        let last = configs.last().cloned().unwrap_or_default();
        let remaining: BTreeSet<NodeId> = last.iter().copied().filter(|v| *v != number).collect();
        if remaining.is_empty() {
            return Err(AdminError::Refused {
                code: "last_voter".into(),
                message: format!(
                    "{} is the last voter; removing it would leave the cluster without any voter",
                    info.name
                ),
            });
        }
        let live = reachable(node, &voters).await;
        let mut needed: Vec<&BTreeSet<NodeId>> = configs.iter().collect();
        needed.push(&remaining);
        check_quorum(&needed, &live).map_err(|reason| AdminError::Refused {
            code: "no_quorum".into(),
            message: format!(
                "removing {} would leave the cluster unable to commit: {reason} \
                 (reachable voters: {}); bring the other voters back first",
                info.name,
                names(&membership, live.iter().copied()).join(", ")
            ),
        })?;
        if handover && number == node.number() {
            if let Some(successor) = successor(&m, &remaining, &live) {
                let successor = membership
                    .get_node(&successor)
                    .map_or_else(|| successor.to_string(), |i| i.name.clone());
                tracing::info!(successor = %successor, "handing leadership over before removing this node");
                return Ok(Step::HandOver {
                    successor,
                    name: info.name,
                });
            }
        }
        ChangeMembers::RemoveVoters(BTreeSet::from([number]))
    } else {
        ChangeMembers::RemoveNodes(BTreeSet::from([number]))
    };
    // Its number is recorded as retired first (a change of node records only), so it is
    // never handed out again even if the removal itself does not go through.
    if let Some(record) = super::membership::retire(&membership, number) {
        tokio::time::timeout(CHANGE_TIMEOUT, raft.change_membership(record, false))
            .await
            .map_err(|_| {
                AdminError::Timeout(format!(
                    "recording {}'s number {number} as retired was not committed within {} s; \
                     check `wolfscale status`",
                    info.name,
                    CHANGE_TIMEOUT.as_secs()
                ))
            })?
            .map_err(change_error)?;
    }
    tracing::info!(name = %info.name, number, "removing member");
    let resp = tokio::time::timeout(CHANGE_TIMEOUT, raft.change_membership(change, false))
        .await
        .map_err(|_| {
            AdminError::Timeout(format!(
                "the removal of {} was proposed but not committed within {} s; \
                 check `wolfscale status`",
                info.name,
                CHANGE_TIMEOUT.as_secs()
            ))
        })?
        .map_err(change_error)?;
    let lsn = resp.log_id.index;
    tracing::info!(name = %info.name, number, log_index = lsn, "member removed");
    if number == node.number() {
        node.mark_removed("this node removed itself while it led");
    } else {
        tell_removed(node, &info).await;
    }
    let after = raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .clone();
    Ok(Step::Done(AdminDone::Removed {
        name: info.name,
        number,
        lsn,
        voters: names(&after, after.voter_ids()),
        learners: names(&after, after.learner_ids()),
    }))
}

/// The reachable voter of `remaining` with the most of the log, to lead next.
fn successor(
    m: &openraft::RaftMetrics<NodeId, NodeInfo>,
    remaining: &BTreeSet<NodeId>,
    live: &BTreeSet<NodeId>,
) -> Option<NodeId> {
    let matched = |id: &NodeId| {
        m.replication
            .as_ref()
            .and_then(|r| r.get(id).cloned().flatten())
            .map(|l| l.index)
    };
    remaining
        .intersection(live)
        .copied()
        .max_by_key(|id| (matched(id), std::cmp::Reverse(*id)))
}

/// Whether the membership entries of a removal can commit with the voters in `live`:
/// they need a majority of every configuration involved (those in force, and the one
/// without the removed node).
pub(super) fn check_quorum(
    configs: &[&BTreeSet<NodeId>],
    live: &BTreeSet<NodeId>,
) -> Result<(), String> {
    for (i, set) in configs.iter().enumerate() {
        let up = set.intersection(live).count();
        let need = set.len() / 2 + 1;
        if up < need {
            let which = if i + 1 == configs.len() {
                "the voters left"
            } else {
                "the current voters"
            };
            return Err(format!(
                "only {up} of {} of {which} are reachable, {need} are needed",
                set.len()
            ));
        }
    }
    Ok(())
}

/// The voters of `voters` that answer now (this node always counts).
pub(super) async fn reachable(node: &Node, voters: &BTreeSet<NodeId>) -> BTreeSet<NodeId> {
    let m = node.raft().metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    let timeout = probe_timeout(node);
    let asks = voters.iter().copied().map(|id| {
        let client = node.client().clone();
        let info = membership.get_node(&id).cloned();
        let me = node.number();
        async move {
            if id == me {
                return Some(id);
            }
            let info = info?;
            match client
                .call::<_, PeerResponse>(&info.cluster_addr, &PeerRequest::Leader, timeout)
                .await
            {
                Ok(PeerResponse::Leader(_)) => Some(id),
                _ => None,
            }
        }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// How long a member may take to answer a liveness or membership question.
pub(super) fn probe_timeout(node: &Node) -> Duration {
    Duration::from_millis((node.config().cluster.heartbeat_interval_ms * 4).clamp(300, 2000))
}

pub(super) fn change_error(e: RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>) -> AdminError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => AdminError::NoLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(_),
        )) => AdminError::Busy("another membership change is in progress; retry shortly".into()),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => AdminError::Refused {
            code: "membership_refused".into(),
            message: e.to_string(),
        },
        RaftError::Fatal(e) => AdminError::Failed(format!("consensus stopped: {e}")),
    }
}

/// Tells a removed node, best effort, that it should check its membership; a node that
/// is down finds out by itself when it comes back.
async fn tell_removed(node: &Node, info: &NodeInfo) {
    let sent = node
        .client()
        .call::<_, PeerResponse>(
            &info.cluster_addr,
            &PeerRequest::Removed,
            probe_timeout(node),
        )
        .await;
    if let Err(e) = sent {
        tracing::info!(name = %info.name, error = %e, "removed node not told (it learns when it asks)");
    }
}

/// Answers [`PeerRequest::MemberCheck`]: with authority on the leader (its committed
/// membership), else by naming the leader.
pub(super) async fn answer_member_check(node: &Node, number: NodeId) -> MemberAnswer {
    let asked = node.raft().with_raft_state(move |s| {
        let committed = s.membership_state.committed();
        (
            s.server_state == ServerState::Leader,
            committed.membership().get_node(&number).is_some(),
            *committed.log_id(),
        )
    });
    let m = node.raft().metrics().borrow().clone();
    match asked.await {
        Ok((true, member, membership)) => MemberAnswer::Leader {
            member,
            membership,
            term: m.current_term,
        },
        _ => MemberAnswer::Ask(
            m.current_leader
                .and_then(|id| m.membership_config.membership().get_node(&id).cloned()),
        ),
    }
}

/// Asks the leader whether this node is still a member; marks it removed when the
/// leader's committed membership is newer than this node's and lacks it. Returns whether
/// the node is removed.
pub(super) async fn check_membership(node: &Node) -> bool {
    let token = node.shutdown_token();
    tokio::select! {
        _ = token.cancelled() => node.is_removed(),
        removed = ask_membership(node) => removed,
    }
}

async fn ask_membership(node: &Node) -> bool {
    if node.is_removed() {
        return true;
    }
    let m = node.raft().metrics().borrow().clone();
    let mine = *m.membership_config.log_id();
    let me = m.id;
    let mut peers: Vec<NodeInfo> = m
        .membership_config
        .membership()
        .nodes()
        .filter(|(id, _)| **id != me)
        .map(|(_, info)| info.clone())
        .collect();
    let mut asked = BTreeSet::new();
    // The members first, then (once) any leader they name that was not among them.
    for _round in 0..2 {
        peers.retain(|p| asked.insert(p.cluster_addr.clone()));
        let timeout = probe_timeout(node);
        let answers = futures::future::join_all(peers.iter().map(|p| {
            let client = node.client().clone();
            let addr = p.cluster_addr.clone();
            async move {
                client
                    .call::<_, PeerResponse>(
                        &addr,
                        &PeerRequest::MemberCheck { number: me },
                        timeout,
                    )
                    .await
            }
        }))
        .await;
        let mut redirects = Vec::new();
        for (peer, answer) in peers.iter().zip(answers) {
            match answer {
                Ok(PeerResponse::MemberCheck(MemberAnswer::Leader { member: true, .. })) => {
                    return false
                }
                Ok(PeerResponse::MemberCheck(MemberAnswer::Leader {
                    member: false,
                    membership,
                    term,
                })) if membership > mine => {
                    node.mark_removed(&format!(
                        "the leader {} (term {term}) no longer lists this node",
                        peer.name
                    ));
                    return true;
                }
                Ok(PeerResponse::MemberCheck(MemberAnswer::Ask(Some(leader)))) => {
                    redirects.push(leader)
                }
                _ => {}
            }
        }
        peers = redirects;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn quorum_needs_majorities_of_old_and_new_voters() {
        let q = |old: &[NodeId], new: &[NodeId], live: &[NodeId]| {
            check_quorum(&[&set(old), &set(new)], &set(live))
        };
        // 3 voters, remove 3 while it is down: 1 and 2 form both majorities.
        assert!(q(&[1, 2, 3], &[1, 2], &[1, 2]).is_ok());
        // Remove 2 while 3 is down: the new pair {1, 3} has only 1 up.
        let e = q(&[1, 2, 3], &[1, 3], &[1, 2]).unwrap_err();
        assert!(e.contains("voters left"), "{e}");
        // Remove the leader 1 with everyone up.
        assert!(q(&[1, 2, 3], &[2, 3], &[1, 2, 3]).is_ok());
        // 5 voters, 2 down, remove one that is up: old 3 of 5 ok, new 2 of 4 is not.
        let e = q(&[1, 2, 3, 4, 5], &[1, 2, 4, 5], &[1, 2, 3]).unwrap_err();
        assert!(e.contains("2 of 4"), "{e}");
        // 5 voters, 2 down, remove one that is down: old 3 of 5, new 3 of 4.
        assert!(q(&[1, 2, 3, 4, 5], &[1, 2, 3, 4], &[1, 2, 3]).is_ok());
        // 2 voters, the other one down: the joint step needs both, so it cannot commit
        // (the cluster cannot commit anything either).
        assert!(q(&[1, 2], &[1], &[1]).is_err());
        // A change stuck halfway ({1,2,3} -> {1,2}): finishing it needs both halves.
        let stuck = [&set(&[1, 2, 3]), &set(&[1, 2]), &set(&[1, 2])];
        assert!(check_quorum(&stuck, &set(&[1, 2])).is_ok());
        let e = check_quorum(&stuck, &set(&[1, 3])).unwrap_err();
        assert!(e.contains("1 of 2"), "{e}");
    }
}
