//! Loading a snapshot file into the local MariaDB, replacing the replicated database's
//! contents: forget the applied position, drop every table, view, routine and sequence,
//! create the tables and load their rows (multi-row inserts, values bound as parameters,
//! a commit every few MiB), then sequences, routines, views and finally triggers (so they
//! do not fire on loaded rows), and only then record the snapshot's position in
//! `_wolfscale`. A load that stops half-way leaves no position behind; the caller's
//! "installing" marker makes the node redo the whole load before it serves.

use super::format::{Cell, FormatError, Header, Item, ObjectDef, Reader, SequenceDef, TableDef};
use super::progress::Progress;
use super::{Database, Error};
use crate::sql::{position, snapshot as q};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Value};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Most rows in one INSERT.
const MAX_ROWS: usize = 1000;
/// Most placeholders MariaDB accepts in one prepared statement.
const MAX_PARAMS: usize = 65_535;
/// An INSERT is sent once its values reach this many bytes.
const STATEMENT_BYTES: usize = 2 << 20;
/// A transaction is committed once it has loaded this many bytes.
const COMMIT_BYTES: usize = 32 << 20;

/// Loads the (verified) snapshot at `path` into `db`; returns its header.
pub(super) async fn load(db: &Database, path: &Path, progress: &Progress) -> Result<Header, Error> {
    let (tx, mut rx) = mpsc::channel::<(Item, u64)>(16);
    // Opened off the runtime (tokio's open runs on the blocking pool).
    let file = tokio::fs::File::open(path).await?.into_std().await;
    let reader = tokio::task::spawn_blocking(move || -> Result<(), FormatError> {
        let mut r = Reader::open(std::io::BufReader::with_capacity(1 << 20, file))?;
        while let Some(item) = r.next_item()? {
            if tx.blocking_send((item, r.offset())).is_err() {
                // The loader stopped; its error says why.
                return Ok(());
            }
        }
        Ok(())
    });
    let mut conn = db.connect().await?;
    let loaded = load_on(db, &mut conn, &mut rx, progress).await;
    drop(rx);
    let read = reader
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
    let header = match (loaded, read) {
        (_, Err(e)) => return Err(e.into()),
        (Err(e), Ok(())) => return Err(e),
        (Ok(h), Ok(())) => h,
    };
    let _ = conn.disconnect().await;
    Ok(header)
}

