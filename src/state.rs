//! The state database (`<data_dir>/state/state.db`, SQLite): the small, durable facts a
//! node must not forget across a restart that do not belong in the log — the consensus
//! vote, committed and purged log ids, the cluster's identity, and the registry of node
//! names and numbers. It stores typed values as JSON under fixed keys and knows nothing of
//! what they mean; the consensus layer gives them meaning.
//!
//! Every call blocks on disk I/O (SQLite with `synchronous=FULL`, so a write has reached
//! the disk when it returns); async callers go through `spawn_blocking`.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{de::DeserializeOwned, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why the state database could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// SQLite failed (I/O error, locked, corrupt file).
    #[error("state database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A stored value no longer decodes as the type asked for.
    #[error("state database {path}: value of `{key}` is corrupt: {source}")]
    Decode {
        /// The database file.
        path: PathBuf,
        /// The key whose value failed.
        key: String,
        /// The decoder's error.
        source: serde_json::Error,
    },
    /// The directory could not be created.
    #[error("cannot create state directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A node name or number is already registered to another node.
    #[error("{0}")]
    Conflict(String),
}

/// One node known to the cluster: its human name and its number (0–1023).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NodeRecord {
    /// Unique human name (`node.id`).
    pub name: String,
    /// Unique number, also the Snowflake node number.
    pub number: u16,
    /// Address of its cluster transport.
    pub cluster_addr: String,
}

/// Handle to the state database; cheap to clone, safe to share across threads.
#[derive(Clone)]
pub struct StateDb {
    conn: Arc<Mutex<Connection>>,
    /// A second connection with `synchronous=NORMAL`, for hints whose loss in a power
    /// failure is harmless (they survive a process crash either way).
    relaxed: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for StateDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDb").field("path", &self.path).finish()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS nodes (
    number       INTEGER PRIMARY KEY NOT NULL CHECK (number BETWEEN 0 AND 1023),
    name         TEXT NOT NULL UNIQUE,
    cluster_addr TEXT NOT NULL
) STRICT;
";

