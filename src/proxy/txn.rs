//! An explicit transaction of one connection (`BEGIN` … `COMMIT`, or `autocommit=0`):
//! interactive, serializable and certified.
//!
//! While it is open, its statements run on this node's MariaDB inside a real local
//! transaction ([`LocalTxn`], one snapshot), so the client sees its own writes, generated
//! ids and row counts. Each statement is recorded with its parameters and what the client
//! observed: the rows of every read (as a digest), the affected rows and generated id of
//! every write, the error of every statement that failed. At COMMIT the local transaction
//! is rolled back and, if it wrote, the recorded statements go through the log as one
//! certified entry (`Command::Certified`): every node replays them at their place in the
//! log and compares what it observes with what the client observed. All nodes reach the
//! same verdict; if anything differs (another transaction committed first and changed
//! what this one read or wrote), the entry is rolled back everywhere and COMMIT fails with
//! 1213 (SQLSTATE 40001), which drivers and ORMs retry. A transaction that only read
//! commits locally and never reaches the log.
//!
//! ROLLBACK, a disconnect or a limit (statements, bytes, duration) discards it: nothing
//! reaches the log. When the applier needs rows it holds, it is rolled back under the
//! client (see `apply::tentative`), whose next statement gets 1213.

use super::params;
use super::sessions::{Interrupt, Watch};
use super::wire::MyError;
use crate::command::{
    CertifiedRequest, CertifiedStep, Input, Observed, Value, Wait, MAX_ENTRY_BYTES, MAX_STATEMENTS,
};
use crate::service::{values_digest, Consistency, LocalTxn, Protocol, RawRows, Service};
use crate::sql::{self, CertifiedKind};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// MariaDB's ER_LOCK_DEADLOCK: what a client retries.
const DEADLOCK: u16 = 1213;
/// MariaDB's ER_TRANS_CACHE_FULL: a transaction too large to keep.
const TOO_LARGE: u16 = 1197;
/// MariaDB's ER_CANT_DO_THIS_DURING_AN_TRANSACTION.
const NOT_IN_TRANSACTION: u16 = 1179;
/// MariaDB's ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION.
const READ_ONLY: u16 = 1792;
/// MariaDB's ER_QUERY_INTERRUPTED: `KILL QUERY` stopped (and undid) the statement; the
/// transaction goes on.
const INTERRUPTED: u16 = 1317;

/// How this session's local transactions are opened.
#[derive(Debug, Clone, Copy)]
pub struct Opening {
    /// Reads wait for this node to apply the session's last write first.
    pub min_lsn: Option<u64>,
    /// And for what the session's consistency asks.
    pub consistency: Consistency,
    /// The longest a transaction may stay open.
    pub max_duration: Duration,
}

/// The open transaction of a connection.
#[derive(Debug)]
pub struct Transaction {
    /// `START TRANSACTION READ ONLY`.
    pub read_only: bool,
    /// Opened at the first statement.
    local: Option<LocalTxn>,
    /// The MariaDB thread of `local`'s connection, where `KILL QUERY` stops a statement.
    thread: u32,
    /// `SET timestamp` of the local transaction: NOW() for all its statements.
    timestamp_us: u64,
    started: Instant,
    max_duration: Duration,
    steps: Vec<CertifiedStep>,
    bytes: usize,
    wrote: bool,
    /// The first read that every node could not replay alike (a LIMIT without ORDER BY,
    /// a SHOW, …): fine while the transaction only reads, refused once it writes.
    unreplayable: Option<String>,
    /// Rolled back under the client: every statement gets this error until it ends.
    doomed: Option<MyError>,
}

/// How a COMMIT ends.
pub enum Commit {
    /// Nothing to send: the transaction only read (or never ran anything).
    Local,
    /// Send this through the log.
    Certify(CertifiedRequest),
}

