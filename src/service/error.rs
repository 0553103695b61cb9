//! Why the service could not do what a front end asked, in terms every front end can
//! translate: the HTTP API into a status and `{error, code}`, the MySQL front end into an
//! error number and SQLSTATE. Nothing here knows a wire format.

use crate::apply::FailureClass;
use crate::sql::ErrorClass;
use serde::{Deserialize, Serialize};

/// A failed service operation. Serialisable, so a follower relays the leader's refusal
/// of a forwarded write unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ServiceError {
    /// The request or its statement is wrong; nothing was appended.
    #[error("{message}")]
    Invalid {
        /// Stable code, e.g. `invalid_identifier`.
        code: String,
        /// What is wrong.
        message: String,
    },
    /// The statement would not give the same result on every node (`UUID()`, `RAND()`,
    /// …); refused before anything was appended.
    #[error("{message}")]
    NotDeterministic {
        /// What cannot be replicated, and why.
        message: String,
    },
    /// A member named in a cluster operation does not exist.
    #[error("{message}")]
    NotFound {
        /// Stable code, e.g. `unknown_node`.
        code: String,
        /// What is missing.
        message: String,
    },
    /// A cluster change the cluster's state refuses (last voter, no quorum, …).
    #[error("{message}")]
    Conflict {
        /// Stable code, e.g. `last_voter`.
        code: String,
        /// Why.
        message: String,
    },
    /// MariaDB refused the statement deterministically: the same error on every node.
    /// For a write this is the entry's recorded result (the LSN moved on).
    #[error("{0}")]
    Database(DbError),
    /// Over a size bound (entry, parameters, result rows or bytes).
    #[error("{message}")]
    TooLarge {
        /// What is too large.
        message: String,
    },
    /// No leader is known (election in progress); nothing was appended.
    #[error("no leader is known; retry after {retry_after}s")]
    NoLeader {
        /// Seconds the client should wait.
        retry_after: u64,
    },
    /// This node cannot serve now (joining, syncing, removed, MariaDB unreachable).
    #[error("node not ready: {reason}; retry after {retry_after}s")]
    NotReady {
        /// Why, for the operator.
        reason: String,
        /// Seconds the client should wait.
        retry_after: u64,
    },
    /// This node knows it is cut off from the cluster's majority (a leader without a
    /// majority round trip, or a node without word from a leader, for longer than the
    /// election timeout). Refused before anything was appended: safe to retry.
    #[error("no quorum: {reason}; retry after {retry_after}s")]
    NoQuorum {
        /// What this node last heard, for the operator.
        reason: String,
        /// Seconds the client should wait (about one election).
        retry_after: u64,
    },
    /// A wait did not finish in time. For a write the outcome is unknown unless `lsn` is
    /// set (then the entry is committed there): a retry could apply it twice.
    #[error("{message}")]
    Timeout {
        /// What timed out.
        message: String,
        /// The committed entry, for a write that is known committed.
        lsn: Option<u64>,
        /// Names of the nodes that had not applied it.
        lagging: Vec<String>,
    },
    /// A bug or an unexpected failure; front ends log it and show a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What kind of failure a [`ServiceError`] is: what a front end decides its answer by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input; do not retry unchanged.
    Invalid,
    /// Refused as not deterministic; do not retry unchanged.
    NotDeterministic,
    /// A named member does not exist.
    NotFound,
    /// A cluster change refused by the cluster's state.
    Conflict,
    /// MariaDB's deterministic error (see [`DbError`]).
    Database,
    /// Over a size bound.
    TooLarge,
    /// No leader, or this node cannot serve now: retry after
    /// [`ServiceError::retry_after`] seconds; nothing was appended.
    Unavailable,
    /// Cut off from the majority: retry, probably on another node; nothing was appended.
    NoQuorum,
    /// A wait ran out; for a write the outcome may be unknown (ambiguous).
    Timeout,
    /// A bug or unexpected failure.
    Internal,
}

