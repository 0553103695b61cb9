//! The applier's side of the divergence checker: the consistent snapshot a node takes when
//! it applies a check barrier, and the checksums it answers from that snapshot.
//!
//! # One point on every node
//!
//! A `Command::CheckBarrier` entry applies alone and changes nothing. Right after its
//! commit, and before the applier returns to apply anything later, [`CheckSnapshots::park`]
//! opens a separate connection, starts `START TRANSACTION WITH CONSISTENT SNAPSHOT` on it
//! and reads the schema there. Every checksum of that check run then reads through this
//! read view, so every node answers for the same LSN while the applier goes on applying
//! writes. The snapshot is released when the coordinator is done, or after
//! [`IDLE_TTL`] without a question (so a node that applied the barrier while nobody asked,
//! or whose coordinator died, does not hold an old read view for long); at most
//! [`MAX_PARKED`] are held.
//!
//! The snapshot's transaction holds metadata locks on every table it has read, so a DDL
//! entry would wait for the check to end: the applier never waits for a check. Before it
//! applies DDL it ends every open snapshot ([`CheckSnapshots::end_all`], which kills their
//! connections), and the checks that were using them report those nodes' tables as not
//! compared, to be run again.
//!
//! # Bounded work
//!
//! A range checksum walks the range in chunks of `check_chunk_rows` keys (one query for
//! the chunk's last key, one for its checksum) and sleeps between chunks to stay under
//! `check_rows_per_sec`. Rows never leave the node: answers are counts, hashes and keys.

use crate::sql::checksum::{self, Bounds};
use crate::sql::Statement;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a parked snapshot stays without a question before it is released.
pub const IDLE_TTL: Duration = Duration::from_secs(120);
/// Most snapshots held at once; parking another releases the oldest.
pub const MAX_PARKED: usize = 4;
/// Longest the applier waits to open a snapshot at a barrier before giving up on it (the
/// check then reports this node as not checked; applying goes on).
const PARK_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a node waits for its applier to reach a barrier when asked for its schema.
pub const MAX_SCHEMA_WAIT: Duration = Duration::from_secs(120);

/// One value of a primary-key column, as it crosses between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KeyValue {
    /// SQL NULL (never in a primary key; kept so every value converts).
    Null,
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// FLOAT.
    Float(f32),
    /// DOUBLE.
    Double(f64),
    /// Strings, decimals and binary values, as MariaDB sent them.
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    /// DATE, DATETIME, TIMESTAMP: year, month, day, hour, minute, second, microsecond.
    Date(u16, u8, u8, u8, u8, u8, u32),
    /// TIME: negative, days, hours, minutes, seconds, microseconds.
    Time(bool, u32, u8, u8, u8, u32),
}

impl From<mysql_async::Value> for KeyValue {
    fn from(v: mysql_async::Value) -> Self {
        use mysql_async::Value as V;
        match v {
            V::NULL => KeyValue::Null,
            V::Int(n) => KeyValue::Int(n),
            V::UInt(n) => KeyValue::UInt(n),
            V::Float(f) => KeyValue::Float(f),
            V::Double(f) => KeyValue::Double(f),
            V::Bytes(b) => KeyValue::Bytes(b),
            V::Date(y, mo, d, h, mi, s, us) => KeyValue::Date(y, mo, d, h, mi, s, us),
            V::Time(neg, d, h, mi, s, us) => KeyValue::Time(neg, d, h, mi, s, us),
        }
    }
}