impl StateDb {
    /// Opens (creating if needed) `dir/state.db` in WAL journal mode with full sync.
    ///
    /// # Errors
    /// [`StateError`] if the directory or database cannot be created or read.
    pub fn open(dir: &Path) -> Result<StateDb, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("state.db");
        let wrap = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(wrap)?;
        // WAL journal + FULL sync: a committed write survives power loss, and readers
        // never block the single writer.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(wrap)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(wrap)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(wrap)?;
        conn.execute_batch(SCHEMA).map_err(wrap)?;
        let relaxed = Connection::open(&path).map_err(wrap)?;
        relaxed
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(wrap)?;
        relaxed
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(wrap)?;
        Ok(StateDb {
            conn: Arc::new(Mutex::new(conn)),
            relaxed: Arc::new(Mutex::new(relaxed)),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        self.on(&self.conn, f)
    }

    fn on<T>(
        &self,
        conn: &Mutex<Connection>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        // A panic while holding the lock cannot leave SQLite half-written (each call is
        // one statement or one transaction), so a poisoned lock is still usable.
        let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|source| StateError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// Reads the value stored under `key`, if any.
    ///
    /// # Errors
    /// [`StateError::Sqlite`] on I/O failure, [`StateError::Decode`] if the stored value is
    /// not a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StateError> {
        let raw: Option<String> = self.with_conn(|c| {
            c.query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        })?;
        raw.map(|s| {
            serde_json::from_str(&s).map_err(|source| StateError::Decode {
                path: self.path.clone(),
                key: key.to_string(),
                source,
            })
        })
        .transpose()
    }

    /// Stores `value` under `key`; durable when this returns.
    ///
    /// # Errors
    /// [`StateError::Sqlite`] on I/O failure.
    pub fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StateError> {
        self.put_on(&self.conn, key, value)
    }

    /// Stores `value` under `key`, durable against a process crash but possibly lost in a
    /// power failure: for hints that may lag but must never be wrong.
    ///
    /// # Errors
    /// [`StateError::Sqlite`] on I/O failure.
    pub fn put_relaxed<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StateError> {
        self.put_on(&self.relaxed, key, value)
    }

    fn put_on<T: Serialize>(
        &self,
        conn: &Mutex<Connection>,
        key: &str,
        value: &T,
    ) -> Result<(), StateError> {
        let text = serde_json::to_string(value).map_err(|source| StateError::Decode {
            path: self.path.clone(),
            key: key.to_string(),
            source,
        })?;
        self.on(conn, |c| {
            c.execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, text],
            )
            .map(|_| ())
        })
    }

    /// Removes `key`; durable when this returns.
    ///
    /// # Errors
    /// [`StateError::Sqlite`] on I/O failure.
    pub fn delete(&self, key: &str) -> Result<(), StateError> {
        self.with_conn(|c| {
            c.execute("DELETE FROM kv WHERE key = ?1", [key])
                .map(|_| ())
        })
    }

    /// Every registered node, by number.
    ///
    /// # Errors
    /// [`StateError::Sqlite`] on I/O failure.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StateError> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare("SELECT number, name, cluster_addr FROM nodes ORDER BY number")?;
            let rows = stmt.query_map([], |r| {
                Ok(NodeRecord {
                    number: r.get(0)?,
                    name: r.get(1)?,
                    cluster_addr: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Registers a node, or updates the address of one already registered under the same
    /// name and number. A name or number held by a different node is refused.
    ///
    /// # Errors
    /// [`StateError::Conflict`] naming the holder; [`StateError::Sqlite`] on I/O failure.
    pub fn register_node(&self, node: &NodeRecord) -> Result<(), StateError> {
        let conflict = self.with_conn(|c| {
            let tx = c.unchecked_transaction()?;
            let holder: Option<(u16, String)> = tx
                .query_row(
                    "SELECT number, name FROM nodes WHERE (number = ?1) <> (name = ?2)
                       AND (number = ?1 OR name = ?2)",
                    params![node.number, node.name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if holder.is_none() {
                tx.execute(
                    "INSERT INTO nodes (number, name, cluster_addr) VALUES (?1, ?2, ?3)
                     ON CONFLICT(number) DO UPDATE SET cluster_addr = excluded.cluster_addr",
                    params![node.number, node.name, node.cluster_addr],
                )?;
                tx.commit()?;
            }
            Ok(holder)
        })?;
        match conflict {
            None => Ok(()),
            Some((number, name)) => Err(StateError::Conflict(format!(
                "node {} (number {}) conflicts with registered node {name} (number {number}): names and numbers must be unique",
                node.name, node.number
            ))),
        }
    }

    /// Forgets a node by number (after it is removed from the cluster).
    ///
    /// # Errors
    /// [`StateError::Sqlite`] on I/O failure.
    pub fn unregister_node(&self, number: u16) -> Result<(), StateError> {
        self.with_conn(|c| {
            c.execute("DELETE FROM nodes WHERE number = ?1", [number])
                .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Vote {
        term: u64,
        node: u64,
        committed: bool,
    }

    #[test]
    fn values_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = StateDb::open(dir.path()).expect("open");
        assert_eq!(db.get::<Vote>("vote").expect("get"), None);
        let v = Vote {
            term: 7,
            node: 3,
            committed: true,
        };
        db.put("vote", &v).expect("put");
        db.put("vote", &Vote { term: 8, ..v }).expect("overwrite");
        drop(db);
        let db = StateDb::open(dir.path()).expect("reopen");
        assert_eq!(
            db.get::<Vote>("vote").expect("get"),
            Some(Vote {
                term: 8,
                node: 3,
                committed: true
            })
        );
        db.put_relaxed("hint", &5u64).expect("relaxed put");
        drop(db);
        let db = StateDb::open(dir.path()).expect("reopen");
        assert_eq!(db.get::<u64>("hint").expect("get"), Some(5));
        db.delete("vote").expect("delete");
        assert_eq!(db.get::<Vote>("vote").expect("get"), None);
    }

    #[test]
    fn corrupt_value_is_an_error_naming_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = StateDb::open(dir.path()).expect("open");
        db.put("vote", &"not a vote").expect("put");
        let e = db.get::<Vote>("vote").unwrap_err();
        assert!(e.to_string().contains("`vote`"), "{e}");
    }

    #[test]
    fn node_names_and_numbers_are_unique() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = StateDb::open(dir.path()).expect("open");
        let n1 = NodeRecord {
            name: "node-1".into(),
            number: 1,
            cluster_addr: "127.0.0.1:1".into(),
        };
        db.register_node(&n1).expect("register");
        // Same name and number again: only the address changes.
        let moved = NodeRecord {
            cluster_addr: "127.0.0.1:9".into(),
            ..n1.clone()
        };
        db.register_node(&moved).expect("re-register");
        assert_eq!(db.nodes().expect("nodes"), vec![moved.clone()]);
        let same_number = NodeRecord {
            name: "other".into(),
            ..n1.clone()
        };
        assert!(matches!(
            db.register_node(&same_number),
            Err(StateError::Conflict(_))
        ));
        let same_name = NodeRecord {
            number: 2,
            ..n1.clone()
        };
        assert!(matches!(
            db.register_node(&same_name),
            Err(StateError::Conflict(_))
        ));
        let bad = NodeRecord {
            name: "x".into(),
            number: 1024,
            cluster_addr: String::new(),
        };
        assert!(db.register_node(&bad).is_err());
        db.unregister_node(1).expect("unregister");
        assert!(db.nodes().expect("nodes").is_empty());
    }
}
