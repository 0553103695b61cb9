//! The requests and results of the service's operations, as every front end sees them.
//! Serde derives are for relaying between nodes and for the HTTP API, which answers some
//! of them as they are (`utoipa` describes those in the OpenAPI document).

use crate::command::{self, Input, Value, WriteRequest};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::{DbError, ServiceError};

/// Checks a write without running it: a dry run of [`command::prepare`] with a zero clock
/// and IDs, so only its refusals matter. Front ends call it before [`super::Service::write`]
/// (on a blocking thread for large requests), so bad input is refused on the node the
/// client reached, before anything is forwarded.
///
/// # Errors
/// The refusal: [`ServiceError::Invalid`], [`ServiceError::NotDeterministic`] or
/// [`ServiceError::TooLarge`].
pub fn check_write(request: &WriteRequest) -> Result<(), ServiceError> {
    command::prepare(request.clone(), 0, &mut || 0)?;
    Ok(())
}

/// A replicated write's result: the entry's LSN and the leader's apply result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOutcome {
    /// The log position of the entry; read-your-writes on any node waits for it.
    pub lsn: u64,
    /// Rows changed (summed over a batch).
    pub affected_rows: u64,
    /// MariaDB's LAST_INSERT_ID after the entry; 0 when none was generated.
    pub last_insert_id: u64,
    /// Snowflake IDs the leader generated for the entry, in order.
    pub ids: Vec<u64>,
    /// MariaDB's warning count for the entry on the leader. Always 0 for now: the
    /// applier does not record warnings in outcomes.
    #[serde(default)]
    pub warnings: u16,
    /// Per statement of a non-transactional SQL batch, in order; empty for other writes.
    /// A failed statement changed nothing and failed the same way on every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<Result<StatementDone, DbError>>,
}

/// One statement of a non-transactional batch that ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementDone {
    /// Rows changed by this statement.
    pub affected_rows: u64,
    /// LAST_INSERT_ID after it; 0 when none.
    pub last_insert_id: u64,
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

/// One read, run on this node's MariaDB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// One read statement (checked again with `sql::check_read` before it runs).
    pub sql: String,
    /// Bound values, one per `?`.
    pub params: Vec<Value>,
    /// How fresh the read must be.
    pub consistency: Consistency,
    /// Wait until this node has applied this LSN first (read-your-writes on any node).
    pub min_lsn: Option<u64>,
    /// The `sql_mode` to read under (a MySQL client session's own); `None`: the
    /// server's.
    pub sql_mode: Option<String>,
    /// Deadline for the waits and the statement; past it the answer is
    /// [`ServiceError::Timeout`].
    pub timeout: Duration,
}

/// Rows of a read. Values use the request encoding: numbers exact, bytes that are not
/// UTF-8 as `{"$base64": …}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadResult {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// One array per row, one value per column.
    pub rows: Vec<Vec<Input>>,
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

/// What a resync did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResyncDone {
    /// The node resynced.
    pub node_id: String,
    /// The leader the snapshot came from.
    pub leader_id: String,
    /// The snapshot installed.
    pub snapshot_id: String,
    /// The log position the snapshot reflects; the node applies the log after it.
    pub lsn: u64,
    /// Rows loaded.
    pub rows: u64,
    /// Tables loaded.
    pub tables: u64,
    /// Size of the snapshot file.
    pub bytes: u64,
    /// The divergence it cleared, if the node was DIVERGED.
    pub divergence: Option<crate::apply::Divergence>,
    /// Seconds it took.
    pub secs: f64,
}
