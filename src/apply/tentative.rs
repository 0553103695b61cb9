//! Interactive transactions of the MySQL front end, run for real on this node's MariaDB
//! while the client works (see `proxy::txn`): each one holds a connection with an open
//! transaction, so the client sees its own writes, generated ids and row counts. Nothing
//! of it ever commits here — at COMMIT it is rolled back and its statements go through the
//! log as one certified entry (`apply::certify`).
//!
//! Such a transaction holds row and metadata locks the applier may need. Replication has
//! priority: when the applier waits for a lock (its session gives up after a second) or
//! is about to run a schema change, it kills the connections of the open transactions
//! here, which rolls them back and frees their locks; their clients get error 1213 at
//! their next statement and retry, as after any deadlock. Each statement of such a
//! transaction holds the DDL gate for reading, so a schema change and the counters read
//! right after it (`apply::ids`) never interleave with one.

use super::read::{self, Protocol, QueryError, RawRows, ReadLimits};
use crate::command::Value;
use crate::sql::{self, session};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Pool, PoolConstraints, PoolOpts};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::RwLock;

/// How long opening a transaction's connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The open local transactions of this node, shared by the front end and the applier.
#[derive(Debug)]
pub struct Tentatives {
    pool: Pool,
    opts: Opts,
    gate: Arc<RwLock<()>>,
    open: Mutex<HashMap<u64, Open>>,
    next: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    connection: u32,
    /// It wrote or read with a locking clause: it may hold row locks.
    locks: bool,
    /// Killed to free its locks for the applier.
    killed: bool,
}

