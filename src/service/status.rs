//! Status: this node's view of itself from memory, every member's as this node can learn
//! it, and readiness. The types are the public status contract (`/status`,
//! `/cluster/nodes`, `wolfscale status`), also relayed between nodes as JSON.

use super::Service;
use crate::consensus::network::{PeerRequest, PeerResponse};
use openraft::ServerState;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A node is LAGGING when its applied LSN trails the leader's log by more than this.
const LAG_THRESHOLD: u64 = 1000;
/// How long a peer may take to report its status.
const STATUS_TIMEOUT: Duration = Duration::from_millis(800);

/// A node's role in consensus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Accepts writes.
    Leader,
    /// Voter that follows the leader.
    Follower,
    /// Non-voting member: catching up before its promotion, or a non-voting replica.
    Learner,
}

/// A node's health as the operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum NodeState {
    /// Joining the cluster.
    Joining,
    /// Catching up on the log.
    Syncing,
    /// Serving, up to date.
    Active,
    /// Serving, but behind the leader.
    Lagging,
    /// A transient apply error is being retried.
    Degraded,
    /// Its outcome of an entry differed from the leader's: it stopped applying
    /// (see `divergence`).
    Diverged,
    /// Not reachable.
    Offline,
    /// Removed from the cluster: it no longer votes, campaigns or serves.
    Removed,
    /// Cut off from the majority for longer than the election timeout (a leader without a
    /// majority round trip, or a node without word from a leader): it refuses writes and
    /// linearizable reads at once.
    #[serde(rename = "NO_QUORUM")]
    NoQuorum,
}

/// `/status`, and one element of `/cluster/nodes`. Field names are the public contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeStatus {
    /// The node's name (`node.id`).
    pub node_id: String,
    /// Its number (also its Snowflake node number).
    pub node_number: u64,
    /// Leader, follower or learner.
    pub role: Role,
    /// JOINING, SYNCING, ACTIVE, LAGGING, DEGRADED, NO_QUORUM, OFFLINE or REMOVED.
    pub status: NodeState,
    /// The consensus term it is in.
    pub term: u64,
    /// The leader's name, when one is known.
    pub leader_id: Option<String>,
    /// Last LSN in its log.
    pub last_log_lsn: u64,
    /// Last LSN it knows committed.
    pub commit_lsn: u64,
    /// Last LSN applied to its MariaDB.
    pub applied_lsn: u64,
    /// Its cluster transport address.
    pub address: String,
    /// Its HTTP API address.
    pub api_address: String,
    /// Committed entries it has not applied yet.
    pub lag: u64,
    /// Where this node's outcome differed from the leader's (status DIVERGED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divergence: Option<crate::apply::Divergence>,
    /// The transient error being retried (status DEGRADED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_error: Option<String>,
    /// A snapshot transfer into this node (it is SYNCING meanwhile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<crate::snapshot::SyncProgress>,
    /// Resyncs this node completed since it started (`wolfscale resync`, auto resync).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resyncs: u64,
    /// Why the last resync failed, until one succeeds. After a failed load the node
    /// applies nothing (status DIVERGED) until a resync succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync_error: Option<String>,
    /// Milliseconds since the last successful round trip with a majority of voters (a
    /// leader), or since the last word from a leader (any other node); over the election
    /// timeout the node is NO_QUORUM. Absent for a node that did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_quorum_contact_ms: Option<u64>,
    /// Set in `/cluster/nodes` on a node whose view of the leader differs from the one a
    /// majority of voters follows (a cut-off old leader, a node that missed an election).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disagrees_on_leader: bool,
    /// The last divergence check this node ran (`wolfscale check`, `POST /check` or the
    /// periodic one), since it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<super::CheckSummary>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl NodeStatus {
    /// Why a node with this status is not ready (`/health` 503), if it is not; `ready` is
    /// [`Service::ready`]. Every status but ACTIVE and LAGGING (serving, only behind) is not
    /// ready, so a status added later is covered too.
    pub fn not_ready_reason(&self, ready: bool) -> Option<String> {
        let name = serde_json::to_value(self.status)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        match self.status {
            NodeState::Active | NodeState::Lagging if ready => None,
            NodeState::Active | NodeState::Lagging => Some("the node is not serving yet".into()),
            NodeState::NoQuorum => Some(format!(
                "NO_QUORUM: no contact with the cluster's majority for {} ms",
                self.last_quorum_contact_ms.unwrap_or(0)
            )),
            _ if self.leader_id.is_none() => Some(format!("{name}: no known leader")),
            _ => Some(name),
        }
    }
}

