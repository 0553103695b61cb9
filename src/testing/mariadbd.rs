//! Private `mariadbd` servers: finding the programs, a datadir made with
//! `mariadb-install-db`, the command line of a server confined to its own directory and
//! port (never the machine's own server or option files), and waiting until it accepts
//! root over TCP. Who owns the process and the directory, and with which tuning flags
//! the server runs, is the caller's business.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Why a server could not be made or started; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A required MariaDB program is not installed.
    #[error(
        "`{tool}` not found (searched PATH, /usr/sbin, /usr/local/sbin): run \
         `apt-get install -y mariadb-server`"
    )]
    MissingTool {
        /// The program's name.
        tool: String,
    },
    /// `mariadbd` could not be waited for.
    #[error("wait for mariadbd: {0}")]
    Wait(#[source] std::io::Error),
    /// `mariadbd` exited before it accepted connections.
    #[error("mariadbd exited during start-up ({status}); its error log ends with:\n{log_tail}")]
    Exited {
        /// How it exited.
        status: String,
        /// The end of its error log, from this start on.
        log_tail: String,
    },
    /// `mariadbd` did not accept connections in time.
    #[error(
        "mariadbd on {addr} not ready after {waited:?} (last connect error: {last_error}); \
         its error log ends with:\n{log_tail}"
    )]
    NotReady {
        /// `host:port` it should listen on.
        addr: String,
        /// How long it was given.
        waited: Duration,
        /// The last connection attempt's error.
        last_error: String,
        /// The end of its error log, from this start on.
        log_tail: String,
    },
}

/// The files of one server, all under its own directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    home: PathBuf,
}

impl Layout {
    /// A server living in `home`.
    pub fn new(home: &Path) -> Layout {
        Layout {
            home: home.to_path_buf(),
        }
    }

    /// Its directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `home/data`: the datadir, a copy of a template.
    pub fn datadir(&self) -> PathBuf {
        self.home.join("data")
    }

    /// `home/mariadbd.sock`.
    pub fn socket(&self) -> PathBuf {
        self.home.join("mariadbd.sock")
    }

    /// `home/error.log`, appended to across restarts.
    pub fn error_log(&self) -> PathBuf {
        self.home.join("error.log")
    }

    /// `home/tmp`, which must exist before the server starts.
    pub fn tmpdir(&self) -> PathBuf {
        self.home.join("tmp")
    }

    /// `home/mariadbd.pid`.
    pub fn pid_file(&self) -> PathBuf {
        self.home.join("mariadbd.pid")
    }
}

/// The path of MariaDB program `name`, looked for in PATH, then /usr/sbin and
/// /usr/local/sbin (where Debian puts `mariadbd`, outside a user's PATH).
///
/// # Errors
/// [`LaunchError::MissingTool`] when it is in none of them.
pub fn find_tool(name: &str) -> Result<PathBuf, LaunchError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| LaunchError::MissingTool { tool: name.into() })
}

/// Whether we run as root, where MariaDB programs need `--user=root` to agree to run.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `mariadb-install-db` making a datadir in `datadir` with root allowed in without a
/// password and no test database; the caller adds InnoDB sizes and output, and runs it.
pub fn install_db_command(install_db: &Path, datadir: &Path) -> Command {
    let mut cmd = Command::new(install_db);
    // `--no-defaults` must come first: the machine's my.cnf must not leak in.
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", datadir.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db");
    if is_root() {
        cmd.arg("--user=root");
    }
    cmd
}

/// `mariadbd` on `layout`'s files, listening on `host:port` only; `flags` follow the
/// harness's own arguments, so they can override them. The caller sets the output and
/// spawns it.
pub fn server_command<I, S>(
    mariadbd: &Path,
    layout: &Layout,
    host: IpAddr,
    port: u16,
    flags: I,
) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(mariadbd);
    // `--no-defaults` must come first: the machine's my.cnf must not leak in.
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", layout.datadir().display()))
        .arg(format!("--socket={}", layout.socket().display()))
        .arg(format!("--pid-file={}", layout.pid_file().display()))
        .arg(format!("--log-error={}", layout.error_log().display()))
        .arg(format!("--tmpdir={}", layout.tmpdir().display()))
        .arg(format!("--bind-address={host}"))
        .arg(format!("--port={port}"));
    if is_root() {
        // mariadbd refuses to run as root unless told to.
        cmd.arg("--user=root");
    }
    cmd.args(flags);
    cmd
}