impl Transaction {
    /// A transaction opened by BEGIN / START TRANSACTION (or the first statement with
    /// autocommit off).
    pub fn begin(read_only: bool) -> Transaction {
        Transaction {
            read_only,
            local: None,
            thread: 0,
            timestamp_us: 0,
            started: Instant::now(),
            max_duration: Duration::MAX,
            steps: Vec::new(),
            bytes: 0,
            wrote: false,
            unreplayable: None,
            doomed: None,
        }
    }

    /// The local transaction (opened now if it is not yet) and its MariaDB thread.
    async fn local(
        &mut self,
        service: &Service,
        opening: Opening,
        watch: &Watch<'_>,
    ) -> Result<(&mut LocalTxn, u32), MyError> {
        if let Some(e) = &self.doomed {
            return Err(e.clone());
        }
        if self.local.is_none() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
            let read_only = self.read_only;
            // Waiting for this node to catch up, or for a connection: a KILL QUERY or the
            // statement's limit ends the wait (nothing is open yet).
            let (local, thread) = watch
                .droppable(open(service, read_only, now, opening))
                .await
                .map_err(Interrupt::error)??;
            self.timestamp_us = now;
            self.started = Instant::now();
            self.max_duration = opening.max_duration;
            self.thread = thread;
            self.local = Some(local);
        } else if self.started.elapsed() > self.max_duration {
            return Err(self.doom(MyError::new(
                DEADLOCK,
                format!(
                    "the transaction was open longer than proxy.max_transaction_ms ({} ms) and \
                     was rolled back; nothing was written",
                    self.max_duration.as_millis()
                ),
            )));
        }
        let thread = self.thread;
        self.local
            .as_mut()
            .map(|l| (l, thread))
            .ok_or_else(|| MyError::new(1105, "WolfScale: the local transaction is gone"))
    }

    /// Whether the applier killed the local transaction to free its locks.
    fn killed(&self) -> bool {
        self.local.as_ref().is_some_and(LocalTxn::killed)
    }

    /// Ends the local transaction and keeps `e` for every later statement.
    fn doom(&mut self, e: MyError) -> MyError {
        if let Some(local) = self.local.take() {
            tokio::spawn(local.finish());
        }
        self.doomed = Some(e.clone());
        e
    }

    /// The error for a statement that failed on the local transaction's connection: a
    /// MariaDB error the client sees (the transaction goes on), or the transaction is
    /// gone (killed to free its locks, connection lost, deadlock).
    fn failed(&mut self, e: mysql_async::Error) -> Result<u16, MyError> {
        let killed = self.local.as_ref().is_some_and(LocalTxn::killed);
        match e {
            _ if killed => Err(self.doom(MyError::new(
                DEADLOCK,
                "Deadlock found when trying to get lock; try restarting transaction \
                 (WolfScale: a replicated write needed rows this transaction held, so it was \
                 rolled back on this node; nothing was written)",
            ))),
            // The whole transaction is rolled back (not only the statement, as MariaDB
            // does after a lock wait timeout): 1213 tells the client to retry all of it.
            mysql_async::Error::Server(se) if se.code == DEADLOCK || se.code == 1205 => Err(self
                .doom(MyError::new(
                    DEADLOCK,
                    format!(
                        "{} (WolfScale rolled the whole transaction back; nothing was written)",
                        se.message
                    ),
                ))),
            mysql_async::Error::Server(se) => {
                let class = sql::classify_error(se.code, &se.message);
                if crate::service::FailureClass::from_class(class).is_some() {
                    Ok(se.code)
                } else {
                    Err(self.doom(MyError::with_state(se.code, &se.state, se.message)))
                }
            }
            other => Err(self.doom(MyError::new(
                DEADLOCK,
                format!(
                    "WolfScale: lost the connection to this node's MariaDB during the \
                     transaction ({other}); it was rolled back, nothing was written"
                ),
            ))),
        }
    }

    fn record(&mut self, sql: &str, params: Vec<Value>, observed: Observed) -> Result<(), MyError> {
        if self.steps.len() >= MAX_STATEMENTS {
            return Err(self.doom(MyError::new(
                TOO_LARGE,
                format!(
                    "a transaction holds at most {MAX_STATEMENTS} statements; it was rolled \
                     back, nothing was written"
                ),
            )));
        }
        self.bytes += sql.len() + params.iter().map(value_size).sum::<usize>() + 32;
        if self.bytes > MAX_ENTRY_BYTES {
            return Err(self.doom(MyError::new(
                TOO_LARGE,
                format!(
                    "a transaction's statements and values hold at most {MAX_ENTRY_BYTES} \
                     bytes (one log entry); it was rolled back, nothing was written"
                ),
            )));
        }
        self.steps.push(CertifiedStep {
            sql: sql.to_string(),
            params,
            observed,
        });
        Ok(())
    }

    /// Runs a read inside the transaction and records what it returned.
    ///
    /// # Errors
    /// The statement is refused, failed, or the transaction is gone.
    pub async fn read(
        &mut self,
        service: &Service,
        opening: Opening,
        sql: &str,
        values: Vec<Input>,
        protocol: Protocol,
        watch: &Watch<'_>,
    ) -> Result<RawRows, MyError> {
        let params = params::bind_read(values)?;
        let replayable = sql::check_certified_step(sql, params.len());
        let (text, locking) = match (&replayable, sql::check_read(sql, params.len())) {
            (Ok((text, CertifiedKind::Read)), plain) => (text.to_string(), plain.is_err()),
            (_, Ok(text)) => (text.to_string(), false),
            (_, Err(e)) => return Err(MyError::refused(e.to_string())),
        };
        let replayable = match replayable {
            Ok((_, CertifiedKind::Read)) => None,
            Ok(_) => Some("not a read".to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(reason) = &replayable {
            if self.wrote {
                return Err(MyError::refused(format!(
                    "this transaction writes, so each of its reads is replayed on every node \
                     at COMMIT, and this one cannot be: {reason}"
                )));
            }
        }
        let limits = service.read_limits();
        let (local, thread) = self.local(service, opening, watch).await?;
        let result = watch
            .on_thread(
                thread,
                local.read(&text, &params, protocol, limits, locking),
            )
            .await
            .map_err(Interrupt::error)?;
        let rows = match result {
            Ok(rows) => rows,
            Err(crate::service::QueryError::Sql { code, message, .. })
                if code == INTERRUPTED && !self.killed() =>
            {
                // Stopped by KILL QUERY: the statement did nothing the client saw.
                return Err(interrupted(watch, message));
            }
            Err(crate::service::QueryError::Sql { code, message, .. }) => {
                let e = mysql_async::Error::Server(mysql_async::ServerError {
                    code,
                    message: message.clone(),
                    state: sql::sqlstate(code).to_string(),
                });
                let code = self.failed(e)?;
                if replayable.is_none() {
                    self.record(&text, params, Observed::Failed { code })?;
                }
                return Err(MyError::new(code, message));
            }
            Err(e) => {
                let killed = self.local.as_ref().is_some_and(LocalTxn::killed);
                if killed {
                    self.failed(mysql_async::Error::Other("killed".into()))?;
                }
                return Err(super::wire::service_error(
                    &crate::service::ServiceError::Internal(e.to_string()),
                    false,
                ));
            }
        };
        match replayable {
            None => {
                let (count, digest) = values_digest(&rows.rows);
                let observed = if protocol == Protocol::Text && params.is_empty() {
                    Observed::TextRows { count, digest }
                } else {
                    Observed::Rows { count, digest }
                };
                self.record(&text, params, observed)?;
            }
            Some(reason) => {
                self.unreplayable
                    .get_or_insert(format!("`{text}`: {reason}"));
            }
        }
        Ok(rows)
    }

    /// Runs a write inside the transaction and records what it did:
    /// `(affected rows, generated id)`.
    ///
    /// # Errors
    /// Refused (read-only transaction, not replayable, an earlier read that cannot be
    /// replayed), MariaDB's error (the transaction goes on), or the transaction is gone.
    pub async fn write(
        &mut self,
        service: &Service,
        opening: Opening,
        sql: &str,
        values: Vec<Input>,
        watch: &Watch<'_>,
    ) -> Result<(u64, u64), MyError> {
        if self.read_only {
            return Err(MyError::new(
                READ_ONLY,
                "Cannot execute statement in a READ ONLY transaction",
            ));
        }
        let params = params::bind_read(values)?;
        let text = match sql::check_certified_step(sql, params.len()) {
            Ok((text, CertifiedKind::Write)) => text.to_string(),
            Ok(_) => return Err(MyError::refused(format!("`{sql}` is not a write"))),
            Err(e) => return Err(MyError::refused(e.to_string())),
        };
        if let Some(read) = &self.unreplayable {
            return Err(MyError::refused(format!(
                "this transaction read {read}; a transaction that writes is replayed on every \
                 node at COMMIT, reads included, so it cannot write after that read: ROLLBACK \
                 and run the read with an ORDER BY (or outside the transaction)"
            )));
        }
        let (local, thread) = self.local(service, opening, watch).await?;
        let result = watch
            .on_thread(thread, local.write(&text, &params))
            .await
            .map_err(Interrupt::error)?;
        self.wrote = true;
        match result {
            // Stopped by KILL QUERY: MariaDB undid the statement, so there is nothing to
            // replay at COMMIT.
            Err(mysql_async::Error::Server(se)) if se.code == INTERRUPTED && !self.killed() => {
                Err(interrupted(watch, se.message))
            }
            Ok((affected_rows, insert_id)) => {
                self.record(
                    &text,
                    params,
                    Observed::Changed {
                        affected_rows,
                        insert_id,
                    },
                )?;
                Ok((affected_rows, insert_id))
            }
            Err(e) => {
                let message = match &e {
                    mysql_async::Error::Server(se) => se.message.clone(),
                    other => other.to_string(),
                };
                let code = self.failed(e)?;
                self.record(&text, params, Observed::Failed { code })?;
                Err(MyError::new(code, message))
            }
        }
    }

    /// `SAVEPOINT x`, `ROLLBACK TO x`, `RELEASE SAVEPOINT x`, run and recorded.
    ///
    /// # Errors
    /// Refused, MariaDB's error (an unknown savepoint), or the transaction is gone.
    pub async fn savepoint(
        &mut self,
        service: &Service,
        opening: Opening,
        sql: &str,
        watch: &Watch<'_>,
    ) -> Result<(), MyError> {
        let text = match sql::check_certified_step(sql, 0) {
            Ok((text, CertifiedKind::Savepoint)) => text.to_string(),
            Ok(_) => {
                return Err(MyError::refused(format!(
                    "`{sql}` is not a savepoint statement"
                )))
            }
            Err(e) => return Err(MyError::refused(e.to_string())),
        };
        let (local, thread) = self.local(service, opening, watch).await?;
        let result = watch
            .on_thread(thread, local.savepoint(&text))
            .await
            .map_err(Interrupt::error)?;
        match result {
            Err(mysql_async::Error::Server(se)) if se.code == INTERRUPTED && !self.killed() => {
                Err(interrupted(watch, se.message))
            }
            Ok(()) => self.record(
                &text,
                Vec::new(),
                Observed::Changed {
                    affected_rows: 0,
                    insert_id: 0,
                },
            ),
            Err(e) => {
                let message = match &e {
                    mysql_async::Error::Server(se) => se.message.clone(),
                    other => other.to_string(),
                };
                let code = self.failed(e)?;
                self.record(&text, Vec::new(), Observed::Failed { code })?;
                Err(MyError::new(code, message))
            }
        }
    }

    /// COMMIT: the local transaction ends (rolled back: nothing of it stays here) and, if
    /// it wrote, what must go through the log.
    ///
    /// # Errors
    /// The transaction was rolled back under the client (the error it got).
    pub async fn commit(mut self) -> Result<Commit, MyError> {
        if let Some(local) = self.local.take() {
            local.finish().await;
        }
        if let Some(e) = self.doomed.take() {
            return Err(e);
        }
        if !self.wrote {
            return Ok(Commit::Local);
        }
        Ok(Commit::Certify(CertifiedRequest {
            steps: std::mem::take(&mut self.steps),
            session_timestamp_us: self.timestamp_us,
            wait: Wait::Quorum,
        }))
    }

    /// ROLLBACK: nothing reaches the log.
    pub async fn rollback(mut self) {
        if let Some(local) = self.local.take() {
            local.finish().await;
        }
    }

    /// A schema change while this transaction is open: allowed (ending it, as MariaDB's
    /// implicit commit does) only when it wrote nothing.
    ///
    /// # Errors
    /// The transaction wrote: COMMIT or ROLLBACK first.
    pub fn before_ddl(&self) -> Result<(), MyError> {
        if self.wrote {
            return Err(MyError::new(
                NOT_IN_TRANSACTION,
                "a schema change cannot run inside a transaction that wrote: COMMIT or \
                 ROLLBACK first (WolfScale applies schema changes alone, in log order)",
            ));
        }
        Ok(())
    }
}

/// Opens a local transaction and asks its connection's MariaDB thread.
async fn open(
    service: &Service,
    read_only: bool,
    timestamp_us: u64,
    opening: Opening,
) -> Result<(LocalTxn, u32), MyError> {
    let local = service
        .begin_local(
            read_only,
            timestamp_us,
            opening.consistency,
            opening.min_lsn,
            opening.max_duration,
        )
        .await
        .map_err(|e| super::wire::service_error(&e, false))?;
    let thread = local.connection_id();
    match thread {
        Some(thread) => Ok((local, thread)),
        None => {
            local.finish().await;
            Err(MyError::new(
                DEADLOCK,
                "WolfScale: could not open the transaction on this node's MariaDB (its \
                 connection is gone); nothing was written, retry",
            ))
        }
    }
}

/// A statement `KILL QUERY` or its `max_statement_time` stopped, as MariaDB reports it.
fn interrupted(watch: &Watch<'_>, message: String) -> MyError {
    match watch.interrupted() {
        Some(why @ Interrupt::TimedOut) => why.error(),
        _ => MyError::new(INTERRUPTED, message),
    }
}

fn value_size(v: &Value) -> usize {
    match v {
        Value::Text(s) => s.len() + 8,
        Value::Bytes(b) => b.len() + 8,
        _ => 16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_that_wrote_refuses_schema_changes() {
        let mut t = Transaction::begin(false);
        assert!(t.before_ddl().is_ok());
        t.wrote = true;
        let e = t.before_ddl().expect_err("refused");
        assert_eq!(e.code, NOT_IN_TRANSACTION);
    }

    #[test]
    fn limits_doom_the_transaction_with_a_clear_error() {
        let mut t = Transaction::begin(false);
        for _ in 0..MAX_STATEMENTS {
            t.record(
                "UPDATE t SET a = 1",
                vec![],
                Observed::Failed { code: 1146 },
            )
            .expect("within the limit");
        }
        let e = t
            .record(
                "UPDATE t SET a = 1",
                vec![],
                Observed::Failed { code: 1146 },
            )
            .expect_err("over the limit");
        assert_eq!(e.code, TOO_LARGE);
        assert!(e.message.contains("nothing was written"), "{}", e.message);
        assert!(t.doomed.is_some());
        let mut t = Transaction::begin(false);
        let big = Value::Text("x".repeat(MAX_ENTRY_BYTES));
        let e = t
            .record(
                "INSERT INTO t (a) VALUES (?)",
                vec![big],
                Observed::Failed { code: 1 },
            )
            .expect_err("too many bytes");
        assert_eq!(e.code, TOO_LARGE);
    }
}