impl From<&KeyValue> for mysql_async::Value {
    fn from(v: &KeyValue) -> Self {
        use mysql_async::Value as V;
        match v.clone() {
            KeyValue::Null => V::NULL,
            KeyValue::Int(n) => V::Int(n),
            KeyValue::UInt(n) => V::UInt(n),
            KeyValue::Float(f) => V::Float(f),
            KeyValue::Double(f) => V::Double(f),
            KeyValue::Bytes(b) => V::Bytes(b),
            KeyValue::Date(y, mo, d, h, mi, s, us) => V::Date(y, mo, d, h, mi, s, us),
            KeyValue::Time(neg, d, h, mi, s, us) => V::Time(neg, d, h, mi, s, us),
        }
    }
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Null => f.write_str("NULL"),
            KeyValue::Int(n) => write!(f, "{n}"),
            KeyValue::UInt(n) => write!(f, "{n}"),
            KeyValue::Float(x) => write!(f, "{x}"),
            KeyValue::Double(x) => write!(f, "{x}"),
            KeyValue::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => write!(f, "'{}'", s.escape_debug()),
                Err(_) => {
                    f.write_str("0x")?;
                    b.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
                }
            },
            KeyValue::Date(y, mo, d, h, mi, s, us) => {
                write!(f, "'{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")?;
                if *us > 0 {
                    write!(f, ".{us:06}")?;
                }
                f.write_str("'")
            }
            KeyValue::Time(neg, d, h, mi, s, us) => {
                let sign = if *neg { "-" } else { "" };
                let hours = u64::from(*d) * 24 + u64::from(*h);
                write!(f, "'{sign}{hours:02}:{mi:02}:{s:02}")?;
                if *us > 0 {
                    write!(f, ".{us:06}")?;
                }
                f.write_str("'")
            }
        }
    }
}

/// A primary-key value: one [`KeyValue`] per key column, in key order.
pub type Key = Vec<KeyValue>;

/// Rows `(after, upto]` in primary-key order; `None` ends are open.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyRange {
    /// Exclusive lower end.
    pub after: Option<Key>,
    /// Inclusive upper end.
    pub upto: Option<Key>,
}

/// One column as the schema at the barrier shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Its name.
    pub name: String,
    /// `COLUMN_TYPE`, e.g. `int(11)`.
    pub column_type: String,
    /// Whether it allows NULL.
    pub nullable: bool,
    /// Its collation; empty for non-text columns.
    pub collation: String,
}

/// One replicated table as the schema at the barrier shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Its name.
    pub name: String,
    /// Its storage engine.
    pub engine: String,
    /// Its columns, in order.
    pub columns: Vec<ColumnDef>,
    /// Its primary-key columns, in key order; empty when it has none.
    pub key: Vec<String>,
}

/// The checksum of a key range (see `sql::checksum`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RangeSum {
    /// Rows in the range.
    pub rows: u64,
    /// `BIT_XOR` of the row hashes.
    pub xor: u64,
    /// `SUM` of the row hashes, in decimal.
    pub sum: String,
}

/// What a check coordinator asks a member (over the cluster transport, as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CheckAsk {
    /// The schema at barrier `id`, waiting up to `wait_ms` for the applier to reach it.
    Schema {
        /// The check.
        id: u64,
        /// How long to wait for the barrier, in ms (at most [`MAX_SCHEMA_WAIT`]).
        wait_ms: u64,
    },
    /// The checksum of `range` of `table`.
    Sum {
        /// The check.
        id: u64,
        /// A table of the schema at the barrier.
        table: String,
        /// Which rows; the whole table for a table without a primary key.
        range: KeyRange,
    },
    /// The key of the row `offset` rows into `range` (a split point).
    KeyAt {
        /// The check.
        id: u64,
        /// A table with a primary key.
        table: String,
        /// Which rows.
        range: KeyRange,
        /// Rows to skip.
        offset: u64,
    },
    /// The key and hash of the first `limit` rows of `range`.
    Rows {
        /// The check.
        id: u64,
        /// A table with a primary key.
        table: String,
        /// Which rows.
        range: KeyRange,
        /// Most rows answered.
        limit: u64,
    },
    /// The check is over: release its snapshot.
    Release {
        /// The check.
        id: u64,
    },
}

/// A member's answer to a [`CheckAsk`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CheckAnswer {
    /// To [`CheckAsk::Schema`]: the barrier's LSN and the tables.
    Schema {
        /// The barrier's LSN.
        lsn: u64,
        /// Every replicated table, by name.
        tables: Vec<TableSchema>,
    },
    /// To [`CheckAsk::Sum`].
    Sum(RangeSum),
    /// To [`CheckAsk::KeyAt`]: `None` when the range has no row at that offset.
    Key(Option<Key>),
    /// To [`CheckAsk::Rows`]: key and row hash, in key order.
    Rows(Vec<(Key, u64)>),
    /// To [`CheckAsk::Release`].
    Released,
    /// The member could not answer: no snapshot for the check, or MariaDB refused.
    Error(String),
}

