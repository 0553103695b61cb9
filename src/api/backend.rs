//! The seam between the HTTP layer and the node: the [`Backend`] trait the node implements,
//! and the typed requests, results and errors that cross it. Nothing here knows HTTP
//! routing, consensus or MariaDB; every type serialises to the JSON the API sends, so a
//! follower can relay a leader's answer unchanged.

use crate::command::{self, Input, Value, WriteRequest};
use crate::sql::ErrorClass;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;

/// What the node offers the HTTP API. Forwarding a write to the leader, waiting for
/// `wait: all` or `min_lsn`, and running SQL all happen behind it.
///
/// Futures are dropped unfinished when the client goes away: a write already handed to
/// consensus must still commit and apply (the client just never hears of it). Every
/// method must bound its own waits (`cluster` asking peers included); the API adds no
/// timeout of its own around them.
pub trait Backend: Send + Sync + 'static {
    /// Replicates a write. `request` has already passed [`command::prepare`] once (a dry
    /// run), so a refusal here means the leader's state differs (e.g. it is too large once
    /// IDs are added); the leader runs `prepare` again with its clock and ID generator.
    fn write(
        &self,
        request: WriteRequest,
    ) -> impl Future<Output = Result<WriteResult, BackendError>> + Send;
    /// Runs one validated read on this node; `linearizable` first asks the leader for its
    /// read index and waits until this node has applied it.
    fn query(&self, query: Query)
        -> impl Future<Output = Result<QueryResult, BackendError>> + Send;
    /// `count` fresh Snowflake IDs from this node (1 ≤ count ≤ [`MAX_IDS`]).
    fn ids(&self, count: usize) -> impl Future<Output = Result<Vec<u64>, BackendError>> + Send;
    /// This node's status, from memory (no I/O).
    fn status(&self) -> NodeStatus;
    /// Every member's status as this node knows it (may ask peers).
    fn cluster(&self) -> impl Future<Output = ClusterStatus> + Send;
    /// Whether the node can serve reads and writes now: `/health` answers 200 only then.
    fn ready(&self) -> bool;
    /// Removes a member (named or numbered by `node`) from the cluster, through the
    /// leader; answers once the membership without it is committed.
    fn remove_node(
        &self,
        node: String,
    ) -> impl Future<Output = Result<RemoveResult, BackendError>> + Send;
    /// Makes the voter named or numbered by `node` the leader, through the current leader;
    /// answers once it leads.
    fn transfer_leader(
        &self,
        node: String,
    ) -> impl Future<Output = Result<TransferResult, BackendError>> + Send;
    /// Makes the learner named or numbered by `node` a voter, through the leader; answers
    /// once the membership with its vote is committed.
    fn promote_node(
        &self,
        node: String,
    ) -> impl Future<Output = Result<RoleResult, BackendError>> + Send;
    /// Makes the voter named or numbered by `node` a non-voting learner, through the
    /// leader; answers once the membership without its vote is committed.
    fn demote_node(
        &self,
        node: String,
    ) -> impl Future<Output = Result<RoleResult, BackendError>> + Send;
    /// Takes a snapshot of the replicated database on this node now (`POST /snapshot`);
    /// with `purge`, then purges the WAL segments it covers that no live member needs.
    /// The default answers that this node cannot.
    fn snapshot_create(
        &self,
        purge: bool,
    ) -> impl Future<Output = Result<SnapshotCreated, BackendError>> + Send {
        let _ = purge;
        async { Err(BackendError::snapshots_unsupported()) }
    }
    /// What `GET /metrics` reports, from memory (no I/O). The default has only
    /// [`Backend::status`].
    fn observe(&self) -> crate::observe::metrics::Observation {
        crate::observe::metrics::Observation::from_status(self.status())
    }
    /// This node's recent lifecycle events (`GET /events`). The default has none.
    fn events(&self) -> crate::observe::events::EventList {
        crate::observe::events::EventList::default()
    }
    /// The snapshots this node holds and any transfer under way (`GET /snapshot`).
    fn snapshot_list(&self) -> impl Future<Output = Result<SnapshotList, BackendError>> + Send {
        async { Err(BackendError::snapshots_unsupported()) }
    }
    /// Compares every member's replicated tables at one LSN (`POST /check`); answers when
    /// the comparison is done. The default answers that this node cannot.
    fn check(&self) -> impl Future<Output = Result<super::CheckReport, BackendError>> + Send {
        async {
            Err(BackendError::Invalid {
                code: "not_supported".into(),
                message: "this node cannot run divergence checks".into(),
            })
        }
    }
}

