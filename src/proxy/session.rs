//! One client connection of the MySQL front end: its login, its session state
//! (read-your-writes LSN, consistency, transaction, autocommit) and what each command
//! does. Reads go to [`Service::read_raw`], writes and schema changes to
//! [`Service::write`] exactly as `/write/sql` and `/write/ddl` send them.

use super::params;
use super::sessions::{Interrupt, Registered, Watch};
use super::statement::{classify, Action, SessionValue};
use super::txn::{Commit, Opening, Transaction};
use super::variables::{self, Effect};
use super::wire::{self, Cell, MyError};
use super::Shared;
use crate::command::{DdlRequest, Input, SqlRequest, SqlStatementRequest, Wait, WriteRequest};
use crate::service::{Consistency, Protocol, RawRows, ReadRequest, Service, WriteOutcome};
use async_trait::async_trait;
use opensrv_mysql::{
    AsyncMysqlShim, Column, ColumnType, InitWriter, OkResponse, ParamParser, QueryResultWriter,
    StatementMetaWriter, StatusFlags,
};
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWrite;
use tokio_util::sync::CancellationToken;

/// How long one read may wait and run.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Statements above this are checked on a blocking thread, as the HTTP API does.
const INLINE_CHECK_BYTES: usize = 64 << 10;
/// Most prepared statements one connection may hold.
const MAX_PREPARED: usize = 16_384;

/// A prepared statement: what it is and how many values it takes.
struct Prepared {
    action: Action,
    params: usize,
}

/// One connection's state.
pub struct Session {
    service: Service,
    shared: Arc<Shared>,
    id: u32,
    /// This connection among the front end's live ones (for `KILL`).
    registered: Registered,
    scramble: [u8; 20],
    /// The LSN of this connection's last write: its next read waits for it here.
    last_lsn: Option<u64>,
    /// The first id this connection's last insert generated (`LAST_INSERT_ID()`).
    last_insert_id: u64,
    /// How fresh reads must be (`SET @@wolfscale_consistency`).
    consistency: Consistency,
    /// `SET sql_mode`: reads run under it; writes are refused while it is set.
    sql_mode: Option<String>,
    autocommit: bool,
    txn: Option<Transaction>,
    /// The last statement's error, for SHOW WARNINGS.
    last_error: Option<MyError>,
    user_vars: HashMap<String, String>,
    prepared: HashMap<u32, Prepared>,
    next_stmt: u32,
    /// `[tls]` is set and the client did not switch to TLS: its login is refused.
    plaintext_refused: bool,
    /// `KILL CONNECTION` of itself: the connection ends after its answer (1927).
    killed_itself: bool,
}

impl Session {
    pub(super) fn new(service: Service, shared: Arc<Shared>, id: u32) -> Session {
        let registered = shared.sessions.register(id);
        let mut scramble = [0u8; 20];
        for b in &mut scramble {
            // Printable, never NUL or '$' (some clients stop at either).
            *b = rand::random::<u8>() % 94 + 33;
            if *b == b'$' {
                *b = b'%';
            }
        }
        Session {
            service,
            shared,
            id,
            registered,
            scramble,
            last_lsn: None,
            last_insert_id: 0,
            consistency: Consistency::None,
            sql_mode: None,
            autocommit: true,
            txn: None,
            last_error: None,
            user_vars: HashMap::new(),
            prepared: HashMap::new(),
            next_stmt: 1,
            plaintext_refused: false,
            killed_itself: false,
        }
    }

    /// Refuses this connection's login: `[tls]` is set and the client stayed in plain text.
    pub(super) fn refuse_plaintext(&mut self) {
        self.plaintext_refused = true;
    }

    /// Cancelled when `KILL CONNECTION` ends this connection.
    pub(super) fn closed(&self) -> CancellationToken {
        self.registered.entry().closed()
    }

    /// The server status flags a client reads after each statement: autocommit, and
    /// whether a transaction is open (read-only or not), as MariaDB sets them.
    fn status(&self) -> StatusFlags {
        let mut s = StatusFlags::empty();
        if self.autocommit {
            s |= StatusFlags::SERVER_STATUS_AUTOCOMMIT;
        }
        if let Some(txn) = &self.txn {
            s |= StatusFlags::SERVER_STATUS_IN_TRANS;
            if txn.read_only {
                s |= StatusFlags::SERVER_STATUS_IN_TRANS_READONLY;
            }
        }
        s
    }