/// Root over TCP on `host:port`, without a default database. The socket is not
/// preferred, so connections take the path remote clients take.
pub fn root_opts(host: IpAddr, port: u16) -> mysql_async::OptsBuilder {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(host.to_string())
        .tcp_port(port)
        .user(Some("root"))
        .prefer_socket(false)
}

/// Waits until the server `child` on `host:port` accepts root, for at most `limit`.
/// `log_start` is where its error log stood before this start, so a failure quotes only
/// this start's lines.
///
/// # Errors
/// [`LaunchError::Exited`] when it exits first, [`LaunchError::NotReady`] when time runs
/// out (both with the error log's tail), [`LaunchError::Wait`] when it cannot be waited for.
pub async fn wait_ready(
    child: &mut Child,
    layout: &Layout,
    host: IpAddr,
    port: u16,
    log_start: u64,
    limit: Duration,
) -> Result<(), LaunchError> {
    let deadline = Instant::now() + limit;
    let mut last_error = String::from("none yet");
    loop {
        if let Some(status) = child.try_wait().map_err(LaunchError::Wait)? {
            return Err(LaunchError::Exited {
                status: status.to_string(),
                log_tail: log_tail(layout, log_start).await,
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LaunchError::NotReady {
                addr: format!("{host}:{port}"),
                waited: limit,
                last_error,
                log_tail: log_tail(layout, log_start).await,
            });
        }
        // A connection accepted before the server is ready only gets its greeting
        // later, hence the timeout on each attempt.
        let attempt = mysql_async::Conn::new(root_opts(host, port));
        match tokio::time::timeout(left.min(Duration::from_secs(5)), attempt).await {
            Ok(Ok(conn)) => {
                // Only the handshake mattered; a failed goodbye changes nothing.
                let _ = conn.disconnect().await;
                return Ok(());
            }
            Ok(Err(e)) => last_error = e.to_string(),
            Err(_) => last_error = "connect attempt timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn log_tail(layout: &Layout, from: u64) -> String {
    let path = layout.error_log();
    tokio::task::spawn_blocking(move || tail_of_file(&path, from, 30))
        .await
        .unwrap_or_else(|e| format!("(reading the error log failed: {e})"))
}

/// The last `lines` lines of `path` from byte `from` on, or why it cannot be read.
pub fn tail_of_file(path: &Path, from: u64, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
            let text = String::from_utf8_lossy(&bytes[start..]);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_confined_to_its_directory_and_flags_come_last() {
        let layout = Layout::new(Path::new("/srv/db1"));
        let cmd = server_command(
            Path::new("/usr/sbin/mariadbd"),
            &layout,
            IpAddr::from([127, 0, 0, 2]),
            40123,
            ["--port=1"],
        );
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args[0], "--no-defaults",
            "the machine's my.cnf must not apply"
        );
        for wanted in [
            "--datadir=/srv/db1/data",
            "--socket=/srv/db1/mariadbd.sock",
            "--log-error=/srv/db1/error.log",
            "--tmpdir=/srv/db1/tmp",
            "--bind-address=127.0.0.2",
            "--port=40123",
        ] {
            assert!(args.iter().any(|a| a == wanted), "{wanted} in {args:?}");
        }
        assert_eq!(args.last().map(String::as_str), Some("--port=1"));
    }

    #[test]
    fn the_tail_starts_where_asked() {
        let dir = std::env::temp_dir().join(format!("wolfscale-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("log");
        std::fs::write(&f, "old\nnew 1\nnew 2\n").expect("write");
        assert_eq!(tail_of_file(&f, 4, 30), "new 1\nnew 2");
        assert_eq!(tail_of_file(&f, 0, 1), "new 2");
        assert!(tail_of_file(&dir.join("none"), 0, 3).starts_with("(cannot read"));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
