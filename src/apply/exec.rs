//! Running entries on the writer connection: the group transaction, DDL alone with its
//! in-flight marker, the retry loop around both, and reading `_wolfscale`.

use super::ids::Ids;
use super::{counters, MariaDbApplier, Position};
use crate::apply::outcome::{Failure, FailureClass, Outcome, StatementOutcome};
use crate::command::{self, Command};
use crate::consensus::state_machine::ApplyError;
use crate::consensus::{Entry, LogId, NodeId, NodeInfo, StoredMembership};
use crate::sql::{self, position};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use openraft::{EntryPayload, Membership};
use std::time::Duration;

/// MariaDB's "Lock wait timeout exceeded".
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;

/// Retries in a row, without a backoff, of a group that waited for the locks of local
/// transactions (killed each time); then the usual transient handling.
const MAX_QUICK_RETRIES: u32 = 50;

/// How one attempt ended when it did not succeed.
pub(super) enum Step {
    /// The node must stop: the entry cannot be decoded or `_wolfscale` is damaged.
    Fatal(ApplyError),
    /// Roll back, wait and retry.
    Transient(mysql_async::Error),
}

/// One statement's failure.
enum StmtError {
    Deterministic(Failure),
    Transient(mysql_async::Error),
}

impl From<StmtError> for Step {
    fn from(e: StmtError) -> Step {
        match e {
            // Only bookkeeping statements are mapped this way, and an error there is not
            // a result of any entry: retry, visibly.
            StmtError::Deterministic(f) => Step::Transient(mysql_async::Error::Other(
                format!("bookkeeping statement failed: {} ({})", f.message, f.code).into(),
            )),
            StmtError::Transient(e) => Step::Transient(e),
        }
    }
}

/// A log entry decoded for applying.
pub(super) struct Item {
    log_id: LogId,
    kind: Kind,
}

impl Item {
    /// The leader's outcome digests an `Outcomes` request carries.
    pub(super) fn agreed(&self) -> Option<&[crate::command::OutcomeDigest]> {
        match &self.kind {
            Kind::Command(command::Entry {
                command: Command::Outcomes { digests },
                ..
            }) => Some(digests),
            _ => None,
        }
    }

    /// The leader timestamp a client request carries.
    pub(super) fn timestamp_us(&self) -> Option<u64> {
        match &self.kind {
            Kind::Command(entry) => Some(entry.timestamp_us),
            _ => None,
        }
    }
}

enum Kind {
    Blank,
    Membership(Membership<NodeId, NodeInfo>),
    Command(command::Entry),
}

impl Item {
    /// Decodes what an entry carries: one item per request of a client entry (an entry
    /// without requests moves the position like a blank one), one for any other entry.
    ///
    /// # Errors
    /// An undecodable payload is fatal: skipping it would diverge from the other nodes.
    /// So is DDL among other requests of one entry: the leader never batches DDL, which
    /// must apply alone.
    pub(super) fn decode(entry: Entry) -> Result<Vec<Item>, ApplyError> {
        let log_id = entry.log_id;
        let kinds = match entry.payload {
            EntryPayload::Blank => vec![Kind::Blank],
            EntryPayload::Membership(m) => vec![Kind::Membership(m)],
            EntryPayload::Normal(requests) if requests.0.is_empty() => vec![Kind::Blank],
            EntryPayload::Normal(requests) => {
                let mut kinds = Vec::with_capacity(requests.0.len());
                for req in &requests.0 {
                    kinds.push(Kind::Command(
                        command::Entry::decode(&req.payload).map_err(|e| {
                            ApplyError(format!("log entry {} cannot be applied: {e}", log_id.index))
                        })?,
                    ));
                }
                let ddl = kinds
                    .iter()
                    .any(|k| matches!(k, Kind::Command(e) if e.command.is_ddl()));
                if ddl && kinds.len() > 1 {
                    return Err(ApplyError(format!(
                        "log entry {} holds DDL among {} requests; DDL must be alone in its entry",
                        log_id.index,
                        kinds.len()
                    )));
                }
                kinds
            }
        };
        Ok(kinds
            .into_iter()
            .map(|kind| Item { log_id, kind })
            .collect())
    }