/// One snapshot a node holds, as `GET /snapshot` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotInfo {
    /// Its id (`<lsn>-<term>-<created_ms>-<bytes>`), also its file name.
    pub id: String,
    /// The last log index it holds.
    pub lsn: u64,
    /// The term of that entry.
    pub term: u64,
    /// When it was taken, ms since the Unix epoch.
    pub created_ms: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Rows in all tables.
    pub rows: u64,
    /// Tables it holds.
    pub tables: u64,
    /// Views, routines, triggers and sequences it holds.
    pub views: u64,
    /// Stored procedures and functions.
    pub routines: u64,
    /// Triggers.
    pub triggers: u64,
    /// Sequences.
    pub sequences: u64,
    /// SHA-256 of the file.
    pub sha256: String,
    /// `built`, `received` or `restored`.
    pub source: String,
    /// The file on that node (to copy it for seeding another node).
    pub path: String,
}

/// `GET /snapshot`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotList {
    /// Oldest first (normally one).
    pub snapshots: Vec<SnapshotInfo>,
    /// A transfer into this node under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<crate::snapshot::SyncProgress>,
    /// Snapshots installed on this node since it started.
    pub installs: u64,
}

/// `POST /snapshot` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    /// Also purge the WAL segments the snapshot covers (that no live member needs).
    #[serde(default)]
    pub purge: bool,
}

/// `POST /snapshot` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotCreated {
    /// The snapshot now current.
    pub snapshot: SnapshotInfo,
    /// The last log index the purge removed, when one ran and removed anything.
    pub purged_up_to: Option<u64>,
    /// The first log index still in the WAL.
    pub wal_first_lsn: Option<u64>,
}

/// Most IDs one `GET /id` may ask for.
pub const MAX_IDS: usize = 10_000;
/// `timeout_ms` of a query when the client gives none.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest `timeout_ms` a query may ask for.
pub const MAX_QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// The answer to a write: the entry's LSN and the leader's apply result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WriteResult {
    /// The log position of the entry; read-your-writes on any node with `min_lsn`.
    pub lsn: u64,
    /// Rows changed (summed over a batch).
    pub affected_rows: u64,
    /// MariaDB's LAST_INSERT_ID after the entry; 0 when none was generated.
    pub last_insert_id: u64,
    /// Snowflake IDs the leader generated for the entry, in order.
    pub ids: Vec<u64>,
    /// Per statement of a `/write/sql` batch, in order; empty for other writes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<StatementResult>,
}

/// One statement's outcome in a non-transactional batch, where each stands alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatementResult {
    /// Rows changed by this statement.
    pub affected_rows: u64,
    /// LAST_INSERT_ID after it; 0 when none.
    pub last_insert_id: u64,
    /// Its deterministic error (the same on every node), if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

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

impl NodeStatus {
    /// Why a node with this status is not ready (`/health` 503), if it is not; `ready` is
    /// [`Backend::ready`]. Every status but ACTIVE and LAGGING (serving, only behind) is not
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

/// `POST /cluster/remove`, `/cluster/transfer-leader`, `/cluster/promote` and
/// `/cluster/demote`: which member, by name
/// (`"node-2"`) or number (`2` or `"2"`; a name wins when both match).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeRequest {
    /// The member's name or number.
    pub node: NodeRef,
}

/// A member as an operator names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum NodeRef {
    /// Its number.
    Number(u64),
    /// Its name, or its number as text.
    Name(String),
}

impl std::fmt::Display for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeRef::Number(n) => write!(f, "{n}"),
            NodeRef::Name(s) => f.write_str(s),
        }
    }
}

/// The answer to `POST /cluster/remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RemoveResult {
    /// The removed node's name.
    pub removed: String,
    /// Its number.
    pub node_number: u64,
    /// Log position of the membership without it.
    pub lsn: u64,
    /// Names of the voters left.
    pub voters: Vec<String>,
    /// Names of the learners left.
    pub learners: Vec<String>,
}