    fn ok(&self, affected_rows: u64, last_insert_id: u64) -> OkResponse {
        OkResponse {
            affected_rows,
            last_insert_id,
            status_flags: self.status(),
            ..Default::default()
        }
    }

    /// Runs one classified statement with its bound values and answers it.
    async fn run<'b, W: AsyncWrite + Send + Unpin>(
        &mut self,
        action: Action,
        values: Vec<Input>,
        protocol: Protocol,
        mut results: QueryResultWriter<'b, W>,
    ) -> io::Result<()> {
        let (action, max_time) = match action {
            Action::Limited { max_time, inner } => (*inner, max_time),
            other => (other, None),
        };
        let kind = kind_label(&action);
        let statement = Statement {
            token: self.registered.entry().start(),
            deadline: max_time.map(|t| Instant::now() + t),
        };
        let answer = self.answer(action, values, protocol, &statement).await;
        self.registered.entry().finish();
        crate::observe::metrics::proxy_statement(kind, answer.is_ok());
        results.set_status(self.status());
        match answer {
            Ok(Answer::Ok {
                affected_rows,
                last_insert_id,
            }) => {
                self.last_error = None;
                if last_insert_id > 0 {
                    self.last_insert_id = last_insert_id;
                }
                results
                    .completed(self.ok(affected_rows, last_insert_id))
                    .await
            }
            Ok(Answer::Rows(rows)) => {
                self.last_error = None;
                send_rows(results, &rows, self.ok(0, 0)).await
            }
            Ok(Answer::Value(value, label)) => {
                self.last_error = None;
                let (value, ty) = match value {
                    SessionValue::LastInsertId => {
                        (self.last_insert_id, ColumnType::MYSQL_TYPE_LONGLONG)
                    }
                    SessionValue::ConnectionId => (u64::from(self.id), ColumnType::MYSQL_TYPE_LONG),
                };
                send_value(results, wire::integer_column(&label, ty), value).await
            }
            Ok(Answer::Warnings) => {
                let rows = self.warnings();
                self.last_error = None;
                send_text_rows(results, &["Level", "Code", "Message"], rows).await
            }
            Err(e) => {
                let sent = results
                    .error_code(e.code, &e.sqlstate, e.message.as_bytes())
                    .await;
                self.last_error = Some(e);
                if self.killed_itself {
                    // This connection killed itself: as MariaDB, it ends after the error.
                    sent?;
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the connection was killed",
                    ));
                }
                sent
            }
        }
    }

    /// How the statement under way can be interrupted.
    fn watch<'a>(registered: &'a Registered, statement: &Statement) -> Watch<'a> {
        Watch {
            entry: registered.entry(),
            token: statement.token.clone(),
            deadline: statement.deadline,
            killer: registered.sessions().killer(),
        }
    }

    /// `KILL [QUERY | CONNECTION] id` of a connection of this front end, as MariaDB
    /// answers it: only the same user may kill a connection (1095), an unknown id is
    /// 1094; killing this connection's own query is 1317, its own connection 1927.
    async fn kill(&mut self, connection: bool, id: u32) -> Result<Answer, MyError> {
        let sessions = self.registered.sessions().clone();
        let Some(target) = sessions.get(id) else {
            return Err(MyError::new(1094, format!("Unknown thread id: {id}")));
        };
        let me = self.registered.entry().user();
        if me.is_none() || target.user() != me {
            return Err(MyError::new(
                1095,
                format!("You are not owner of thread {id}"),
            ));
        }
        if id == self.id {
            if !connection {
                return Err(Interrupt::Killed.error());
            }
            self.killed_itself = true;
            return Err(MyError::new(1927, "Connection was killed"));
        }
        // The connection is closed before its statement is interrupted, so its client
        // never gets the statement's 1317 (the connection task prefers the close).
        if connection {
            target.close();
        }
        if let Some(thread) = target.interrupt(Interrupt::Killed) {
            sessions.killer().kill_query(thread).await;
        }
        tracing::info!(
            connection = self.id,
            target = id,
            what = if connection { "connection" } else { "query" },
            "mysql kill"
        );
        Ok(Answer::done())
    }

    async fn answer(
        &mut self,
        action: Action,
        values: Vec<Input>,
        protocol: Protocol,
        statement: &Statement,
    ) -> Result<Answer, MyError> {
        if let Action::Read(sql) = &action {
            if let Some((value, label)) = super::statement::session_value_query(sql) {
                if values.is_empty() {
                    return Ok(Answer::Value(value, label));
                }
            }
        }
        match action {
            Action::Read(sql) if self.in_transaction() => {
                let opening = self.opening();
                let watch = Self::watch(&self.registered, statement);
                let txn = self.txn.get_or_insert_with(|| Transaction::begin(false));
                let rows = txn
                    .read(&self.service, opening, &sql, values, protocol, &watch)
                    .await?;
                Ok(Answer::Rows(rows))
            }
            Action::Read(sql) => self.read(sql, values, protocol, statement).await,
            Action::Write(sql) if self.in_transaction() => {
                if let Some(mode) = &self.sql_mode {
                    return Err(sql_mode_refusal(mode));
                }
                let opening = self.opening();
                let watch = Self::watch(&self.registered, statement);
                let txn = self.txn.get_or_insert_with(|| Transaction::begin(false));
                let (affected_rows, last_insert_id) = txn
                    .write(&self.service, opening, &sql, values, &watch)
                    .await?;
                Ok(Answer::Ok {
                    affected_rows,
                    last_insert_id,
                })
            }
            Action::Write(sql) => {
                let request = WriteRequest::Sql(SqlRequest {
                    statements: vec![SqlStatementRequest {
                        sql,
                        params: values,
                    }],
                    transaction: false,
                    wait: Wait::Quorum,
                });
                self.write(request).await
            }
            Action::Ddl(ddl) => {
                if !values.is_empty() {
                    return Err(MyError::refused(
                        "a schema change takes no `?` parameters".to_string(),
                    ));
                }
                // As in MariaDB, a schema change ends the open transaction (which read only).
                if let Some(txn) = &self.txn {
                    txn.before_ddl()?;
                }
                if let Some(txn) = self.txn.take() {
                    txn.rollback().await;
                }
                self.write(WriteRequest::Ddl(DdlRequest {
                    ddl,
                    wait: Wait::Quorum,
                }))
                .await
            }
            Action::Begin { read_only } => {
                // As in MariaDB, BEGIN commits an open transaction first.
                self.commit().await?;
                self.txn = Some(Transaction::begin(read_only));
                Ok(Answer::done())
            }
            Action::Commit => self.commit().await,
            Action::Rollback => {
                if let Some(txn) = self.txn.take() {
                    txn.rollback().await;
                }
                Ok(Answer::done())
            }
            Action::Set(assignments) => {
                let effects = variables::apply(&assignments, &self.user_vars)?;
                for effect in effects {
                    match effect {
                        Effect::Autocommit(on) => {
                            if on && !self.autocommit {
                                // SET autocommit=1 commits an open transaction.
                                self.commit().await?;
                            }
                            self.autocommit = on;
                        }
                        Effect::Consistency(c) => self.consistency = c,
                        Effect::SqlMode(m) => self.sql_mode = m,
                        Effect::UserVar(name, value) => {
                            self.user_vars.insert(name, value);
                        }
                        Effect::None => {}
                    }
                }
                Ok(Answer::done())
            }
            Action::Savepoint(sql) if self.in_transaction() => {
                let opening = self.opening();
                let watch = Self::watch(&self.registered, statement);
                let txn = self.txn.get_or_insert_with(|| Transaction::begin(false));
                txn.savepoint(&self.service, opening, &sql, &watch).await?;
                Ok(Answer::done())
            }
            // Outside a transaction MariaDB accepts a savepoint and keeps nothing.
            Action::Savepoint(_) => Ok(Answer::done()),
            Action::Use(db) => self.use_db(&db).map(|()| Answer::done()),
            Action::ShowWarnings => Ok(Answer::Warnings),
            Action::Kill { connection, id } => self.kill(connection, id).await,
            // `run` takes the limit off first; a nested one is never classified.
            Action::Limited { inner, .. } => Err(MyError::unsupported(format!(
                "nested SET STATEMENT is not supported: {inner:?}"
            ))),
            Action::Empty => Ok(Answer::done()),
            Action::Refuse(e) => Err(e),
        }
    }

    /// Whether a statement now runs inside a transaction: one is open, or autocommit is
    /// off (the statement opens one).
    fn in_transaction(&self) -> bool {
        self.txn.is_some() || !self.autocommit
    }

    fn opening(&self) -> Opening {
        Opening {
            min_lsn: self.last_lsn,
            consistency: self.consistency,
            max_duration: self.shared.max_transaction,
        }
    }

    /// COMMIT: a transaction that wrote goes through the log, certified; one that only
    /// read ends here.
    async fn commit(&mut self) -> Result<Answer, MyError> {
        let Some(txn) = self.txn.take() else {
            return Ok(Answer::done());
        };
        match txn.commit().await? {
            Commit::Local => Ok(Answer::done()),
            Commit::Certify(request) => {
                let started = Instant::now();
                let outcome = self.service.write(WriteRequest::Certified(request)).await;
                let result = outcome.as_ref().map(|_| ()).map_err(|e| e.code());
                crate::observe::metrics::write_done("mysql", result, started.elapsed());
                let outcome = outcome.map_err(|e| wire::service_error(&e, true))?;
                self.last_lsn = Some(self.last_lsn.map_or(outcome.lsn, |l| l.max(outcome.lsn)));
                Ok(Answer::done())
            }
        }
    }

    /// A read outside a transaction, on the read pool: a `KILL QUERY` or its
    /// `max_statement_time` drops it, which stops it on MariaDB.
    async fn read(
        &mut self,
        sql: String,
        values: Vec<Input>,
        protocol: Protocol,
        statement: &Statement,
    ) -> Result<Answer, MyError> {
        let params = params::bind_read(values)?;
        let request = ReadRequest {
            sql,
            params,
            consistency: self.consistency,
            min_lsn: self.last_lsn,
            sql_mode: self.sql_mode.clone(),
            timeout: READ_TIMEOUT,
        };
        let watch = Self::watch(&self.registered, statement);
        let rows = watch
            .droppable(self.service.read_raw(request, protocol))
            .await
            .map_err(Interrupt::error)?
            .map_err(|e| wire::service_error(&e, false))?;
        Ok(Answer::Rows(rows))
    }

    async fn write(&mut self, request: WriteRequest) -> Result<Answer, MyError> {
        if let Some(mode) = &self.sql_mode {
            return Err(sql_mode_refusal(mode));
        }
        let size = match &request {
            WriteRequest::Sql(r) => r.statements.iter().map(|s| s.sql.len()).sum(),
            WriteRequest::Ddl(r) => r.ddl.len(),
            _ => 0,
        };
        let request = if size > INLINE_CHECK_BYTES {
            tokio::task::spawn_blocking(move || {
                crate::service::check_write(&request).map(|()| request)
            })
            .await
            .map_err(|e| MyError::new(1105, format!("WolfScale: check task failed: {e}")))?
        } else {
            crate::service::check_write(&request).map(|()| request)
        }
        .map_err(|e| wire::service_error(&e, true))?;
        let started = Instant::now();
        let outcome = self.service.write(request).await;
        let result = outcome.as_ref().map(|_| ()).map_err(|e| e.code());
        crate::observe::metrics::write_done("mysql", result, started.elapsed());
        let outcome = outcome.map_err(|e| wire::service_error(&e, true))?;
        self.last_lsn = Some(self.last_lsn.map_or(outcome.lsn, |l| l.max(outcome.lsn)));
        statement_answer(&outcome)
    }

    fn use_db(&self, db: &str) -> Result<(), MyError> {
        let ours = &self.service.node().config().database.database;
        if db == ours {
            Ok(())
        } else {
            Err(MyError::new(
                1044,
                format!(
                    "WolfScale's MySQL front end serves only the replicated database `{ours}`, \
                     not `{db}`"
                ),
            ))
        }
    }

    fn warnings(&self) -> Vec<Vec<String>> {
        self.last_error
            .iter()
            .map(|e| vec!["Error".to_string(), e.code.to_string(), e.message.clone()])
            .collect()
    }
}

