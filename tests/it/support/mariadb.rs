//! Private throwaway `mariadbd` servers for tests: each has its own copy of the datadir
//! template, socket, pid file, error log and free loopback port, and is SIGKILLed when its
//! handle drops (also when a test panics). It never touches the machine's own server on
//! port 3306, and it knows nothing of WolfScale.
//!
//! Servers run with `--innodb-flush-log-at-trx-commit=2`, as DESIGN.md allows in
//! production: a committed row survives `kill9` of the server (the redo log is in the OS
//! page cache) but not a crash of the whole machine.

use std::fs::OpenOptions;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Pool};
use tempfile::TempDir;
use wolfscale::testing::mariadbd::{self, Layout};

use super::ports::PortReservation;
use super::process::{self, Tied};
use super::{blocking, datadir, init_tracing, Error, Result};

/// Server flags for test speed; later arguments (a test's `extra_args`) override them.
const SPEED_FLAGS: &[&str] = &[
    "--skip-name-resolve",
    "--skip-log-bin",
    "--innodb-flush-log-at-trx-commit=2",
    "--innodb-doublewrite=0",
    "--skip-innodb-adaptive-hash-index",
    // Native AIO contexts are a machine-wide quota; many servers at once can exhaust it.
    "--innodb-use-native-aio=0",
    "--performance-schema=OFF",
    // The temp tablespace is otherwise written out in full (12 MB) at every start.
    "--innodb-temp-data-file-path=ibtmp1:1M:autoextend",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
];

/// How many fresh ports to try when another process takes ours before `mariadbd` binds.
const PORT_ATTEMPTS: u32 = 5;

/// How to start a server; `Options::default()` is a plain server on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Options {
    /// Loopback address to bind: 127.0.0.1, or 127.0.0.2… when a test wants distinct hosts.
    pub host: Ipv4Addr,
    /// Extra `mariadbd` flags, placed after the harness's own so they win.
    pub extra_args: Vec<String>,
    /// How long one start (or restart) may take before it counts as failed.
    pub ready_timeout: Duration,
    /// Make the server's directory writable by every user before it starts: Galera's
    /// rsync state transfer, run as root, is refused by a private one.
    pub shared_dir: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            host: Ipv4Addr::LOCALHOST,
            extra_args: Vec::new(),
            ready_timeout: Duration::from_secs(60),
            shared_dir: false,
        }
    }
}

/// Where a server's start-up time went, for the figures the harness reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Time this start waited for the datadir template (made once per run, then ~0).
    pub template: Duration,
    /// Time to copy the template into the server's own datadir.
    pub copy: Duration,
    /// Time from spawning `mariadbd` to its first accepted connection (last (re)start).
    pub boot: Duration,
}

/// One private MariaDB server with root (no password) over TCP.
#[derive(Debug)]
pub struct MariaDb {
    // Fields drop in order: the process dies before its directory is removed.
    process: Option<Tied>,
    port: PortReservation,
    options: Options,
    mariadbd: PathBuf,
    timings: Timings,
    dir: TempDir,
}

impl MariaDb {
    /// Starts a server on 127.0.0.1.
    ///
    /// # Errors
    /// See [`MariaDb::start_with`].
    pub async fn start() -> Result<MariaDb> {
        MariaDb::start_with(Options::default()).await
    }

    /// Starts a server on `host`, a loopback address such as 127.0.0.2.
    ///
    /// # Errors
    /// See [`MariaDb::start_with`].
    pub async fn start_on(host: Ipv4Addr) -> Result<MariaDb> {
        MariaDb::start_with(Options {
            host,
            ..Options::default()
        })
        .await
    }

    /// Starts `n` servers on 127.0.0.1 concurrently.
    ///
    /// # Errors
    /// See [`MariaDb::start_all`].
    pub async fn start_many(n: usize) -> Result<Vec<MariaDb>> {
        MariaDb::start_all(vec![Options::default(); n]).await
    }

    /// Starts one server per host concurrently, in the order given.
    ///
    /// # Errors
    /// See [`MariaDb::start_all`].
    pub async fn start_many_on(hosts: &[Ipv4Addr]) -> Result<Vec<MariaDb>> {
        let options = hosts.iter().map(|&host| Options {
            host,
            ..Options::default()
        });
        MariaDb::start_all(options.collect()).await
    }

