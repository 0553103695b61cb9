//! The seam between the HTTP layer and the node: the [`Backend`] trait (the service's
//! operations plus cluster management, so handlers can be tested against a fake), the
//! JSON types only the HTTP API speaks, and how a [`ServiceError`] is answered: its HTTP
//! status and `{"error", "code"}` body.

use crate::command::{Input, WriteRequest};
use crate::service::{
    CheckReport, ClusterStatus, DbError, NodeStatus, ReadRequest, ReadResult, ServiceError,
    SnapshotCreated, SnapshotList, WriteOutcome,
};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;

/// What the node offers the HTTP API: the [`crate::service::Service`] operations and
/// cluster management. Forwarding a write to the leader, waiting for `wait: all` or
/// `min_lsn`, and running SQL all happen behind it.
///
/// Futures are dropped unfinished when the client goes away: a write already handed to
/// consensus must still commit and apply (the client just never hears of it). Every
/// method must bound its own waits (`cluster` asking peers included); the API adds no
/// timeout of its own around them.
pub trait Backend: Send + Sync + 'static {
    /// Replicates a write. `request` has already passed [`crate::service::check_write`]
    /// (a dry run), so a refusal here means the leader's state differs (e.g. it is too
    /// large once IDs are added); the leader runs `prepare` again with its clock and IDs.
    fn write(
        &self,
        request: WriteRequest,
    ) -> impl Future<Output = Result<WriteOutcome, ServiceError>> + Send;
    /// Runs one validated read on this node; `linearizable` first asks the leader for its
    /// read index and waits until this node has applied it.
    fn query(
        &self,
        query: ReadRequest,
    ) -> impl Future<Output = Result<ReadResult, ServiceError>> + Send;
    /// `count` fresh Snowflake IDs from this node (1 ≤ count ≤ [`MAX_IDS`]).
    fn ids(&self, count: usize) -> impl Future<Output = Result<Vec<u64>, ServiceError>> + Send;
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
    ) -> impl Future<Output = Result<RemoveResult, ServiceError>> + Send;
    /// Makes the voter named or numbered by `node` the leader, through the current leader;
    /// answers once it leads.
    fn transfer_leader(
        &self,
        node: String,
    ) -> impl Future<Output = Result<TransferResult, ServiceError>> + Send;
    /// Makes the learner named or numbered by `node` a voter, through the leader; answers
    /// once the membership with its vote is committed.
    fn promote_node(
        &self,
        node: String,
    ) -> impl Future<Output = Result<RoleResult, ServiceError>> + Send;
    /// Makes the voter named or numbered by `node` a non-voting learner, through the
    /// leader; answers once the membership without its vote is committed.
    fn demote_node(
        &self,
        node: String,
    ) -> impl Future<Output = Result<RoleResult, ServiceError>> + Send;
    /// Takes a snapshot of the replicated database on this node now (`POST /snapshot`);
    /// with `purge`, then purges the WAL segments it covers that no live member needs.
    /// The default answers that this node cannot.
    fn snapshot_create(
        &self,
        purge: bool,
    ) -> impl Future<Output = Result<SnapshotCreated, ServiceError>> + Send {
        let _ = purge;
        async { Err(ServiceError::snapshots_unsupported()) }
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
    fn snapshot_list(&self) -> impl Future<Output = Result<SnapshotList, ServiceError>> + Send {
        async { Err(ServiceError::snapshots_unsupported()) }
    }
    /// Replaces this node's replicated database with a fresh snapshot of the leader's
    /// (`POST /resync`); answers when it is done. The default answers that this node
    /// cannot.
    fn resync(
        &self,
    ) -> impl Future<Output = Result<crate::service::ResyncDone, ServiceError>> + Send {
        async { Err(ServiceError::snapshots_unsupported()) }
    }
    /// Compares every member's replicated tables at one LSN (`POST /check`); answers when
    /// the comparison is done. The default answers that this node cannot.
    fn check(&self) -> impl Future<Output = Result<CheckReport, ServiceError>> + Send {
        async {
            Err(ServiceError::Invalid {
                code: "not_supported".into(),
                message: "this node cannot run divergence checks".into(),
            })
        }
    }
}

/// `POST /snapshot` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    /// Also purge the WAL segments the snapshot covers (that no live member needs).
    #[serde(default)]
    pub purge: bool,
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
    pub consistency: crate::service::Consistency,
    /// Wait until this node has applied this LSN (read-your-writes on any node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lsn: Option<u64>,
    /// How long to wait for `min_lsn` or consistency; default 5000, at most 60000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
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

impl From<WriteOutcome> for WriteResult {
    fn from(o: WriteOutcome) -> Self {
        WriteResult {
            lsn: o.lsn,
            affected_rows: o.affected_rows,
            last_insert_id: o.last_insert_id,
            ids: o.ids,
            statements: o
                .statements
                .into_iter()
                .map(|s| match s {
                    Ok(done) => StatementResult {
                        affected_rows: done.affected_rows,
                        last_insert_id: done.last_insert_id,
                        error: None,
                    },
                    Err(e) => StatementResult {
                        affected_rows: 0,
                        last_insert_id: 0,
                        error: Some(error_body(&ServiceError::Database(e))),
                    },
                })
                .collect(),
        }
    }
}

impl From<ReadResult> for QueryResult {
    fn from(r: ReadResult) -> Self {
        QueryResult {
            columns: r.columns,
            rows: r.rows,
        }
    }
}

/// The HTTP status a [`ServiceError`] is answered with.
pub fn http_status(e: &ServiceError) -> u16 {
    match e {
        ServiceError::Invalid { .. } | ServiceError::NotDeterministic { .. } => 400,
        ServiceError::NotFound { .. } => 404,
        ServiceError::Conflict { .. } => 409,
        ServiceError::Database(DbError { class, .. }) => class.class().http_status().unwrap_or(500),
        ServiceError::TooLarge { .. } => 413,
        ServiceError::NoLeader { .. }
        | ServiceError::NotReady { .. }
        | ServiceError::NoQuorum { .. } => 503,
        ServiceError::Timeout { .. } => 504,
        ServiceError::Internal(_) => 500,
    }
}

/// The JSON error body sent to the client (generic for [`ServiceError::Internal`]).
pub fn error_body(e: &ServiceError) -> ErrorBody {
    let mut body = ErrorBody::new(
        e.code(),
        match e {
            ServiceError::Internal(_) => "internal error; see the node's log".to_string(),
            other => other.to_string(),
        },
    );
    body.retry_after = e.retry_after();
    if let ServiceError::Timeout { lsn, lagging, .. } = e {
        body.lsn = *lsn;
        body.lagging = Some(lagging.clone());
    }
    body
}