/// How hard a range checksum may read (`cluster.check_chunk_rows`,
/// `cluster.check_rows_per_sec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Rows per chunk (at least 1).
    pub chunk_rows: u64,
    /// Most rows read per second; 0 for no limit.
    pub rows_per_sec: u64,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            chunk_rows: 1000,
            rows_per_sec: 0,
        }
    }
}

struct Parked {
    conn: Conn,
    lsn: u64,
    tables: Vec<TableSchema>,
}

enum SlotState {
    Ready(Arc<tokio::sync::Mutex<Parked>>),
    Failed(String),
}

struct Slot {
    state: SlotState,
    /// The snapshot connection's id in MariaDB, for [`CheckSnapshots::end_all`].
    connection_id: Option<u32>,
    last_used: Instant,
    parked_at: Instant,
}

#[derive(Default)]
struct Registry {
    slots: HashMap<u64, Slot>,
    pace: Pace,
}

impl Registry {
    /// Drops slots idle past [`IDLE_TTL`] and, beyond `keep`, the oldest ones.
    fn reap(&mut self, keep: usize) {
        self.slots.retain(|_, s| s.last_used.elapsed() < IDLE_TTL);
        while self.slots.len() > keep {
            let oldest = self
                .slots
                .iter()
                .min_by_key(|(_, s)| s.parked_at)
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => {
                    self.slots.remove(&id);
                }
                None => break,
            }
        }
    }
}

/// The snapshots this node holds for check runs; clones share them.
#[derive(Clone)]
pub struct CheckSnapshots {
    registry: Arc<Mutex<Registry>>,
    opts: Opts,
}