/// Why a write is refused while the session has its own `sql_mode`.
fn sql_mode_refusal(mode: &str) -> MyError {
    MyError::unsupported(format!(
        "this session set sql_mode = '{mode}', which WolfScale does not carry into its log \
         (every node applies writes under the cluster's sql_mode): nothing was written; SET \
         sql_mode = DEFAULT to write again"
    ))
}

/// What a statement answers, before it is put on the wire.
enum Answer {
    Ok {
        affected_rows: u64,
        last_insert_id: u64,
    },
    Rows(RawRows),
    Warnings,
    /// `SELECT LAST_INSERT_ID()` or `SELECT CONNECTION_ID()`, answered from this
    /// connection (MariaDB's own would be another connection's); the column label.
    Value(SessionValue, String),
}

/// The statement under way: what interrupts it.
struct Statement {
    /// Cancelled by `KILL QUERY`.
    token: CancellationToken,
    /// Its `SET STATEMENT max_statement_time`, from its start.
    deadline: Option<Instant>,
}

impl Answer {
    fn done() -> Answer {
        Answer::Ok {
            affected_rows: 0,
            last_insert_id: 0,
        }
    }
}

/// A single write's result: the statement's own outcome (a failed statement of a batch
/// is its MariaDB error), or the entry's for a schema change.
fn statement_answer(outcome: &WriteOutcome) -> Result<Answer, MyError> {
    match outcome.statements.first() {
        Some(Ok(done)) => Ok(Answer::Ok {
            affected_rows: done.affected_rows,
            last_insert_id: done.last_insert_id,
        }),
        Some(Err(db)) => Err(MyError::new(db.code, db.message.clone())),
        None => Ok(Answer::Ok {
            affected_rows: outcome.affected_rows,
            last_insert_id: outcome.last_insert_id,
        }),
    }
}

