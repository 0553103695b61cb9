//! An operator's promotion of a learner to a voter and demotion of a voter to a learner
//! (`wolfscale cluster promote|demote`), on the leader.
//!
//! A non-voting replica carries `NodeInfo::learner`, which keeps the leader's automatic
//! promotion (`membership::promote_learners`) away from it. Demotion therefore sets the
//! flag *before* it removes the vote, so the node is never promoted back in between;
//! promotion adds the vote first and clears the flag after (the flag means nothing on a
//! voter, so a promotion that stops between its two steps is still a promotion).
//!
//! Both are refused when they would weaken the cluster by surprise: a learner is promoted
//! only once it is within [`PROMOTE_LAG`] entries of the leader (a voter that cannot keep
//! up would hold every commit's quorum hostage), and a voter is demoted only when the
//! voters left can still commit, never the last voter and never the leader itself
//! (transfer leadership first).

use super::admin::{find_member, names};
use super::membership::PROMOTE_LAG;
use super::remove::{change_error, check_quorum, reachable, CHANGE_TIMEOUT};
use super::Node;
use crate::consensus::network::{AdminDone, AdminError};
use crate::consensus::{NodeId, NodeInfo};
use openraft::{ChangeMembers, ServerState};
use std::collections::{BTreeMap, BTreeSet};

/// Makes the learner `wanted` names a voter. Runs on the leader. A voter is left as it is.
pub(super) async fn promote(node: &Node, wanted: &str) -> Result<AdminDone, AdminError> {
    let _guard = node.admission().await;
    let raft = node.raft();
    let m = raft.metrics().borrow().clone();
    if m.state != ServerState::Leader {
        return Err(AdminError::NoLeader);
    }
    let membership = m.membership_config.membership().clone();
    let (number, info) = find_member(&membership, wanted)?;
    if membership.voter_ids().any(|v| v == number) {
        return Ok(done(
            node,
            &info,
            number,
            m.last_log_index.unwrap_or(0),
            true,
        ));
    }
    let matched = m
        .replication
        .as_ref()
        .and_then(|r| r.get(&number).cloned().flatten())
        .map(|l| l.index);
    let last = m.last_log_index.unwrap_or(0);
    let behind = matched.map(|i| last.saturating_sub(i));
    if behind.is_none_or(|b| b > PROMOTE_LAG) {
        let state = behind.map_or_else(
            || "has not received any of the log yet (is it running?)".to_string(),
            |b| format!("is {b} entries behind the leader"),
        );
        return Err(AdminError::Refused {
            code: "learner_behind".into(),
            message: format!(
                "{} {state}; promote it once it is within {PROMOTE_LAG} entries, \
                 so the voters never wait for a replica that cannot keep up",
                info.name
            ),
        });
    }
    tracing::info!(name = %info.name, number, "promoting learner to voter");
    let voted = change(
        node,
        ChangeMembers::AddVoterIds(BTreeSet::from([number])),
        &info.name,
    )
    .await?;
    let mut lsn = voted;
    if info.learner {
        let cleared = NodeInfo {
            learner: false,
            ..info.clone()
        };
        lsn = change(
            node,
            ChangeMembers::SetNodes(BTreeMap::from([(number, cleared)])),
            &info.name,
        )
        .await?;
    }
    tracing::info!(name = %info.name, number, log_index = lsn, "learner promoted");
    Ok(done(node, &info, number, lsn, true))
}

/// Makes the voter `wanted` names a non-voting learner. Runs on the leader. A learner is
/// only marked non-voting (so the leader never promotes it by itself).
pub(super) async fn demote(node: &Node, wanted: &str) -> Result<AdminDone, AdminError> {
    let _guard = node.admission().await;
    let raft = node.raft();
    let m = raft.metrics().borrow().clone();
    if m.state != ServerState::Leader {
        return Err(AdminError::NoLeader);
    }
    let membership = m.membership_config.membership().clone();
    let (number, info) = find_member(&membership, wanted)?;
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let is_voter = voters.contains(&number);
    if is_voter {
        if number == node.number() {
            return Err(AdminError::Refused {
                code: "is_leader".into(),
                message: format!(
                    "{} leads the cluster; hand leadership to another voter first \
                     (`wolfscale cluster transfer-leader NODE`), then demote it",
                    info.name
                ),
            });
        }
        let configs = membership.get_joint_config();
        let last = configs.last().cloned().unwrap_or_default();
        let remaining: BTreeSet<NodeId> = last.iter().copied().filter(|v| *v != number).collect();
        if remaining.is_empty() {
            return Err(AdminError::Refused {
                code: "last_voter".into(),
                message: format!("{} is the last voter", info.name),
            });
        }
        let live = reachable(node, &voters).await;
        let mut needed: Vec<&BTreeSet<NodeId>> = configs.iter().collect();
        needed.push(&remaining);
        check_quorum(&needed, &live).map_err(|reason| AdminError::Refused {
            code: "no_quorum".into(),
            message: format!(
                "demoting {} would leave the cluster unable to commit: {reason} \
                 (reachable voters: {}); bring the other voters back first",
                info.name,
                names(&membership, live.iter().copied()).join(", ")
            ),
        })?;
    }
    let mut lsn = m.last_log_index.unwrap_or(0);
    if !info.learner {
        let marked = NodeInfo {
            learner: true,
            ..info.clone()
        };
        lsn = change(
            node,
            ChangeMembers::SetNodes(BTreeMap::from([(number, marked)])),
            &info.name,
        )
        .await?;
    }
    if is_voter {
        tracing::info!(name = %info.name, number, "demoting voter to learner");
        lsn = change(
            node,
            ChangeMembers::RemoveVoters(BTreeSet::from([number])),
            &info.name,
        )
        .await?;
    }
    tracing::info!(name = %info.name, number, log_index = lsn, "member is a non-voting learner");
    Ok(done(node, &info, number, lsn, false))
}

/// Proposes `change` (keeping removed voters as learners) and waits until it commits;
/// returns the log index of the membership it wrote.
async fn change(
    node: &Node,
    change: ChangeMembers<NodeId, NodeInfo>,
    name: &str,
) -> Result<u64, AdminError> {
    let resp = tokio::time::timeout(CHANGE_TIMEOUT, node.raft().change_membership(change, true))
        .await
        .map_err(|_| {
            AdminError::Timeout(format!(
                "the change of {name}'s role was proposed but not committed within {} s; \
                 check `wolfscale status`",
                CHANGE_TIMEOUT.as_secs()
            ))
        })?
        .map_err(change_error)?;
    Ok(resp.log_id.index)
}

fn done(node: &Node, info: &NodeInfo, number: NodeId, lsn: u64, voter: bool) -> AdminDone {
    let after = node
        .raft()
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .clone();
    AdminDone::RoleChanged {
        name: info.name.clone(),
        number,
        lsn,
        voter,
        voters: names(&after, after.voter_ids()),
        learners: names(&after, after.learner_ids()),
    }
}
