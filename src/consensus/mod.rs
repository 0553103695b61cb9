//! Consensus: openraft's type configuration for WolfScale, the log store over our WAL and
//! state db, the state-machine seam the applier plugs into, and the mapping of
//! `[cluster]` timing onto openraft's. It never sees SQL: a log entry carries the
//! applier's encoded command as opaque bytes.
//!
//! LSN = openraft log index. Index 0 holds the membership written when a cluster is
//! bootstrapped; client entries start after the first leader's blank entry.

pub mod codec;
mod committed;
pub mod election;
pub mod log_store;
pub mod network;
mod recent;
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
    /// A non-voting replica (`join --learner`, `cluster.voter = false`): it stays a
    /// learner until an operator promotes it; the leader never promotes it by itself.
    /// Set while it is a learner and cleared when it is promoted. Default: false.
    #[serde(default)]
    pub learner: bool,
    /// The random identity the node drew at its first start and keeps in its data dir
    /// (32 hex digits); empty for members recorded before identities existed. A join
    /// under this member's name must present it (see `node::membership`).
    #[serde(default)]
    pub identity: String,
    /// Numbers of removed members, which are never handed out again. The leader records
    /// them on one remaining member when it removes a node; the cluster's set is the union
    /// over all members.
    #[serde(default)]
    pub retired: std::collections::BTreeSet<NodeId>,
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

/// How long one snapshot chunk may take to be answered. The last chunk is answered once
/// the receiver has loaded the whole snapshot into MariaDB, so this bounds a load; a dead
/// peer is noticed far sooner by the transport's pings.
pub const INSTALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Maps `[cluster]` timing onto openraft's. With `hb` = `heartbeat_interval_ms` and `E` =
/// `election_timeout_ms` (validated: `4 × hb ≤ E`):
///
/// - `heartbeat_interval` = `hb`. openraft sends heartbeats only on its tick, every
///   1.5 × `hb`; the node's election task also asks for one every `hb` while it leads, so
///   followers hear from a live leader at least every `hb`. It is also the time limit of
///   one append RPC.
/// - openraft's own election timer is off (`enable_elect = false`). It drew each node's
///   timeout once, checked it only on ticks, and started only after the leader lease
///   *plus* that timeout, so a dead leader was replaced after 1.5–2 × `E` and a split vote
///   could repeat with the same draws; a loaded run once took 2.25 s with `E` = 600 ms.
///   Instead a follower stands after `E/2`–`E` without word from a leader, drawn afresh
///   for every wait, and only if a pre-vote shows a majority would elect it
///   ([`election`], run by the node's election task). A dead leader is thus replaced
///   within `E` plus two round trips, and a split vote costs one more fresh draw (≤ `E`):
///   within `E` + 1 s for the timeouts this is meant for. The pre-vote keeps a node that
///   only lost touch with a live leader from raising the term and deposing it.
/// - `election_timeout_max` = `(E − hb) / 2` is the leader lease: a follower that heard
///   from its leader that recently refuses to vote, so a node that merely lost contact
///   cannot depose a live leader through it. It ends half a heartbeat before the earliest
///   candidate stands, so a candidate is not refused by a voter that got the same last
///   heartbeat. `election_timeout_min` is one millisecond less (openraft requires
///   `min < max`); it only bounds a vote RPC.
///
/// Snapshots: openraft never builds one on its own policy (`SnapshotPolicy::Never`) and
/// never purges after a build (`max_in_snapshot_log_to_keep` = all). The node's retention
/// task asks for a build only when WAL segments have outlived `wal.retention_hours` (or
/// the WAL is over `wal.max_size_mb`) and are not covered yet, at most once per
/// [`crate::node::RetentionPolicy::min_snapshot_interval`], and purges what a snapshot
/// covers; operators build one on demand (`wolfscale snapshot create`). In the common
/// case (a WAL younger than its retention) no snapshot is ever taken. A snapshot travels
/// in chunks of `cluster.snapshot_chunk_kb` (4 MiB by default, far below the transport's
/// frame limit); the last chunk's answer waits until the
/// receiver has loaded it into MariaDB, which may take [`INSTALL_TIMEOUT`].
///
/// # Errors
/// When openraft rejects the combination (validated config makes this unreachable).
#[allow(clippy::result_large_err)] // openraft's error type
pub fn raft_config(cluster: &ClusterConfig) -> Result<openraft::Config, openraft::ConfigError> {
    let lease = election::ElectionTiming::new(cluster).lease;
    let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
    let config = openraft::Config {
        cluster_name: "wolfscale".into(),
        heartbeat_interval: cluster.heartbeat_interval_ms,
        election_timeout_min: lease_ms.saturating_sub(1),
        election_timeout_max: lease_ms,
        enable_elect: false,
        // Enough entries per append RPC to amortise a round trip, small enough that one
        // batch of large rows stays well under the transport's frame limit.
        max_payload_entries: 512,
        replication_lag_threshold: 5000,
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: u64::MAX,
        snapshot_max_chunk_size: cluster.snapshot_chunk_kb.saturating_mul(1024),
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
        // The lease: (2000 - 500) / 2.
        assert_eq!(c.election_timeout_max, 750);
        assert_eq!(c.election_timeout_min, 749);
        assert!(
            !c.enable_elect,
            "the node's election task decides when to stand"
        );
        assert!(matches!(c.snapshot_policy, openraft::SnapshotPolicy::Never));
    }

    #[test]
    fn every_valid_timing_is_accepted_by_openraft() {
        for hb in [10u64, 11, 17, 100, 500, 999, 60_000] {
            for e in [4 * hb, 4 * hb + 1, 4 * hb + 3, 7 * hb, 600_000.max(4 * hb)] {
                let cluster = ClusterConfig {
                    heartbeat_interval_ms: hb,
                    election_timeout_ms: e,
                    ..ClusterConfig::default()
                };
                raft_config(&cluster).unwrap_or_else(|err| panic!("hb {hb} e {e}: {err}"));
            }
        }
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
