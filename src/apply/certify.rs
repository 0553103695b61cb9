//! Certifying an interactive transaction ([`Command::Certified`]) where it is applied.
//!
//! The client ran its statements on one node inside a real transaction and saw their
//! results; the node rolled that transaction back and sent the statements, each with what
//! the client observed, through the log. Every node replays them here in log order, inside
//! the group transaction and behind a savepoint, and compares what it observes with what
//! the client observed: the rows of every read (as [`rows_digest`]), the affected rows and
//! generated id of every write (the id is forced with `SET insert_id`, so a replay never
//! invents another one), the error of every statement that failed. All nodes hold the same
//! state before the entry, so all reach the same verdict: every observation matches and the
//! transaction commits, or one differs — another transaction earlier in the log changed
//! what this one read or wrote — and it is rolled back everywhere; the client's COMMIT
//! then fails with 1213 (SQLSTATE 40001), which drivers and ORMs treat as "retry".
//!
//! Digests are defined over values as the binary (prepared statement) protocol returns
//! them; the node that records a transaction must read its rows the same way.
//!
//! [`Command::Certified`]: crate::command::Command::Certified

use super::outcome::{Failure, FailureClass, Outcome};
use crate::command::{CertifiedStep, Observed};
use crate::sql::{self, position, StatementKind};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use sha2::{Digest, Sha256};

/// MariaDB's ER_LOCK_DEADLOCK: the error a failed certification answers with.
pub const CONFLICT_CODE: u16 = 1213;

/// `(row count, digest)` of a result: each row's values hashed, the hashes added, so the
/// order rows arrive in (which may differ between nodes without ORDER BY) does not matter
/// while a missing, extra or changed row does.
pub fn rows_digest<'a>(rows: impl IntoIterator<Item = &'a Row>) -> (u64, u64) {
    let mut count = 0u64;
    let mut sum = 0u64;
    for row in rows {
        sum = sum.wrapping_add(row_hash((0..row.len()).map(|i| row.as_ref(i))));
        count += 1;
    }
    (count, sum)
}

/// [`rows_digest`] of rows already taken apart into values (a front end's result).
pub fn values_digest<'a>(rows: impl IntoIterator<Item = &'a Vec<Value>>) -> (u64, u64) {
    let mut count = 0u64;
    let mut sum = 0u64;
    for row in rows {
        sum = sum.wrapping_add(row_hash(row.iter().map(Some)));
        count += 1;
    }
    (count, sum)
}

fn row_hash<'a>(values: impl ExactSizeIterator<Item = Option<&'a Value>>) -> u64 {
    let mut h = Sha256::new();
    h.update((values.len() as u64).to_le_bytes());
    for v in values {
        match v {
            Some(v) => value_bytes(&mut h, v),
            None => h.update([0xff]),
        }
    }
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_le_bytes(first)
}

fn value_bytes(h: &mut Sha256, v: &Value) {
    match v {
        Value::NULL => h.update([0]),
        Value::Bytes(b) => {
            h.update([1]);
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        }
        // Signed and unsigned integers of the same value digest alike.
        Value::Int(i) => {
            h.update([2]);
            h.update(i128::from(*i).to_le_bytes());
        }
        Value::UInt(u) => {
            h.update([2]);
            h.update(i128::from(*u).to_le_bytes());
        }
        Value::Float(f) => {
            h.update([3]);
            h.update(f64::from(*f).to_bits().to_le_bytes());
        }
        Value::Double(f) => {
            h.update([3]);
            h.update(f.to_bits().to_le_bytes());
        }
        Value::Date(y, mo, d, hh, mi, s, us) => {
            h.update([4]);
            h.update(y.to_le_bytes());
            h.update([*mo, *d, *hh, *mi, *s]);
            h.update(us.to_le_bytes());
        }
        Value::Time(neg, d, hh, mi, s, us) => {
            h.update([5, u8::from(*neg)]);
            h.update(d.to_le_bytes());
            h.update([*hh, *mi, *s]);
            h.update(us.to_le_bytes());
        }
    }
}

