//! A small, durable state machine for consensus tests that do not need MariaDB: it stores
//! every applied entry (each request of a batched entry as its own row) in SQLite, with the applied position in the same transaction, so
//! tests can compare what each node applied, in what order, and that nothing applied
//! twice across restarts.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::{Arc, Mutex};
use wolfscale::consensus::state_machine::{Applier, ApplyError};
use wolfscale::consensus::{Entry, LogId, Response, Responses, StoredMembership};

/// Applies entries into `applied(idx, sub, term, kind, payload)` in `<dir>/applied.db`.
#[derive(Clone)]
pub struct SqliteApplier {
    conn: Arc<Mutex<Connection>>,
}

fn err(e: impl std::fmt::Display) -> ApplyError {
    ApplyError(e.to_string())
}

impl SqliteApplier {
    /// Opens (creating) the database in `dir`.
    pub fn open(dir: &Path) -> SqliteApplier {
        std::fs::create_dir_all(dir).expect("create applier dir");
        let path = dir.join("applied.db");
        let conn = Connection::open(&path).expect("open applier db");
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS applied (idx INTEGER NOT NULL, sub INTEGER NOT NULL,
                 term INTEGER NOT NULL, kind TEXT NOT NULL, payload BLOB NOT NULL,
                 PRIMARY KEY (idx, sub));
             CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS applies (first_idx INTEGER NOT NULL, last_idx INTEGER NOT NULL);",
        )
        .expect("create applier tables");
        SqliteApplier {
            conn: Arc::new(Mutex::new(conn)),
        }
    }

    /// Every applied client payload with its index, in log order.
    pub fn payloads(&self) -> Vec<(u64, Vec<u8>)> {
        let c = self.conn.lock().expect("applier lock");
        let mut st = c
            .prepare("SELECT idx, payload FROM applied WHERE kind = 'normal' ORDER BY idx, sub")
            .expect("prepare");
        let rows = st
            .query_map([], |r| Ok((r.get::<_, u64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .expect("query");
        rows.map(|r| r.expect("row")).collect()
    }

    /// The first index of every apply call, in order (shows where a restart resumed).
    pub fn apply_starts(&self) -> Vec<u64> {
        let c = self.conn.lock().expect("applier lock");
        let mut st = c
            .prepare("SELECT first_idx FROM applies ORDER BY rowid")
            .expect("prepare");
        let rows = st.query_map([], |r| r.get::<_, u64>(0)).expect("query");
        rows.map(|r| r.expect("row")).collect()
    }
}

impl Applier for SqliteApplier {
    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), ApplyError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let c = conn.lock().map_err(err)?;
            let get = |k: &str| -> Result<Option<String>, ApplyError> {
                c.query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| r.get(0))
                    .optional()
                    .map_err(err)
            };
            let applied = match get("applied")? {
                Some(s) => serde_json::from_str(&s).map_err(err)?,
                None => None,
            };
            let membership = match get("membership")? {
                Some(s) => serde_json::from_str(&s).map_err(err)?,
                None => StoredMembership::default(),
            };
            Ok((applied, membership))
        })
        .await
        .map_err(err)?
    }

    async fn apply(&mut self, entries: Vec<Entry>) -> Result<Vec<Responses>, ApplyError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().map_err(err)?;
            let tx = c.transaction().map_err(err)?;
            let mut out = Vec::with_capacity(entries.len());
            let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
                return Ok(out);
            };
            tx.execute(
                "INSERT INTO applies (first_idx, last_idx) VALUES (?1, ?2)",
                params![first.log_id.index, last.log_id.index],
            )
            .map_err(err)?;
            for e in &entries {
                let rows: Vec<(&str, Vec<u8>)> = match &e.payload {
                    openraft::EntryPayload::Blank => vec![("blank", Vec::new())],
                    openraft::EntryPayload::Normal(rs) => rs
                        .0
                        .iter()
                        .map(|r| ("normal", r.payload.clone()))
                        .collect(),
                    openraft::EntryPayload::Membership(m) => {
                        let sm = StoredMembership::new(Some(e.log_id), m.clone());
                        tx.execute(
                            "INSERT OR REPLACE INTO meta (k, v) VALUES ('membership', ?1)",
                            [serde_json::to_string(&sm).map_err(err)?],
                        )
                        .map_err(err)?;
                        vec![("membership", Vec::new())]
                    }
                };
                let mut responses = Vec::new();
                for (sub, (kind, payload)) in rows.into_iter().enumerate() {
                    // INSERT (not OR REPLACE): applying an index twice is a test failure.
                    tx.execute(
                        "INSERT INTO applied (idx, sub, term, kind, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![e.log_id.index, sub, e.log_id.leader_id.term, kind, payload],
                    )
                    .map_err(|x| err(format!("index {} applied twice? {x}", e.log_id.index)))?;
                    if kind == "normal" {
                        responses.push(Response {
                            payload: e.log_id.index.to_le_bytes().to_vec(),
                        });
                    }
                }
                out.push(Responses(responses));
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta (k, v) VALUES ('applied', ?1)",
                [serde_json::to_string(&Some(last.log_id)).map_err(err)?],
            )
            .map_err(err)?;
            tx.commit().map_err(err)?;
            Ok(out)
        })
        .await
        .map_err(err)?
    }
}