impl Tentatives {
    /// At most `limit` transactions open at once, on connections made with `opts`.
    pub(super) fn new(opts: &Opts, limit: usize, gate: Arc<RwLock<()>>) -> Arc<Tentatives> {
        let limit = limit.max(1);
        let pool_opts: Opts =
            mysql_async::OptsBuilder::from_opts(opts.clone())
                .pool_opts(PoolOpts::default().with_constraints(
                    PoolConstraints::new(0, limit).expect("0 <= max and max >= 1"),
                ))
                .into();
        Arc::new(Tentatives {
            pool: Pool::new(pool_opts),
            opts: opts.clone(),
            gate,
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Open>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many local transactions are open.
    pub fn open_count(&self) -> usize {
        self.lock().len()
    }

    /// Opens a local transaction whose statements run under `SET timestamp =
    /// timestamp_us` (so NOW() is what every node replays), reading one consistent
    /// snapshot; `read_only` for `START TRANSACTION READ ONLY`.
    ///
    /// # Errors
    /// MariaDB unavailable or too many open transactions (the connection wait timed out).
    pub async fn begin(
        self: &Arc<Self>,
        read_only: bool,
        timestamp_us: u64,
        statement_time: Duration,
    ) -> Result<LocalTxn, QueryError> {
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, self.pool.get_conn())
            .await
            .map_err(|_| {
                QueryError::Unavailable(
                    "no connection for a new transaction within 10 s (too many open transactions on this node)".into(),
                )
            })??;
        conn.query_drop(sql::set_timestamp(timestamp_us)).await?;
        conn.query_drop(session::max_statement_time(statement_time))
            .await?;
        conn.query_drop(if read_only {
            session::BEGIN_LOCAL_READ_ONLY
        } else {
            session::BEGIN_LOCAL
        })
        .await?;
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(
            key,
            Open {
                connection: conn.id(),
                locks: false,
                killed: false,
            },
        );
        Ok(LocalTxn {
            conn: Some(conn),
            key,
            registry: self.clone(),
        })
    }

    /// Kills the connections of the open transactions (only those that may hold row
    /// locks with `locks_only`), rolling them back; returns how many were killed now or
    /// before and are still open (their rollback may still be running).
    pub(super) async fn kill(&self, locks_only: bool) -> usize {
        let (victims, before): (Vec<u32>, usize) = {
            let mut open = self.lock();
            let before = open
                .values()
                .filter(|o| o.killed && (o.locks || !locks_only))
                .count();
            let victims = open
                .values_mut()
                .filter(|o| !o.killed && (o.locks || !locks_only))
                .map(|o| {
                    o.killed = true;
                    o.connection
                })
                .collect();
            (victims, before)
        };
        if victims.is_empty() {
            return before;
        }
        let kill = async {
            let mut killer = Conn::new(self.opts.clone()).await?;
            for id in &victims {
                // Gone already (the client ended it): nothing left to free.
                if let Err(e) = killer.query_drop(session::kill_connection(*id)).await {
                    tracing::debug!(connection = id, error = %e, "local transaction not killed");
                }
            }
            killer.disconnect().await
        };
        match tokio::time::timeout(Duration::from_secs(10), kill).await {
            Ok(Ok(())) => {
                tracing::info!(
                    transactions = victims.len(),
                    "local transactions rolled back to free their locks for the applier"
                );
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot kill local transactions"),
            Err(_) => tracing::warn!("killing local transactions timed out"),
        }
        victims.len() + before
    }
}

/// One open local transaction (see the module docs). Dropped without
/// [`LocalTxn::finish`], it is rolled back in the background.
#[derive(Debug)]
pub struct LocalTxn {
    conn: Option<Conn>,
    key: u64,
    registry: Arc<Tentatives>,
}

impl LocalTxn {
    fn conn(&mut self) -> Result<&mut Conn, QueryError> {
        self.conn
            .as_mut()
            .ok_or_else(|| QueryError::Unavailable("the transaction has ended".into()))
    }

    /// MariaDB's thread id of the transaction's connection (what `KILL QUERY` names), while
    /// it is open.
    pub fn connection_id(&self) -> Option<u32> {
        self.conn.as_ref().map(Conn::id)
    }

    /// Whether the applier killed this transaction to free its locks.
    pub fn killed(&self) -> bool {
        self.registry
            .lock()
            .get(&self.key)
            .is_some_and(|o| o.killed)
    }

    fn may_lock(&self) {
        if let Some(o) = self.registry.lock().get_mut(&self.key) {
            o.locks = true;
        }
    }

    /// Runs one read (already checked by the caller) and returns its rows as MariaDB sent
    /// them; `locking` for `FOR UPDATE` / `LOCK IN SHARE MODE`.
    ///
    /// # Errors
    /// MariaDB's error, a lost connection, or an answer over `limits`.
    pub async fn read(
        &mut self,
        text: &str,
        params: &[Value],
        protocol: Protocol,
        limits: ReadLimits,
        locking: bool,
    ) -> Result<RawRows, QueryError> {
        if locking {
            self.may_lock();
        }
        let gate = self.registry.gate.clone();
        let _turn = gate.read().await;
        let params: Vec<mysql_async::Value> = params.iter().map(crate::command::to_mysql).collect();
        let (protocol, params) = if params.is_empty() {
            (protocol, mysql_async::Params::Empty)
        } else {
            (Protocol::Binary, mysql_async::Params::Positional(params))
        };
        read::read(self.conn()?, text, params, limits, protocol).await
    }

    /// Runs one write (already checked by the caller): `(affected rows, generated id)`.
    ///
    /// # Errors
    /// MariaDB's error or a lost connection.
    pub async fn write(
        &mut self,
        text: &str,
        params: &[Value],
    ) -> Result<(u64, u64), mysql_async::Error> {
        self.may_lock();
        let gate = self.registry.gate.clone();
        let _turn = gate.read().await;
        let params: Vec<mysql_async::Value> = params.iter().map(crate::command::to_mysql).collect();
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| mysql_async::Error::Other("the transaction has ended".into()))?;
        conn.exec_drop(text, params).await?;
        Ok((conn.affected_rows(), conn.last_insert_id().unwrap_or(0)))
    }

    /// Runs a savepoint statement (`SAVEPOINT x`, `ROLLBACK TO x`, `RELEASE SAVEPOINT x`).
    ///
    /// # Errors
    /// MariaDB's error (an unknown savepoint) or a lost connection.
    pub async fn savepoint(&mut self, text: &str) -> Result<(), mysql_async::Error> {
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| mysql_async::Error::Other("the transaction has ended".into()))?;
        conn.query_drop(text).await
    }

    /// Ends the local transaction: nothing of it stays (a read-only one has nothing to
    /// keep; a writing one goes to the log instead).
    pub async fn finish(mut self) {
        if let Some(mut conn) = self.conn.take() {
            if conn.query_drop(sql::position::ROLLBACK).await.is_err() {
                // A broken connection: closing it ends the transaction on the server.
                drop(conn.disconnect().await);
            }
        }
    }
}

impl Drop for LocalTxn {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.key);
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(async move {
            if conn.query_drop(sql::position::ROLLBACK).await.is_err() {
                drop(conn.disconnect().await);
            }
        });
    }
}
