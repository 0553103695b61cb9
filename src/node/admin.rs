//! Cluster-management operations an operator asks any member for (`cluster remove`,
//! `cluster transfer-leader`, `cluster promote|demote`): they run on the leader, so a follower passes the request on
//! once, like a write. Also finds the member an operator names by name or number.

use super::{remove, transfer, voting, Node};
use crate::consensus::network::{AdminDone, AdminError, AdminOp, PeerRequest, PeerResponse};
use crate::consensus::{NodeId, NodeInfo};
use openraft::{Membership, ServerState};
use std::time::Duration;

/// How long a follower waits for the leader to finish an operation it passed on: longer
/// than the longest operation (a transfer's drain, catch-up and election).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(40);

/// Runs `op` on the leader: here if this node leads, else passed on to the leader once,
/// retried once after a leader change.
pub(super) async fn run(node: &Node, op: AdminOp) -> Result<AdminDone, AdminError> {
    if node.is_removed() {
        return Err(AdminError::Refused {
            code: "removed".into(),
            message: format!(
                "{} was removed from the cluster; ask a member",
                node.info().name
            ),
        });
    }
    let mut last = AdminError::NoLeader;
    for attempt in 0..2 {
        if attempt > 0 {
            // Give an election a moment to finish before the retry.
            tokio::time::sleep(Duration::from_millis(
                node.config().cluster.heartbeat_interval_ms,
            ))
            .await;
        }
        let m = node.raft().metrics().borrow().clone();
        if m.state == ServerState::Leader {
            return run_local(node, op).await;
        }
        let Some(leader) = m
            .current_leader
            .and_then(|id| m.membership_config.membership().get_node(&id).cloned())
        else {
            continue;
        };
        match forward(node, &leader, op.clone()).await {
            Err(e @ AdminError::NoLeader) => last = e,
            other => return other,
        }
    }
    Err(last)
}

/// Runs `op` here, on the leader (the request came from an operator or a member).
pub(super) async fn run_local(node: &Node, op: AdminOp) -> Result<AdminDone, AdminError> {
    match op {
        AdminOp::Remove { node: target } => remove::remove(node, &target).await,
        AdminOp::TransferLeader { node: target } => transfer::transfer(node, &target).await,
        AdminOp::Promote { node: target } => voting::promote(node, &target).await,
        AdminOp::Demote { node: target } => voting::demote(node, &target).await,
    }
}

/// Handles [`PeerRequest::Admin`]: run on the leader, or pass on once.
pub(super) async fn serve(
    node: &Node,
    op: AdminOp,
    forwarded: bool,
) -> Result<AdminDone, AdminError> {
    let m = node.raft().metrics().borrow().clone();
    if m.state == ServerState::Leader {
        return run_local(node, op).await;
    }
    if forwarded {
        return Err(AdminError::NoLeader);
    }
    run(node, op).await
}

async fn forward(node: &Node, leader: &NodeInfo, op: AdminOp) -> Result<AdminDone, AdminError> {
    let request = PeerRequest::Admin {
        op,
        forwarded: true,
    };
    match node
        .client()
        .call::<_, PeerResponse>(&leader.cluster_addr, &request, FORWARD_TIMEOUT)
        .await
    {
        Ok(PeerResponse::Admin(r)) => r,
        Ok(_) => Err(AdminError::Failed(
            "the leader answered with the wrong message".into(),
        )),
        Err(crate::transport::Error::Timeout { .. }) => Err(AdminError::Timeout(format!(
            "the leader {} did not answer within {} s; the operation may still complete \
             (check `wolfscale status`)",
            leader.name,
            FORWARD_TIMEOUT.as_secs()
        ))),
        Err(_) => Err(AdminError::NoLeader),
    }
}

/// The member `wanted` names: a member's name, or else its number.
pub(super) fn find_member(
    membership: &Membership<NodeId, NodeInfo>,
    wanted: &str,
) -> Result<(NodeId, NodeInfo), AdminError> {
    let wanted = wanted.trim();
    let by_name = membership
        .nodes()
        .find(|(_, info)| info.name == wanted)
        .map(|(id, info)| (*id, info.clone()));
    let by_number = || {
        wanted
            .parse::<NodeId>()
            .ok()
            .and_then(|n| membership.get_node(&n).map(|info| (n, info.clone())))
    };
    by_name.or_else(by_number).ok_or_else(|| {
        let members: Vec<String> = membership
            .nodes()
            .map(|(id, info)| format!("{} ({id})", info.name))
            .collect();
        AdminError::UnknownNode(format!(
            "no member is named or numbered {:?}; members: {}",
            wanted.chars().take(100).collect::<String>(),
            members.join(", ")
        ))
    })
}

/// The names of `ids`, for messages and answers.
pub(super) fn names(
    membership: &Membership<NodeId, NodeInfo>,
    ids: impl IntoIterator<Item = NodeId>,
) -> Vec<String> {
    ids.into_iter()
        .map(|id| {
            membership
                .get_node(&id)
                .map_or_else(|| id.to_string(), |i| i.name.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn info(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            cluster_addr: format!("{name}:7654"),
            api_addr: String::new(),
            ..NodeInfo::default()
        }
    }

    #[test]
    fn members_are_found_by_name_then_number() {
        let nodes = BTreeMap::from([(1, info("node-1")), (2, info("node-2")), (7, info("3"))]);
        let m = Membership::new(vec![BTreeSet::from([1, 2])], nodes);
        assert_eq!(find_member(&m, "node-2").expect("by name").0, 2);
        assert_eq!(find_member(&m, " 1 ").expect("by number").0, 1);
        // A name that looks like a number wins over the number.
        assert_eq!(find_member(&m, "3").expect("name first").0, 7);
        assert_eq!(find_member(&m, "7").expect("number").1.name, "3");
        match find_member(&m, "node-9") {
            Err(AdminError::UnknownNode(msg)) => {
                assert!(
                    msg.contains("node-9") && msg.contains("node-1 (1)"),
                    "{msg}"
                )
            }
            other => panic!("expected UnknownNode, got {other:?}"),
        }
        assert!(matches!(
            find_member(&m, "99"),
            Err(AdminError::UnknownNode(_))
        ));
        assert_eq!(names(&m, [2, 1, 5]), ["node-2", "node-1", "5"]);
    }
}