/// `/cluster`: who leads and every member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterStatus {
    /// The leader a majority of voters follow, when there is one.
    pub leader_id: Option<String>,
    /// The term this node is in.
    pub term: u64,
    /// Every member, voters and learners.
    pub nodes: Vec<NodeStatus>,
}

impl Service {
    /// This node's status, from memory (no I/O).
    pub fn status(&self) -> NodeStatus {
        let m = self.inner.node.raft().metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let is_voter = membership.voter_ids().any(|v| v == m.id);
        // A non-voting replica stays a learner: it is not "joining" once caught up.
        let non_voting = !is_voter && membership.get_node(&m.id).is_some_and(|i| i.learner);
        let contact = self.inner.node.contact();
        // A leader cut off from its majority has stopped acting as one (see `quorum`).
        let leading = m.state == ServerState::Leader && !contact.lost;
        let role = if leading {
            Role::Leader
        } else if is_voter {
            Role::Follower
        } else {
            Role::Learner
        };
        let applied = self.inner.apply.applied_lsn().unwrap_or(0);
        let last = m.last_log_index.unwrap_or(0);
        let commit = self.inner.commit.load(Ordering::Relaxed).max(applied);
        let lag = last.saturating_sub(applied);
        let sync = self
            .inner
            .node
            .snapshots()
            .and_then(|s| s.progress().report());
        let resyncer = &self.inner.resyncer;
        let state = if self.inner.node.is_removed() {
            NodeState::Removed
        } else if sync.is_some() || resyncer.is_running() {
            NodeState::Syncing
        } else if self.inner.apply.divergence().is_some() || resyncer.is_unfinished() {
            NodeState::Diverged
        } else if self.inner.apply.is_degraded() {
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
            node_id: self.inner.node.info().name.clone(),
            node_number: m.id,
            role,
            status: state,
            term: m.current_term,
            leader_id: leader_name,
            last_log_lsn: last,
            commit_lsn: commit,
            applied_lsn: applied,
            address: self.inner.node.info().cluster_addr.clone(),
            api_address: self.inner.node.info().api_addr.clone(),
            lag,
            divergence: self.inner.apply.divergence(),
            apply_error: self
                .inner
                .apply
                .is_degraded()
                .then(|| self.inner.apply.last_error())
                .flatten(),
            sync,
            resyncs: resyncer.completed(),
            resync_error: resyncer.last_error(),
            last_quorum_contact_ms: Some(contact.since_ms()),
            disagrees_on_leader: false,
            last_check: self.inner.checker.last(),
        }
    }

    /// Every member's status as this node knows it: asks each peer (briefly); one that
    /// does not answer is OFFLINE.
    pub async fn cluster_status(&self) -> ClusterStatus {
        let me = self.status();
        let m = self.inner.node.raft().metrics().borrow().clone();
        let members: Vec<(u64, crate::consensus::NodeInfo)> = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.clone()))
            .collect();
        let asks = members.into_iter().map(|(id, info)| {
            let me = me.clone();
            let client = self.inner.node.client().clone();
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

    /// Whether this node can serve reads and writes now (`/health` answers 200 only then).
    pub fn ready(&self) -> bool {
        let m = self.inner.node.raft().metrics().borrow().clone();
        m.current_leader.is_some()
            && !self.inner.node.contact().lost
            && !self.inner.apply.is_degraded()
            && !self.inner.node.is_removed()
            && !self.loading_snapshot()
    }

    /// Whether a snapshot is being loaded here (the database is incomplete meanwhile).
    pub(super) fn loading_snapshot(&self) -> bool {
        self.inner
            .node
            .snapshots()
            .is_some_and(|s| s.progress().is_loading())
    }
}

fn offline(id: u64, info: &crate::consensus::NodeInfo) -> NodeStatus {
    NodeStatus {
        node_id: info.name.clone(),
        node_number: id,
        role: Role::Follower,
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
        resyncs: 0,
        resync_error: None,
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

#[cfg(test)]
mod tests {
    use super::{majority_leader, offline, NodeState, NodeStatus};
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
}