fn kind_label(action: &Action) -> &'static str {
    match action {
        Action::Read(_) | Action::ShowWarnings | Action::Limited { .. } => "read",
        Action::Write(_) => "write",
        Action::Ddl(_) => "ddl",
        Action::Refuse(_) => "refused",
        _ => "session",
    }
}

/// Relays MariaDB's result set (`ok` when it has no columns).
async fn send_rows<W: AsyncWrite + Send + Unpin>(
    results: QueryResultWriter<'_, W>,
    rows: &RawRows,
    ok: OkResponse,
) -> io::Result<()> {
    if rows.columns.is_empty() {
        return results.completed(ok).await;
    }
    let columns: Vec<Column> = rows.columns.iter().map(wire::column).collect();
    send(results, &columns, rows).await
}

async fn send<'b, W: AsyncWrite + Send + Unpin>(
    results: QueryResultWriter<'b, W>,
    columns: &'b [Column],
    rows: &RawRows,
) -> io::Result<()> {
    let mut w = results.start(columns).await?;
    for row in &rows.rows {
        w.write_row(row.iter().cloned().map(Cell)).await?;
    }
    w.finish().await
}

/// A one-value result the front end makes up.
async fn send_value<W: AsyncWrite + Send + Unpin>(
    results: QueryResultWriter<'_, W>,
    column: Column,
    value: u64,
) -> io::Result<()> {
    let columns = [column];
    let raw = RawRows {
        columns: Vec::new(),
        rows: vec![vec![mysql_async::Value::UInt(value)]],
    };
    send(results, &columns, &raw).await
}

