//! The bytes a follower sends the leader for a client's write (or a divergence check's
//! barrier), and the bytes of the leader's answer, so the client gets exactly what the leader would have told it,
//! whichever front end it came through.
//!
//! JSON on purpose: [`Input`](crate::command::Input) keeps numbers exact only through
//! serde_json, and the answer types skip empty fields, which a non-self-describing codec
//! such as postcard cannot read back. The transport carries these as opaque bytes.

use super::{ServiceError, WriteOutcome};
use crate::command::{
    CertifiedRequest, DdlRequest, DeleteRequest, InsertRequest, SqlRequest, UpdateRequest,
    WriteRequest,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Why forwarded bytes do not decode (a peer on another version, or corruption).
#[derive(Debug, thiserror::Error)]
#[error("forwarded message does not decode: {0}")]
pub struct ForwardError(#[from] serde_json::Error);

/// Encodes a write for the leader: `["insert", {…}]`.
pub fn encode_write(request: &WriteRequest) -> Vec<u8> {
    let encoded = match request {
        WriteRequest::Insert(r) => serde_json::to_vec(&("insert", r)),
        WriteRequest::Update(r) => serde_json::to_vec(&("update", r)),
        WriteRequest::Delete(r) => serde_json::to_vec(&("delete", r)),
        WriteRequest::Ddl(r) => serde_json::to_vec(&("ddl", r)),
        WriteRequest::Sql(r) => serde_json::to_vec(&("sql", r)),
        WriteRequest::Certified(r) => serde_json::to_vec(&("certified", r)),
    };
    // Serialising these types only fails for an `Input::Number` that is not a number,
    // which deserialisation never produces; an empty message then fails to decode loudly.
    encoded.unwrap_or_default()
}

/// What a follower asks the leader to replicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Forwarded {
    /// A client's write, prepared by the leader.
    Client(WriteRequest),
    /// The barrier of a divergence check a member coordinates (`Command::CheckBarrier`).
    CheckBarrier {
        /// The check's id.
        id: u64,
    },
}

#[derive(Serialize, Deserialize)]
struct Barrier {
    id: u64,
}

/// Encodes a check barrier for the leader: `["check_barrier", {"id": …}]`.
pub fn encode_barrier(id: u64) -> Vec<u8> {
    // A struct of one integer: serialising cannot fail.
    serde_json::to_vec(&("check_barrier", Barrier { id })).unwrap_or_default()
}

/// Decodes [`encode_write`]'s and [`encode_barrier`]'s bytes.
///
/// # Errors
/// Bytes that are not a forwarded write.
pub fn decode_forwarded(bytes: &[u8]) -> Result<Forwarded, ForwardError> {
    // The request is read from its own raw text: numbers must not pass through serde's
    // internal buffering, which would round them.
    let (kind, raw): (String, Box<RawValue>) = serde_json::from_slice(bytes)?;
    let text = raw.get();
    if kind == "check_barrier" {
        let Barrier { id } = serde_json::from_str(text)?;
        return Ok(Forwarded::CheckBarrier { id });
    }
    Ok(Forwarded::Client(match kind.as_str() {
        "insert" => WriteRequest::Insert(serde_json::from_str::<InsertRequest>(text)?),
        "update" => WriteRequest::Update(serde_json::from_str::<UpdateRequest>(text)?),
        "delete" => WriteRequest::Delete(serde_json::from_str::<DeleteRequest>(text)?),
        "ddl" => WriteRequest::Ddl(serde_json::from_str::<DdlRequest>(text)?),
        "sql" => WriteRequest::Sql(serde_json::from_str::<SqlRequest>(text)?),
        "certified" => WriteRequest::Certified(serde_json::from_str::<CertifiedRequest>(text)?),
        other => {
            return Err(ForwardError(serde::de::Error::unknown_variant(
                other,
                &[
                    "insert",
                    "update",
                    "delete",
                    "ddl",
                    "sql",
                    "certified",
                    "check_barrier",
                ],
            )))
        }
    }))
}

#[derive(Serialize, Deserialize)]
enum Answer {
    Ok(WriteOutcome),
    Err(ServiceError),
}

/// Encodes the leader's answer to a forwarded write.
pub fn encode_answer(answer: &Result<WriteOutcome, ServiceError>) -> Vec<u8> {
    let wire = match answer {
        Ok(r) => Answer::Ok(r.clone()),
        Err(e) => Answer::Err(e.clone()),
    };
    // Plain data with string keys: serialising cannot fail.
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// Decodes [`encode_answer`]'s bytes.
///
/// # Errors
/// Bytes that are not an answer.
pub fn decode_answer(bytes: &[u8]) -> Result<Result<WriteOutcome, ServiceError>, ForwardError> {
    Ok(match serde_json::from_slice::<Answer>(bytes)? {
        Answer::Ok(r) => Ok(r),
        Answer::Err(e) => Err(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::FailureClass;
    use crate::command::{
        CertifiedStep, Fields, Input, Observed, SqlStatementRequest, Value, Wait,
    };
    use crate::service::{DbError, StatementDone};

    #[test]
    fn every_write_kind_round_trips_with_exact_numbers() {
        let big = Input::Number("123456789012345678901234567890.000000000000000001".into());
        let requests = vec![
            WriteRequest::Insert(InsertRequest {
                table: "t`; --".into(),
                values: Fields(vec![
                    ("a".into(), big.clone()),
                    ("a".into(), Input::Base64("AAE=".into())),
                    ("n".into(), Input::Null),
                ]),
                snowflake: Some("id".into()),
                wait: Wait::All,
            }),
            WriteRequest::Update(UpdateRequest {
                table: "t".into(),
                set: Fields(vec![("b".into(), Input::from(u64::MAX))]),
                where_key: Fields(vec![("id".into(), Input::from(i64::MIN))]),
                wait: Wait::Quorum,
            }),
            WriteRequest::Delete(DeleteRequest {
                table: "t".into(),
                where_key: Fields(vec![("id".into(), Input::from("x\u{0}'\""))]),
                wait: Wait::Quorum,
            }),
            WriteRequest::Ddl(DdlRequest {
                ddl: "CREATE TABLE t (id INT)".into(),
                wait: Wait::All,
            }),
            WriteRequest::Sql(SqlRequest {
                statements: vec![SqlStatementRequest {
                    sql: "INSERT INTO t VALUES (?)".into(),
                    params: vec![big, Input::Bool(true)],
                }],
                transaction: true,
                wait: Wait::Quorum,
            }),
            WriteRequest::Certified(CertifiedRequest {
                steps: vec![
                    CertifiedStep {
                        sql: "SELECT v FROM t WHERE id = ? FOR UPDATE".into(),
                        params: vec![Value::Int(i64::MIN)],
                        observed: Observed::Rows {
                            count: 1,
                            digest: u64::MAX,
                        },
                    },
                    CertifiedStep {
                        sql: "UPDATE t SET v = ? WHERE id = ?".into(),
                        params: vec![Value::Bytes(vec![0, 255, 39]), Value::UInt(u64::MAX)],
                        observed: Observed::Changed {
                            affected_rows: 1,
                            insert_id: 0,
                        },
                    },
                    CertifiedStep {
                        sql: "INSERT INTO t VALUES (?)".into(),
                        params: vec![Value::Null],
                        observed: Observed::Failed { code: 1062 },
                    },
                ],
                session_timestamp_us: u64::MAX - 1,
                wait: Wait::All,
            }),
        ];
        for r in requests {
            let bytes = encode_write(&r);
            assert_eq!(
                decode_forwarded(&bytes).expect("decode"),
                Forwarded::Client(r)
            );
        }
    }

    #[test]
    fn a_check_barrier_round_trips() {
        for id in [0, 1, u64::MAX] {
            assert_eq!(
                decode_forwarded(&encode_barrier(id)).expect("decode"),
                Forwarded::CheckBarrier { id }
            );
        }
    }

    #[test]
    fn answers_round_trip() {
        let ok = Ok(WriteOutcome {
            lsn: 9,
            affected_rows: 2,
            last_insert_id: 0,
            ids: vec![u64::MAX],
            warnings: 0,
            statements: vec![
                Ok(StatementDone {
                    affected_rows: 2,
                    last_insert_id: 7,
                }),
                Err(DbError {
                    class: FailureClass::Conflict,
                    code: 1062,
                    message: "dup".into(),
                }),
            ],
        });
        let errors = [
            ServiceError::NoLeader { retry_after: 1 },
            ServiceError::Timeout {
                message: "m".into(),
                lsn: Some(4),
                lagging: vec!["n3".into()],
            },
            ServiceError::Internal("x".into()),
        ];
        assert_eq!(decode_answer(&encode_answer(&ok)).expect("decode"), ok);
        for e in errors {
            let a = Err(e);
            assert_eq!(decode_answer(&encode_answer(&a)).expect("decode"), a);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"[]",
            b"[\"upsert\",{}]",
            b"[\"insert\",{\"table\":1}]",
            b"\xff",
            b"{\"Ok\":1}",
            b"[\"check_barrier\",{}]",
            b"[\"check_barrier\",{\"id\":-1}]",
        ] {
            assert!(decode_forwarded(bytes).is_err(), "{bytes:?}");
        }
        assert!(decode_answer(b"{\"Maybe\":{}}").is_err());
    }
}