impl CheckSnapshots {
    /// Snapshots opened with `opts` (the applier's: database selected, session pinned).
    pub(super) fn new(opts: Opts) -> CheckSnapshots {
        CheckSnapshots {
            registry: Arc::default(),
            opts,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding this lock leaves only a map of handles behind: usable.
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets how hard range checksums may read.
    pub fn set_pace(&self, pace: Pace) {
        self.lock().pace = Pace {
            chunk_rows: pace.chunk_rows.max(1),
            ..pace
        };
    }

    /// Called by the applier right after barrier `id` at `lsn` committed and before
    /// anything later applies: opens the snapshot. Never fails the apply: a snapshot that
    /// cannot be opened is recorded as this node's answer to the check.
    pub(super) async fn park(&self, id: u64, lsn: u64) {
        let mut connection_id = None;
        let state = match tokio::time::timeout(PARK_TIMEOUT, open(&self.opts, lsn)).await {
            Ok(Ok(parked)) => {
                connection_id = Some(parked.conn.id());
                SlotState::Ready(Arc::new(tokio::sync::Mutex::new(parked)))
            }
            Ok(Err(e)) => SlotState::Failed(format!("opening the check snapshot: {e}")),
            Err(_) => SlotState::Failed(format!(
                "opening the check snapshot took over {PARK_TIMEOUT:?}"
            )),
        };
        if let SlotState::Failed(reason) = &state {
            tracing::warn!(check = id, log_index = lsn, error = %reason, "check snapshot failed");
        } else {
            tracing::debug!(check = id, log_index = lsn, "check snapshot taken");
        }
        let now = Instant::now();
        let mut reg = self.lock();
        reg.reap(MAX_PARKED - 1);
        reg.slots.insert(
            id,
            Slot {
                state,
                connection_id,
                last_used: now,
                parked_at: now,
            },
        );
    }

    /// Called by the applier before it applies the DDL entry at `lsn`, and by a resync
    /// before it replaces the database (at applied LSN `lsn`): ends every open snapshot
    /// (their metadata locks would block the DDL or the load), so the checks using them
    /// report "run again" instead. Never fails: a snapshot connection that cannot be
    /// killed is logged, and the DDL then waits for its check as MariaDB rules.
    pub(crate) async fn end_all(&self, lsn: u64) {
        let ids: Vec<(u64, u32)> = {
            let mut reg = self.lock();
            reg.slots
                .iter_mut()
                .filter_map(|(id, slot)| {
                    let conn = slot.connection_id.take()?;
                    slot.state = SlotState::Failed(format!(
                        "its check snapshot was ended at lsn {lsn} (a DDL entry applied \
                         after the barrier, or a resync); run the check again"
                    ));
                    Some((*id, conn))
                })
                .collect()
        };
        if ids.is_empty() {
            return;
        }
        let kill = async {
            let mut conn = Conn::new(self.opts.clone()).await?;
            for (_, c) in &ids {
                match conn.query_drop(checksum::kill_connection(*c)).await {
                    // 1094: unknown thread id, the connection had ended already.
                    Err(mysql_async::Error::Server(e)) if e.code == 1094 => {}
                    other => other?,
                }
            }
            conn.disconnect().await
        };
        match tokio::time::timeout(PARK_TIMEOUT, kill).await {
            Ok(Ok(())) => {
                tracing::info!(
                    log_index = lsn,
                    checks = ids.len(),
                    "check snapshots ended before ddl"
                )
            }
            Ok(Err(e)) => {
                tracing::warn!(log_index = lsn, error = %e, "could not end check snapshots before ddl")
            }
            Err(_) => tracing::warn!(
                log_index = lsn,
                "ending check snapshots before ddl timed out"
            ),
        }
    }

    /// Answers one question of a check coordinator.
    pub async fn answer(&self, ask: CheckAsk) -> CheckAnswer {
        match ask {
            CheckAsk::Schema { id, wait_ms } => {
                let wait = Duration::from_millis(wait_ms).min(MAX_SCHEMA_WAIT);
                let parked = match self.wait_for(id, wait).await {
                    Ok(p) => p,
                    Err(e) => return CheckAnswer::Error(e),
                };
                let p = parked.lock().await;
                CheckAnswer::Schema {
                    lsn: p.lsn,
                    tables: p.tables.clone(),
                }
            }
            CheckAsk::Release { id } => {
                let slot = self.lock().slots.remove(&id);
                if let Some(Slot {
                    state: SlotState::Ready(p),
                    ..
                }) = slot
                {
                    let mut p = p.lock().await;
                    // The read-only transaction changes nothing: a failed ROLLBACK only
                    // means the connection is gone already.
                    let _ = p.conn.query_drop(checksum::END_SNAPSHOT).await;
                }
                CheckAnswer::Released
            }
            CheckAsk::Sum { id, table, range } => {
                let pace = self.lock().pace;
                self.with_table(id, &table, |conn, t| {
                    Box::pin(async move { sum(conn, t, &range, pace).await.map(CheckAnswer::Sum) })
                })
                .await
            }
            CheckAsk::KeyAt {
                id,
                table,
                range,
                offset,
            } => {
                self.with_table(id, &table, |conn, t| {
                    Box::pin(
                        async move { key_at(conn, t, &range, offset).await.map(CheckAnswer::Key) },
                    )
                })
                .await
            }
            CheckAsk::Rows {
                id,
                table,
                range,
                limit,
            } => {
                self.with_table(id, &table, |conn, t| {
                    Box::pin(
                        async move { rows(conn, t, &range, limit).await.map(CheckAnswer::Rows) },
                    )
                })
                .await
            }
        }
    }

    /// The parked snapshot of check `id`, waiting up to `wait` for the barrier.
    async fn wait_for(
        &self,
        id: u64,
        wait: Duration,
    ) -> Result<Arc<tokio::sync::Mutex<Parked>>, String> {
        let deadline = Instant::now() + wait;
        loop {
            {
                let mut reg = self.lock();
                reg.reap(MAX_PARKED);
                if let Some(slot) = reg.slots.get_mut(&id) {
                    slot.last_used = Instant::now();
                    return match &slot.state {
                        SlotState::Ready(p) => Ok(p.clone()),
                        SlotState::Failed(reason) => Err(reason.clone()),
                    };
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no snapshot for check {id}: the barrier was not applied here within \
                     {wait:?} (lagging, or installed a snapshot past it), or it was released"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `f` on the snapshot's connection for a table of its schema.
    async fn with_table<F>(&self, id: u64, table: &str, f: F) -> CheckAnswer
    where
        F: for<'a> FnOnce(
            &'a mut Conn,
            &'a TableSchema,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<CheckAnswer, String>> + Send + 'a>,
        >,
    {
        let parked = match self.wait_for(id, Duration::ZERO).await {
            Ok(p) => p,
            Err(e) => return CheckAnswer::Error(e),
        };
        let mut guard = parked.lock().await;
        let p = &mut *guard;
        let Some(t) = p.tables.iter().find(|t| t.name == table) else {
            return CheckAnswer::Error(format!(
                "table {} is not in this node's schema at the barrier",
                crate::command::shown(table)
            ));
        };
        let t = t.clone();
        f(&mut p.conn, &t).await.unwrap_or_else(CheckAnswer::Error)
    }
}

/// Opens the snapshot connection and reads the schema through it.
async fn open(opts: &Opts, lsn: u64) -> Result<Parked, mysql_async::Error> {
    let mut conn = Conn::new(opts.clone()).await?;
    for s in checksum::START_SNAPSHOT {
        conn.query_drop(*s).await?;
    }
    let tables: Vec<(String, String)> = conn.query(checksum::LIST_TABLES).await?;
    let columns: Vec<(String, String, String, String, String)> =
        conn.query(checksum::LIST_COLUMNS).await?;
    let keys: Vec<(String, String)> = conn.query(checksum::LIST_PRIMARY_KEYS).await?;
    let tables = tables
        .into_iter()
        .map(|(name, engine)| TableSchema {
            columns: columns
                .iter()
                .filter(|c| c.0 == name)
                .map(|(_, n, ty, null, coll)| ColumnDef {
                    name: n.clone(),
                    column_type: ty.clone(),
                    nullable: null == "YES",
                    collation: coll.clone(),
                })
                .collect(),
            key: keys
                .iter()
                .filter(|k| k.0 == name)
                .map(|k| k.1.clone())
                .collect(),
            name,
            engine,
        })
        .collect();
    Ok(Parked { conn, lsn, tables })
}

fn names(t: &TableSchema) -> Vec<String> {
    t.columns.iter().map(|c| c.name.clone()).collect()
}

fn bind(key: &Option<Key>) -> Option<Vec<mysql_async::Value>> {
    key.as_ref()
        .map(|k| k.iter().map(mysql_async::Value::from).collect())
}

fn failed(table: &str) -> impl Fn(mysql_async::Error) -> String + '_ {
    move |e| format!("table {}: {e}", crate::command::shown(table))
}

async fn first_row(conn: &mut Conn, st: &Statement) -> Result<Option<Row>, mysql_async::Error> {
    conn.exec_first(st.sql.as_str(), st.params()).await
}

/// The checksum of `range`, walked in chunks at `pace`.
async fn sum(
    conn: &mut Conn,
    t: &TableSchema,
    range: &KeyRange,
    pace: Pace,
) -> Result<RangeSum, String> {
    let cols = names(t);
    let upto = bind(&range.upto);
    let mut after = bind(&range.after);
    let (mut rows, mut xor, mut total) = (0u64, 0u64, 0u128);
    loop {
        let started = Instant::now();
        // Without a key there is no order to walk in: one pass over the table.
        let end = if t.key.is_empty() {
            None
        } else {
            let bounds = Bounds {
                after: after.as_deref(),
                upto: upto.as_deref(),
            };
            let st = checksum::key_at(&t.name, &t.key, &bounds, pace.chunk_rows - 1);
            first_row(conn, &st)
                .await
                .map_err(failed(&t.name))?
                .map(Row::unwrap)
        };
        let chunk_upto = end.clone().or_else(|| upto.clone());
        let bounds = Bounds {
            after: after.as_deref(),
            upto: chunk_upto.as_deref(),
        };
        let st = checksum::range_checksum(&t.name, &cols, &t.key, &bounds);
        let (n, x, s): (u64, u64, String) = conn
            .exec_first(st.sql.as_str(), st.params())
            .await
            .map_err(failed(&t.name))?
            .unwrap_or((0, 0, "0".into()));
        rows += n;
        xor ^= x;
        total += s
            .parse::<u128>()
            .map_err(|e| format!("table {}: bad checksum sum {s:?}: {e}", t.name))?;
        if pace.rows_per_sec > 0 {
            let budget = Duration::from_secs_f64(n as f64 / pace.rows_per_sec as f64);
            if let Some(rest) = budget.checked_sub(started.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
        match end {
            Some(k) if Some(&k) != upto.as_ref() => after = Some(k),
            _ => break,
        }
    }
    Ok(RangeSum {
        rows,
        xor,
        sum: total.to_string(),
    })
}

async fn key_at(
    conn: &mut Conn,
    t: &TableSchema,
    range: &KeyRange,
    offset: u64,
) -> Result<Option<Key>, String> {
    if t.key.is_empty() {
        return Err(format!("table {} has no primary key", t.name));
    }
    let (after, upto) = (bind(&range.after), bind(&range.upto));
    let bounds = Bounds {
        after: after.as_deref(),
        upto: upto.as_deref(),
    };
    let st = checksum::key_at(&t.name, &t.key, &bounds, offset);
    Ok(first_row(conn, &st)
        .await
        .map_err(failed(&t.name))?
        .map(|r| r.unwrap().into_iter().map(KeyValue::from).collect()))
}

async fn rows(
    conn: &mut Conn,
    t: &TableSchema,
    range: &KeyRange,
    limit: u64,
) -> Result<Vec<(Key, u64)>, String> {
    if t.key.is_empty() {
        return Err(format!("table {} has no primary key", t.name));
    }
    let (after, upto) = (bind(&range.after), bind(&range.upto));
    let bounds = Bounds {
        after: after.as_deref(),
        upto: upto.as_deref(),
    };
    let st = checksum::row_hashes(&t.name, &names(t), &t.key, &bounds, limit);
    let found: Vec<Row> = conn
        .exec(st.sql.as_str(), st.params())
        .await
        .map_err(failed(&t.name))?;
    found
        .into_iter()
        .map(|r| {
            let mut values = r.unwrap();
            let hash = match values.pop() {
                Some(mysql_async::Value::Int(h)) => u64::try_from(h).ok(),
                Some(mysql_async::Value::UInt(h)) => Some(h),
                Some(mysql_async::Value::Bytes(b)) => {
                    std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok())
                }
                _ => None,
            }
            .ok_or_else(|| format!("table {}: a row hash is not a number", t.name))?;
            Ok((values.into_iter().map(KeyValue::from).collect(), hash))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_round_trip_through_mysql_values_and_json() {
        let key: Key = vec![
            KeyValue::Int(-3),
            KeyValue::UInt(u64::MAX),
            KeyValue::Bytes(b"a\x00b".to_vec()),
            KeyValue::Date(2026, 12, 7, 1, 2, 3, 4),
            KeyValue::Time(true, 1, 2, 3, 4, 0),
        ];
        for v in &key {
            assert_eq!(&KeyValue::from(mysql_async::Value::from(v)), v);
        }
        let json = serde_json::to_string(&key).expect("encodes");
        let back: Key = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, key);
    }

    #[test]
    fn key_values_display_for_operators() {
        assert_eq!(KeyValue::Int(7).to_string(), "7");
        assert_eq!(KeyValue::Bytes(b"it's".to_vec()).to_string(), "'it\\'s'");
        assert_eq!(KeyValue::Bytes(vec![0xff, 0x01]).to_string(), "0xff01");
        assert_eq!(
            KeyValue::Date(2026, 1, 2, 3, 4, 5, 0).to_string(),
            "'2026-01-02 03:04:05'"
        );
        assert_eq!(
            KeyValue::Time(true, 1, 2, 0, 0, 5).to_string(),
            "'-26:00:00.000005'"
        );
    }

    #[test]
    fn reaping_keeps_the_newest_slots() {
        let mut reg = Registry::default();
        let now = Instant::now();
        for id in 0..5u64 {
            reg.slots.insert(
                id,
                Slot {
                    state: SlotState::Failed(String::new()),
                    connection_id: None,
                    last_used: now,
                    parked_at: now + Duration::from_millis(id),
                },
            );
        }
        reg.reap(3);
        let mut left: Vec<u64> = reg.slots.keys().copied().collect();
        left.sort_unstable();
        assert_eq!(left, vec![2, 3, 4]);
    }
}