/// A result the front end makes up: text columns.
async fn send_text_rows<W: AsyncWrite + Send + Unpin>(
    results: QueryResultWriter<'_, W>,
    names: &[&str],
    rows: Vec<Vec<String>>,
) -> io::Result<()> {
    let columns: Vec<Column> = names.iter().map(|n| wire::text_column(n)).collect();
    let raw = RawRows {
        columns: Vec::new(),
        rows: rows
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|v| mysql_async::Value::Bytes(v.into_bytes()))
                    .collect()
            })
            .collect(),
    };
    send(results, &columns, &raw).await
}

#[async_trait]
impl<W: AsyncWrite + Send + Unpin> AsyncMysqlShim<W> for Session {
    type Error = io::Error;

    fn version(&self) -> String {
        super::SERVER_VERSION.to_string()
    }

    fn connect_id(&self) -> u32 {
        self.id
    }

    fn status_flags(&self) -> StatusFlags {
        self.status()
    }

    fn salt(&self) -> [u8; 20] {
        self.scramble
    }

    async fn authenticate(
        &self,
        auth_plugin: &str,
        username: &[u8],
        salt: &[u8],
        auth_data: &[u8],
    ) -> bool {
        if self.plaintext_refused {
            crate::observe::metrics::proxy_login(false);
            tracing::info!(
                connection = self.id,
                "mysql login refused: [tls] is set and the client did not use TLS"
            );
            return false;
        }
        let ok = auth_plugin == "mysql_native_password"
            && self.shared.users.check(username, salt, auth_data);
        crate::observe::metrics::proxy_login(ok);
        if ok {
            self.registered.entry().set_user(username);
        }
        if !ok {
            tracing::info!(
                connection = self.id,
                user = %String::from_utf8_lossy(username),
                "mysql login refused"
            );
        }
        ok
    }

