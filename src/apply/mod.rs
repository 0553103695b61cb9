//! The MariaDB applier: applies committed log entries to the local MariaDB exactly once,
//! in order, with the same result on every node (DESIGN invariants 2, 3 and 7), and the
//! read path the API serves queries from. It owns the node's MariaDB connection pool. It
//! knows nothing of HTTP or of how entries reach it (consensus calls it through
//! [`Applier`]); all SQL text comes from [`crate::sql`].
//!
//! # Exactly once
//!
//! Table `_wolfscale` inside the replicated database holds the applied log id, the
//! membership in force and a DDL in-flight marker ([`crate::sql::position`]). It is
//! updated in the same MariaDB transaction as the entries' effects, so a crash of the
//! node or of MariaDB can neither skip nor repeat an entry, and a dump of the database
//! carries its own position: restored elsewhere, it resumes from there. Entries at or
//! below the stored position are answered [`Outcome::AlreadyApplied`] and not run.
//!
//! Because the position lives with the data and the WAL replays whatever MariaDB lost,
//! MariaDB may run with `innodb_flush_log_at_trx_commit=2`: a MariaDB crash loses the
//! last transactions *and* the position that recorded them, together, and the node
//! re-applies them from the log.
//!
//! # Group apply
//!
//! A client entry carries one or more requests (the leader batches concurrent writes; they
//! share the entry's LSN), applied in order. Consecutive non-DDL entries of one `apply`
//! call (at most [`MAX_GROUP`] requests, never splitting an entry) run in one transaction
//! that ends with the position update. Every request runs with its leader timestamp, so
//! NOW() and column defaults agree everywhere: an insert, update or delete is one prepared
//! `SET STATEMENT timestamp = ? FOR …` (one round trip per request); client SQL batches
//! and DDL run after a session `SET timestamp`, sent only when the value changes.
//!
//! A single statement that fails deterministically (duplicate key, constraint, no such
//! table) is undone by InnoDB's statement rollback, which keeps the rest of the group, and
//! becomes that entry's [`Outcome::Failed`]: no savepoint is needed for it. An
//! all-or-nothing batch (`Command::Sql { transaction: true }`) runs under a savepoint and
//! is rolled back to it; a `transaction: false` batch runs each statement on its own and
//! reports one result per statement ([`Outcome::Batch`]). Errors that may have undone more
//! than one statement (a deadlock rolls back the whole transaction) are transient: the
//! whole group is rolled back and retried (below). Replicated tables must be
//! transactional (InnoDB) for these guarantees.
//!
//! InnoDB does not give back the AUTO_INCREMENT values a rolled-back attempt (or an
//! interactive transaction of the MySQL front end) took, so the applier does not let
//! InnoDB choose them: it forces every generated value from counters of its own that
//! entries move alike on every node and that `_wolfscale` stores with each commit (see
//! `ids`): ids stay the same on every node through crashes, retries and local
//! transactions.
//!
//! DDL commits implicitly, so it applies alone: the marker "DDL in flight at index n" is
//! committed first, the DDL runs, then the position moves to n. If the node or MariaDB
//! fails in between, the re-apply runs the DDL again and counts the "already exists /
//! already gone" errors ([`crate::sql::ddl_already_applied`]) as applied. (A DDL whose
//! second run succeeds silently and changes something, such as adding an unnamed index,
//! would be applied twice; name indexes in DDL.)
//!
//! # Transient errors
//!
//! A lost connection, deadlock, lock wait timeout, full disk or unknown error code rolls
//! the current transaction back; the applier reports DEGRADED in [`ApplyStatus`] with
//! the error, waits (50 ms doubling to 5 s) and retries the same entries, forever. It
//! never skips one. The first success turns the status back to OK.

mod agreement;
pub mod certify;
pub mod check;
mod counters;
mod exec;
mod ids;
mod outcome;
mod read;
mod rows;
mod status;
pub mod tentative;

pub use agreement::{digest, digest_limit, Divergence};
pub use certify::{rows_digest, values_digest};
pub use outcome::{Failure, FailureClass, Outcome, OutcomeDecodeError, StatementOutcome};
pub use read::{Protocol, QueryError, RawRows, ReadLimits, Reader, Rows};
pub use status::{ApplyStatus, Paused, StatusSnapshot, WaitTimeout};

use crate::config::{DatabaseConfig, Secret};
use crate::consensus::state_machine::{Applier, ApplyError};
use crate::consensus::{Entry, LogId, Responses, StoredMembership};
use crate::sql::{self, position};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use std::time::Duration;

/// Most requests applied in one MariaDB transaction; longer runs are split between
/// entries (an entry with more requests than this still applies in one transaction).
pub const MAX_GROUP: usize = 1024;

