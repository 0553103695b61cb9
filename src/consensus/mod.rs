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

/// The applier's result for one entry, encoded by the applier; returned to the client by
/// the leader. Blank and membership entries yield an empty payload.
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
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = crate::snapshot::SnapshotFile,
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

/// Bytes of one snapshot chunk on the wire (far below the transport's frame limit).
pub const SNAPSHOT_CHUNK_BYTES: u64 = 4 << 20;

/// How long one snapshot chunk may take to be answered. The last chunk is answered once
/// the receiver has loaded the whole snapshot into MariaDB, so this bounds a load; a dead
/// peer is noticed far sooner by the transport's pings.
pub const INSTALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

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
/// Snapshots: openraft never builds one on its own policy (`SnapshotPolicy::Never`) and
/// never purges after a build (`max_in_snapshot_log_to_keep` = all). The node's retention
/// task asks for a build only when WAL segments have outlived `wal.retention_hours` (or
/// the WAL is over `wal.max_size_mb`) and are not covered yet, at most once per
/// [`crate::node::RetentionPolicy::min_snapshot_interval`], and purges what a snapshot
/// covers; operators build one on demand (`wolfscale snapshot create`). In the common
/// case (a WAL younger than its retention) no snapshot is ever taken. A snapshot travels
/// in chunks of [`SNAPSHOT_CHUNK_BYTES`]; the last chunk's answer waits until the
/// receiver has loaded it into MariaDB, which may take [`INSTALL_TIMEOUT`].
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
        snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
        install_snapshot_timeout: INSTALL_TIMEOUT.as_millis() as u64,
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
    }
}