    /// Starts one server per entry concurrently, in the order given. Every start is
    /// awaited; if any fails, the servers that did start are stopped again.
    ///
    /// # Errors
    /// The first failure among the starts (see [`MariaDb::start_with`]).
    pub async fn start_all(options: Vec<Options>) -> Result<Vec<MariaDb>> {
        let tasks: Vec<_> = options
            .into_iter()
            .map(|o| tokio::spawn(MariaDb::start_with(o)))
            .collect();
        let mut started = Vec::with_capacity(tasks.len());
        let mut first_error = None;
        for task in tasks {
            match task.await {
                Ok(Ok(db)) => started.push(db),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                Err(join) => {
                    first_error.get_or_insert(Error::io("start task", join.into()));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(started),
        }
    }

    /// Starts a server: copies the template datadir (made on first use), picks a free
    /// port and waits until root can connect over TCP.
    ///
    /// # Errors
    /// [`Error::MissingTool`] when MariaDB is not installed; [`Error::Exited`] or
    /// [`Error::NotReady`] (with the error log's tail) when the server fails to start.
    pub async fn start_with(options: Options) -> Result<MariaDb> {
        init_tracing();
        let started = Instant::now();
        let shared = options.shared_dir;
        let (template, dir, copy) = blocking(move || {
            let template = datadir::get()?;
            let (dir, copy) = datadir::new_instance(template)?;
            if shared {
                let status = Command::new("chmod")
                    .arg("-R")
                    .arg("a+rwX")
                    .arg(dir.path())
                    .status()
                    .map_err(|e| Error::io("run chmod", e))?;
                if !status.success() {
                    return Err(Error::io(
                        format!("chmod -R a+rwX {}", dir.path().display()),
                        std::io::Error::other(status.to_string()),
                    ));
                }
            }
            Ok((template, dir, copy))
        })
        .await?;
        let template_wait = started.elapsed().saturating_sub(copy);
        let port = reserve(options.host)?;
        let mut db = MariaDb {
            process: None,
            port,
            options,
            mariadbd: template.mariadbd.clone(),
            timings: Timings {
                template: template_wait,
                copy,
                boot: Duration::ZERO,
            },
            dir,
        };
        let mut attempt = 1;
        loop {
            match db.launch().await {
                Ok(()) => break,
                Err(e) if is_port_in_use(&e) && attempt < PORT_ATTEMPTS => {
                    tracing::debug!(port = db.port(), attempt, "port taken, trying another");
                    attempt += 1;
                    db.port = reserve(db.options.host)?;
                }
                Err(e) => return Err(e),
            }
        }
        tracing::info!(
            addr = %db.addr(),
            pid = db.pid(),
            template_ms = db.timings.template.as_millis(),
            copy_ms = db.timings.copy.as_millis(),
            boot_ms = db.timings.boot.as_millis(),
            "mariadb started"
        );
        Ok(db)
    }

    /// Spawns `mariadbd` on the current port and datadir and waits until it is ready;
    /// on failure the process is gone again.
    async fn launch(&mut self) -> Result<()> {
        let log_path = self.error_log();
        let log_start = tokio::fs::metadata(&log_path).await.map_or(0, |m| m.len());
        let mut cmd = self.command();
        let started = Instant::now();
        let mut server = blocking(move || {
            // mariadbd reports bad flags on stderr before it opens --log-error: send both
            // to the same file so start-up errors show up in one tail.
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|e| Error::io(format!("open {}", log_path.display()), e))?;
            let log_err = log
                .try_clone()
                .map_err(|e| Error::io("duplicate log handle", e))?;
            cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
            process::spawn_tied(cmd).map_err(|e| Error::io("spawn mariadbd", e))
        })
        .await?;
        self.wait_ready(&mut server.0, log_start).await?;
        self.timings.boot = started.elapsed();
        self.process = Some(server);
        Ok(())
    }

    async fn wait_ready(&self, child: &mut Child, log_start: u64) -> Result<()> {
        let host = IpAddr::V4(self.host());
        let limit = self.options.ready_timeout;
        mariadbd::wait_ready(child, &self.layout(), host, self.port(), log_start, limit).await?;
        Ok(())
    }

    fn layout(&self) -> Layout {
        Layout::new(self.dir.path())
    }

    fn command(&self) -> Command {
        let flags = datadir::INNODB_SIZES
            .iter()
            .chain(SPEED_FLAGS)
            .map(|f| f.to_string())
            .chain(self.options.extra_args.iter().cloned());
        let host = IpAddr::V4(self.options.host);
        mariadbd::server_command(&self.mariadbd, &self.layout(), host, self.port(), flags)
    }

    /// Loopback address the server listens on.
    pub fn host(&self) -> Ipv4Addr {
        self.options.host
    }

    /// TCP port the server listens on; it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.port.port()
    }

