//! Consensus: openraft's type configuration for WolfScale, the log store over our WAL and
//! state db, the state-machine seam the applier plugs into, and the mapping of
//! `[cluster]` timing onto openraft's. It never sees SQL: a log entry carries the
//! applier's encoded command as opaque bytes.
//!
//! LSN = openraft log index. Index 0 holds the membership written when a cluster is
//! bootstrapped; client entries start after the first leader's blank entry.

pub mod codec;
pub mod log_store;
pub mod network;
pub mod state_machine;

#[cfg(test)]
mod log_store_tests;

use crate::config::ClusterConfig;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A node's number in the cluster (0–1023), also its Snowflake node number.
pub type NodeId = u64;

/// What the cluster knows about one member: enough to reach it and to show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Human name (`node.id`).
    pub name: String,
    /// Address of its cluster transport.
    pub cluster_addr: String,
    /// Address of its HTTP API, if it serves one.
    pub api_addr: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.cluster_addr)
    }
}

/// A replicated client request: the applier's encoded command, opaque to consensus.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Encoded command (see the `command` module).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

impl fmt::Debug for Request {
    // Row data stays out of logs: show only the size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Request({} bytes)", self.payload.len())
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What one client log entry carries: one or more client requests, applied in order and
/// in one transaction under the entry's index. The leader puts writes that arrive while
/// the previous entries are being made durable into one entry (see `node`), so one fsync
/// and one replication round trip serve them all: openraft 0.9 waits for each entry's
/// fsync before it takes the next client write, which would otherwise cap the cluster at
/// one write per fsync. Every request of an entry shares its LSN.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requests(pub Vec<Request>);

impl Requests {
    /// One request alone in its entry.
    pub fn one(request: Request) -> Self {
        Requests(vec![request])
    }
}

impl fmt::Debug for Requests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes: usize = self.0.iter().map(|r| r.payload.len()).sum();
        write!(f, "Requests({} of {bytes} bytes)", self.0.len())
    }
}

impl fmt::Display for Requests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The applier's results for one entry: one [`Response`] per request of a client entry,
/// in order; none for blank and membership entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Responses(pub Vec<Response>);

/// The applier's result for one request, encoded by the applier; returned to the client by
/// the leader.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Encoded apply result.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Response({} bytes)", self.payload.len())
    }
}

openraft::declare_raft_types!(
    /// WolfScale's openraft type configuration.
    pub TypeConfig:
        D = Requests,
        R = Responses,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A log entry as openraft sees it.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log position: (leader term, leader node, index).
pub type LogId = openraft::LogId<NodeId>;
/// A vote (term, candidate, committed).
pub type Vote = openraft::Vote<NodeId>;
/// The membership in force as of a log id.
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
/// openraft's storage error for our types.
pub type StorageError = openraft::StorageError<NodeId>;
/// The running consensus engine of one node.
pub type Raft = openraft::Raft<TypeConfig>;

/// Maps `[cluster]` timing onto openraft's:
///
/// - `heartbeat_interval_ms` → `heartbeat_interval`;
/// - `election_timeout_ms` → `election_timeout_max`, with `election_timeout_min` half
///   of it. openraft 0.9 draws each node's timeout once from [min, max), so the spread
///   keeps two survivors from splitting the vote for long (the election watchdog covers
///   the rest). openraft also uses `election_timeout_max` as the leader lease during which
///   followers refuse to vote, so it bounds how soon a dead leader is replaced: keeping it
///   at `election_timeout_ms` (not above) lets a new leader win within about
///   `election_timeout_ms` plus one more timeout draw.
///
/// Snapshots are never built on a policy here: until state transfer exists, every entry
/// stays in the WAL (purging is the operator's retention decision).
///
/// # Errors
/// When openraft rejects the combination (validated config makes this unreachable).
#[allow(clippy::result_large_err)] // openraft's error type
pub fn raft_config(cluster: &ClusterConfig) -> Result<openraft::Config, openraft::ConfigError> {
    let election = cluster.election_timeout_ms;
    let config = openraft::Config {
        cluster_name: "wolfscale".into(),
        heartbeat_interval: cluster.heartbeat_interval_ms,
        election_timeout_min: election / 2,
        election_timeout_max: election,
        // Enough entries per append RPC to amortise a round trip, small enough that one
        // batch of large rows stays well under the transport's frame limit.
        max_payload_entries: 512,
        replication_lag_threshold: 5000,
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: u64::MAX,
        purge_batch_size: 1,
        ..Default::default()
    };
    config.validate()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_maps_onto_openraft() {
        let c = raft_config(&ClusterConfig::default()).expect("valid");
        assert_eq!(c.heartbeat_interval, 500);
        assert_eq!(c.election_timeout_min, 1000);
        assert_eq!(c.election_timeout_max, 2000);
        assert!(matches!(c.snapshot_policy, openraft::SnapshotPolicy::Never));
    }

    #[test]
    fn request_debug_hides_row_data() {
        let r = Request {
            payload: b"secret row".to_vec(),
        };
        assert_eq!(format!("{r:?}"), "Request(10 bytes)");
        let rs = Requests(vec![r.clone(), r]);
        assert_eq!(format!("{rs}"), "Requests(2 of 20 bytes)");
    }
}