/// The answer to `POST /cluster/promote` and `POST /cluster/demote`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoleResult {
    /// The member's name.
    pub node_id: String,
    /// Its number.
    pub node_number: u64,
    /// Whether it now votes (`false`: a non-voting learner).
    pub voter: bool,
    /// Log position of the membership that gives it this role.
    pub lsn: u64,
    /// Names of the voters.
    pub voters: Vec<String>,
    /// Names of the learners.
    pub learners: Vec<String>,
}

/// The answer to `POST /cluster/transfer-leader`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TransferResult {
    /// The new leader's name.
    pub leader_id: String,
    /// Its number.
    pub node_number: u64,
    /// The term it leads in.
    pub term: u64,
    /// The leader before the transfer.
    pub previous_leader: String,
    /// The term before the transfer.
    pub previous_term: u64,
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Whatever this node has applied.
    #[default]
    None,
    /// This node, after it has applied what it knows committed.
    Weak,
    /// After this node has applied the leader's read index (the leader confirms it still
    /// leads with a quorum first): sees every write acknowledged before the read started,
    /// on any node.
    Linearizable,
}

impl Consistency {
    /// The name clients send (`none`, `weak`, `linearizable`).
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::None => "none",
            Consistency::Weak => "weak",
            Consistency::Linearizable => "linearizable",
        }
    }
}

/// `POST /query` as the client sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// One read statement (SELECT, SHOW, …) with `?` markers.
    pub sql: String,
    /// One value per `?`.
    #[serde(default)]
    pub params: Vec<Input>,
    /// Default `none`.
    #[serde(default)]
    pub consistency: Consistency,
    /// Wait until this node has applied this LSN (read-your-writes on any node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lsn: Option<u64>,
    /// How long to wait for `min_lsn` or consistency; default 5000, at most 60000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// A query checked by `sql::check_read`, with its values bound: what the backend runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// One read statement, trailing `;` removed.
    pub sql: String,
    /// Bound values, one per `?`.
    pub params: Vec<Value>,
    /// How fresh the read must be.
    pub consistency: Consistency,
    /// Applied LSN to wait for first.
    pub min_lsn: Option<u64>,
    /// Deadline for the waits; past it the backend answers [`BackendError::Timeout`].
    pub timeout: Duration,
}

/// Rows of a read. Values use the request encoding: numbers exact, bytes that are not
/// UTF-8 as `{"$base64": …}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueryResult {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// One array per row, one value per column.
    pub rows: Vec<Vec<Input>>,
}

