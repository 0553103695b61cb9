//! What a node knows about itself, from openraft's metrics: role, term, leader, log and
//! apply positions, and a lifecycle status an operator can read at a glance.

use super::Node;
use crate::consensus::NodeId;
use openraft::ServerState;
use serde::Serialize;

/// A node's part in consensus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Accepts writes and replicates them.
    Leader,
    /// Votes and replicates (a candidate counts as a follower here).
    Follower,
    /// Receives the log but does not vote yet (joining, or not yet caught up).
    Learner,
}

/// One node's own view of itself.
#[derive(Debug, Clone, Serialize)]
pub struct LocalStatus {
    /// Human name.
    pub name: String,
    /// Number in the cluster.
    pub number: NodeId,
    /// Role in consensus.
    pub role: Role,
    /// Current term.
    pub term: u64,
    /// The leader this node follows, if any.
    pub leader: Option<NodeId>,
    /// Last log index held.
    pub last_log_lsn: u64,
    /// Last index applied to the local state machine.
    pub applied_lsn: u64,
    /// Voter numbers of the membership in force.
    pub voters: Vec<NodeId>,
    /// Learner numbers of the membership in force.
    pub learners: Vec<NodeId>,
}

pub(super) fn local(node: &Node) -> LocalStatus {
    let m = node.raft().metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: Vec<NodeId> = membership.voter_ids().collect();
    let learners: Vec<NodeId> = membership.learner_ids().collect();
    let role = match m.state {
        ServerState::Leader => Role::Leader,
        _ if voters.contains(&m.id) => Role::Follower,
        ServerState::Follower | ServerState::Candidate => Role::Follower,
        ServerState::Learner | ServerState::Shutdown => Role::Learner,
    };
    LocalStatus {
        name: node.info().name.clone(),
        number: m.id,
        role,
        term: m.current_term,
        leader: m.current_leader,
        last_log_lsn: m.last_log_index.unwrap_or(0),
        applied_lsn: m.last_applied.map_or(0, |l| l.index),
        voters,
        learners,
    }
}