/// Why the applier could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection within `database.connect_timeout_ms`.
    #[error("timed out after {after:?} connecting to MariaDB at {addr}; is it running?")]
    ConnectTimeout {
        /// host:port tried.
        addr: String,
        /// The configured timeout.
        after: Duration,
    },
    /// MariaDB refused, or creating the database or `_wolfscale` failed.
    #[error(
        "MariaDB at {addr}: {source}; check [database] in the config and the account's privileges"
    )]
    Mysql {
        /// host:port tried.
        addr: String,
        /// The driver's error.
        source: mysql_async::Error,
    },
    /// `_wolfscale` holds something this build cannot read.
    #[error("the `_wolfscale` table of database {database:?} is damaged: {reason}; restore it from a dump or rebuild the node")]
    CorruptPosition {
        /// The replicated database.
        database: String,
        /// What is wrong.
        reason: String,
    },
}

/// Backoff between retries of a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First wait.
    pub min: Duration,
    /// Longest wait (the wait doubles up to this).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(50),
            max: Duration::from_secs(5),
        }
    }
}

/// What `_wolfscale` says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    applied: Option<LogId>,
    membership: StoredMembership,
    ddl_in_flight: Option<u64>,
}

/// The production [`Applier`]: applies entries to the local MariaDB exactly once.
pub struct MariaDbApplier {
    pool: Pool,
    /// Client reads' own pool (at most `database.pool_size` connections), so reads can
    /// never take the connections replication needs.
    read_pool: Pool,
    /// The writer's own connection, held between calls; `None` after a failure.
    conn: Option<Conn>,
    /// The `SET timestamp` value last sent on `conn`.
    session_ts: Option<u64>,
    /// What `_wolfscale` holds as of the last commit; `None` until read.
    position: Option<Position>,
    status: ApplyStatus,
    backoff: Backoff,
    database: String,
    addr: String,
    connect_timeout: Duration,
    /// Whether the server reported `@@wsrep_on = ON` (a Galera node) at connect.
    wsrep_on: bool,
    /// The pool's options (database selected, session setup), for snapshot connections.
    opts: mysql_async::Opts,
    /// Held for writing while a DDL entry runs (see [`crate::snapshot::Database`]).
    ddl_gate: std::sync::Arc<tokio::sync::RwLock<()>>,
    /// Snapshots taken at check barriers (see [`check`]).
    checks: check::CheckSnapshots,
    /// The AUTO_INCREMENT counters entries move (see [`ids`]).
    ids: ids::Ids,
    /// Which tables take runs of inserts as one statement (see [`rows`]).
    merge: rows::Mergeable,
    /// The MySQL front end's local transactions, killed when they block the applier.
    tentatives: std::sync::Arc<tentative::Tentatives>,
}

