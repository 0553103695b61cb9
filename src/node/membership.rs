//! Membership on the leader: admitting a joining node as a learner (with a unique name
//! and number) and promoting learners to voters once they have caught up, except the
//! non-voting replicas. Removal is in `remove`, an operator's promotion and demotion in
//! `voting`, leadership transfer in `transfer`, elections in `election`.

use super::{Node, ADMIN_TIMEOUT};
use crate::consensus::network::{
    ClusterError, JoinAccepted, JoinRequest, PeerRequest, PeerResponse,
};
use crate::consensus::{NodeId, NodeInfo};
use openraft::{ChangeMembers, Membership, ServerState};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A learner this close to the leader's last log index becomes a voter.
pub const PROMOTE_LAG: u64 = 64;
/// Highest node number (Snowflake node field is 10 bits).
const MAX_NUMBER: NodeId = 1023;

/// The leader's answer to a join, before it changes anything.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// The member itself asking again (same name, identity, address and number).
    Again(NodeId),
    /// A new learner under this number.
    New(NodeId),
}

/// Decides a join against the membership in force. A name belongs to one identity: a
/// node that comes back under a member's name without that member's identity (its data
/// dir was wiped, or it is another machine) is refused, because admitting it as the same
/// voter would give that seat an empty log and no memory of its vote. Numbers of removed
/// members ([`retired`]) are never handed out again.
///
/// # Errors
/// What clashes and what to do, for a [`ClusterError::Conflict`].
pub(super) fn decide(
    membership: &Membership<NodeId, NodeInfo>,
    req: &JoinRequest,
) -> Result<Admission, String> {
    if req.identity.is_empty() {
        return Err(format!(
            "{} sent no node identity; upgrade it to this WolfScale version, then join",
            req.name
        ));
    }
    for (id, info) in membership.nodes() {
        if info.name == req.name {
            if info.identity != req.identity {
                return Err(format!(
                    "{n} is a member with another identity: remove {n} first \
                     (wolfscale cluster remove {n}), then join",
                    n = req.name
                ));
            }
            if req.number.is_some_and(|n| n != *id) {
                return Err(format!(
                    "node name {} is already member number {id}, not {}",
                    req.name,
                    req.number.unwrap_or_default()
                ));
            }
            if info.cluster_addr != req.cluster_addr {
                return Err(format!(
                    "node name {} is already taken by the member at {}",
                    req.name, info.cluster_addr
                ));
            }
            // The same node asking twice: same name, identity, address and number.
            return Ok(Admission::Again(*id));
        }
        if info.identity == req.identity {
            return Err(format!(
                "this node's data dir belongs to member {} (number {id}); start it under \
                 that name, or remove {} first",
                info.name, info.name
            ));
        }
    }
    let taken: BTreeSet<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
    let retired = retired(membership);
    match req.number {
        Some(n) if n > MAX_NUMBER => Err(format!("node number {n} is out of range 0-{MAX_NUMBER}")),
        Some(n) if taken.contains(&n) => {
            let holder = membership
                .get_node(&n)
                .map(|i| i.name.clone())
                .unwrap_or_default();
            Err(format!("node number {n} is already taken by {holder}"))
        }
        Some(n) if retired.contains(&n) => Err(format!(
            "node number {n} belonged to a removed member and is never reused: \
             leave node.node_number unset to get a new one"
        )),
        Some(n) => Ok(Admission::New(n)),
        None => (1..=MAX_NUMBER)
            .find(|n| !taken.contains(n) && !retired.contains(n))
            .map(Admission::New)
            .ok_or_else(|| "no free node number left (0-1023)".to_string()),
    }
}

/// Numbers of removed members: the union of what every member carries.
pub(super) fn retired(membership: &Membership<NodeId, NodeInfo>) -> BTreeSet<NodeId> {
    membership
        .nodes()
        .flat_map(|(_, info)| info.retired.iter().copied())
        .collect()
}