/// Loads the tables and rows handed to it on its own connection.
async fn worker(
    db: Database,
    mut rx: mpsc::Receiver<Work>,
    rows_done: Arc<AtomicU64>,
) -> Result<(), Error> {
    let mut conn = db.connect().await?;
    conn.query_drop(q::LOAD_SESSION).await?;
    conn.query_drop(q::PATIENT_SESSION).await?;
    let mut table: Option<TableLoad> = None;
    while let Some(work) = rx.recv().await {
        match work {
            Work::Table(def) => {
                if let Some(t) = table.take() {
                    t.finish(&mut conn).await?;
                }
                conn.query_drop(q::BEGIN).await?;
                table = Some(TableLoad::new(def));
            }
            Work::Rows(rows) => {
                let t = table
                    .as_mut()
                    .ok_or_else(|| Error::Invalid("rows before any table".into()))?;
                let n = rows.len() as u64;
                for row in rows {
                    t.push(&mut conn, row).await?;
                }
                rows_done.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
    if let Some(t) = table.take() {
        t.finish(&mut conn).await?;
    }
    // A failed goodbye after the commit changes nothing.
    let _ = conn.disconnect().await;
    Ok(())
}

#[derive(Default)]
struct Deferred {
    sequences: Vec<SequenceDef>,
    views: Vec<ObjectDef>,
    routines: Vec<ObjectDef>,
    triggers: Vec<ObjectDef>,
}

/// Tables load on this many connections at once; each table's rows go to one of them
/// (rows of one table never race each other for locks).
const WORKERS: usize = 3;

/// What the reader hands a loading connection.
enum Work {
    Table(TableDef),
    Rows(Vec<Vec<Cell>>),
}

async fn load_on(
    db: &Database,
    conn: &mut Conn,
    rx: &mut mpsc::Receiver<(Item, u64)>,
    progress: &Progress,
) -> Result<Header, Error> {
    conn.query_drop(position::CREATE_POSITION_TABLE).await?;
    conn.query_drop(position::INSERT_POSITION_ROW).await?;
    conn.query_drop(q::CLEAR_POSITION).await?;
    conn.query_drop(q::LOAD_SESSION).await?;
    conn.query_drop(q::PATIENT_SESSION).await?;
    drop_everything(conn).await?;

    let rows_done = Arc::new(AtomicU64::new(0));
    // Dropping the set (on any error) aborts the workers: a retry never races them.
    let mut workers = JoinSet::new();
    let mut txs = Vec::with_capacity(WORKERS);
    for _ in 0..WORKERS {
        let (tx, rx) = mpsc::channel::<Work>(4);
        txs.push(tx);
        workers.spawn(worker(db.clone(), rx, rows_done.clone()));
    }
    let mut header = None;
    let mut later = Deferred::default();
    let mut current: Option<usize> = None;
    let mut tables = 0usize;
    let mut stopped = false;
    while let Some((item, offset)) = rx.recv().await {
        let work = match item {
            Item::Header(h) => {
                header = Some(h);
                None
            }
            Item::Table(def) => {
                conn.query_drop(def.create.as_str()).await?;
                current = Some(tables % WORKERS);
                tables += 1;
                Some(Work::Table(def))
            }
            Item::Rows(rows) => Some(Work::Rows(rows)),
            Item::Sequence(s) => {
                later.sequences.push(s);
                None
            }
            Item::View(v) => {
                later.views.push(v);
                None
            }
            Item::Routine(r) => {
                later.routines.push(r);
                None
            }
            Item::Trigger(t) => {
                later.triggers.push(t);
                None
            }
            Item::Footer(_) => None,
        };
        if let Some(work) = work {
            let w = current.ok_or_else(|| Error::Invalid("rows before any table".into()))?;
            if txs[w].send(work).await.is_err() {
                // The worker stopped: its error is collected below.
                stopped = true;
                break;
            }
            progress.loaded(rows_done.load(Ordering::Relaxed), offset);
        }
    }
    drop(txs);
    while let Some(done) = workers.join_next().await {
        done.map_err(|e| Error::Io(std::io::Error::other(format!("load task: {e}"))))??;
    }
    if stopped {
        return Err(Error::Invalid("a loading connection stopped early".into()));
    }
    let header = header.ok_or_else(|| Error::Invalid("the snapshot has no header".into()))?;
    for s in &later.sequences {
        conn.query_drop(s.create.as_str()).await?;
        conn.query_drop(q::set_sequence_next(&s.name, s.next))
            .await?;
    }
    for r in &later.routines {
        create_with_mode(conn, &r.sql_mode, &r.create).await?;
    }
    create_views(conn, later.views).await?;
    for t in &later.triggers {
        create_with_mode(conn, &t.sql_mode, &t.create).await?;
    }
    let (index, term, node) = match header.applied {
        Some(p) => (Some(p.index), Some(p.term), Some(p.node)),
        None => (None, None, None),
    };
    set_counters(conn, header.autoinc_json.as_deref()).await?;
    let membership = (!header.membership_json.is_empty()).then(|| header.membership_json.clone());
    conn.exec_drop(
        q::RESTORE_POSITION,
        (
            index,
            term,
            node,
            membership,
            header.ddl_in_flight,
            header.autoinc_json.clone(),
        ),
    )
    .await?;
    Ok(header)
}

/// Sets every AUTO_INCREMENT counter to the value recorded with the copy's position: the
/// tables were created with the counters `SHOW CREATE TABLE` saw, which may be ahead of
/// the read view (entries applied on the source during the copy).
async fn set_counters(conn: &mut Conn, json: Option<&str>) -> Result<(), Error> {
    let Some(text) = json else {
        return Ok(());
    };
    let counters: std::collections::BTreeMap<String, u64> = serde_json::from_str(text)
        .map_err(|e| Error::Invalid(format!("the snapshot's AUTO_INCREMENT counters: {e}")))?;
    let now: Vec<(String, u64)> = conn.query(position::SELECT_AUTOINC).await?;
    for (table, current) in now {
        if let Some(&want) = counters.get(&table) {
            if want != current {
                conn.query_drop(position::set_autoinc(&table, want)).await?;
            }
        }
    }
    Ok(())
}

async fn create_with_mode(conn: &mut Conn, sql_mode: &str, create: &str) -> Result<(), Error> {
    conn.exec_drop(q::SET_SQL_MODE, (sql_mode,)).await?;
    conn.query_drop(create).await?;
    Ok(())
}

/// Creates views in rounds: one that uses a view not created yet fails and is retried
/// after the others, until a round makes no progress.
async fn create_views(conn: &mut Conn, mut pending: Vec<ObjectDef>) -> Result<(), Error> {
    conn.exec_drop(q::SET_SQL_MODE, (q::VIEW_SQL_MODE,)).await?;
    while !pending.is_empty() {
        let before = pending.len();
        let mut failed = Vec::new();
        let mut last = None;
        for v in pending {
            match conn.query_drop(v.create.as_str()).await {
                Ok(()) => {}
                // 1146: no such table; 1356: view references something invalid.
                Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1356 => {
                    last = Some(mysql_async::Error::Server(e));
                    failed.push(v);
                }
                Err(e) => return Err(e.into()),
            }
        }
        if failed.len() == before {
            return Err(last.map_or_else(
                || Error::Invalid("views could not be created".into()),
                Error::Mysql,
            ));
        }
        pending = failed;
    }
    Ok(())
}

/// Drops every object of the replicated database except `_wolfscale`.
async fn drop_everything(conn: &mut Conn) -> Result<(), Error> {
    let routines: Vec<(String, String)> = conn.query(q::LIST_ROUTINES).await?;
    for (name, kind) in routines {
        if let Some(sql) = q::drop_routine(&kind, &name) {
            conn.query_drop(sql).await?;
        }
    }
    let listed: Vec<(String, String, Option<String>)> = conn.query(q::LIST_TABLES).await?;
    for (name, kind, _) in &listed {
        if kind == "VIEW" {
            conn.query_drop(q::drop_view(name)).await?;
        }
    }
    for (name, kind, _) in &listed {
        match kind.as_str() {
            "VIEW" => {}
            _ if q::is_position_table(name) => {}
            "SEQUENCE" => conn.query_drop(q::drop_sequence(name)).await?,
            _ => conn.query_drop(q::drop_table(name)).await?,
        }
    }
    Ok(())
}

/// Rows of one table on their way in.
struct TableLoad {
    def: TableDef,
    max_rows: usize,
    params: Vec<Value>,
    rows: usize,
    bytes: usize,
    uncommitted: usize,
}

impl TableLoad {
    fn new(def: TableDef) -> TableLoad {
        let width = def.columns.len().max(1);
        TableLoad {
            max_rows: (MAX_PARAMS / width).clamp(1, MAX_ROWS),
            params: Vec::new(),
            rows: 0,
            bytes: 0,
            uncommitted: 0,
            def,
        }
    }

    async fn push(&mut self, conn: &mut Conn, row: Vec<Cell>) -> Result<(), Error> {
        if row.len() != self.def.columns.len() {
            return Err(Error::Invalid(format!(
                "a row of table {} has {} values for {} columns",
                self.def.name,
                row.len(),
                self.def.columns.len()
            )));
        }
        self.bytes += row.iter().map(Cell::weight).sum::<usize>();
        self.params.extend(row.into_iter().map(Value::from));
        self.rows += 1;
        if self.rows >= self.max_rows || self.bytes >= STATEMENT_BYTES {
            self.flush(conn).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, conn: &mut Conn) -> Result<(), Error> {
        if self.rows == 0 {
            return Ok(());
        }
        let sql = q::insert_rows(&self.def.name, &self.def.columns, self.rows);
        let params = std::mem::take(&mut self.params);
        conn.exec_drop(sql.as_str(), Params::Positional(params))
            .await?;
        self.uncommitted += self.bytes;
        self.rows = 0;
        self.bytes = 0;
        if self.uncommitted >= COMMIT_BYTES {
            conn.query_drop(q::COMMIT).await?;
            conn.query_drop(q::BEGIN).await?;
            self.uncommitted = 0;
        }
        Ok(())
    }

    async fn finish(mut self, conn: &mut Conn) -> Result<(), Error> {
        self.flush(conn).await?;
        conn.query_drop(q::COMMIT).await?;
        Ok(())
    }
}
