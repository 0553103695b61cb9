//! Shared harness of the integration tests: private throwaway MariaDB servers, free
//! loopback ports and test logging. It owns every process and temp dir it starts and
//! cleans them up; it knows nothing of WolfScale's own modules.
//!
//! # Use
//!
//! ```text
//! let mut dbs = MariaDb::start_many(3).await?;        // 127.0.0.1, concurrent starts
//! let other = MariaDb::start_on(Ipv4Addr::new(127, 0, 0, 2)).await?;
//! dbs[0].create_database("app").await?;
//! let mut conn = dbs[0].conn_to("app").await?;        // or .pool(), .opts(), .url()
//! dbs[0].kill9().await?;                               // crash; data stays in the datadir
//! dbs[0].restart().await?;                             // same datadir, host and port
//! // Dropping a MariaDb SIGKILLs its server and removes its dir, panic or not.
//! ```
//!
//! A test needing MariaDB fails (never skips) when it is not installed: the error says
//! to run `apt-get install -y mariadb-server`.

pub mod cluster;
pub mod config;
pub mod datadir;
pub mod galera;
pub mod live_node;
pub mod mariadb;
pub mod ports;
pub mod process;
pub mod procs;
pub mod proxy;
pub mod raw_http;
pub mod relay;
pub mod sqlite_applier;
pub mod tables;
pub mod wal;

use std::sync::Once;
use std::time::Duration;

pub use mariadb::{MariaDb, Options};
pub use proxy::Proxy;
pub use wal::{copy_segments, noise, opts, rec, segment_files, text};

/// Installs a tracing subscriber once per test binary, writing through the test harness's
/// captured output; `RUST_LOG` overrides the default `info` filter.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        // Another subscriber may already be installed (a test that set its own): keep it.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// What can go wrong while running private servers; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required MariaDB program is not installed.
    #[error(
        "`{tool}` not found (searched PATH, /usr/sbin, /usr/local/sbin): run \
         `apt-get install -y mariadb-server`; the integration tests start private MariaDB servers"
    )]
    MissingTool { tool: String },
    /// A file-system or process operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// `mariadb-install-db` failed while making the datadir template.
    #[error("mariadb-install-db failed ({status}); its output ends with:\n{log_tail}")]
    InstallDb { status: String, log_tail: String },
    /// `mariadbd` exited before it accepted connections.
    #[error("mariadbd exited during start-up ({status}); its error log ends with:\n{log_tail}")]
    Exited { status: String, log_tail: String },
    /// `mariadbd` did not accept connections in time.
    #[error(
        "mariadbd on {addr} not ready after {waited:?} (last connect error: {last_error}); \
         its error log ends with:\n{log_tail}"
    )]
    NotReady {
        addr: String,
        waited: Duration,
        last_error: String,
        log_tail: String,
    },
    /// `mariadbd` did not exit in time after SIGTERM (it was then killed).
    #[error("mariadbd (pid {pid}) did not stop within {waited:?} of SIGTERM; killed it")]
    StopTimeout { pid: u32, waited: Duration },
    /// A database name the harness refuses to quote.
    #[error("invalid database name {0:?}: use 1-64 characters of [A-Za-z0-9_]")]
    InvalidName(String),
    /// A MariaDB client program (`mariadb`, `mariadb-dump`) failed.
    #[error("{program} failed ({status}): {stderr}")]
    Tool {
        program: String,
        status: String,
        stderr: String,
    },
    /// A query or connection to a private server failed.
    #[error("mariadb: {0}")]
    Mysql(#[from] mysql_async::Error),
}

impl From<wolfscale::testing::mariadbd::LaunchError> for Error {
    fn from(e: wolfscale::testing::mariadbd::LaunchError) -> Error {
        use wolfscale::testing::mariadbd::LaunchError as L;
        match e {
            L::MissingTool { tool } => Error::MissingTool { tool },
            L::Wait(source) => Error::io("wait for mariadbd", source),
            L::Exited { status, log_tail } => Error::Exited { status, log_tail },
            L::NotReady {
                addr,
                waited,
                last_error,
                log_tail,
            } => Error::NotReady {
                addr,
                waited,
                last_error,
                log_tail,
            },
        }
    }
}

impl Error {
    /// Wraps an I/O error with what the harness was doing.
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// Result of the harness's fallible operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs blocking work (process spawns, file copies) off the async runtime; a panic in it
/// is resumed in the caller.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => Err(Error::io("blocking task", join.into())),
    }
}