/// The membership change that records `number` as retired before its member is
/// removed: every retired number, plus this one, onto the first member that stays.
/// `None` when nothing changes (already recorded there) or no member stays.
pub(super) fn retire(
    membership: &Membership<NodeId, NodeInfo>,
    number: NodeId,
) -> Option<ChangeMembers<NodeId, NodeInfo>> {
    let mut all = retired(membership);
    all.insert(number);
    let (id, carrier) = membership.nodes().find(|(id, _)| **id != number)?;
    if carrier.retired == all {
        return None;
    }
    let info = NodeInfo {
        retired: all,
        ..carrier.clone()
    };
    Some(ChangeMembers::SetNodes(BTreeMap::from([(*id, info)])))
}

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
    let number = match decide(&membership, &req).map_err(ClusterError::Conflict)? {
        Admission::Again(number) => {
            return Ok(JoinAccepted {
                number,
                leader: metrics.id,
            })
        }
        Admission::New(number) => number,
    };
    let info = NodeInfo {
        name: req.name.clone(),
        cluster_addr: req.cluster_addr.clone(),
        api_addr: req.api_addr.clone(),
        learner: req.learner,
        identity: req.identity.clone(),
        retired: BTreeSet::new(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, identity: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            cluster_addr: format!("{name}:7100"),
            identity: identity.into(),
            ..NodeInfo::default()
        }
    }

    fn cluster(nodes: &[(NodeId, NodeInfo)]) -> Membership<NodeId, NodeInfo> {
        let voters: BTreeSet<NodeId> = nodes.iter().map(|(id, _)| *id).collect();
        Membership::new(
            vec![voters],
            nodes.iter().cloned().collect::<BTreeMap<_, _>>(),
        )
    }

    fn join(name: &str, identity: &str, number: Option<NodeId>) -> JoinRequest {
        JoinRequest {
            name: name.into(),
            number,
            identity: identity.into(),
            cluster_addr: format!("{name}:7100"),
            api_addr: String::new(),
            learner: false,
            forwarded: false,
        }
    }

    fn three() -> Membership<NodeId, NodeInfo> {
        cluster(&[
            (1, member("node-1", "a1")),
            (2, member("node-2", "b2")),
            (3, member("node-3", "c3")),
        ])
    }

    fn ok(r: Result<Admission, String>) -> Admission {
        r.unwrap_or_else(|e| panic!("expected an admission, got {e}"))
    }

    fn conflict(r: Result<Admission, String>) -> String {
        r.expect_err("expected a conflict")
    }

    #[test]
    fn a_wiped_node_under_a_members_name_is_refused() {
        let m = three();
        let msg = conflict(decide(&m, &join("node-2", "fresh", None)));
        assert_eq!(
            msg,
            "node-2 is a member with another identity: remove node-2 first \
             (wolfscale cluster remove node-2), then join"
        );
        // Even when it asks for its old number.
        assert!(
            conflict(decide(&m, &join("node-2", "fresh", Some(2)))).contains("another identity")
        );
        // A member recorded before identities existed cannot prove who it is either.
        let old = cluster(&[(1, member("node-1", "a1")), (2, member("node-2", ""))]);
        assert!(conflict(decide(&old, &join("node-2", "b2", None))).contains("remove node-2 first"));
        // A join without an identity is refused outright.
        assert!(conflict(decide(&m, &join("node-4", "", None))).contains("no node identity"));
    }

    #[test]
    fn the_same_node_asking_again_keeps_its_seat() {
        let m = three();
        assert_eq!(
            ok(decide(&m, &join("node-2", "b2", None))),
            Admission::Again(2)
        );
        assert_eq!(
            ok(decide(&m, &join("node-2", "b2", Some(2)))),
            Admission::Again(2)
        );
        assert!(conflict(decide(&m, &join("node-2", "b2", Some(7))))
            .contains("already member number 2"));
        let mut moved = join("node-2", "b2", None);
        moved.cluster_addr = "elsewhere:7100".into();
        assert!(conflict(decide(&m, &moved)).contains("already taken by the member at node-2:7100"));
        // One data dir, one name.
        assert!(
            conflict(decide(&m, &join("node-9", "b2", None))).contains("belongs to member node-2")
        );
    }

    #[test]
    fn removed_numbers_are_never_handed_out_again() {
        let m = three();
        assert_eq!(
            ok(decide(&m, &join("node-4", "d4", None))),
            Admission::New(4)
        );
        // Remove node-2: its number is recorded on the first member that stays.
        let Some(ChangeMembers::SetNodes(set)) = retire(&m, 2) else {
            panic!("no record of the retired number");
        };
        assert_eq!(set.len(), 1);
        assert_eq!(set[&1].retired, BTreeSet::from([2]));
        let after = cluster(&[(1, set[&1].clone()), (3, member("node-3", "c3"))]);
        assert_eq!(retired(&after), BTreeSet::from([2]));
        // Lowest free number skips 2; asking for 2 explicitly is refused.
        assert_eq!(
            ok(decide(&after, &join("node-2", "fresh", None))),
            Admission::New(4)
        );
        assert!(conflict(decide(&after, &join("node-5", "e5", Some(2)))).contains("never reused"));
        assert_eq!(
            ok(decide(&after, &join("node-5", "e5", Some(9)))),
            Admission::New(9)
        );
        assert!(
            conflict(decide(&after, &join("node-5", "e5", Some(3)))).contains("taken by node-3")
        );
        assert!(
            conflict(decide(&after, &join("node-5", "e5", Some(1024)))).contains("out of range")
        );
        // Removing the carrier moves the whole record to the next member.
        let Some(ChangeMembers::SetNodes(set)) = retire(&after, 1) else {
            panic!("the record did not move");
        };
        assert_eq!(set[&3].retired, BTreeSet::from([1, 2]));
        let last = cluster(&[(3, set[&3].clone())]);
        assert_eq!(retired(&last), BTreeSet::from([1, 2]));
        assert_eq!(
            ok(decide(&last, &join("node-1", "new", None))),
            Admission::New(4)
        );
        // Nothing to write when the record is already there; nobody left to carry it.
        let same = cluster(&[(3, set[&3].clone()), (4, member("node-4", "d4"))]);
        assert!(retire(&same, 1).is_none());
        assert!(retire(&cluster(&[(3, member("node-3", "c3"))]), 3).is_none());
    }
}