/// Why the backend could not serve a request. Each variant is one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum BackendError {
    /// 400: the request or its statement is wrong (also deterministic MariaDB errors of
    /// the "invalid" class).
    #[error("{message}")]
    Invalid {
        /// Stable code, e.g. `invalid_identifier`.
        code: String,
        /// What is wrong.
        message: String,
    },
    /// 404: a table or column does not exist (from MariaDB).
    #[error("{message}")]
    NotFound {
        /// Stable code.
        code: String,
        /// MariaDB's message.
        message: String,
    },
    /// 409: duplicate key or another constraint (from MariaDB).
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: String,
        /// MariaDB's message.
        message: String,
    },
    /// 413: over a size bound.
    #[error("{message}")]
    TooLarge {
        /// What is too large.
        message: String,
    },
    /// 503: no leader is known (election in progress).
    #[error("no leader is known; retry after {retry_after}s")]
    NoLeader {
        /// Seconds the client should wait.
        retry_after: u64,
    },
    /// 503: this node cannot serve now (joining, syncing, MariaDB down).
    #[error("node not ready: {reason}; retry after {retry_after}s")]
    NotReady {
        /// Why, for the operator.
        reason: String,
        /// Seconds the client should wait.
        retry_after: u64,
    },
    /// 503: this node knows it is cut off from the cluster's majority (a leader without a
    /// majority round trip, or a node without word from a leader, for longer than the
    /// election timeout). Refused before anything was appended: safe to retry.
    #[error("no quorum: {reason}; retry after {retry_after}s")]
    NoQuorum {
        /// What this node last heard, for the operator.
        reason: String,
        /// Seconds the client should wait (about one election).
        retry_after: u64,
    },
    /// 504: `wait: all` or `min_lsn` did not complete in time. For a write, the entry is
    /// committed at `lsn` all the same.
    #[error("{message}")]
    Timeout {
        /// What timed out.
        message: String,
        /// The committed entry, for a write.
        lsn: Option<u64>,
        /// Names of the nodes that had not applied it.
        lagging: Vec<String>,
    },
    /// 500: a bug or an unexpected failure; logged, never shown to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl BackendError {
    /// 400 `not_supported`: this node has no snapshots.
    pub fn snapshots_unsupported() -> BackendError {
        BackendError::Invalid {
            code: "not_supported".into(),
            message: "this node cannot take snapshots".into(),
        }
    }

    /// The deterministic result of a statement MariaDB refused, as the client must see it.
    /// A transient class is a node problem, not a result: it becomes [`BackendError::NotReady`].
    pub fn from_mariadb(class: ErrorClass, code: u16, message: &str) -> BackendError {
        let message = format!("MariaDB error {code}: {message}");
        let c = class.code().to_string();
        match class {
            ErrorClass::NotFound => BackendError::NotFound { code: c, message },
            ErrorClass::Conflict => BackendError::Conflict { code: c, message },
            ErrorClass::Invalid => BackendError::Invalid { code: c, message },
            ErrorClass::Transient => BackendError::NotReady {
                reason: message,
                retry_after: 1,
            },
        }
    }

    /// The HTTP status this error is answered with.
    pub fn http_status(&self) -> u16 {
        match self {
            BackendError::Invalid { .. } => 400,
            BackendError::NotFound { .. } => 404,
            BackendError::Conflict { .. } => 409,
            BackendError::TooLarge { .. } => 413,
            BackendError::NoLeader { .. }
            | BackendError::NotReady { .. }
            | BackendError::NoQuorum { .. } => 503,
            BackendError::Timeout { .. } => 504,
            BackendError::Internal(_) => 500,
        }
    }

    /// The JSON error body sent to the client (generic for [`BackendError::Internal`]).
    pub fn body(&self) -> ErrorBody {
        let mut body = ErrorBody::new(
            match self {
                BackendError::Invalid { code, .. }
                | BackendError::NotFound { code, .. }
                | BackendError::Conflict { code, .. } => code.as_str(),
                BackendError::TooLarge { .. } => "too_large",
                BackendError::NoLeader { .. } => "no_leader",
                BackendError::NotReady { .. } => "not_ready",
                BackendError::NoQuorum { .. } => "quorum_lost",
                BackendError::Timeout { .. } => "timeout",
                BackendError::Internal(_) => "internal",
            },
            match self {
                BackendError::Internal(_) => "internal error; see the node's log".to_string(),
                other => other.to_string(),
            },
        );
        match self {
            BackendError::NoLeader { retry_after }
            | BackendError::NotReady { retry_after, .. }
            | BackendError::NoQuorum { retry_after, .. } => {
                body.retry_after = Some((*retry_after).max(1));
            }
            BackendError::Timeout { lsn, lagging, .. } => {
                body.lsn = *lsn;
                body.lagging = Some(lagging.clone());
            }
            _ => {}
        }
        body
    }
}

impl From<command::Error> for BackendError {
    fn from(e: command::Error) -> Self {
        if e.http_status() == 413 {
            BackendError::TooLarge {
                message: e.to_string(),
            }
        } else {
            BackendError::Invalid {
                code: e.code().to_string(),
                message: e.to_string(),
            }
        }
    }
}

/// Every error response's JSON body: `{"error": "…", "code": "…"}` plus the fields that
/// apply to its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What happened and what to do, for a human.
    pub error: String,
    /// Stable machine-readable code.
    pub code: String,
    /// 503: seconds to wait before retrying (also in the `Retry-After` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// 504 on a write: the entry's LSN (it is committed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<u64>,
    /// 504: the nodes that had not caught up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lagging: Option<Vec<String>>,
}

impl ErrorBody {
    /// A body with just a code and a message.
    pub fn new(code: &str, error: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: error.into(),
            code: code.to_string(),
            retry_after: None,
            lsn: None,
            lagging: None,
        }
    }
}