    /// The client request this item carries.
    pub(super) fn request(&self) -> Option<&command::Entry> {
        match &self.kind {
            Kind::Command(e) => Some(e),
            _ => None,
        }
    }

    pub(super) fn is_ddl(&self) -> bool {
        matches!(&self.kind, Kind::Command(e) if e.command.is_ddl())
    }

    /// The check id when this item is a check barrier.
    pub(super) fn check_barrier(&self) -> Option<u64> {
        match &self.kind {
            Kind::Command(e) => e.command.check_barrier(),
            _ => None,
        }
    }

    pub(super) fn lsn(&self) -> u64 {
        self.log_id.index
    }
}

fn classify(e: mysql_async::Error, statement: usize) -> StmtError {
    if let mysql_async::Error::Server(se) = &e {
        let class = sql::classify_error(se.code, &se.message);
        if let Some(class) = FailureClass::from_class(class) {
            return StmtError::Deterministic(Failure {
                statement: u32::try_from(statement).unwrap_or(u32::MAX),
                code: se.code,
                message: se.message.clone(),
                class,
            });
        }
    }
    StmtError::Transient(e)
}

/// Runs one statement, with the AUTO_INCREMENT value it generates first forced from the
/// applier's counters; `(affected rows, last insert id)`.
async fn exec(
    conn: &mut Conn,
    ids: &mut Ids,
    st: &sql::Statement,
    index: usize,
) -> Result<(u64, Option<u64>), StmtError> {
    let mut forced = ids
        .before(conn, &st.sql)
        .await
        .map_err(StmtError::Transient)?;
    let folded = match forced.as_mut() {
        Some(f) => match sql::with_insert_id(st, f.value()) {
            Some(folded) => Some(folded),
            None => {
                f.on_session(conn).await.map_err(StmtError::Transient)?;
                None
            }
        },
        None => None,
    };
    let run = folded.as_ref().unwrap_or(st);
    let result = conn.exec_drop(run.sql.as_str(), run.params()).await;
    let done = result
        .as_ref()
        .ok()
        .map(|()| (conn.affected_rows(), conn.last_insert_id()));
    if let Some(forced) = forced {
        ids.after(conn, forced, done)
            .await
            .map_err(StmtError::Transient)?;
    }
    result.map_err(|e| classify(e, index))?;
    Ok(done.unwrap_or_default())
}

async fn run(conn: &mut Conn, sql: &str) -> Result<(), StmtError> {
    conn.query_drop(sql).await.map_err(|e| classify(e, 0))
}

fn timed_out(what: &str, after: Duration) -> mysql_async::Error {
    mysql_async::Error::Other(format!("{what} timed out after {after:?}").into())
}

/// Runs `stmts`, the statements of a non-DDL command, inside the open group transaction.
async fn run_command(
    conn: &mut Conn,
    counters: &mut Ids,
    entry: &command::Entry,
    stmts: &[sql::Statement],
    lsn: u64,
) -> Result<Outcome, Step> {
    let ids = entry.ids.clone();
    if let Command::Sql {
        transaction: false, ..
    } = entry.command
    {
        let mut results = Vec::with_capacity(stmts.len());
        for (i, st) in stmts.iter().enumerate() {
            results.push(match exec(conn, counters, st, i).await {
                Ok((affected_rows, last_insert_id)) => StatementOutcome::Done {
                    affected_rows,
                    last_insert_id,
                },
                Err(StmtError::Deterministic(f)) => StatementOutcome::Failed(f),
                Err(StmtError::Transient(e)) => return Err(Step::Transient(e)),
            });
        }
        return Ok(Outcome::Batch {
            lsn,
            ids,
            statements: results,
        });
    }
    // One statement is atomic by itself (InnoDB rolls a failed statement back); a batch
    // needs a savepoint to be all or nothing.
    let savepoint = stmts.len() > 1;
    if savepoint {
        run(conn, position::SAVEPOINT).await?;
    }
    let (mut affected, mut last_id) = (0u64, None);
    for (i, st) in stmts.iter().enumerate() {
        match exec(conn, counters, st, i).await {
            Ok((a, l)) => {
                affected += a;
                last_id = l.or(last_id);
            }
            Err(StmtError::Deterministic(failure)) => {
                if savepoint {
                    run(conn, position::ROLLBACK_TO_SAVEPOINT).await?;
                }
                return Ok(Outcome::Failed { lsn, ids, failure });
            }
            Err(StmtError::Transient(e)) => return Err(Step::Transient(e)),
        }
    }
    Ok(Outcome::Applied {
        lsn,
        affected_rows: affected,
        last_insert_id: last_id,
        ids,
    })
}