    async fn on_prepare<'a>(
        &'a mut self,
        query: &'a str,
        info: StatementMetaWriter<'a, W>,
    ) -> io::Result<()> {
        let action = classify(query);
        if let Action::Refuse(e) = &action {
            return info
                .error_code(e.code, &e.sqlstate, e.message.as_bytes())
                .await;
        }
        if self.prepared.len() >= MAX_PREPARED {
            let e = MyError::new(
                1461,
                format!("this connection holds {MAX_PREPARED} prepared statements; close some"),
            );
            return info
                .error_code(e.code, &e.sqlstate, e.message.as_bytes())
                .await;
        }
        // `SET STATEMENT … FOR <read>`: the read's placeholders and columns.
        let target = match &action {
            Action::Limited { inner, .. } => inner.as_ref(),
            other => other,
        };
        let count = match target {
            Action::Read(s) | Action::Write(s) | Action::Ddl(s) => crate::sql::placeholders(s),
            _ => Ok(0),
        };
        let count = match count {
            Ok(n) => n,
            Err(e) => {
                let e = MyError::refused(e.to_string());
                return info
                    .error_code(e.code, &e.sqlstate, e.message.as_bytes())
                    .await;
            }
        };
        // A read's columns as MariaDB prepares it: drivers bind their result buffers
        // from them.
        let columns: Vec<Column> = match target {
            Action::Read(sql) => match self.service.describe_read(sql, count).await {
                Ok(cols) => cols.iter().map(wire::column).collect(),
                Err(e) => {
                    let e = wire::service_error(&e, false);
                    return info
                        .error_code(e.code, &e.sqlstate, e.message.as_bytes())
                        .await;
                }
            },
            _ => Vec::new(),
        };
        let id = self.next_stmt;
        self.next_stmt = self.next_stmt.wrapping_add(1).max(1);
        self.prepared.insert(
            id,
            Prepared {
                action,
                params: count,
            },
        );
        let params: Vec<Column> = (0..count).map(|_| wire::text_column("?")).collect();
        info.reply(id, &params, &columns).await
    }

    async fn on_execute<'a>(
        &'a mut self,
        id: u32,
        params: ParamParser<'a>,
        results: QueryResultWriter<'a, W>,
    ) -> io::Result<()> {
        let Some(stmt) = self.prepared.get(&id) else {
            let e = MyError::new(1243, format!("unknown prepared statement handler ({id})"));
            return results
                .error_code(e.code, &e.sqlstate, e.message.as_bytes())
                .await;
        };
        let action = stmt.action.clone();
        let expected = stmt.params;
        let values = match params::from_wire(params, expected) {
            Ok(v) => v,
            Err(e) => {
                return results
                    .error_code(e.code, &e.sqlstate, e.message.as_bytes())
                    .await
            }
        };
        self.run(action, values, Protocol::Binary, results).await
    }

    async fn on_close<'a>(&'a mut self, stmt: u32)
    where
        W: 'async_trait,
    {
        self.prepared.remove(&stmt);
    }

    async fn on_query<'a>(
        &'a mut self,
        query: &'a str,
        results: QueryResultWriter<'a, W>,
    ) -> io::Result<()> {
        let action = classify(query);
        self.run(action, Vec::new(), Protocol::Text, results).await
    }

    async fn on_reset<'a>(&'a mut self)
    where
        W: 'async_trait,
    {
        // COM_RESET_CONNECTION / COM_CHANGE_USER: as MariaDB does, an open transaction is
        // rolled back (nothing of it reaches the log) and the session starts afresh. The
        // read-your-writes position stays: it only makes reads wait, never stale.
        if let Some(txn) = self.txn.take() {
            txn.rollback().await;
        }
        self.autocommit = true;
        self.consistency = Consistency::None;
        self.sql_mode = None;
        self.last_error = None;
        self.last_insert_id = 0;
        self.user_vars.clear();
        self.prepared.clear();
    }

    async fn on_init<'a>(&'a mut self, db: &'a str, writer: InitWriter<'a, W>) -> io::Result<()> {
        match self.use_db(db) {
            Ok(()) => writer.ok().await,
            Err(e) => {
                writer
                    .error_code(e.code, &e.sqlstate, e.message.as_bytes())
                    .await
            }
        }
    }
}