/// What a replayed step did, in the client's terms.
async fn observe(
    conn: &mut Conn,
    step: &CertifiedStep,
    statement: &sql::Statement,
) -> Result<Observed, mysql_async::Error> {
    if let Observed::Changed { insert_id, .. } = step.observed {
        if insert_id > 0 {
            conn.exec_drop(sql::session::SET_INSERT_ID, (insert_id,))
                .await?;
        }
    }
    let read = matches!(sql::statement_kind(&statement.sql), Ok(StatementKind::Read));
    let result = if let Observed::TextRows { .. } = step.observed {
        // Sent as text by the client (no parameters): read as text again.
        conn.query::<Row, _>(statement.sql.as_str())
            .await
            .map(|rows| {
                let (count, digest) = rows_digest(&rows);
                Observed::TextRows { count, digest }
            })
    } else if read {
        conn.exec::<Row, _, _>(statement.sql.as_str(), statement.params())
            .await
            .map(|rows| {
                let (count, digest) = rows_digest(&rows);
                Observed::Rows { count, digest }
            })
    } else {
        conn.exec_drop(statement.sql.as_str(), statement.params())
            .await
            .map(|()| Observed::Changed {
                affected_rows: conn.affected_rows(),
                insert_id: conn.last_insert_id().unwrap_or(0),
            })
    };
    match result {
        Ok(seen) => Ok(seen),
        Err(e) => {
            // A forced id the failed statement did not use must not reach the next one.
            if matches!(step.observed, Observed::Changed { insert_id, .. } if insert_id > 0) {
                conn.exec_drop(sql::session::SET_INSERT_ID, (0u64,)).await?;
            }
            match &e {
                mysql_async::Error::Server(se)
                    if FailureClass::from_class(sql::classify_error(se.code, &se.message))
                        .is_some() =>
                {
                    Ok(Observed::Failed { code: se.code })
                }
                _ => Err(e),
            }
        }
    }
}

/// Replays `steps` inside the open group transaction and certifies them: `Applied` with
/// the writes' summed affected rows and the last generated id when every observation
/// matches, otherwise `Failed` with [`CONFLICT_CODE`] and the transaction's effects undone.
///
/// # Errors
/// A transient error (connection lost, lock wait, …): the caller retries the group.
pub(super) async fn run(
    conn: &mut Conn,
    steps: &[CertifiedStep],
    lsn: u64,
    ids: Vec<u64>,
) -> Result<Outcome, mysql_async::Error> {
    let statements = steps
        .iter()
        .map(|s| crate::command::client_statement(&s.sql, &s.params));
    conn.query_drop(position::SAVEPOINT).await?;
    let (mut affected, mut last_id) = (0u64, None);
    for (i, (step, statement)) in steps.iter().zip(statements).enumerate() {
        let seen = observe(conn, step, &statement).await?;
        if seen != step.observed {
            conn.query_drop(position::ROLLBACK_TO_SAVEPOINT).await?;
            tracing::debug!(log_index = lsn, statement = i, ?seen, observed = ?step.observed, "transaction failed certification");
            return Ok(Outcome::Failed {
                lsn,
                ids,
                failure: Failure {
                    statement: u32::try_from(i).unwrap_or(u32::MAX),
                    code: CONFLICT_CODE,
                    message: conflict_message(i, &step.observed, &seen),
                    class: FailureClass::Conflict,
                },
            });
        }
        if let Observed::Changed {
            affected_rows,
            insert_id,
        } = seen
        {
            affected += affected_rows;
            if insert_id > 0 {
                last_id = Some(insert_id);
            }
        }
    }
    Ok(Outcome::Applied {
        lsn,
        affected_rows: affected,
        last_insert_id: last_id,
        ids,
    })
}

fn conflict_message(statement: usize, observed: &Observed, seen: &Observed) -> String {
    let what = |o: &Observed| match o {
        Observed::Rows { count, .. } => format!("{count} row(s) read"),
        Observed::Changed {
            affected_rows,
            insert_id: 0,
        } => format!("{affected_rows} row(s) changed"),
        Observed::Changed {
            affected_rows,
            insert_id,
        } => format!("{affected_rows} row(s) changed, id {insert_id} generated"),
        Observed::Failed { code } => format!("error {code}"),
        Observed::TextRows { count, .. } => format!("{count} row(s) read"),
    };
    let (a, b) = (what(observed), what(seen));
    let detail = if a == b {
        format!("{a}, with other values")
    } else {
        format!("{a} when the transaction ran, {b} in commit order")
    };
    format!(
        "Deadlock found when trying to get lock; try restarting transaction (WolfScale: another transaction committed first and changed what statement {statement} observed: {detail})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_statement_and_both_observations() {
        let m = conflict_message(
            2,
            &Observed::Rows {
                count: 1,
                digest: 1,
            },
            &Observed::Rows {
                count: 1,
                digest: 2,
            },
        );
        assert!(m.contains("statement 2"), "{m}");
        assert!(m.contains("1 row(s) read, with other values"), "{m}");
        let m = conflict_message(
            0,
            &Observed::Changed {
                affected_rows: 1,
                insert_id: 5,
            },
            &Observed::Failed { code: 1062 },
        );
        assert!(m.contains("1 row(s) changed, id 5 generated when the transaction ran, error 1062 in commit order"), "{m}");
    }
}