fn membership_json(m: &StoredMembership) -> Result<String, Step> {
    serde_json::to_string(m)
        .map_err(|e| Step::Fatal(ApplyError(format!("cannot encode the membership: {e}"))))
}

impl MariaDbApplier {
    /// Applies `items` (one DDL, or a run of non-DDL entries), retrying transient
    /// failures forever. After a failure the stored position is read again: if the
    /// commit went through although its answer was lost, the outcomes computed in that
    /// transaction are the result.
    pub(super) async fn run_with_retry(
        &mut self,
        items: &[Item],
    ) -> Result<Vec<Outcome>, ApplyError> {
        let Some(last) = items.last().map(Item::lsn) else {
            return Ok(Vec::new());
        };
        let mut delay = self.backoff.min;
        let mut quick_retries = 0;
        loop {
            let mut pending = None;
            match self.attempt(items, &mut pending).await {
                Ok(outcomes) => {
                    self.recovered();
                    return Ok(outcomes);
                }
                Err(Step::Fatal(e)) => return Err(e),
                Err(Step::Transient(e)) => {
                    if matches!(&e, mysql_async::Error::Server(se) if se.code == ER_LOCK_WAIT_TIMEOUT)
                        && quick_retries < MAX_QUICK_RETRIES
                        && self.tentatives.kill(true).await > 0
                    {
                        // Local transactions of the front end held rows this group needs;
                        // they are being rolled back: retry soon, nothing is wrong.
                        quick_retries += 1;
                        self.ids.rollback();
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    }
                    self.transient(&e, Some(items[0].lsn())).await;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.backoff.max);
                    let p = self.position().await?;
                    if p.applied.is_some_and(|a| a.index >= last) {
                        self.recovered();
                        return Ok(pending.unwrap_or_else(|| {
                            items
                                .iter()
                                .map(|i| Outcome::AlreadyApplied { lsn: i.lsn() })
                                .collect()
                        }));
                    }
                }
            }
        }
    }

    async fn attempt(
        &mut self,
        items: &[Item],
        pending: &mut Option<Vec<Outcome>>,
    ) -> Result<Vec<Outcome>, Step> {
        if self.position.is_none() {
            self.load_position().await?;
        }
        let mut conn = self.take_conn().await?;
        let result = if items.len() == 1 && items[0].is_ddl() {
            self.ddl_on(&mut conn, &items[0], pending).await
        } else {
            self.group_on(&mut conn, items, pending).await
        };
        match &result {
            Ok(_) => self.conn = Some(conn),
            Err(Step::Transient(mysql_async::Error::Server(_))) => {
                // The connection still works: release the transaction's locks now rather
                // than when the pool recycles it.
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    conn.query_drop(position::ROLLBACK),
                )
                .await;
            }
            Err(_) => {}
        }
        result
    }

    /// The applied position as cached; `attempt` loads it first.
    fn cached(&self) -> Result<&Position, Step> {
        self.position.as_ref().ok_or_else(|| {
            Step::Transient(mysql_async::Error::Other(
                "applied position not loaded".into(),
            ))
        })
    }

    async fn group_on(
        &mut self,
        conn: &mut Conn,
        items: &[Item],
        pending: &mut Option<Vec<Outcome>>,
    ) -> Result<Vec<Outcome>, Step> {
        let current = self.cached()?.clone();
        let applied = current.applied.map(|l| l.index);
        if let Some(first) = items.iter().find(|i| applied.is_none_or(|a| i.lsn() > a)) {
            self.no_gap(first.lsn())?;
        }
        let mut membership = current.membership;
        let mut outcomes = Vec::with_capacity(items.len());
        // The session has autocommit off: the first statement opens the transaction.
        self.merge.start_group();
        let mut at = 0;
        while at < items.len() {
            let item = &items[at];
            at += 1;
            let lsn = item.lsn();
            if applied.is_some_and(|a| lsn <= a) {
                outcomes.push(Outcome::AlreadyApplied { lsn });
                continue;
            }
            match &item.kind {
                Kind::Blank
                | Kind::Command(command::Entry {
                    command: Command::Outcomes { .. },
                    ..
                }) => outcomes.push(Outcome::Internal { lsn }),
                Kind::Membership(m) => {
                    membership = StoredMembership::new(Some(item.log_id), m.clone());
                    outcomes.push(Outcome::Internal { lsn });
                }
                Kind::Command(command::Entry {
                    command:
                        Command::Certified {
                            timestamp_us,
                            steps,
                        },
                    ids,
                    ..
                }) => {
                    // The client's statements ran under its own session timestamp.
                    self.set_timestamp(conn, *timestamp_us).await?;
                    let outcome = super::certify::run(conn, steps, lsn, ids.clone())
                        .await
                        .map_err(Step::Transient)?;
                    self.ids
                        .after_statements(conn, steps.iter().map(|s| s.sql.as_str()))
                        .await
                        .map_err(Step::Transient)?;
                    outcomes.push(outcome);
                }
                Kind::Command(entry) => {
                    if let Some(run) = self.insert_run(conn, items, at - 1).await? {
                        at += run.len() - 1;
                        outcomes.extend(run);
                        continue;
                    }
                    tracing::debug!(log_index = lsn, op = %entry.describe(), "applying entry");
                    // Insert, update and delete carry the timestamp in their one statement;
                    // client SQL runs after a session `SET timestamp` (sent when it changes).
                    let stmts =
                        match command::stamped_statements(&entry.command, entry.timestamp_us) {
                            Some(stmts) => stmts,
                            None => {
                                self.set_timestamp(conn, entry.timestamp_us).await?;
                                command::statements(&entry.command)
                            }
                        };
                    outcomes.push(run_command(conn, &mut self.ids, entry, &stmts, lsn).await?);
                }
            }
        }
        let last = items
            .last()
            .map(|i| i.log_id)
            .expect("run_with_retry never passes an empty group");
        let json = membership_json(&membership)?;
        self.record(conn, last, &json).await?;
        *pending = Some(outcomes);
        run(conn, position::COMMIT).await?;
        self.committed(last, membership, items.len());
        Ok(pending.take().unwrap_or_default())
    }

    /// Applies the run of single-row inserts that starts at `group[at]` as one multi-row
    /// INSERT (see [`super::rows`]): one outcome per request of the run, or `None` when
    /// there is no such run or its statement failed (it changed nothing; the caller applies
    /// the requests one by one).
    async fn insert_run(
        &mut self,
        conn: &mut Conn,
        group: &[Item],
        at: usize,
    ) -> Result<Option<Vec<Outcome>>, Step> {
        let Some(run) = self
            .merge
            .run_at(conn, group, at)
            .await
            .map_err(Step::Transient)?
        else {
            return Ok(None);
        };
        // What each row's own statement would have reported as its id, given the forced
        // first value (`None`: the run may not share a statement).
        let counter = self
            .ids
            .auto_column(conn, &run.table)
            .await
            .map_err(Step::Transient)?;
        let explicit = match &counter {
            None => Some(None),
            Some(column) if !run.names(column) => Some(None),
            Some(column) => run.explicit_ids(column).map(Some),
        };
        let Some(explicit) = explicit else {
            return Ok(None);
        };
        let rows = run.rows.len() as u64;
        let (affected, first_id) = match exec(conn, &mut self.ids, &run.statement(), 0).await {
            Ok(done) => done,
            Err(StmtError::Deterministic(f)) => {
                tracing::debug!(
                    log_index = group[at].lsn(),
                    rows,
                    code = f.code,
                    "a multi-row insert failed; applying its requests one by one"
                );
                self.merge.failed(at + run.rows.len());
                return Ok(None);
            }
            Err(StmtError::Transient(e)) => return Err(Step::Transient(e)),
        };
        if affected != rows {
            // A plain INSERT adds every row or fails; anything else is a bug, and
            // committing would diverge from nodes that applied the rows one by one.
            return Err(Step::Fatal(ApplyError(format!(
                "a multi-row insert of {rows} requests from log entry {} reported {affected} rows",
                group[at].lsn()
            ))));
        }
        tracing::debug!(
            log_index = group[at].lsn(),
            rows,
            "applied a run of inserts"
        );
        Ok(Some(
            group[at..at + run.rows.len()]
                .iter()
                .zip(&run.rows)
                .zip(0u64..)
                .map(|((item, row), k)| {
                    let last_insert_id = match (&counter, &explicit) {
                        (None, _) => None,
                        (Some(_), Some(ids)) => ids.get(k as usize).copied(),
                        (Some(_), None) => first_id.map(|id| id + k),
                    };
                    let (lsn, ids) = (item.lsn(), row.entry.ids.clone());
                    match row.client {
                        Some(false) => Outcome::Batch {
                            lsn,
                            ids,
                            statements: vec![StatementOutcome::Done {
                                affected_rows: 1,
                                last_insert_id,
                            }],
                        },
                        Some(true) | None => Outcome::Applied {
                            lsn,
                            affected_rows: 1,
                            last_insert_id,
                            ids,
                        },
                    }
                })
                .collect(),
        ))
    }

    async fn ddl_on(
        &mut self,
        conn: &mut Conn,
        item: &Item,
        pending: &mut Option<Vec<Outcome>>,
    ) -> Result<Vec<Outcome>, Step> {
        let lsn = item.lsn();
        let Kind::Command(entry) = &item.kind else {
            return Err(Step::Fatal(ApplyError(format!(
                "log entry {lsn} was taken for DDL but is not"
            ))));
        };
        let current = self.cached()?.clone();
        if current.applied.is_some_and(|a| lsn <= a.index) {
            return Ok(vec![Outcome::AlreadyApplied { lsn }]);
        }
        self.no_gap(lsn)?;
        // No snapshot opens its read view while a DDL entry runs (see `snapshot::dump`),
        // and no local transaction of the front end runs a statement: their locks would
        // hold the change up, so they are rolled back, before and under the gate.
        self.tentatives.kill(false).await;
        let _gate = self.ddl_gate.clone().write_owned().await;
        self.tentatives.kill(false).await;
        let re_apply = current.ddl_in_flight == Some(lsn);
        if !re_apply {
            conn.exec_drop(position::MARK_DDL_IN_FLIGHT, (lsn,))
                .await
                .map_err(Step::Transient)?;
            if let Some(p) = self.position.as_mut() {
                p.ddl_in_flight = Some(lsn);
            }
        }
        self.set_timestamp(conn, entry.timestamp_us).await?;
        let ids = entry.ids.clone();
        tracing::debug!(log_index = lsn, re_apply, op = %entry.describe(), "applying ddl");
        let statement = command::statements(&entry.command);
        let text = statement.first().map_or("", |s| s.sql.as_str());
        let outcome = match run(conn, text).await {
            Ok(()) => Outcome::Applied {
                lsn,
                affected_rows: conn.affected_rows(),
                last_insert_id: None,
                ids,
            },
            Err(StmtError::Deterministic(f))
                if re_apply && sql::ddl_already_applied(f.code, &f.message) =>
            {
                tracing::info!(
                    log_index = lsn,
                    code = f.code,
                    "ddl was applied before a crash"
                );
                Outcome::Applied {
                    lsn,
                    affected_rows: 0,
                    last_insert_id: None,
                    ids,
                }
            }
            Err(StmtError::Deterministic(failure)) => Outcome::Failed { lsn, ids, failure },
            Err(StmtError::Transient(e)) => return Err(Step::Transient(e)),
        };
        self.merge.forget();
        if matches!(outcome, Outcome::Applied { .. }) {
            self.ids
                .after_ddl(conn, text)
                .await
                .map_err(Step::Transient)?;
        }
        let json = membership_json(&current.membership)?;
        *pending = Some(vec![outcome]);
        // The DDL committed implicitly (with the in-flight mark before it); the position
        // commits on its own.
        self.record(conn, item.log_id, &json).await?;
        run(conn, position::COMMIT).await?;
        self.committed(item.log_id, current.membership, 1);
        Ok(pending.take().unwrap_or_default())
    }

    /// Moves the stored position to `last`, on the condition that it still holds what
    /// this applier last read or wrote. A changed row count means another commit moved it
    /// (an answer lost after COMMIT, a dump restored underneath): the transaction is rolled
    /// back by the caller and the position re-read, so no group ever commits twice.
    async fn record(&mut self, conn: &mut Conn, last: LogId, membership: &str) -> Result<(), Step> {
        let previous = self.cached()?.applied.map(|l| l.index);
        conn.exec_drop(
            position::UPDATE_POSITION,
            (
                last.index,
                last.leader_id.term,
                last.leader_id.node_id,
                membership,
                self.ids.json(),
                previous,
            ),
        )
        .await
        .map_err(Step::Transient)?;
        if conn.affected_rows() == 1 {
            return Ok(());
        }
        self.position = None;
        Err(Step::Transient(mysql_async::Error::Other(
            format!(
                "the applied position in `_wolfscale` is no longer {previous:?}; re-reading it before applying entry {}",
                last.index
            )
            .into(),
        )))
    }

    /// Refuses to apply `lsn` when the stored position is not `lsn - 1`: MariaDB lost
    /// committed transactions underneath the applier (a restored dump, or a MariaDB crash
    /// with `innodb_flush_log_at_trx_commit = 2`), and applying on would skip them. The node
    /// stops; on restart it re-applies from the log starting at the stored position.
    fn no_gap(&self, lsn: u64) -> Result<(), Step> {
        let applied = self.cached()?.applied.map(|l| l.index);
        match applied {
            Some(a) if lsn > a + 1 => Err(Step::Fatal(ApplyError(format!(
                "MariaDB's applied position is {a} but the next entry to apply is {lsn}: \
                 MariaDB lost committed transactions underneath WolfScale (restored from an \
                 older copy, or crashed with innodb_flush_log_at_trx_commit = 2); restart the \
                 node so it re-applies entries {}..{} from its log",
                a + 1,
                lsn - 1
            )))),
            _ => Ok(()),
        }
    }

    fn committed(&mut self, last: LogId, membership: StoredMembership, entries: usize) {
        self.ids.commit();
        self.position = Some(Position {
            applied: Some(last),
            membership,
            ddl_in_flight: None,
        });
        self.status.set_applied(Some(last.index));
        self.status.committed(entries as u64);
    }

    async fn set_timestamp(&mut self, conn: &mut Conn, timestamp_us: u64) -> Result<(), Step> {
        if self.session_ts != Some(timestamp_us) {
            run(conn, &sql::set_timestamp(timestamp_us)).await?;
            self.session_ts = Some(timestamp_us);
        }
        Ok(())
    }

    /// The writer connection, opening one from the pool if needed.
    async fn take_conn(&mut self) -> Result<Conn, Step> {
        if let Some(conn) = self.conn.take() {
            return Ok(conn);
        }
        self.session_ts = None;
        let mut conn = tokio::time::timeout(self.connect_timeout, self.pool.get_conn())
            .await
            .map_err(|_| Step::Transient(timed_out("connecting to MariaDB", self.connect_timeout)))?
            .map_err(Step::Transient)?;
        conn.query_drop(sql::session::APPLIER_SESSION)
            .await
            .map_err(Step::Transient)?;
        Ok(conn)
    }

    /// Reads `_wolfscale` into the cache, creating the table and its row if missing.
    pub(super) async fn load_position(&mut self) -> Result<(), Step> {
        let mut conn = self.take_conn().await?;
        let read = async {
            conn.query_drop(position::CREATE_POSITION_TABLE).await?;
            conn.query_drop(position::ADD_AUTOINC_COLUMN).await?;
            conn.query_drop(position::INSERT_POSITION_ROW).await?;
            let row = conn
                .query_first::<StoredRow, _>(position::SELECT_POSITION)
                .await?;
            // Autocommit is off: commit the row if it was just inserted, and end the read
            // rather than hold its snapshot until the next group.
            conn.query_drop(position::COMMIT).await?;
            Ok::<_, mysql_async::Error>(row)
        }
        .await;
        let (index, term, node, membership, ddl, autoinc) = match read {
            Ok(Some(row)) => row,
            Ok(None) => {
                return Err(Step::Fatal(ApplyError(
                    "`_wolfscale` has no row id = 1 right after inserting it".into(),
                )))
            }
            Err(e) => return Err(Step::Transient(e)),
        };
        let p = parse_position((index, term, node, membership, ddl))
            .map_err(|e| Step::Fatal(ApplyError(e)))?;
        let stored = counters::parse(autoinc.as_deref()).map_err(|e| Step::Fatal(ApplyError(e)))?;
        // Whatever ran since the stored position was rolled back, counters included.
        self.ids.load(stored);
        self.merge.forget();
        self.conn = Some(conn);
        self.status.set_applied(p.applied.map(|l| l.index));
        self.position = Some(p);
        Ok(())
    }

    pub(super) async fn transient(&mut self, e: &mysql_async::Error, log_index: Option<u64>) {
        // The connection may be half-way through a transaction or dead: start afresh and
        // trust only what `_wolfscale` says.
        self.conn = None;
        self.session_ts = None;
        self.position = None;
        let error = e.to_string();
        tracing::warn!(log_index, error = %error, "mariadb apply failed, retrying (degraded)");
        self.status.degraded(error);
    }

    pub(super) fn recovered(&mut self) {
        if self.status.recovered() {
            tracing::info!(
                applied_lsn = self.status.applied_lsn(),
                "mariadb apply recovered"
            );
        }
    }
}