    /// `host:port` of the server.
    pub fn addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.host(), self.port())
    }

    /// Connection URL for root without password, e.g. `mysql://root@127.0.0.1:40123/`.
    pub fn url(&self) -> String {
        format!("mysql://root@{}/", self.addr())
    }

    /// Connection options for root over TCP, without a default database. The socket is
    /// not preferred, so connections take the same path as remote clients would.
    pub fn opts(&self) -> OptsBuilder {
        mariadbd::root_opts(IpAddr::V4(self.host()), self.port())
    }

    /// Opens a new connection as root.
    ///
    /// # Errors
    /// The server is down or refuses the connection.
    pub async fn conn(&self) -> Result<Conn> {
        Ok(Conn::new(self.opts()).await?)
    }

    /// Opens a new connection as root with `db` as the default database.
    ///
    /// # Errors
    /// The server is down, or `db` does not exist.
    pub async fn conn_to(&self, db: &str) -> Result<Conn> {
        Ok(Conn::new(self.opts().db_name(Some(db))).await?)
    }

    /// A new connection pool for root. Make a fresh pool after `kill9`/`restart`: pooled
    /// connections to the old process are dead. Call `Pool::disconnect` when done.
    pub fn pool(&self) -> Pool {
        Pool::new(self.opts())
    }

    /// Creates database `name` (letters, digits and `_` only).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for other names; a query error if it already exists.
    pub async fn create_database(&self, name: &str) -> Result<()> {
        let valid = (1..=64).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(Error::InvalidName(name.into()));
        }
        let mut conn = self.conn().await?;
        conn.query_drop(format!("CREATE DATABASE `{name}`")).await?;
        conn.disconnect().await?;
        Ok(())
    }

    /// Runs a MariaDB client program (`mariadb`, `mariadb-dump`) as root against this
    /// server over TCP, without reading any option file; returns its standard output.
    ///
    /// # Errors
    /// [`Error::Io`] when the program cannot be run (not installed), [`Error::Tool`] with
    /// its standard error when it fails.
    pub async fn run_tool(&self, program: &str, args: &[&str]) -> Result<Vec<u8>> {
        let out = tokio::process::Command::new(program)
            .arg("--no-defaults")
            .arg(format!("--host={}", self.host()))
            .arg(format!("--port={}", self.port()))
            .arg("--user=root")
            .arg("--protocol=TCP")
            .args(args)
            .output()
            .await
            .map_err(|e| {
                Error::io(
                    format!("run {program} (install it with `apt-get install -y mariadb-client`)"),
                    e,
                )
            })?;
        if !out.status.success() {
            return Err(Error::Tool {
                program: program.into(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(out.stdout)
    }

    /// Process id of the running server, `None` after `kill9` or `stop`.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.0.id())
    }

    /// The server's datadir (a copy of the template, kept across restarts).
    pub fn datadir(&self) -> PathBuf {
        self.layout().datadir()
    }

    /// The server's error log, appended to across restarts.
    pub fn error_log(&self) -> PathBuf {
        self.layout().error_log()
    }

    /// Start-up figures of this server.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Kills the server with SIGKILL, as a crash would, and reaps it.
    ///
    /// # Errors
    /// The process cannot be signalled or waited for. Does nothing if it is not running.
    pub async fn kill9(&mut self) -> Result<()> {
        let Some(mut server) = self.process.take() else {
            return Ok(());
        };
        let pid = server.0.id();
        server
            .0
            .kill()
            .map_err(|e| Error::io("SIGKILL mariadbd", e))?;
        let status = process::wait_exit(&mut server.0, Duration::from_secs(10))
            .await
            .map_err(|e| Error::io("wait for mariadbd", e))?;
        tracing::info!(addr = %self.addr(), pid, ?status, "mariadb killed");
        Ok(())
    }

    /// Stops the server gracefully (SIGTERM, then wait for a clean shutdown).
    ///
    /// # Errors
    /// [`Error::StopTimeout`] if it does not exit within 60 s (it is then killed).
    /// Does nothing if it is not running.
    pub async fn stop(&mut self) -> Result<()> {
        let Some(mut server) = self.process.take() else {
            return Ok(());
        };
        let pid = server.0.id();
        let limit = Duration::from_secs(60);
        let started = Instant::now();
        process::signal(&server.0, libc::SIGTERM).map_err(|e| Error::io("SIGTERM mariadbd", e))?;
        let status = process::wait_exit(&mut server.0, limit)
            .await
            .map_err(|e| Error::io("wait for mariadbd", e))?;
        match status {
            Some(status) => {
                tracing::info!(addr = %self.addr(), pid, %status, elapsed_ms = started.elapsed().as_millis(), "mariadb stopped");
                Ok(())
            }
            // Dropping `server` kills it.
            None => Err(Error::StopTimeout { pid, waited: limit }),
        }
    }

    /// Starts the server again on the same datadir, host and port, after `kill9` or
    /// `stop`; if it is still running it is stopped gracefully first.
    ///
    /// # Errors
    /// See [`MariaDb::stop`] and [`MariaDb::start_with`]; the port may have been taken by
    /// another process meanwhile (retried for a few seconds).
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        let mut attempt = 1;
        loop {
            match self.launch().await {
                Ok(()) => break,
                Err(e) if is_port_in_use(&e) && attempt < PORT_ATTEMPTS => {
                    tracing::debug!(port = self.port(), attempt, "port taken, retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
        tracing::info!(addr = %self.addr(), pid = self.pid(), boot_ms = self.timings.boot.as_millis(), "mariadb restarted");
        Ok(())
    }
}

fn reserve(host: Ipv4Addr) -> Result<PortReservation> {
    PortReservation::new(host).map_err(|e| Error::io(format!("find a free port on {host}"), e))
}

fn is_port_in_use(e: &Error) -> bool {
    matches!(e, Error::Exited { log_tail, .. } if log_tail.contains("Address already in use"))
}