impl MariaDbApplier {
    /// Connects to MariaDB, creates the replicated database `cfg.database` and its
    /// `_wolfscale` table if missing, and reads the applied position. Every pooled
    /// connection runs [`sql::SESSION_SETUP`] when it opens (and after a reset).
    ///
    /// # Errors
    /// [`Error::ConnectTimeout`] or [`Error::Mysql`] when MariaDB cannot be reached or
    /// refuses; [`Error::CorruptPosition`] when `_wolfscale` cannot be read.
    pub async fn connect(cfg: &DatabaseConfig, password: Option<&Secret>) -> Result<Self, Error> {
        let addr = format!("{}:{}", cfg.host, cfg.port);
        let connect_timeout = Duration::from_millis(cfg.connect_timeout_ms);
        let base = crate::db::opts(cfg, password);
        let wrap = |source| Error::Mysql {
            addr: addr.clone(),
            source,
        };
        let mut first = tokio::time::timeout(connect_timeout, Conn::new(base.clone()))
            .await
            .map_err(|_| Error::ConnectTimeout {
                addr: addr.clone(),
                after: connect_timeout,
            })?
            .map_err(wrap)?;
        first
            .query_drop(position::create_database(&cfg.database))
            .await
            .map_err(wrap)?;
        // A server without the variable (not built with wsrep) is no Galera node.
        let wsrep_on = first
            .query_first::<String, _>(sql::GALERA_WSREP_ON)
            .await
            .ok()
            .flatten()
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("ON"));
        // A failed goodbye on a connection we are done with changes nothing.
        let _ = first.disconnect().await;
        // mysql_async runs setup commands last to first.
        let setup: Vec<&str> = sql::SESSION_SETUP.iter().rev().copied().collect();
        let opts: mysql_async::Opts = OptsBuilder::from_opts(base)
            .db_name(Some(cfg.database.clone()))
            .setup(setup)
            .into();
        let read_limit = usize::try_from(cfg.pool_size).unwrap_or(usize::MAX).max(1);
        let read_opts: mysql_async::Opts = OptsBuilder::from_opts(opts.clone())
            .pool_opts(PoolOpts::default().with_constraints(
                // min 0 ≤ max ≥ 1: always a valid pair.
                PoolConstraints::new(0, read_limit).expect("0 <= max and max >= 1"),
            ))
            .into();
        let ddl_gate: std::sync::Arc<tokio::sync::RwLock<()>> = std::sync::Arc::default();
        let mut applier = MariaDbApplier {
            tentatives: tentative::Tentatives::new(
                &opts,
                (read_limit * 4).max(64),
                ddl_gate.clone(),
            ),
            pool: Pool::new(opts.clone()),
            read_pool: Pool::new(read_opts),
            checks: check::CheckSnapshots::new(opts.clone()),
            opts,
            ddl_gate,
            ids: ids::Ids::default(),
            merge: rows::Mergeable::default(),
            conn: None,
            session_ts: None,
            position: None,
            status: ApplyStatus::new(),
            backoff: Backoff::default(),
            database: cfg.database.clone(),
            addr,
            connect_timeout,
            wsrep_on,
        };
        match applier.load_position().await {
            Ok(()) => Ok(applier),
            Err(exec::Step::Fatal(ApplyError(reason))) => Err(Error::CorruptPosition {
                database: cfg.database.clone(),
                reason,
            }),
            Err(exec::Step::Transient(e)) => Err(Error::Mysql {
                addr: applier.addr.clone(),
                source: e,
            }),
        }
    }

    /// The shared status handle (applied LSN, DEGRADED, counters).
    pub fn status(&self) -> ApplyStatus {
        self.status.clone()
    }

    /// A handle for client reads on this node's read pool (unbounded answers; see
    /// [`Reader::with_limits`]).
    pub fn reader(&self) -> Reader {
        Reader::new(
            self.read_pool.clone(),
            self.opts.clone(),
            self.tentatives.clone(),
        )
    }

    /// The snapshots this applier takes at check barriers, for the checker to read.
    pub fn checks(&self) -> check::CheckSnapshots {
        self.checks.clone()
    }

    /// Changes the retry backoff (tests use short waits).
    pub fn set_backoff(&mut self, backoff: Backoff) {
        self.backoff = backoff;
    }

    /// Whether the server reported `@@wsrep_on = ON` when the applier connected: it is
    /// a node of a Galera cluster.
    pub fn wsrep_on(&self) -> bool {
        self.wsrep_on
    }

    /// The replicated database's name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Closes the writer connection and the pool.
    ///
    /// # Errors
    /// The driver's error while saying goodbye; nothing is lost either way.
    pub async fn close(mut self) -> Result<(), mysql_async::Error> {
        if let Some(conn) = self.conn.take() {
            conn.disconnect().await?;
        }
        self.read_pool.disconnect().await?;
        self.pool.disconnect().await
    }

    /// The stored position: cached since the last commit, else read from `_wolfscale`
    /// (created if missing), retrying transient errors.
    async fn position(&mut self) -> Result<Position, ApplyError> {
        if let Some(p) = &self.position {
            return Ok(p.clone());
        }
        let mut delay = self.backoff.min;
        loop {
            match self.load_position().await {
                Ok(()) => {
                    self.recovered();
                    return Ok(self
                        .position
                        .clone()
                        .expect("load_position stores the position it read"));
                }
                Err(exec::Step::Fatal(e)) => return Err(e),
                Err(exec::Step::Transient(e)) => {
                    self.transient(&e, None).await;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.backoff.max);
                }
            }
        }
    }
}

impl Applier for MariaDbApplier {
    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), ApplyError> {
        // Always from MariaDB: a dump may have been restored underneath.
        self.position = None;
        let p = self.position().await?;
        Ok((p.applied, p.membership))
    }

    async fn apply(&mut self, entries: Vec<Entry>) -> Result<Vec<Responses>, ApplyError> {
        // A diverged node applies nothing more: its state already differs from the
        // leader's, and applying on would only spread the difference. It waits for a
        // resync (automatic unless `cluster.auto_resync = false`, else `wolfscale
        // resync`), which replaces the database while this call waits for the gate.
        let _applying = loop {
            while self.status.divergence().is_some() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let gate = self.status.applying().await;
            if self.status.divergence().is_none() {
                break gate;
            }
        };
        if self.status.take_reload() {
            // A resync loaded a snapshot: the position, the AUTO_INCREMENT counters and
            // the writer's connection (its prepared statements name replaced tables) are
            // read and opened again. Entries the snapshot covers are then AlreadyApplied.
            self.position = None;
            self.session_ts = None;
            if let Some(conn) = self.conn.take() {
                let _ = conn.disconnect().await;
            }
        }
        // A client entry answers each of its requests; others answer nothing, though they
        // have one (internal) outcome.
        let shapes: Vec<Option<usize>> = entries
            .iter()
            .map(|e| match &e.payload {
                openraft::EntryPayload::Normal(rs) if !rs.0.is_empty() => Some(rs.0.len()),
                _ => None,
            })
            .collect();
        let outcomes = self.apply_entries(entries).await?;
        let mut outcomes = outcomes.iter();
        Ok(shapes
            .into_iter()
            .map(|shape| match shape {
                Some(n) => Responses(outcomes.by_ref().take(n).map(Outcome::encode).collect()),
                None => {
                    outcomes.next();
                    Responses::default()
                }
            })
            .collect())
    }

    fn snapshot_db(&self) -> Option<crate::snapshot::Database> {
        Some(crate::snapshot::Database::new(
            self.opts.clone(),
            &self.database,
            self.connect_timeout,
            self.ddl_gate.clone(),
        ))
    }
}

