//! Interactive transactions as they enter the log: [`prepare_certified`] checks every
//! statement a client ran inside its transaction, with what it observed, and builds the one
//! [`Command::Certified`] entry that every node replays and compares at COMMIT.

use super::{
    CertifiedStep, Command, Entry, Error, Observed, MAX_ENTRY_BYTES, MAX_PARAMS, MAX_STATEMENTS,
};

/// Validates the steps of an interactive transaction and makes its entry.
///
/// `session_timestamp_us` is the `SET timestamp` the client's statements ran under;
/// `timestamp_us` is the leader's clock for the entry, as for any write.
///
/// # Errors
/// [`Error::EmptyBatch`] without steps, [`Error::TooLarge`] beyond the statement, parameter
/// or entry-size limits, [`Error::Statement`] for a statement that may not be replayed.
pub fn prepare_certified(
    steps: Vec<CertifiedStep>,
    session_timestamp_us: u64,
    timestamp_us: u64,
) -> Result<Entry, Error> {
    if steps.is_empty() {
        return Err(Error::EmptyBatch);
    }
    if steps.len() > MAX_STATEMENTS {
        return Err(Error::TooLarge {
            what: "statements in the transaction",
            limit: MAX_STATEMENTS,
            actual: steps.len(),
        });
    }
    let mut checked = Vec::with_capacity(steps.len());
    for (index, step) in steps.into_iter().enumerate() {
        if step.params.len() > MAX_PARAMS {
            return Err(Error::TooLarge {
                what: "parameters of one statement",
                limit: MAX_PARAMS,
                actual: step.params.len(),
            });
        }
        if matches!(step.observed, Observed::TextRows { .. }) && !step.params.is_empty() {
            return Err(Error::InvalidValue {
                at: format!("statements[{index}].params"),
                reason: "a read observed as text is replayed as text, without parameters".into(),
            });
        }
        let (sql, _) = crate::sql::check_certified_step(&step.sql, step.params.len())
            .map_err(|source| Error::Statement { index, source })?;
        checked.push(CertifiedStep {
            sql: sql.to_string(),
            ..step
        });
    }
    let entry = Entry {
        timestamp_us,
        ids: Vec::new(),
        command: Command::Certified {
            timestamp_us: session_timestamp_us,
            steps: checked,
        },
    };
    let size = entry.encode().len();
    if size > MAX_ENTRY_BYTES {
        return Err(Error::TooLarge {
            what: "the encoded transaction (bytes)",
            limit: MAX_ENTRY_BYTES,
            actual: size,
        });
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Value;

    fn step(sql: &str, params: Vec<Value>, observed: Observed) -> CertifiedStep {
        CertifiedStep {
            sql: sql.to_string(),
            params,
            observed,
        }
    }

    fn rows() -> Observed {
        Observed::Rows {
            count: 1,
            digest: 7,
        }
    }

    fn changed() -> Observed {
        Observed::Changed {
            affected_rows: 1,
            insert_id: 0,
        }
    }

    #[test]
    fn a_transfer_is_accepted_and_round_trips_through_the_codec() {
        let steps = vec![
            step(
                "SELECT balance FROM acct WHERE id = ? FOR UPDATE",
                vec![Value::Int(1)],
                rows(),
            ),
            step("SAVEPOINT before_debit", vec![], changed()),
            step(
                "UPDATE acct SET balance = balance - ? WHERE id = ?;",
                vec![Value::Int(5), Value::Int(1)],
                changed(),
            ),
            step("ROLLBACK TO SAVEPOINT before_debit", vec![], changed()),
            step(
                "INSERT INTO log (note, at) VALUES (?, NOW())",
                vec![Value::Text("x".into())],
                Observed::Changed {
                    affected_rows: 1,
                    insert_id: 42,
                },
            ),
            step(
                "SELECT id FROM acct ORDER BY id LIMIT 2",
                vec![],
                Observed::Failed { code: 1146 },
            ),
        ];
        let entry = prepare_certified(steps, 1_000_000, 2_000_000).expect("accepted");
        let Command::Certified {
            timestamp_us,
            steps,
        } = &entry.command
        else {
            panic!("not certified: {entry:?}");
        };
        assert_eq!(*timestamp_us, 1_000_000);
        assert_eq!(
            steps[2].sql,
            "UPDATE acct SET balance = balance - ? WHERE id = ?"
        );
        assert_eq!(Entry::decode(&entry.encode()), Ok(entry.clone()));
        assert!(entry.describe().starts_with("certified steps=6"));
    }

    #[test]
    fn statements_that_could_read_differently_on_another_node_are_refused() {
        for (sql, params) in [
            ("SELECT RAND() FROM acct", 0),
            ("SELECT id FROM acct LIMIT 1", 0),
            ("SELECT id FROM other.acct", 0),
            ("SELECT @secret", 0),
            ("SELECT id INTO @x FROM acct", 0),
            ("SELECT id, ROW_NUMBER() OVER (ORDER BY id) FROM acct", 0),
            ("SELECT id FROM acct WHERE id = ?", 2),
            ("SHOW TABLES", 0),
            ("COMMIT", 0),
            ("ROLLBACK", 0),
            ("SAVEPOINT wolfscale_entry", 0),
            ("ROLLBACK TO `WOLFSCALE_ENTRY`", 0),
            ("SAVEPOINT a b", 0),
            ("SET @@time_zone = '+01:00'", 0),
            ("INSERT INTO t (a) VALUES (UUID())", 0),
            ("SELECT /*!50000 SLEEP(1) */ 1", 0),
        ] {
            let steps = vec![step(sql, vec![Value::Int(1); params], rows())];
            assert!(prepare_certified(steps, 1, 1).is_err(), "accepted: {sql}");
        }
        assert_eq!(prepare_certified(vec![], 1, 1), Err(Error::EmptyBatch));
    }
}
