//! State transfer: snapshots of the replicated database. A snapshot is one consistent copy
//! of the database (tables with their rows, sequences, views, routines, triggers) together
//! with the log position it reflects, stored as one checksummed file under
//! `<data_dir>/snapshots/`. Consensus sends it to a node whose missing log entries were
//! purged; the node loads it into its MariaDB and continues from the log.
//!
//! | file | owns |
//! |---|---|
//! | `format` | the file's byte layout: LZ4 frames of typed items, CRCs, SHA-256 |
//! | `dump` | taking a copy from one consistent read view while writes continue |
//! | `load` | replacing the local database's contents with a copy |
//! | `store` | the snapshot directory: build, list, receive, install, resume, prune |
//! | `file` | the open file openraft streams (`SnapshotData`) |
//! | `progress` | what a syncing node shows: phase, bytes, rows, percentage, ETA |
//!
//! It knows MariaDB (through `sql`'s text) and openraft's snapshot metadata, nothing of
//! HTTP or the WAL.

mod dump;
pub mod file;
pub mod format;
mod load;
pub mod progress;
mod store;

pub use file::SnapshotFile;
pub use progress::{Phase, Progress, SyncProgress};
pub use store::{Manifest, Snapshots};

use std::sync::Arc;
use std::time::Duration;

/// What went wrong taking, storing or loading a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The snapshot directory or a file in it failed.
    #[error("snapshot storage: {0}")]
    Io(#[from] std::io::Error),
    /// A snapshot file is damaged or not a snapshot.
    #[error(transparent)]
    Format(#[from] format::FormatError),
    /// MariaDB failed; [`Error::is_transient`] says whether retrying may help.
    #[error("MariaDB: {0}")]
    Mysql(#[from] mysql_async::Error),
    /// No connection within the configured time.
    #[error("timed out after {0:?} connecting to MariaDB")]
    ConnectTimeout(Duration),
    /// The database holds something snapshots cannot copy, or the account may not read it.
    #[error("{0}")]
    Unsupported(String),
    /// The request or the file's content does not make sense (a bug or a foreign file).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Whether the same operation may succeed if retried (MariaDB restarting, lost
    /// connection, lock wait timeout, deadlock).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Mysql(mysql_async::Error::Server(e)) => {
                crate::sql::classify_error(e.code, &e.message) == crate::sql::ErrorClass::Transient
            }
            Error::Mysql(_) | Error::ConnectTimeout(_) => true,
            _ => false,
        }
    }
}

/// How snapshots reach the replicated database: connection options (with the database
/// selected and the applier's session settings), its name, and the applier's DDL gate.
#[derive(Clone)]
pub struct Database {
    opts: mysql_async::Opts,
    name: String,
    connect_timeout: Duration,
    /// Held for writing by the applier while a DDL entry runs, for reading by a dump while
    /// it opens its read view: a dump never sees a table change under it.
    ddl_gate: Arc<tokio::sync::RwLock<()>>,
}

impl std::fmt::Debug for Database {
    // The options hold the password: show only the database name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.name)
    }
}

impl Database {
    /// A handle on database `name` reached with `opts`.
    pub fn new(
        opts: mysql_async::Opts,
        name: &str,
        connect_timeout: Duration,
        ddl_gate: Arc<tokio::sync::RwLock<()>>,
    ) -> Database {
        Database {
            opts,
            name: name.to_string(),
            connect_timeout,
            ddl_gate,
        }
    }

    /// The replicated database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn connect(&self) -> Result<mysql_async::Conn, Error> {
        tokio::time::timeout(
            self.connect_timeout,
            mysql_async::Conn::new(self.opts.clone()),
        )
        .await
        .map_err(|_| Error::ConnectTimeout(self.connect_timeout))?
        .map_err(Error::Mysql)
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
