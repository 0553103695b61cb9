//! What applying one entry produced, as returned to the client by the leader: encoded
//! into openraft's `Response` with postcard. Responses live only in memory (openraft hands
//! them to the waiting `client_write`), so the encoding carries no version byte.

use crate::consensus::Response;
use crate::sql::ErrorClass;
use serde::{Deserialize, Serialize};

/// The result of one log entry on this node. A deterministic SQL error is a result
/// ([`Outcome::Failed`]), identical on every node, and the applied LSN moves past it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// An insert, update, delete, DDL or all-or-nothing batch took effect.
    Applied {
        /// The entry's log index.
        lsn: u64,
        /// Rows changed (summed over a batch's statements).
        affected_rows: u64,
        /// The AUTO_INCREMENT value generated, if any (a batch's last one).
        last_insert_id: Option<u64>,
        /// Snowflake IDs the leader generated for the entry.
        ids: Vec<u64>,
    },
    /// A deterministic error: the entry changed nothing (an all-or-nothing batch is rolled
    /// back to its start).
    Failed {
        /// The entry's log index.
        lsn: u64,
        /// Snowflake IDs the entry carried (not stored, since it failed).
        ids: Vec<u64>,
        /// What MariaDB said.
        failure: Failure,
    },
    /// A `transaction: false` batch: every statement ran on its own, in order, and has
    /// its own result; the failed ones changed nothing.
    Batch {
        /// The entry's log index.
        lsn: u64,
        /// Snowflake IDs the leader generated for the entry.
        ids: Vec<u64>,
        /// One result per statement, in order.
        statements: Vec<StatementOutcome>,
    },
    /// A blank (leader change) or membership entry: only the position moved.
    Internal {
        /// The entry's log index.
        lsn: u64,
    },
    /// The entry was at or below the stored applied position (openraft re-sent it after a
    /// restart) and was not applied again.
    AlreadyApplied {
        /// The entry's log index.
        lsn: u64,
    },
}

/// A deterministic MariaDB error, as recorded for an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// 0-based index of the failing statement (0 for single-statement commands).
    pub statement: u32,
    /// MariaDB's error number, e.g. 1062.
    pub code: u16,
    /// MariaDB's message.
    pub message: String,
    /// How the API reports it.
    pub class: FailureClass,
}

/// The deterministic classes of [`ErrorClass`]: transient errors never become results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureClass {
    /// No such table, column, …: HTTP 404.
    NotFound,
    /// A key or constraint, or an object that exists: HTTP 409.
    Conflict,
    /// Wrong statement or data: HTTP 400.
    Invalid,
}

impl FailureClass {
    /// The deterministic class of `class`; `None` for [`ErrorClass::Transient`].
    pub fn from_class(class: ErrorClass) -> Option<FailureClass> {
        match class {
            ErrorClass::NotFound => Some(FailureClass::NotFound),
            ErrorClass::Conflict => Some(FailureClass::Conflict),
            ErrorClass::Invalid => Some(FailureClass::Invalid),
            ErrorClass::Transient => None,
        }
    }

    /// The matching [`ErrorClass`], for its HTTP status and code.
    pub fn class(self) -> ErrorClass {
        match self {
            FailureClass::NotFound => ErrorClass::NotFound,
            FailureClass::Conflict => ErrorClass::Conflict,
            FailureClass::Invalid => ErrorClass::Invalid,
        }
    }
}

/// One statement's result in a `transaction: false` batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatementOutcome {
    /// It ran.
    Done {
        /// Rows changed.
        affected_rows: u64,
        /// The AUTO_INCREMENT value generated, if any.
        last_insert_id: Option<u64>,
    },
    /// It failed deterministically and changed nothing.
    Failed(Failure),
}

/// Why a [`Response`] does not hold an [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("apply response is not an outcome of this build: {0}")]
pub struct OutcomeDecodeError(String);

impl Outcome {
    /// The entry's log index.
    pub fn lsn(&self) -> u64 {
        match self {
            Outcome::Applied { lsn, .. }
            | Outcome::Failed { lsn, .. }
            | Outcome::Batch { lsn, .. }
            | Outcome::Internal { lsn }
            | Outcome::AlreadyApplied { lsn } => *lsn,
        }
    }

    /// The response openraft carries back to the writer.
    pub fn encode(&self) -> Response {
        Response {
            payload: postcard::to_stdvec(self)
                .expect("postcard encodes every Outcome: all its sequences have known lengths"),
        }
    }

    /// Reads a response made by [`Outcome::encode`].
    ///
    /// # Errors
    /// [`OutcomeDecodeError`] for bytes that are not an outcome (e.g. an empty payload).
    pub fn decode(response: &Response) -> Result<Outcome, OutcomeDecodeError> {
        let (outcome, rest) = postcard::take_from_bytes::<Outcome>(&response.payload)
            .map_err(|e| OutcomeDecodeError(e.to_string()))?;
        if !rest.is_empty() {
            return Err(OutcomeDecodeError(format!(
                "{} trailing byte(s)",
                rest.len()
            )));
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip() {
        let failure = Failure {
            statement: 2,
            code: 1062,
            message: "Duplicate entry '1' for key 'PRIMARY'".into(),
            class: FailureClass::Conflict,
        };
        for o in [
            Outcome::Applied {
                lsn: u64::MAX,
                affected_rows: 3,
                last_insert_id: Some(9),
                ids: vec![1, u64::MAX],
            },
            Outcome::Failed {
                lsn: 4,
                ids: vec![],
                failure: failure.clone(),
            },
            Outcome::Batch {
                lsn: 5,
                ids: vec![7],
                statements: vec![
                    StatementOutcome::Done {
                        affected_rows: 1,
                        last_insert_id: None,
                    },
                    StatementOutcome::Failed(failure),
                ],
            },
            Outcome::Internal { lsn: 0 },
            Outcome::AlreadyApplied { lsn: 6 },
        ] {
            let r = o.encode();
            assert_eq!(Outcome::decode(&r), Ok(o.clone()));
            assert_eq!(Outcome::decode(&r).map(|d| d.lsn()), Ok(o.lsn()));
        }
    }

    #[test]
    fn foreign_payloads_are_errors() {
        assert!(Outcome::decode(&Response::default()).is_err());
        let mut r = Outcome::Internal { lsn: 1 }.encode();
        r.payload.push(0);
        assert!(Outcome::decode(&r).is_err());
        assert!(Outcome::decode(&Response {
            payload: vec![200, 1]
        })
        .is_err());
    }

    #[test]
    fn only_deterministic_classes_become_failures() {
        assert_eq!(FailureClass::from_class(ErrorClass::Transient), None);
        for c in [
            ErrorClass::NotFound,
            ErrorClass::Conflict,
            ErrorClass::Invalid,
        ] {
            let f = FailureClass::from_class(c).expect("deterministic");
            assert_eq!(f.class(), c);
        }
    }
}