impl MariaDbApplier {
    /// Like [`Applier::apply`], returning the outcomes undecoded, one per request of a
    /// client entry and one per other entry, in order (for tests and tools).
    ///
    /// # Errors
    /// [`ApplyError`] when an entry cannot be decoded or `_wolfscale` is damaged: the
    /// node must stop rather than skip the entry. Transient errors are retried inside.
    pub async fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<Vec<Outcome>, ApplyError> {
        let applied = self.position().await?.applied.map(|l| l.index);
        let mut out = Vec::with_capacity(entries.len());
        let mut todo = Vec::with_capacity(entries.len());
        // Each entry's items, as a range of `todo`: groups never split an entry.
        let mut units = Vec::with_capacity(entries.len());
        for entry in entries {
            let index = entry.log_id.index;
            if applied.is_some_and(|a| index <= a) {
                // Not decoded: an entry applied before is never run again.
                let n = match &entry.payload {
                    openraft::EntryPayload::Normal(rs) => rs.0.len().max(1),
                    _ => 1,
                };
                out.extend((0..n).map(|_| Outcome::AlreadyApplied { lsn: index }));
            } else {
                let start = todo.len();
                todo.extend(exec::Item::decode(entry)?);
                for item in &todo[start..] {
                    if let Some(ts) = item.timestamp_us() {
                        self.status.note_timestamp(ts);
                    }
                }
                units.push(start..todo.len());
            }
        }
        let mut u = 0;
        while u < units.len() {
            let start = units[u].start;
            let is_ddl = |r: &std::ops::Range<usize>| todo[r.start].is_ddl();
            // A check barrier alone in its entry ends its group: its snapshot is taken
            // after the commit, before anything later applies.
            let barrier = |r: &std::ops::Range<usize>| {
                (r.len() == 1)
                    .then(|| todo[r.start].check_barrier())
                    .flatten()
            };
            if is_ddl(&units[u]) {
                // A check snapshot's metadata locks would hold the DDL up.
                self.checks.end_all(todo[start].lsn()).await;
            }
            let mut end = u + 1;
            if !is_ddl(&units[u]) {
                while end < units.len()
                    && barrier(&units[end - 1]).is_none()
                    && !is_ddl(&units[end])
                    && units[end].end - start <= MAX_GROUP
                {
                    end += 1;
                }
            }
            let group = &todo[start..units[end - 1].end];
            let done = self.run_with_retry(group).await?;
            self.agree(group, &done);
            if let (Some(id), Some(Outcome::Applied { lsn, .. })) =
                (barrier(&units[end - 1]), done.last())
            {
                // Applied now, not replayed: MariaDB is exactly at the barrier.
                self.checks.park(id, *lsn).await;
            }
            out.extend(done);
            u = end;
        }
        Ok(out)
    }
}

impl MariaDbApplier {
    /// Records this node's digest of every client entry of `group` (one outcome per item)
    /// and compares the leader's digests any `Outcomes` item of it carries.
    fn agree(&self, group: &[exec::Item], outcomes: &[Outcome]) {
        let mut by_lsn: Vec<(u64, Vec<&Outcome>)> = Vec::new();
        for (item, outcome) in group.iter().zip(outcomes) {
            match by_lsn.last_mut() {
                Some((lsn, list)) if *lsn == item.lsn() => list.push(outcome),
                _ => by_lsn.push((item.lsn(), vec![outcome])),
            }
        }
        for (lsn, list) in &by_lsn {
            if let Some(d) = digest(list) {
                self.status.record_digest(*lsn, d);
            }
        }
        for item in group {
            if let Some(agreed) = item.agreed() {
                if let Some(d) = self.status.compare_digests(agreed) {
                    tracing::error!(
                        log_index = d.lsn,
                        own = d.own,
                        agreed = d.agreed,
                        "diverged: this node's outcome of an entry differs from the leader's; it stops applying until it is resynced from the leader (automatically unless cluster.auto_resync = false; else `wolfscale resync`)"
                    );
                }
            }
        }
    }
}