/// `_wolfscale`'s row as stored: the position fields, then the AUTO_INCREMENT counters.
type StoredRow = (
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<String>,
    Option<u64>,
    Option<String>,
);

/// `_wolfscale`'s position fields: index, term, node, membership JSON, DDL in flight.
type PositionRow = (
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<String>,
    Option<u64>,
);

fn parse_position((index, term, node, membership, ddl): PositionRow) -> Result<Position, String> {
    let applied = match (index, term, node) {
        (None, _, _) => None,
        (Some(index), Some(term), Some(node)) => Some(openraft::LogId::new(
            openraft::CommittedLeaderId::new(term, node),
            index,
        )),
        (Some(index), _, _) => {
            return Err(format!(
                "applied_index {index} has no applied_term or applied_node"
            ))
        }
    };
    let membership = match membership {
        None => StoredMembership::default(),
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| format!("membership is not valid JSON of a membership: {e}"))?,
    };
    Ok(Position {
        applied,
        membership,
        ddl_in_flight: ddl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_rows_parse() {
        let empty = parse_position((None, None, None, None, None)).expect("empty");
        assert_eq!(empty.applied, None);
        assert_eq!(empty.membership, StoredMembership::default());
        let p = parse_position((Some(9), Some(3), Some(2), None, Some(10))).expect("valid");
        let l = p.applied.expect("set");
        assert_eq!((l.index, l.leader_id.term, l.leader_id.node_id), (9, 3, 2));
        assert_eq!(p.ddl_in_flight, Some(10));
        assert!(parse_position((Some(9), None, Some(2), None, None)).is_err());
        assert!(parse_position((Some(9), Some(1), Some(2), Some("{".into()), None)).is_err());
    }

    #[test]
    fn membership_json_round_trips() {
        let mut nodes = std::collections::BTreeMap::new();
        nodes.insert(
            1u64,
            NodeInfo {
                name: "n1".into(),
                cluster_addr: "127.0.0.1:7001".into(),
                api_addr: "127.0.0.1:8001".into(),
                ..NodeInfo::default()
            },
        );
        let m = Membership::new(vec![std::collections::BTreeSet::from([1u64])], nodes);
        let log_id = openraft::LogId::new(openraft::CommittedLeaderId::new(2, 1), 7);
        let sm = StoredMembership::new(Some(log_id), m);
        let json = membership_json(&sm).ok().expect("encodes");
        let back = parse_position((Some(7), Some(2), Some(1), Some(json), None)).expect("parses");
        assert_eq!(back.membership, sm);
    }

    #[test]
    fn server_errors_are_classified() {
        let e = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1062,
            message: "Duplicate entry".into(),
            state: "23000".into(),
        });
        match classify(e, 3) {
            StmtError::Deterministic(f) => {
                assert_eq!(
                    (f.statement, f.code, f.class),
                    (3, 1062, FailureClass::Conflict)
                )
            }
            StmtError::Transient(_) => panic!("1062 is deterministic"),
        }
        let e = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1213,
            message: "Deadlock".into(),
            state: "40001".into(),
        });
        assert!(matches!(classify(e, 0), StmtError::Transient(_)));
        assert!(matches!(
            classify(timed_out("x", Duration::from_secs(1)), 0),
            StmtError::Transient(_)
        ));
    }
}