impl ServiceError {
    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::Invalid { .. } => ErrorKind::Invalid,
            ServiceError::NotDeterministic { .. } => ErrorKind::NotDeterministic,
            ServiceError::NotFound { .. } => ErrorKind::NotFound,
            ServiceError::Conflict { .. } => ErrorKind::Conflict,
            ServiceError::Database(_) => ErrorKind::Database,
            ServiceError::TooLarge { .. } => ErrorKind::TooLarge,
            ServiceError::NoLeader { .. } | ServiceError::NotReady { .. } => ErrorKind::Unavailable,
            ServiceError::NoQuorum { .. } => ErrorKind::NoQuorum,
            ServiceError::Timeout { .. } => ErrorKind::Timeout,
            ServiceError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Seconds to wait before retrying, for the kinds that say so (at least 1).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ServiceError::NoLeader { retry_after }
            | ServiceError::NotReady { retry_after, .. }
            | ServiceError::NoQuorum { retry_after, .. } => Some((*retry_after).max(1)),
            _ => None,
        }
    }

    /// The stable machine-readable code of this error (the HTTP API's `code`).
    pub fn code(&self) -> &str {
        match self {
            ServiceError::Invalid { code, .. }
            | ServiceError::NotFound { code, .. }
            | ServiceError::Conflict { code, .. } => code,
            ServiceError::NotDeterministic { .. } => "non_deterministic",
            ServiceError::Database(db) => db.class.class().code(),
            ServiceError::TooLarge { .. } => "too_large",
            ServiceError::NoLeader { .. } => "no_leader",
            ServiceError::NotReady { .. } => "not_ready",
            ServiceError::NoQuorum { .. } => "quorum_lost",
            ServiceError::Timeout { .. } => "timeout",
            ServiceError::Internal(_) => "internal",
        }
    }

    /// `not_supported`: this node has no snapshots.
    pub fn snapshots_unsupported() -> ServiceError {
        ServiceError::Invalid {
            code: "not_supported".into(),
            message: "this node cannot take snapshots".into(),
        }
    }

    /// A statement MariaDB refused, as the client must see it: a deterministic class is a
    /// [`ServiceError::Database`] result; a transient one is a node problem, not a result,
    /// and becomes [`ServiceError::NotReady`].
    pub fn from_mariadb(class: ErrorClass, code: u16, message: &str) -> ServiceError {
        match FailureClass::from_class(class) {
            Some(class) => ServiceError::Database(DbError {
                class,
                code,
                message: message.to_string(),
            }),
            None => ServiceError::NotReady {
                reason: format!("MariaDB error {code}: {message}"),
                retry_after: 1,
            },
        }
    }
}

impl From<crate::command::Error> for ServiceError {
    fn from(e: crate::command::Error) -> Self {
        if matches!(e, crate::command::Error::TooLarge { .. }) {
            ServiceError::TooLarge {
                message: e.to_string(),
            }
        } else if e.is_non_deterministic() {
            ServiceError::NotDeterministic {
                message: e.to_string(),
            }
        } else {
            ServiceError::Invalid {
                code: e.code().to_string(),
                message: e.to_string(),
            }
        }
    }
}

/// MariaDB's deterministic refusal of a statement, with what a MySQL client expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("MariaDB error {code}: {message}")]
pub struct DbError {
    /// Missing object, constraint, or wrong statement/data.
    pub class: FailureClass,
    /// MariaDB's error number, e.g. 1062.
    pub code: u16,
    /// MariaDB's message.
    pub message: String,
}

impl DbError {
    /// The SQLSTATE MariaDB sends with this error number (`HY000` when it has none).
    pub fn sqlstate(&self) -> &'static str {
        crate::sql::sqlstate(self.code)
    }
}

impl From<crate::apply::Failure> for DbError {
    fn from(f: crate::apply::Failure) -> Self {
        DbError {
            class: f.class,
            code: f.code,
            message: f.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_errors_keep_their_number_and_sqlstate() {
        let e = ServiceError::from_mariadb(ErrorClass::Conflict, 1062, "Duplicate entry '1'");
        assert_eq!(e.kind(), ErrorKind::Database);
        assert_eq!(e.code(), "conflict");
        assert_eq!(e.to_string(), "MariaDB error 1062: Duplicate entry '1'");
        let ServiceError::Database(db) = &e else {
            panic!("{e:?}")
        };
        assert_eq!((db.code, db.sqlstate()), (1062, "23000"));
        let e = ServiceError::from_mariadb(ErrorClass::Transient, 2013, "Lost connection");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(e.retry_after(), Some(1));
    }

    #[test]
    fn nondeterminism_is_its_own_kind() {
        let sql = crate::command::SqlRequest {
            statements: vec![crate::command::SqlStatementRequest {
                sql: "INSERT INTO t VALUES (UUID())".into(),
                params: Vec::new(),
            }],
            transaction: false,
            wait: crate::command::Wait::Quorum,
        };
        let e = crate::command::prepare(crate::command::WriteRequest::Sql(sql), 0, &mut || 0)
            .map(|_| ())
            .map_err(ServiceError::from);
        let Err(e) = e else {
            panic!("UUID() must be refused")
        };
        assert_eq!(e.kind(), ErrorKind::NotDeterministic, "{e:?}");
        assert_eq!(e.code(), "non_deterministic");
    }

    #[test]
    fn errors_round_trip_as_json_for_forwarding() {
        for e in [
            ServiceError::Timeout {
                message: "m".into(),
                lsn: Some(3),
                lagging: vec!["n2".into()],
            },
            ServiceError::from_mariadb(ErrorClass::NotFound, 1146, "no table"),
            ServiceError::NotDeterministic {
                message: "RAND()".into(),
            },
        ] {
            let text = serde_json::to_string(&e).expect("json");
            assert_eq!(
                serde_json::from_str::<ServiceError>(&text).expect("parse"),
                e
            );
        }
    }
}
